"""devcloud guests, the controller's path: an approved level-3 request becomes hardened, verified
servers without anyone running `apply`.

A level-3 request (3 servers on a dmz network, each with `hardening` and a floating IP) is
submitted by a BTC requester and approved by two BTC approvers (the request service with
their identities); `gcloudctl controller run --once` with the controller's own key
(`--ssh-key`, `--ssh-proxy-command`) provisions it, hardens every server over SSH with host keys
verified from the compute API's console, and verifies it with the audit checks. Then: status
says Hardened=True, events and the audit trail say which servers were hardened, `audit-hosts`
finds 0 failed controls, and a second controller pass hardens nothing again. What the controls
hold, seen from outside: from another guest the declared port (443) answers and SSH does not
(SSH only from the catalog's admin sources), and a line logged on a guest reaches the central
log receiver the catalog names (`spec.logging`, listening in the external network's namespace)
within 10 s. Without a key the controller hardens nothing and says NoKey. Timing: second
approval -> hardened and verified (the number in docs/hardening.md, "Controller path").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.controller.service import RequestService, utcnow
from gcloudctl.controller.store import open_store
from gcloudctl.drivers import ssh
from gcloudctl.testhost.logreceiver import LogReceiver
from tests.cloud.helpers import gcloudctl, openstack, unique_tenant
from gcloudctl.model.identity import GcloudRole
from tests.controller.conftest import person

# BTC's people (the request service is given their identities as the API would build them from
# their Keystone tokens); BTC, so that other suites' BYT tenants do not count against its ceiling
BTC_REQUESTER = person("u-btc-req", "hoang.van.e", "BTC", GcloudRole.REQUESTER)
BTC_APPROVER1 = person("u-btc-app1", "btc.approver1", "BTC", GcloudRole.APPROVER)
BTC_APPROVER2 = person("u-btc-app2", "btc.approver2", "BTC", GcloudRole.APPROVER)

pytestmark = [pytest.mark.devcloud, pytest.mark.testhost, pytest.mark.slow]

SERVERS = ["web-1", "web-2", "web-3"]


def level3_request(tenant: str, public_key: str) -> str:
    """Three servers that ask for hardening (profile L3 from the classification) in a dmz zone:
    the only zone where level 3 allows floating IPs; HTTPS from anywhere, SSH only in the group."""
    return yaml.safe_dump({
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
        "metadata": {"name": tenant, "agency": "BTC", "requester": "hoang.van.e",
                     "description": "controller hardening test"},
        "spec": {
            "classification": 3, "region": "hn1",
            "quotas": {"instances": 3, "cores": 8, "ramMiB": 16384, "floatingIPs": 3},
            "members": [{"user": "hoang.van.e", "roles": ["member"]}],
            "networks": [{"name": "dmz", "zone": "dmz"}],
            "router": {"externalNetwork": "public"},
            "securityGroups": [{"name": "web", "rules": [
                {"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "0.0.0.0/0"},
                {"direction": "ingress", "protocol": "tcp", "ports": "22", "remoteGroup": "web"},
                # outbound (level 3 filters it on the host too): the probes of test_3 may leave
                {"direction": "egress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"},
                {"direction": "egress", "protocol": "tcp", "ports": "22", "remote": "10.0.0.0/8"}]}],
            "keypairs": [{"name": "ops", "publicKey": public_key}],
            "servers": [{"name": "web", "count": 3, "flavor": "g1.small", "image": "debian-12-hardened",
                         "networks": ["dmz"], "securityGroups": ["web"], "keypair": "ops", "floatingIP": True,
                         "hardening": {}, "userData": {"template": "default.yaml.j2", "vars": {}}}],
        },
    }, sort_keys=False)


@pytest.fixture(scope="module")
def world(guests_devcloud, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ctl-harden")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "controller@test", "-f", str(key)], check=True)
    tenant = unique_tenant("btc-ctlh")
    request = tmp / f"{tenant}.yaml"
    request.write_text(level3_request(tenant, (tmp / "id_ed25519.pub").read_text().strip()))
    proxy = gcloudctl("devcloud", "proxy-command", check=True).stdout.strip()
    db = tmp / "controller.db"

    saved = os.environ.get("GCLOUDCTL_STATE_DIR")
    os.environ["GCLOUDCTL_STATE_DIR"] = str(tmp / "state")  # the tenant's known_hosts start empty
    state = {"tenant": tenant, "request": request, "key": str(key), "proxy": proxy, "tmp": tmp,
             "db_url": f"sqlite:///{db}", "numbers": {}, "receiver": None}
    yield state
    if state["receiver"] is not None:
        state["receiver"].stop()
    if gcloudctl("destroy", tenant, "--yes").returncode != 0:
        gcloudctl("destroy", tenant, "--yes")
    if saved is None:
        os.environ.pop("GCLOUDCTL_STATE_DIR", None)
    else:
        os.environ["GCLOUDCTL_STATE_DIR"] = saved
    print(f"\ncontroller hardening numbers: {json.dumps(state['numbers'])}")


def controller_once(world, *extra: str) -> subprocess.CompletedProcess:
    """`gcloudctl controller run --once` with the controller's own key and proxy command."""
    return gcloudctl("-o", "json", "controller", "run", "--once", "--db", world["db_url"], "--ssh-key", world["key"],
                     "--ssh-proxy-command", world["proxy"], *extra, timeout=900)


