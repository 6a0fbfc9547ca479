"""File names built from cloud-side names stay in their directory (issue 12 part 3, reports).

A project member can rename a server in Nova to `../../../../tmp/x`; audit-hosts writes
`<out>/<server>.json|html`. These tests rename servers (in a hosts file and in the in-memory
cloud), run the real `audit-hosts` command and check the file system: nothing outside the
output directory, a sanitised file inside it, the name kept in the report. The SSH session is a
scripted host (the checks' output framing), since no real host sits behind the fake cloud;
the real-host path of audit-hosts is tested in test_hardening_testhost.py.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import yaml

from gcloudctl.cli.main import main
from gcloudctl.drivers import ssh
from gcloudctl.errors import InvalidInput
from gcloudctl.hardening import audit
from gcloudctl.hardening.controls import controls_for_level
from gcloudctl.hardening.paths import UnsafePath, confined, file_for, file_stem
from tests.fixtures.core import EXAMPLE

STEMS = [
    ("plain name kept", "web-1", "web-1"),
    ("dots inside kept", "db.1_a", "db.1_a"),
    ("traversal cleaned", "../../../../tmp/x", None),
    ("absolute path cleaned", "/etc/passwd", None),
    ("hidden file cleaned", ".bashrc", None),
    ("unicode cleaned", "máy-chủ", None),
    ("only dots refused", "..", "REFUSED"),
    ("empty refused", "", "REFUSED"),
    ("too long refused", "a" * 300, "REFUSED"),
]


@pytest.mark.parametrize("why,name,expected", STEMS, ids=[s[0] for s in STEMS])
def test_file_stem(why, name, expected):
    stem = file_stem(name)
    if expected == "REFUSED":
        assert stem is None, why
        return
    if expected is not None:
        assert stem == expected, why
        return
    assert stem and "/" not in stem and not stem.startswith(".") and "~" in stem, why
    assert file_stem(name + "y") != stem  # two names never share a file


def test_cleaned_names_do_not_collide_with_plain_ones():
    assert file_stem("web/1") != file_stem("web_1") == "web_1"


def test_a_symlink_out_of_the_directory_is_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "web-1.json").symlink_to(outside / "stolen.json")
    with pytest.raises(UnsafePath):
        file_for(out, "web-1", ".json")
    with pytest.raises(UnsafePath):
        confined(out, "../x.json")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


class ScriptedHost:
    """An SSH session whose host answers every control check of the script it is sent with
    "fail" and the evidence "scripted host" (the framing audit.run_checks parses)."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, command, timeout=0, sudo=False):
        ids = [c.id for c in controls_for_level(4)]
        out = "".join(f"{audit._MARK} begin {i}\nscripted host\n{audit._MARK} end {i} 1\n" for i in ids)
        return 0, out, ""


@pytest.fixture
def scripted_ssh(monkeypatch):
    monkeypatch.setattr(ssh, "connect", ScriptedHost)


def test_renamed_servers_in_a_hosts_file_write_nothing_outside(tmp_path, scripted_ssh, capsys):
    marker = f"gcloudctl-escape-{uuid.uuid4().hex[:8]}"
    evil = f"../../../../tmp/{marker}"
    hosts = [{"name": evil, "role": "web", "zones": ["app"], "fixed_ips": {"app": "10.0.0.5"},
              "floating_ip": "192.0.2.5", "image": "debian-12", "status": "ACTIVE"},
             {"name": "..", "role": "web", "zones": ["app"], "fixed_ips": {"app": "10.0.0.6"},
              "floating_ip": "192.0.2.6", "image": "debian-12", "status": "ACTIVE"}]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"level": 1, "hosts": hosts}))
    out = tmp_path / "a" / "b" / "c" / "d" / "out"
    before = _files(tmp_path)
    code = main(["-o", "json", "audit-hosts", "moh-test", "--no-lynis", "--hosts", str(tmp_path / "hosts.yml"),
                 "--known-hosts", str(tmp_path / "kh"), "--out", str(out)])
    result = json.loads(capsys.readouterr().out)
    # the inventory may already give such servers safe host names; either way each one is audited
    # into a file inside `out` or reported as refused, and nothing lands outside
    assert code in (0, 1), result
    assert len(result["reports"]) + len(result["errors"]) == 2
    new = _files(tmp_path) - before
    assert new and all(out.resolve() in p.resolve().parents for p in new), new
    assert not Path(f"/tmp/{marker}.json").exists() and not Path(f"/tmp/{marker}.html").exists()
    assert not any(Path("/tmp").glob(f"{marker}*"))
    for report in result["reports"].values():
        assert (out / report["file"]).is_file() and "/" not in report["file"]
    assert len(new) == 2 * len(result["reports"])


