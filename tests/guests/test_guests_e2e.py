"""devcloud guests, end to end: an agency's YAML becomes hardened, verified Linux servers.

The example request (3 servers, all with `hardening` and a floating IP) is applied with the real
CLI on devcloud in guests mode: Nova's guest driver boots each server as a namespace guest from
its user data, the floating IPs reach the guests through the devcloud's `public` namespace only,
SSH host keys are trusted from the compute API's console log, the playbooks harden the servers
and `audit-hosts` reports every control passing. A guest killed from outside turns its server
SHUTOFF, and the controller starts it again (same server, same disk, same host key). Destroy
leaves nothing in the cloud and no guest, namespace, mount or process on the machine.
The tests of this module share one tenant and run in order.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService, utcnow
from gcloudctl.controller.store import open_store
from gcloudctl.devcloud import guests
from gcloudctl.drivers import ssh
from gcloudctl.errors import Unreachable
from tests.cloud.helpers import gcloudctl, leftovers, openstack, request_file, unique_tenant
from tests.fixtures.devcloud import _layout

from .conftest import guest_leftovers, wait_no_leftovers

pytestmark = [pytest.mark.devcloud, pytest.mark.testhost, pytest.mark.slow]

USER = "gcadmin"
FINGERPRINT = re.compile(r"\d+ (SHA256:\S+) \S+ \((ED25519|ECDSA|RSA)\)")


@pytest.fixture(scope="module")
def world(guests_devcloud, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guests")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gcadmin@guests-test", "-f", str(key)],
                   check=True)
    tenant = unique_tenant("byt-gst")

    def mutate(doc):
        doc["spec"]["quotas"]["floatingIPs"] = 3
        doc["spec"]["keypairs"][0]["publicKey"] = (tmp / "id_ed25519.pub").read_text().strip()
        for server in doc["spec"]["servers"]:
            server["hardening"] = {}
            server["floatingIP"] = True
            server["userData"] = {"template": "default.yaml.j2", "vars": {}}

    path = request_file(tmp, tenant, mutate)
    proxy = gcloudctl("devcloud", "proxy-command", check=True).stdout.strip()
    saved = {k: os.environ.get(k) for k in ("GCLOUDCTL_STATE_DIR", "GCLOUDCTL_SSH_PROXY_COMMAND")}
    os.environ["GCLOUDCTL_STATE_DIR"] = str(tmp / "state")  # the tenant's known_hosts start empty
    os.environ["GCLOUDCTL_SSH_PROXY_COMMAND"] = proxy
    state = {"tenant": tenant, "request": path, "key": str(key), "proxy": proxy, "tmp": tmp, "numbers": {},
             "known_hosts": ssh.known_hosts_path(tenant)}
    yield state
    if gcloudctl("destroy", tenant, "--yes").returncode != 0:  # a failed test's tenant
        gcloudctl("destroy", tenant, "--yes")
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    print(f"\ndevcloud guests numbers: {json.dumps(state['numbers'])}")


def servers(tenant: str) -> dict[str, dict]:
    pid = openstack("project", "show", tenant)["id"]
    return {s["Name"]: s for s in openstack("server", "list", "--all-projects", "--project", pid, "--long")}


def floating_ip(server: dict) -> str:
    networks = server["Networks"]
    addrs = [a for ips in networks.values() for a in ips] if isinstance(networks, dict) else re.findall(
        r"[\d.]+", str(networks))
    return next(a for a in addrs if a.startswith("172.24.4."))


def console_fingerprints(server_id: str) -> dict[str, str]:
    text = openstack("console", "log", "show", server_id, parse=False)
    block = text.split("BEGIN SSH HOST KEY FINGERPRINTS", 1)[1].split("END SSH HOST KEY FINGERPRINTS", 1)[0]
    return {kind: fp for fp, kind in FINGERPRINT.findall(block)}


def known_fingerprints(known_hosts: Path, host: str) -> dict[str, str]:
    found = {}
    for line in known_hosts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and host in parts[0].split(","):
            digest = base64.b64encode(hashlib.sha256(base64.b64decode(parts[2])).digest()).decode().rstrip("=")
            kind = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}.get(parts[1], "ECDSA")
            found[kind] = f"SHA256:{digest}"
    return found


def audit_of(store, tenant: str) -> list:
    with store.tx() as tx:
        return [r for r in tx.audit_records() if r.tenant == tenant]


def target(world, address: str) -> ssh.SshTarget:
    return ssh.SshTarget(host=address, user=USER, key_file=world["key"], proxy_command=world["proxy"])


def test_1_apply_hardens_and_verifies(world):
    private_dirs = set(glob.glob(tempfile.gettempdir() + "/gcloudctl-ansible-*"))
    started = time.monotonic()
    applied = gcloudctl("apply", str(world["request"]), "--yes", "--key", world["key"], "--timeout", "900",
                        timeout=1200)
    apply_seconds = time.monotonic() - started
    assert applied.returncode == 0, applied.stderr[-4000:]
    assert "harden complete" in applied.stderr
    assert re.search(r"db-1 changed=\d+ failed=0 unreachable=0", applied.stderr), applied.stderr[-2000:]
    # the hardening run's private data dir is gone once apply returns
    assert set(glob.glob(tempfile.gettempdir() + "/gcloudctl-ansible-*")) <= private_dirs

    found = servers(world["tenant"])
    assert sorted(found) == ["db-1", "web-1", "web-2"]
    assert {s["Status"] for s in found.values()} == {"ACTIVE"}
    running = {g.uuid: g for g in guests.list_guests(_layout())}
    for name, server in found.items():
        guest = running[server["ID"]]  # one running guest per server, named after it
        assert guest.running and guest.hostname == name

    # host keys: what the tenant's known_hosts trusts is exactly what each console printed
    for name, server in found.items():
        fip = floating_ip(server)
        printed = console_fingerprints(server["ID"])
        assert set(printed) == {"ED25519", "ECDSA", "RSA"}, printed
        assert known_fingerprints(world["known_hosts"], fip) == printed, name

    # SSH as the automation user, host key verified; the guest is the server and is hardened
    web1 = floating_ip(found["web-1"])
    with ssh.connect(target(world, web1), world["known_hosts"]) as session:
        code, out, _ = session.run("hostname; id -un")
        assert code == 0 and out.split() == ["web-1", USER]
        code, out, _ = session.run("sshd -T | grep -E '^(permitrootlogin|passwordauthentication) '", sudo=True)
        assert code == 0 and set(out.split("\n")) >= {"permitrootlogin no", "passwordauthentication no"}, out
    # a key nobody verified is refused, not silently trusted
    with pytest.raises(ssh.HostKeyUnknown):
        ssh.connect(target(world, web1), world["tmp"] / "empty_known_hosts")

    started = time.monotonic()
    audit = gcloudctl("-o", "json", "audit-hosts", world["tenant"], "--no-lynis", "--key", world["key"],
                      "--out", str(world["tmp"] / "audit"))
    audit_seconds = time.monotonic() - started
    assert audit.returncode == 0, audit.stderr[-3000:]
    reports = json.loads(audit.stdout)["reports"]
    assert sorted(reports) == ["db-1", "web-1", "web-2"]
    for name, path in reports.items():
        score = json.loads(Path(path).read_text())["score"] if isinstance(path, str) else path["score"]
        assert score["failed"] == 0 and score["passed"] >= 30, (name, score)
    world["numbers"].update(apply_harden_s=round(apply_seconds, 1), audit_s=round(audit_seconds, 1),
                            rss_mib_per_guest=round(sum(g.rss_kib for g in running.values()) / 1024 / len(running), 1))


def test_2_killed_guest_is_restarted_by_the_controller(world):
    tenant = world["tenant"]
    config = pipeline.Config.load()
    store = open_store(f"sqlite:///{world['tmp'] / 'controller.db'}")
    try:
        from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

        engine = PipelineEngine(config, lambda region: OpenStackDriver(SdkApi("devcloud-gcloudctl")))
        service = RequestService(store, config.agencies, approvals.parse_rules(approvals.default_rules_text()),
                                 lambda text, name: pipeline.load_request(text, config, filename=name), utcnow)
        runner = Runner(store, Reconciler(store, engine, holder="guests-test", interval=1, clock=utcnow),
                        clock=utcnow, workers=1)
        from tests.controller.conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR

        version = service.submit(world["request"].read_text(), caller=BYT_REQUESTER)
        for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
            service.approve(version["id"], caller=approver, reason="guests test")
        first = runner.run_once()
        assert first.ok, first.to_dict()

        web1 = servers(tenant)["web-1"]
        layout = _layout()
        kill = Path(f"/sys/fs/cgroup/unified/gcloudctl-testhost/nova-{web1['ID']}/cgroup.kill")
        killed_at = time.monotonic()
        kill.write_text("1")  # from outside: every process of the guest dies at once
        deadline = time.monotonic() + 90
        while servers(tenant)["web-1"]["Status"] != "SHUTOFF":
            assert time.monotonic() < deadline, "Nova never noticed the dead guest"
            time.sleep(1)
        noticed = time.monotonic() - killed_at
        assert not guests.runtime(layout).running(web1["ID"])

        audited = len(audit_of(store, tenant))
        summary = runner.run_once()
        outcomes = {o.tenant: o for o in summary.outcomes}
        assert summary.ok and outcomes[tenant].result.value in ("applied", "drift-repaired"), summary.to_dict()
        repaired = time.monotonic() - killed_at
        after = servers(tenant)["web-1"]
        assert (after["ID"], after["Status"]) == (web1["ID"], "ACTIVE")  # started again, not replaced
        assert guests.runtime(layout).running(web1["ID"])
        # same disk, same host key: the known_hosts written at apply time still verifies it
        ready = ssh.wait_ready(target(world, floating_ip(after)), world["known_hosts"], timeout=60)
        assert ready is not None
        with ssh.connect(target(world, floating_ip(after)), world["known_hosts"]) as session:
            code, out, _ = session.run("sshd -T | grep '^permitrootlogin '", sudo=True)
            assert code == 0 and out.strip() == "permitrootlogin no"  # still hardened after the restart
        assert len(audit_of(store, tenant)) > audited and service.audit_verify(caller=OPERATOR)["ok"]  # the repair is audited
        world["numbers"].update(kill_noticed_s=round(noticed, 1), kill_repaired_s=round(repaired, 1))
    finally:
        store.dispose()


def test_3_floating_ip_follows_neutron(world):
    """Disassociated in Neutron (by hand, with the `openstack` CLI) -> unwired in the devcloud
    namespace within a few seconds; the other servers keep theirs."""
    found = servers(world["tenant"])
    web2, web1 = floating_ip(found["web-2"]), floating_ip(found["web-1"])
    fip_id = openstack("floating", "ip", "list", "--floating-ip-address", web2)[0]["ID"]
    openstack("floating", "ip", "unset", "--port", fip_id, parse=False)
    deadline, gone = time.monotonic() + 30, False
    while not gone and time.monotonic() < deadline:
        try:
            ssh.connect(target(world, web2), world["known_hosts"], timeout=3).close()
            time.sleep(1)
        except Unreachable:
            gone = True
    assert gone, f"{web2} still answers 30 s after Neutron disassociated it"
    with ssh.connect(target(world, web1), world["known_hosts"]) as session:
        assert session.run("hostname")[1].strip() == "web-1"


def test_4_destroy_leaves_nothing(world):
    tenant = world["tenant"]
    pid = openstack("project", "show", tenant)["id"]
    started = time.monotonic()
    out = gcloudctl("destroy", tenant, "--yes")
    assert out.returncode == 0, out.stderr[-3000:]
    world["numbers"]["destroy_s"] = round(time.monotonic() - started, 1)
    assert leftovers(tenant, pid) == {}
    left = wait_no_leftovers(_layout(), timeout=30)
    assert left == {}, left
    assert guest_leftovers(_layout()) == {}
