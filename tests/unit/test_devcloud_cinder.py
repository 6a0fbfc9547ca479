"""devcloud's Cinder, the pure parts: the service table, the rendered configs, which services an
install restarts, the Cinder switch and the catalog's volume types (issue 15)."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from gcloudctl.devcloud import catalog, install, lifecycle, readiness
from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.config import Backends, Secrets, render_all
from gcloudctl.devcloud.layout import DATABASES, Layout

CINDER = ["cinder-api", "cinder-scheduler", "cinder-volume", "cinder-backup"]
KEY = "ab" * 32


def _secrets() -> Secrets:
    return Secrets("adminpw", "servicepw", "gcloudctlpw", "dbpw", people_password="peoplepw", volume_key=KEY)


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    return render_all(Layout(tmp_path), _secrets(), Backends())


def test_the_cinder_services_are_optional_and_start_with_the_control_phase():
    names = [s.name for s in svc.SERVICES]
    assert names[-4:] == CINDER
    assert all(svc.BY_NAME[n].optional == "cinder" and svc.BY_NAME[n].package == "cinder" for n in CINDER)
    assert [s.name for s in svc.selected(frozenset())] == names[:-4]
    assert [s.name for s in svc.selected()] == names
    control = [s.name for s in svc.in_phase(svc.Phase.CONTROL)]
    assert set(CINDER) <= set(control)
    assert not set(CINDER) & {s.name for s in svc.in_phase(svc.Phase.CONTROL, frozenset())}
    api = svc.BY_NAME["cinder-api"]
    assert (api.kind, api.port, api.catalog.service_type, api.catalog.path) == (svc.Kind.WSGI, 8776, "block-storage", "/v3")
    assert [c.service_type for c in api.extra_catalog] == ["volumev3"]
    assert svc.BY_NAME["cinder-volume"].heartbeat_host == "devcloud@file"
    assert {svc.BY_NAME[n].heartbeat_api for n in CINDER[1:]} == {"block-storage"}
    assert "cinder" in DATABASES


def test_cinder_conf_backend_backup_key_manager_and_database(files, tmp_path):
    conf = _ini(files["cinder/cinder.conf"])
    assert conf["DEFAULT"]["enabled_backends"] == "file"
    assert conf["DEFAULT"]["default_volume_type"] == "standard"
    assert conf["file"]["volume_driver"] == "gcloudctl_devcloud_plugins.cinder_file.FileVolumeDriver"
    assert conf["file"]["devcloud_volumes_dir"] == str(tmp_path / "data" / "cinder" / "volumes")
    assert conf["DEFAULT"]["backup_driver"] == "cinder.backup.drivers.posix.PosixBackupDriver"
    assert conf["DEFAULT"]["backup_posix_path"] == str(tmp_path / "data" / "cinder" / "backups")
    assert conf["key_manager"]["backend"] == "cinder.keymgr.conf_key_mgr.ConfKeyManager"
    assert conf["key_manager"]["fixed_key"] == KEY
    assert conf["database"]["connection"].startswith("mysql+pymysql://devcloud:dbpw@127.0.0.1:3306/devcloud_cinder?")
    assert conf["keystone_authtoken"]["username"] == "cinder"
    assert int(conf["DEFAULT"]["quota_volumes"]) >= 100 and int(conf["DEFAULT"]["quota_gigabytes"]) >= 1000
    assert conf["DEFAULT"]["resource_query_filters_file"].endswith("/venv/etc/cinder/resource_filters.json")
    assert conf["privsep_osbrick"]["helper_command"].startswith(str(tmp_path / "venv" / "bin" / "privsep-helper"))
    assert "transport_url" in conf["DEFAULT"] and "/devcloud" in conf["DEFAULT"]["transport_url"]


def test_the_volume_key_is_only_in_cinder_conf(files):
    assert [path for path, text in files.items() if KEY in text] == ["cinder/cinder.conf"]


def test_nova_finds_cinder_by_the_volumev3_catalog_entry(files):
    for name in ("nova/nova.conf", "nova/nova-compute.conf"):
        cinder = _ini(files[name])["cinder"]
        assert cinder["catalog_info"] == "volumev3::publicURL"
        assert cinder["os_region_name"] == "RegionOne"
        assert cinder["username"] == "nova"


def test_a_cinder_conf_change_restarts_only_cinder():
    assert svc.affected_by({"cinder/cinder.conf"}) == CINDER
    assert svc.affected_by({"uwsgi/cinder-api.ini"}) == ["cinder-api"]


def test_install_restarts_what_the_update_touches():
    assert svc.affected_by_install(set(), set()) == []
    assert svc.affected_by_install(set(), {"cinder_file"}) == ["cinder-volume", "cinder-backup"]
    assert svc.affected_by_install(set(), {"cinder_api", "virt"}) == ["nova-compute", "cinder-api"]
    assert svc.affected_by_install({"oslo-config"}, set()) == [s.name for s in svc.SERVICES]
    assert svc.affected_by_install(set(), {"something_new"}) == [s.name for s in svc.SERVICES]


def _fake_venv(layout: Layout, pins: dict[str, str], plugins: dict[str, bytes]) -> None:
    site = layout.site_packages
    for name, version in pins.items():
        (site / f"{name.replace('-', '_')}-{version}.dist-info").mkdir(parents=True)
    (site / "gcloudctl_devcloud_plugins").mkdir(parents=True, exist_ok=True)
    for module, text in plugins.items():
        (site / "gcloudctl_devcloud_plugins" / f"{module}.py").write_bytes(text)


def _shipped_plugins() -> dict[str, bytes]:
    source = install.PLUGINS_DIR / "gcloudctl_devcloud_plugins"
    return {path.stem: path.read_bytes() for path in source.glob("*.py")}


def test_pending_change_ignores_added_distributions_and_names_moved_pins(tmp_path):
    layout = Layout(tmp_path)
    locked = install.locked_pins()
    before = {name: version for name, version in locked.items() if name != "cinder"}  # Cinder added later
    plugins = _shipped_plugins()
    _fake_venv(layout, before, {k: v for k, v in plugins.items() if not k.startswith("cinder")})
    assert install.pending_change(layout) == (set(), {"cinder_api", "cinder_file"})

    moved = Layout(tmp_path / "moved")
    _fake_venv(moved, {**before, "oslo-config": "0.1"}, plugins)
    assert install.pending_change(moved) == ({"oslo-config"}, set())


def test_cinder_switch_is_remembered_and_defaults_on(tmp_path):
    layout = Layout(tmp_path)
    assert lifecycle.cinder_enabled(layout) and lifecycle.features(layout) == frozenset({"cinder"})
    lifecycle.set_cinder(layout, False)
    assert json.loads((tmp_path / "cinder.json").read_text()) == {"enabled": False}
    assert not lifecycle.cinder_enabled(layout) and lifecycle.features(layout) == frozenset()
    lifecycle.set_cinder(layout, True)
    assert lifecycle.cinder_enabled(layout)


def test_old_secrets_get_a_256_bit_volume_key_once(tmp_path):
    layout = Layout(tmp_path)
    old = {k: v for k, v in _secrets().to_dict().items() if k != "volume_key"}
    layout.secrets_file.write_text(json.dumps(old))
    first = lifecycle.load_or_create_secrets(layout)
    assert len(bytes.fromhex(first.volume_key)) == 32
    assert lifecycle.load_or_create_secrets(layout).volume_key == first.volume_key
    assert oct(layout.secrets_file.stat().st_mode & 0o777) == "0o600"


def test_status_lists_cinder_and_reports_it_off_when_switched_off(tmp_path):
    layout = Layout(tmp_path)  # nothing runs here: every service is down
    states = {row.name: row.state for row in lifecycle.status(layout)}
    assert [states[n] for n in CINDER] == ["down"] * 4
    lifecycle.set_cinder(layout, False)
    states = {row.name: (row.state, row.version) for row in lifecycle.status(layout)}
    assert [states[n] for n in CINDER] == [(readiness.State.OFF.value, "29.0.0")] * 4
    assert states["nova-api"][0] == "down"


def test_volume_types_match_the_platform_catalog():
    import yaml

    platform = yaml.safe_load((Path(catalog.__file__).resolve().parents[1] / "data" / "platform.yaml").read_text())
    offered = platform["spec"]["volumeTypes"]
    assert {t.name for t in catalog.VOLUME_TYPES} == set(offered)
    for vtype in catalog.VOLUME_TYPES:
        assert (vtype.encryption is not None) == offered[vtype.name]["encrypted"]
    spec = dict(next(t for t in catalog.VOLUME_TYPES if t.name == "encrypted").encryption)
    assert spec == {"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256, "control_location": "front-end"}
    assert "cinder" in catalog.SERVICE_USERS


def test_a_fresh_devcloud_migrates_cinder_with_the_others(tmp_path):
    layout = Layout(tmp_path)
    chains = install._manage_steps(layout, _secrets())
    assert chains["cinder"] == [[str(layout.venv_bin / "cinder-manage"), "--config-file",
                                 str(layout.etc / "cinder" / "cinder.conf"), "db", "sync"]]
    assert install._chain_shell(chains["cinder"]).startswith("set -e; ")


def test_logs_know_the_cinder_services(tmp_path):
    layout = Layout(tmp_path)
    (layout.logs).mkdir(parents=True)
    for name in (*CINDER, "init-cinder"):
        (layout.logs / f"{name}.log").write_text("x\n")
        assert lifecycle.log_path(layout, name) == layout.logs / f"{name}.log"