def test_write_report_refuses_an_unnameable_host_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UnsafePath):
        audit.write_report(audit.HostAudit(host="..", level=1), out, generated_at="2026-12-03T00:00:00Z")
    assert _files(tmp_path) == set()


def test_write_report_keeps_the_name_and_confines_the_file(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    name = "../../../x"
    report = audit.write_report(audit.HostAudit(host=name, level=1), out, generated_at="2026-12-03T00:00:00Z")
    assert report["host"] == name
    assert {p.parent for p in _files(tmp_path)} == {out.resolve()}
    assert json.loads((out / report["file"]).read_text())["host"] == name


def test_a_server_renamed_in_the_cloud_writes_nothing_outside(tmp_path, cli_on_fake, scripted_ssh, capsys,
                                                              monkeypatch):
    assert cli_on_fake("apply", str(EXAMPLE), "--yes") == 0
    marker = f"gcloudctl-escape-{uuid.uuid4().hex[:8]}"
    server = next(s for s in cli_on_fake.api.servers.values() if s["name"] == "web-1")
    server["name"] = f"../../../../tmp/{marker}"  # what `openstack server set --name` lets a member do
    monkeypatch.chdir(tmp_path)
    consoles = tmp_path / "consoles"  # the fake compute API has no console log: trust is not under test
    consoles.mkdir()
    before = _files(tmp_path)
    capsys.readouterr()
    code = cli_on_fake("-o", "json", "audit-hosts", "byt-his-staging", "--no-lynis", "--level", "2",
                       "--known-hosts", str(tmp_path / "kh"), "--console-dir", str(consoles))
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    out = tmp_path / "audit-reports" / "byt-his-staging"
    new = _files(tmp_path) - before
    assert result["reports"] and len(new) == 2 * len(result["reports"])
    assert all(out.resolve() in p.resolve().parents for p in new), new
    assert not any(Path("/tmp").glob(f"{marker}*"))
    renamed = [r for name, r in result["reports"].items() if marker in name]
    assert len(renamed) == 1 and marker in renamed[0]["file"] and (out / renamed[0]["file"]).is_file()


KNOWN_HOSTS = [
    ("traversal", "../../etc/x", True),
    ("absolute", "/etc/ssh/ssh_known_hosts", True),
    ("hidden", ".x", True),
    ("dns label", "byt-his-staging", False),
]


@pytest.mark.parametrize("why,tenant,refused", KNOWN_HOSTS, ids=[k[0] for k in KNOWN_HOSTS])
def test_known_hosts_path_stays_in_its_directory(tmp_path, why, tenant, refused):
    if refused:
        with pytest.raises(InvalidInput):
            ssh.known_hosts_path(tenant, base=tmp_path)
    else:
        assert ssh.known_hosts_path(tenant, base=tmp_path) == (tmp_path / "known_hosts" / tenant).resolve()


def test_known_hosts_symlink_out_is_refused(tmp_path):
    (tmp_path / "known_hosts").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "known_hosts" / "byt-his-staging")
    with pytest.raises(InvalidInput):
        ssh.known_hosts_path("byt-his-staging", base=tmp_path)
