"""Controls hold what they claim, observed from outside the hardened host (issue 12, part 2).

The shared L3 host (`hardened_host`: firewall from its security group `web` = 443 from anywhere,
an SG rule for SSH from the whole test network, egress 8080 to the test network; SSH admin source
= the controller namespace; central log host = a receiver in the controller namespace) is probed
from another namespace (the plain host's, a non-admin source) and from the controller namespace.
Cloud-side values injected into the inventory never run on the control node (part 3).
"""

import base64
import subprocess
import sys
import time
import uuid

import pytest

from gcloudctl.hardening.inventory import UNSAFE_KEY, build_inventory
from tests.fixtures.testhost import (ADMIN_SOURCES, AUTOMATION_USER, TENANT, TEST_NETWORK, tenant_hosts)

pytestmark = [pytest.mark.testhost, pytest.mark.slow]

PROBE = r"""
import socket, sys
s = socket.socket(); s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.settimeout(2)
    try:
        data = s.recv(64)
    except OSError:
        data = b""
    print("open", data.decode("ascii", "replace").strip())
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("unreachable" if e.errno == 113 else ("timeout" if "timed out" in str(e) else "error " + str(e)))
"""


def probe_from_ns(netns: str, ip: str, port: int, timeout: float = 3.0) -> str:
    """Connect to ip:port from inside network namespace `netns` (not from inside the guest)."""
    out = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-I", "-c", PROBE, ip, str(port),
                          str(timeout)], capture_output=True, text=True, timeout=timeout + 10)
    return out.stdout.strip()


def probe_from_guest(guest, ip: str, port: int, timeout: float = 3.0) -> str:
    out = guest.host.exec(["python3", "-c", PROBE, ip, str(port), str(timeout)], check=False, timeout=timeout + 10)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def plain_host(guest_factory):
    """Another guest on the test network (level 1, not hardened): a non-admin source and peer."""
    return guest_factory.boot("gt-peer", level=1)


@pytest.fixture(scope="module")
def plain_ns(plain_host):
    return plain_host.host.netns


@pytest.fixture(scope="module")
def web_listener(hardened_host):
    """Something answering on the declared port 443 and on the undeclared 8443 inside the host."""
    guest = hardened_host.guest
    for port in (443, 8443):
        guest.host.exec(["systemd-run", f"--unit=gctest-listen-{port}", "python3", "-c",
                         "import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                         f"s.bind(('0.0.0.0', {port})); s.listen(8)\n"
                         "while True:\n c,_=s.accept(); c.sendall(b'hello\\n'); c.close()"], check=False)
    time.sleep(1)
    yield
    for port in (443, 8443):
        guest.host.exec(["systemctl", "stop", f"gctest-listen-{port}"], check=False)


@pytest.fixture(scope="module")
def peer_listeners(plain_ns):
    """Listeners on 8080 (declared egress) and 9090 (not declared) in the plain host's namespace."""
    procs = [subprocess.Popen(["nsenter", f"--net=/run/netns/{plain_ns}", sys.executable, "-I", "-c",
                               "import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                               f"s.bind(('0.0.0.0', {port})); s.listen(8)\n"
                               "while True:\n c,_=s.accept(); c.sendall(b'peer\\n'); c.close()"])
             for port in (8080, 9090)]
    time.sleep(1)
    yield
    for p in procs:
        p.kill()
        p.wait()


def test_declared_port_answers_and_an_undeclared_one_does_not(hardened_host, plain_ns, web_listener):
    ip = hardened_host.guest.host.ip
    assert probe_from_ns(plain_ns, ip, 443) == "open hello"
    assert probe_from_ns(plain_ns, ip, 8443) == "timeout"  # listening, but not in the security group: dropped


def test_ssh_only_from_the_admin_sources(hardened_host, plain_ns):
    ip = hardened_host.guest.host.ip
    # the security group admits 22 from the whole test network, the host still refuses a non-admin source
    assert probe_from_ns(plain_ns, ip, 22) == "timeout"
    admin = probe_from_ns(TEST_NETWORK.controller_ns, ip, 22)
    assert admin.startswith("open SSH-2.0"), admin
    with hardened_host.guest.session() as s:  # and a real login from the admin source works
        assert s.run("true")[0] == 0
    assert ADMIN_SOURCES == [f"{TEST_NETWORK.gateway}/32"]


def test_outbound_only_to_declared_destinations(hardened_host, plain_host, peer_listeners):
    peer = plain_host.host.ip
    assert probe_from_guest(hardened_host.guest, peer, 8080) == "open peer"  # egress rule of the group
    assert probe_from_ns(TEST_NETWORK.controller_ns, peer, 9090) == "open peer"  # the peer does answer there
    # not declared: the host's own firewall refuses it at once (reject, admin-prohibited)
    assert probe_from_guest(hardened_host.guest, peer, 9090) == "unreachable"


def test_a_log_line_reaches_the_central_receiver_within_10s(hardened_host):
    marker = f"gctest-{uuid.uuid4().hex}"
    hardened_host.guest.host.exec(["logger", "-t", "gctest", marker])
    line, seconds = hardened_host.receiver.wait_for(marker, timeout=10)
    print(f"\nlog line at the central receiver after {seconds:.2f}s: {line[:120]}")
    assert hardened_host.guest.name in line and seconds < 10


