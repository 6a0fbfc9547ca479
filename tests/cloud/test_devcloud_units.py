"""Specifications of devcloud's pure parts (no cloud needed): config, readiness, catalog."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from gcloudctl.devcloud import catalog, config, readiness
from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.layout import Layout

LAYOUT = Layout(Path("/srv/devcloud"))
SECRETS = config.Secrets("adm", "svc", "gcl", "db")


@pytest.mark.parametrize("existing, expected_keys", [
    pytest.param(None, {"devcloud", "devcloud-gcloudctl"}, id="no-file"),
    pytest.param({"clouds": {"prod": {"auth": {}}}}, {"prod", "devcloud", "devcloud-gcloudctl"}, id="keeps-other-clouds"),
    pytest.param({"clouds": {"devcloud": {"old": 1}}, "public-clouds": {}}, {"devcloud", "devcloud-gcloudctl"},
                 id="replaces-own-entry"),
])
def test_merge_clouds_never_drops_other_entries(existing, expected_keys):
    merged = catalog.merge_clouds(existing, catalog.cloud_entries(SECRETS))
    assert set(merged["clouds"]) == expected_keys
    assert merged["clouds"]["devcloud"]["auth"]["password"] == "adm"
    if existing and "public-clouds" in existing:
        assert "public-clouds" in merged


def test_people_entries_ask_for_their_agency_domain_scope():
    entries = catalog.cloud_entries(config.Secrets("adm", "svc", "gcl", "db", people_password="ppl"))
    assert set(entries) == {"devcloud", "devcloud-gcloudctl", *(p.cloud for p in catalog.PEOPLE)}
    requester = entries["devcloud-byt-requester"]["auth"]
    assert (requester["username"], requester["user_domain_name"], requester["domain_name"]) == ("nguyen.van.a", "BYT", "BYT")
    assert "project_name" not in requester and requester["password"] == "ppl"
    assert entries["devcloud-operator"]["auth"]["project_name"] == "admin"


def test_fake_image_is_a_qcow2_header_glance_accepts():
    data = catalog.qcow2_image()
    magic, version = struct.unpack(">4sI", data[:8])
    assert (magic, version, len(data)) == (b"QFI\xfb", 2, 1024)
    assert struct.unpack(">Q", data[24:32])[0] == 1 << 30  # virtual size


@pytest.mark.parametrize("probe, was_started, expected", [
    pytest.param(readiness.Probe(alive=False), True, readiness.State.FAILED, id="died-while-starting"),
    pytest.param(readiness.Probe(alive=False), False, readiness.State.DOWN, id="not-running"),
    pytest.param(readiness.Probe(alive=True, http_status=None), True, readiness.State.STARTING, id="no-http-yet"),
    pytest.param(readiness.Probe(alive=True, http_status=503), True, readiness.State.STARTING, id="5xx-not-ready"),
    pytest.param(readiness.Probe(alive=True, http_status=401), True, readiness.State.UP, id="app-answers-401"),
    pytest.param(readiness.Probe(alive=True, heartbeat_ok=False), True, readiness.State.STARTING, id="old-heartbeat"),
    pytest.param(readiness.Probe(alive=True, heartbeat_ok=True), True, readiness.State.UP, id="fresh-heartbeat"),
])
def test_readiness_table(probe, was_started, expected):
    assert readiness.judge(probe, was_started=was_started) is expected


def test_heartbeat_must_be_newer_than_the_process_start():
    rows = [{"binary": "nova-compute", "host": "devcloud", "updated_at": "2026-11-23T20:00:10.000000"}]
    start = readiness.parse_nova_time("2026-11-23T20:00:05").timestamp()
    assert readiness.heartbeat_since(rows, "nova-compute", "devcloud", start)
    assert not readiness.heartbeat_since(rows, "nova-compute", "devcloud", start + 30)  # stale row after restart
    assert not readiness.heartbeat_since(rows, "nova-conductor", "devcloud", start)


def test_every_listener_and_url_is_loopback():
    files = config.render_all(LAYOUT, SECRETS, config.Backends())
    text = "\n".join(files.values())
    assert "0.0.0.0" not in text
    hosts = set(re.findall(r"(?:http|rabbit|mysql\+pymysql)://(?:[^@/\s]*@)?([^:/\s]+)", text))
    assert hosts == {"127.0.0.1"}
    for service in svc.SERVICES:
        if service.kind is svc.Kind.WSGI:
            ini = files[f"uwsgi/{service.name}.ini"]
            assert f"http-socket = 127.0.0.1:{service.port}" in ini
            assert "die-on-term = true" in ini  # TERM must stop uWSGI, not reload it


def test_nova_compute_config_has_no_database_and_uses_the_stable_fake_driver():
    files = config.render_all(LAYOUT, SECRETS, config.Backends())
    compute = files["nova/nova-compute.conf"]
    assert "[database]" not in compute and "[api_database]" not in compute
    assert "compute_driver = fake.FakeDriverWithoutFakeNodes" in compute
    assert "[database]" in files["nova/nova.conf"]


def test_keystone_is_configured_for_fast_calls():
    keystone = config.render_all(LAYOUT, SECRETS, config.Backends())["keystone/keystone.conf"]
    assert "backend = oslo_cache.dict" in keystone and "enabled = true" in keystone
    assert "password_hash_rounds = 4" in keystone


def test_service_environment_drops_bytecode_suppression():
    env = svc.environment(LAYOUT, svc.BY_NAME["nova-api"], {"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["OS_NOVA_CONFIG_DIR"] == "/srv/devcloud/etc/nova"
    assert env["PATH"].startswith("/srv/devcloud/venv/bin:")


def test_phases_start_identity_first_and_compute_last():
    assert [s.name for s in svc.in_phase(svc.Phase.IDENTITY)] == ["keystone"]
    assert [s.name for s in svc.in_phase(svc.Phase.COMPUTE)] == ["nova-compute"]
    assert svc.command(LAYOUT, svc.BY_NAME["nova-compute"])[-1].endswith("nova-compute.conf")


def test_platform_catalog_flavors_and_images_are_bootstrapped():
    import yaml

    platform = yaml.safe_load((Path(__file__).resolve().parents[2] / "gcloudctl" / "data" / "platform.yaml").read_text())
    flavors = {f.name: (f.vcpus, f.ram_mib, f.disk_gib) for f in catalog.FLAVORS}
    for name, spec in platform["spec"]["flavors"].items():
        assert flavors[name] == (spec["vcpus"], spec["ramMiB"], spec["diskGiB"])
    assert set(platform["spec"]["images"]) == {i.name for i in catalog.IMAGES}


@pytest.mark.parametrize("changed, restart", [
    pytest.param({"nova/nova.conf"}, ["nova-api", "nova-conductor", "nova-scheduler"], id="nova-conf"),
    pytest.param({"nova/nova-compute.conf"}, ["nova-compute"], id="compute-only"),
    pytest.param({"neutron/ml2_conf.ini"}, ["neutron"], id="ml2"),
    pytest.param({"uwsgi/keystone.ini"}, ["keystone"], id="uwsgi-ini"),
    pytest.param(set(), [], id="nothing-changed"),
])
def test_config_changes_restart_exactly_their_readers(changed, restart):
    assert svc.affected_by(changed) == restart


# --- supervisor and start-up failure, with real (tiny) processes ----------------------------

from gcloudctl.devcloud import lifecycle, supervisor  # noqa: E402


def test_stop_never_signals_a_pid_whose_command_line_changed(tmp_path):
    import json
    import os

    pid_file = tmp_path / "svc.pid"
    record = supervisor.start(["sleep", "30"], env=dict(os.environ), log_file=tmp_path / "svc.log",
                              pid_file=pid_file, cwd=tmp_path)
    try:
        raw = json.loads(pid_file.read_text())
        raw["argv"] = ["/usr/bin/something-else", "--flag"]  # as if the pid had been recycled
        pid_file.write_text(json.dumps(raw))
        assert supervisor.stop(pid_file) is False
        assert supervisor.matches(supervisor.Record(record.pid, ("sleep", "30"), record.started_at))
    finally:
        os.kill(record.pid, 15)
        os.waitpid(record.pid, 0)


def test_stop_terminates_the_whole_process_group(tmp_path):
    import os

    pid_file = tmp_path / "svc.pid"
    import time

    record = supervisor.start(["sh", "-c", "sleep 30 & sleep 30; wait"], env=dict(os.environ),
                              log_file=tmp_path / "svc.log", pid_file=pid_file, cwd=tmp_path)
    deadline = time.monotonic() + 10  # the shell forks its children a moment after it starts
    while len(supervisor.group_members(record.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(supervisor.group_members(record.pid)) >= 3, "the shell and its two sleeps"
    assert supervisor.stop(pid_file) is True
    assert supervisor.group_members(record.pid) == [] and not pid_file.exists()


def test_a_service_dying_at_start_fails_with_its_last_log_lines(tmp_path):
    import os

    layout = Layout(tmp_path)
    broken = svc.Service("broken", svc.Kind.WSGI, svc.Phase.CONTROL, "none", "none", port=1, probe_path="/")
    record = supervisor.start(["sh", "-c", "echo 'ImportError: no module named nova'; exit 3"],
                              env=dict(os.environ), log_file=layout.log_file("broken"),
                              pid_file=layout.pid_file("broken"), cwd=tmp_path)
    with pytest.raises(lifecycle.ServiceFailed) as failure:
        lifecycle._wait_ready(layout, [broken], {"broken": record}, None, lambda _m: None, timeout=30)
    assert "ImportError: no module named nova" in failure.value.message
    assert str(layout.log_file("broken")) in failure.value.message
    assert "devcloud logs broken" in failure.value.hint
