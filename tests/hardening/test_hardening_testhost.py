"""Hardening on real Debian 12 hosts (systemd, sshd, cloud-init) in network namespaces.

One host is hardened at profile L3 once per session (`hardened_host`) and shared: first run,
second run, audits before and after. Numbers are printed (pytest -s) and asserted.
"""

import json
from pathlib import Path

import pytest
import yaml

from gcloudctl.cli.main import main
from gcloudctl.drivers import ssh
from gcloudctl.errors import Refused, Unreachable
from gcloudctl.hardening.inventory import render_inventory
from tests.fixtures.testhost import TEST_NETWORK

pytestmark = [pytest.mark.testhost, pytest.mark.slow]

SSHD_TASK = "GC-SSH-02..GC-SSH-16 | sshd drop-in for profile L3"
DROP_IN = "/etc/ssh/sshd_config.d/50-gcloudctl.conf"


def _numbers(hh):
    b, a = hh.before, hh.after
    return (f"L{hh.level}: first run {hh.seconds['first']:.0f}s (changed={hh.first.changed}), "
            f"second {hh.seconds['second']:.0f}s (changed={hh.second.changed}); own checks pass "
            f"{b.passed}->{a.passed}, fail {b.failed}->{a.failed}, n/a {a.not_applicable}; lynis "
            f"{b.lynis.hardening_index}->{a.lynis.hardening_index}")


def test_first_run_hardens_and_second_run_changes_nothing(hardened_host):
    hh = hardened_host
    print("\n" + _numbers(hh))
    assert hh.first.ok, hh.first.failures
    assert hh.first.changed >= 20
    assert hh.second.ok, hh.second.failures
    assert hh.second.changed == 0, [d.task for d in hh.second.drift]
    assert set(hh.second.hosts) == {hh.guest.name}
    # kernel-wide controls are reported, not pretended
    assert {"GC-KRN-01", "GC-AUD-02", "GC-TIME-02"} <= set(hh.first.not_applicable[hh.guest.name])
    # fresh private data dirs are removed: nothing (inventory, events, cmdline) left behind. Only
    # the dirs these runs made count: another process's run may be under way in the same /tmp
    assert hh.left_behind == [], {d: sorted(str(p) for p in Path(d).rglob("*"))[:20] for d in hh.left_behind}


def test_own_checks_and_lynis_improve(hardened_host):
    b, a = hardened_host.before, hardened_host.after
    assert a.failed == 0, [(c.id, c.evidence) for c in a.controls if c.status != "pass" and c.status != "not applicable"]
    assert a.passed >= b.passed + 20
    assert {c.id for c in a.controls if c.status == "not applicable"} == {"GC-KRN-01", "GC-KRN-02", "GC-PART-01",
                                                                         "GC-AUD-02", "GC-TIME-02"}
    assert b.lynis.hardening_index and a.lynis.hardening_index
    assert a.lynis.hardening_index >= b.lynis.hardening_index + 8


def test_automation_user_keeps_key_login_and_sudo(hardened_host):
    with hardened_host.guest.session() as s:
        rc, out, _ = s.run("sudo -n id -u")
    assert (rc, out.strip()) == (0, "0")


def test_root_and_password_logins_are_refused(hardened_host):
    guest = hardened_host.guest
    with pytest.raises(Refused):
        guest.session(user="root")
    assert ssh.allowed_auth_methods(guest.target(), guest.known_hosts) == ["publickey"]
    assert ssh.allowed_auth_methods(guest.target("root"), guest.known_hosts) == ["publickey"]


def _cli_check(hh, tmp_path, capsys):
    # the inventory the host was hardened with (firewall from its security groups, the catalog's
    # admin sources and log host), as `gcloudctl inventory --format json` writes it
    inventory = tmp_path / "inventory.json"
    inventory.write_text(render_inventory(hh.inventory, "json"))
    code = main(["-o", "json", "harden", "moh-test", "--check", "--inventory", str(inventory), "--key", hh.guest.key_file,
                 "--proxy-command", TEST_NETWORK.proxy_command(), "--known-hosts", str(tmp_path / "kh"),
                 "--console-dir", str(hh.guest.host.state_dir.parent)])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_check_mode_reports_no_drift_then_exactly_the_manual_change(hardened_host, tmp_path, capsys):
    hh = hardened_host
    code, report = _cli_check(hh, tmp_path, capsys)
    assert (code, report["drift"]) == (0, []), report
    hh.guest.host.exec(["sed", "-i", "s/^PasswordAuthentication no$/PasswordAuthentication yes/", DROP_IN])
    try:
        code, report = _cli_check(hh, tmp_path, capsys)
        assert code == 3  # ExitCode.CHANGES: drift found
        assert [d["task"] for d in report["drift"]] == [SSHD_TASK]
        diff = report["drift"][0]["diff"]
        assert "-PasswordAuthentication yes" in diff and "+PasswordAuthentication no" in diff
        # check mode changed nothing on the host
        assert "PasswordAuthentication yes" in hh.guest.host.exec(["cat", DROP_IN]).stdout
    finally:
        hh.guest.host.exec(["sed", "-i", "s/^PasswordAuthentication yes$/PasswordAuthentication no/", DROP_IN])