def start_receiver(world, timeout: float = 120) -> None:
    """The central log receiver the catalog names (`spec.logging`, an address of the external
    network), listening in devcloud's external-network namespace as soon as that exists: guests
    mode makes it when the first floating IP is wired, i.e. during the controller's apply, long
    before any playbook configures log forwarding."""
    log_host = pipeline.Config.load().catalog.spec.logging
    deadline = time.monotonic() + timeout
    while True:
        try:
            world["receiver"] = LogReceiver.start("gcd-pub", str(log_host.host), int(log_host.port),
                                                  str(log_host.protocol), timeout=5)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def status(world) -> dict:
    out = gcloudctl("-o", "json", "status", world["tenant"], "--db", world["db_url"], check=True)
    return json.loads(out.stdout)


def condition(view: dict, kind: str) -> dict:
    return next(c for c in view["conditions"] if c["type"] == kind)


def _time(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def tenant_audits(world, action: str) -> list:
    store = open_store(world["db_url"])
    try:
        with store.tx() as tx:
            return [r for r in tx.audit_records() if r.tenant == world["tenant"] and r.action == action]
    finally:
        store.dispose()


def harden_audits(world) -> list:
    store = open_store(world["db_url"])
    try:
        with store.tx() as tx:
            return [r for r in tx.audit_records() if r.tenant == world["tenant"] and r.action == "tenant.harden"]
    finally:
        store.dispose()


def test_1_approved_level3_request_is_provisioned_hardened_and_verified_by_the_controller(world):
    config = pipeline.Config.load()
    store = open_store(world["db_url"])
    try:
        service = RequestService(store, config.agencies, approvals.parse_rules(approvals.default_rules_text()),
                                 lambda text, name: pipeline.load_request(text, config, filename=name), utcnow)
        version = service.submit(world["request"].read_text(), caller=BTC_REQUESTER)
        assert version["approvalsRequired"] == 2  # level 3: two approvers
        version = service.approve(version["id"], caller=BTC_APPROVER1, reason="controller hardening test")
        assert version["state"] == "pending-approval"
        version = service.approve(version["id"], caller=BTC_APPROVER2, reason="controller hardening test")
        assert version["state"] == "approved"
    finally:
        store.dispose()
    approved = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        controller = pool.submit(controller_once, world)
        start_receiver(world)
        run = controller.result()
    seconds = time.monotonic() - approved
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    (outcome,) = [t for t in json.loads(run.stdout)["tenants"] if t["tenant"] == world["tenant"]]
    assert outcome["result"] == "applied", outcome

    view = status(world)
    assert view["phase"] == "ready"
    hardened = condition(view, "Hardened")
    assert (hardened["status"], hardened["reason"]) == ("True", "Hardened"), hardened
    assert "3 server(s) hardened (L3)" in hardened["message"]
    events = {e["reason"]: e for e in view["events"]}
    assert "Hardened" in events and all(name in events["Hardened"]["message"] for name in SERVERS)
    (record,) = harden_audits(world)  # one audit record naming every server, its level and its checks
    servers = record.data["servers"]
    assert sorted(servers) == SERVERS
    for name, entry in servers.items():
        assert (entry["status"], entry["level"]) == ("hardened", 3), (name, entry)
        assert entry["verify"]["failed"] == [] and entry["verify"]["ok"] >= 30, (name, entry)
    world["numbers"]["approve_to_hardened_verified_s"] = round(seconds, 1)
    world["numbers"]["per_server_harden_verify_s"] = {n: e["seconds"] for n, e in sorted(servers.items())}
    applied_at = min(r.at for r in tenant_audits(world, "tenant.apply"))
    world["numbers"]["apply_done_to_hardened_s"] = round(
        (_time(record.at) - _time(applied_at)).total_seconds(), 1)

    # an independent audit of the same hosts: every control passes or is not applicable here
    audit = gcloudctl("-o", "json", "audit-hosts", world["tenant"], "--no-lynis", "--key", world["key"],
                      "--proxy-command", world["proxy"], "--out", str(world["tmp"] / "audit"))
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-3000:]
    reports = json.loads(audit.stdout)["reports"]
    assert sorted(reports) == SERVERS
    for name, report in reports.items():
        score = report["score"] if isinstance(report, dict) else json.loads(open(report).read())["score"]
        assert score["failed"] == 0 and score["passed"] >= 30, (name, score)