def test_journald_keeps_logs(hardened_host):
    guest = hardened_host.guest.host
    effective = guest.exec(["systemd-analyze", "cat-config", "systemd/journald.conf"]).stdout
    values = {}
    for line in effective.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    # nothing deleted by age; persistent; a size cap sized for the level
    assert values.get("MaxRetentionSec") == "0" and values["Storage"] == "persistent"
    assert values["SystemMaxUse"] == "4G" and values["ForwardToSyslog"] == "yes"
    marker = f"gctest-keep-{uuid.uuid4().hex}"
    guest.exec(["logger", "-t", "gctest", marker])
    guest.exec(["journalctl", "--sync"])
    guest.exec(["systemctl", "restart", "systemd-journald"])
    kept = guest.exec(["journalctl", "-D", "/var/log/journal", "-t", "gctest", "-o", "cat"]).stdout
    assert marker in kept  # on disk, still there after journald restarted


def test_password_ageing_applies_to_a_new_account(hardened_host):
    guest = hardened_host.guest.host
    name = "gctestuser"
    guest.exec(["useradd", "-M", name])
    try:
        ageing = guest.exec(["chage", "-l", name]).stdout
    finally:
        guest.exec(["userdel", name], check=False)
    assert "Maximum number of days between password change\t\t: 60" in ageing, ageing
    assert "Number of days of warning before password expires\t: 14" in ageing, ageing


EFFECT_CONTROLS = ("GC-FW-03", "GC-FW-04", "GC-LOG-04", "GC-ACC-05", "GC-ACC-08", "GC-ACC-09")


def test_effect_checks_fail_before_hardening_and_pass_after(hardened_host):
    before = {c.id: c for c in hardened_host.before.controls}
    after = {c.id: c for c in hardened_host.after.controls}
    for cid in EFFECT_CONTROLS:
        assert before[cid].status == "fail", (cid, before[cid].evidence)
        assert after[cid].status == "pass", (cid, after[cid].evidence)
    # Debian 12 already keeps a persistent journal and deletes nothing by age: GC-LOG-01 and the
    # retention check hold before too (they fail when something would delete early, see below)
    assert after["GC-LOG-01"].status == before["GC-LOG-01"].status == "pass"
    assert after["GC-LOG-05"].status == "pass" and "rotate 14 x 7 days" in after["GC-LOG-05"].evidence
    assert "refused by the host firewall" in after["GC-FW-04"].evidence
    assert "rsyslog connected" in after["GC-LOG-04"].evidence
    assert "account is locked" in after["GC-ACC-09"].evidence
    assert "still accepted" in before["GC-ACC-09"].evidence  # the same probe, before: no lock-out
    assert "persistent journal" in after["GC-LOG-01"].evidence


@pytest.mark.parametrize("drop_in, reason", [
    ("[Journal]\nMaxRetentionSec=1month\n", "journald would delete lines older than a month"),
    ("[Journal]\nMaxRetentionSec=2592000\n", "the same in seconds"),
])
def test_retention_check_fails_when_logs_would_be_deleted_early(hardened_host, drop_in, reason):
    from gcloudctl.hardening import audit
    from gcloudctl.hardening.controls import BY_ID

    guest = hardened_host.guest.host
    path = "/etc/systemd/journald.conf.d/99-gctest.conf"
    guest.exec(["sh", "-c", f"printf '{drop_in}' > {path}"])
    try:
        controls = [BY_ID["GC-LOG-05"], BY_ID["GC-LOG-02"]]
        script = base64.b64encode(audit.checks_script(controls).encode()).decode()
        with hardened_host.guest.session() as s:
            _, out, _ = s.run(f"echo {script} | base64 -d | sudo -n /bin/bash", timeout=60)
        log05, log02 = audit.parse_checks(out, controls)
    finally:
        guest.exec(["rm", "-f", path])
    assert log05.status == "fail" and "30 days" in log05.evidence, log05.evidence
    assert log02.status == "pass"  # a month is enough at level 2


def _strip_marks(value):
    if isinstance(value, dict):
        if set(value) == {UNSAFE_KEY}:
            return value[UNSAFE_KEY]
        return {k: _strip_marks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_marks(v) for v in value]
    return value


def test_injected_server_name_and_role_never_run_on_the_control_node(plain_host, tmp_path):
    """A project member renames a server and sets its gc-role metadata to Jinja lookups; the real
    playbook runs over them (check mode, level 1: the hardening record templates both) and no file
    appears on the control node. The same inventory without the unsafe marks does run them, so the
    marks are what protects (and this test can fail)."""
    from gcloudctl.drivers.ansible import run_playbook

    by_name, by_role = tmp_path / "ran-from-name", tmp_path / "ran-from-role"
    hosts = tenant_hosts([plain_host], {"web": []}, level=1)
    hosts[0]["name"] = f"{{{{ lookup('pipe', 'touch {by_name}') }}}}"
    hosts[0]["role"] = f"{{{{ lookup('pipe', 'touch {by_role}') }}}}"
    inv = build_inventory(TENANT, 1, hosts, automation_user=AUTOMATION_USER, proxy_command=TEST_NETWORK.proxy_command(),
                          key_file=plain_host.key_file, admin_sources=ADMIN_SOURCES)
    result = run_playbook(inv, known_hosts=plain_host.known_hosts, check=True)
    assert result.status == "successful" and result.failures == [], result.failures
    assert not by_name.exists() and not by_role.exists()
    # control: the same values unmarked are templated on the control node
    unmarked = run_playbook(_strip_marks(inv), known_hosts=plain_host.known_hosts, check=True)
    assert by_name.exists() and by_role.exists(), unmarked.failures