@pytest.fixture(scope="module")
def plain_host(guest_factory):
    """A fresh, unhardened host (profile L1 user data)."""
    return guest_factory.boot("gt-plain", level=1)


def test_bastion_hop_reaches_a_host_through_direct_tcpip(hardened_host, plain_host):
    bastion = plain_host.target()
    # the plain (level 1) host hops on to itself through its own direct-tcpip channel
    target = ssh.SshTarget(host=plain_host.host.ip, user="gcadmin", key_file=plain_host.key_file)
    with ssh.connect(target.via(bastion), plain_host.known_hosts) as s:
        rc, out, _ = s.run("hostname")
    assert (rc, out.strip()) == (0, plain_host.name)
    # the hardened host admits SSH only from the admin sources (and its tenant's declared bastion):
    # a hop through a host that is neither gets no answer
    hardened = ssh.SshTarget(host=hardened_host.guest.host.ip, user="gcadmin", key_file=plain_host.key_file)
    with pytest.raises(Unreachable):
        ssh.connect(hardened.via(bastion), plain_host.known_hosts, timeout=8)


def test_check_mode_on_a_fresh_host_reports_drift_and_changes_nothing(plain_host):
    from gcloudctl.drivers.ansible import run_playbook
    from tests.fixtures.testhost import inventory_for

    before = plain_host.host.exec(["sh", "-c", "ls /etc/ssh/sshd_config.d/; dpkg -l nftables 2>&1 | tail -1"]).stdout
    result = run_playbook(inventory_for([plain_host], 3), known_hosts=plain_host.known_hosts, check=True)
    assert result.status == "successful" and result.failures == []
    tasks = {d.task for d in result.drift}
    assert SSHD_TASK in tasks and "GC-FW-01 | nftables installed (offline cache)" in tasks
    after = plain_host.host.exec(["sh", "-c", "ls /etc/ssh/sshd_config.d/; dpkg -l nftables 2>&1 | tail -1"]).stdout
    assert after == before and "50-gcloudctl.conf" not in after


def test_host_whose_key_differs_from_the_console_is_refused(plain_host, tmp_path):
    host = plain_host.host
    console = host.console_log()
    with plain_host.session() as s:
        assert s.run("true")[0] == 0
    # the server's keys change behind our back (impersonation, or a rebuild nobody announced)
    host.exec(["sh", "-c", "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A -q; systemctl restart ssh"])
    with pytest.raises(ssh.HostKeyMismatch) as exc:
        plain_host.session()
    assert "differs from the verified key" in exc.value.message
    # a fresh known_hosts trusting the console refuses too, with keys or with fingerprints only
    kh = tmp_path / "kh"
    ssh.trust_console(kh, host.ip, console)
    with pytest.raises(ssh.HostKeyMismatch):
        ssh.connect(plain_host.target(), kh)
    fingerprints_only = console[:console.index(ssh.KEYS_BEGIN)]
    keys = ssh.trust_console(tmp_path / "kh2", host.ip, fingerprints_only)
    assert keys.keys == ()
    with pytest.raises(ssh.HostKeyMismatch) as exc:
        ssh.connect(plain_host.target(), tmp_path / "kh2", console_keys=keys)
    assert "not among the console fingerprints" in exc.value.message


def test_audit_hosts_cli_writes_json_and_html_reports(hardened_host, tmp_path, capsys):
    hh = hardened_host
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"level": hh.level, "hosts": [hh.guest.observed()]}))
    common = ["audit-hosts", "moh-test", "--no-lynis", "--hosts", str(hosts), "--key", hh.guest.key_file,
              "--proxy-command", TEST_NETWORK.proxy_command(), "--known-hosts", str(tmp_path / "kh"),
              "--console-dir", str(hh.guest.host.state_dir.parent), "--out", str(tmp_path / "out")]
    assert main(["-o", "json"] + common) == 0
    report = json.loads(capsys.readouterr().out)["reports"][hh.guest.name]
    assert report["score"]["failed"] == 0 and report["score"]["passed"] == hh.after.passed
    assert "OpenSCAP" not in report["openscap"] and "not run" in report["openscap"]
    saved = json.loads((tmp_path / "out" / f"{hh.guest.name}.json").read_text())
    assert {c["id"]: c["status"] for c in saved["controls"]}["GC-SSH-02"] == "pass"
    assert "GC-SSH-02" in (tmp_path / "out" / f"{hh.guest.name}.html").read_text()