def test_2_a_second_pass_does_not_harden_again(world):
    before = len(harden_audits(world))
    started = time.monotonic()
    run = controller_once(world)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    (outcome,) = [t for t in json.loads(run.stdout)["tenants"] if t["tenant"] == world["tenant"]]
    assert outcome["result"] == "converged", outcome
    assert len(harden_audits(world)) == before  # nothing hardened, nothing recorded
    assert condition(status(world), "Hardened")["status"] == "True"
    world["numbers"]["converged_pass_s"] = round(seconds, 1)
    assert seconds < 30, "a converged pass must not run the playbooks again"


def addresses(world) -> dict[str, dict[str, str]]:
    """Server name -> {"fixed": ip, "floating": ip}, read with the `openstack` CLI."""
    pid = openstack("project", "show", "--domain", "BTC", world["tenant"])["id"]
    found = {}
    for server in openstack("server", "list", "--all-projects", "--project", pid, "--long"):
        networks = server["Networks"]
        ips = [a for v in networks.values() for a in v] if isinstance(networks, dict) else re.findall(
            r"[\d.]+", str(networks))
        found[server["Name"]] = {"floating": next(a for a in ips if a.startswith("172.24.4.")),
                                 "fixed": next(a for a in ips if not a.startswith("172.24.4."))}
    return found


def session(world, address: str):
    target = ssh.SshTarget(host=address, user="gcadmin", key_file=world["key"], proxy_command=world["proxy"])
    return ssh.connect(target, ssh.known_hosts_path(world["tenant"]))


# a TCP connect from the guest (3 s), bounded from outside too: no answer in time counts as closed
PROBE = ("timeout 8 python3 -c \"import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
         ".close()\n print('open')\nexcept OSError as e:\n print('closed', type(e).__name__)\" {} {} || echo closed rc=$?")


def test_3_the_host_firewall_and_the_log_forwarding_hold(world):
    """From another guest of the tenant: the declared port (443) answers, SSH (allowed by the
    security group from the group, but not from the admin sources) does not; a line logged on a
    guest reaches the central log receiver named in the catalog within 10 s."""
    ips = addresses(world)
    with session(world, ips["web-1"]["floating"]) as web1:
        code, _, err = web1.run("nohup python3 -m http.server 443 --bind 0.0.0.0 >/dev/null 2>&1 & sleep 1; "
                                "ss -ltn | grep -q ':443 '", sudo=True)
        assert code == 0, err
        code, out, _ = web1.run("ss -ltn | grep -c ':22 '", sudo=True)
        assert code == 0 and int(out.strip()) >= 1  # sshd listens: a closed port would prove nothing
        marker = f"gcloudctl-central-log-{uuid.uuid4().hex[:10]}"
        started = time.monotonic()
        code, _, err = web1.run(f"logger -t gcloudctl-test {marker}")
        assert code == 0, err
        line, waited = world["receiver"].wait_for(marker, timeout=10)
        world["numbers"]["log_line_arrived_s"] = round(time.monotonic() - started, 2)
        assert "web-1" in line, line
    with session(world, ips["web-2"]["floating"]) as web2:
        target = ips["web-1"]["fixed"]
        code, out, err = web2.run(PROBE.format(target, 443), timeout=30)
        assert out.strip() == "open", (out, err)
        code, out, err = web2.run(PROBE.format(target, 22), timeout=30)
        assert out.startswith("closed"), (out, err)  # SSH only from the admin sources (catalog)
    with session(world, ips["web-1"]["floating"]) as web1:
        web1.run("pkill -f 'http.server 443'", sudo=True)


def test_4_without_a_key_the_controller_says_so(world):
    """A controller started without --ssh-key hardens nothing and says NoKey for servers it would
    have to harden; here the tenant is asked to be hardened again (explicit request)."""
    asked = gcloudctl("controller", "harden", world["tenant"], "--db", world["db_url"], "--reason", "test")
    assert asked.returncode == 0, asked.stderr[-2000:]
    run = gcloudctl("-o", "json", "controller", "run", "--once", "--db", world["db_url"], timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    hardened = condition(status(world), "Hardened")
    assert (hardened["status"], hardened["reason"]) == ("False", "NoKey"), hardened
    assert "--ssh-key" in hardened["message"]
