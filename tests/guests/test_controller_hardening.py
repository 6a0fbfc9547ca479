"""devcloud guests, the controller's path: an approved level-3 request becomes hardened, verified
servers without anyone running `apply`.

A level-3 request (3 servers on a dmz network, each with `hardening` and a floating IP) is
submitted by the BYT requester and approved by two BYT approvers (the request service with
their identities); `gcloudctl controller run --once` with the controller's own key
(`--ssh-key`, `--ssh-proxy-command`) provisions it, hardens every server over SSH with host keys
verified from the compute API's console, and verifies it with the audit checks. Then: status
says Hardened=True, events and the audit trail say which servers were hardened, `audit-hosts`
finds 0 failed controls, and a second controller pass hardens nothing again. Timing: second
approval -> hardened and verified (the number in docs/hardening.md, "Controller path").
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.controller.service import RequestService, utcnow
from gcloudctl.controller.store import open_store
from tests.cloud.helpers import gcloudctl, unique_tenant
from tests.controller.conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR

pytestmark = [pytest.mark.devcloud, pytest.mark.testhost, pytest.mark.slow]

SERVERS = ["web-1", "web-2", "web-3"]


def level3_request(tenant: str, public_key: str) -> str:
    """Three servers that ask for hardening (profile L3 from the classification) in a dmz zone:
    the only zone where level 3 allows floating IPs; HTTPS from anywhere, SSH only in the group."""
    return yaml.safe_dump({
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
        "metadata": {"name": tenant, "agency": "BYT", "requester": "nguyen.van.a",
                     "description": "controller hardening test"},
        "spec": {
            "classification": 3, "region": "hn1",
            "quotas": {"instances": 3, "cores": 8, "ramMiB": 16384, "floatingIPs": 3},
            "members": [{"user": "nguyen.van.a", "roles": ["member"]}],
            "networks": [{"name": "dmz", "zone": "dmz"}],
            "router": {"externalNetwork": "public"},
            "securityGroups": [{"name": "web", "rules": [
                {"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "0.0.0.0/0"},
                {"direction": "ingress", "protocol": "tcp", "ports": "22", "remoteGroup": "web"}]}],
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
    tenant = unique_tenant("byt-ctlh")
    request = tmp / f"{tenant}.yaml"
    request.write_text(level3_request(tenant, (tmp / "id_ed25519.pub").read_text().strip()))
    proxy = gcloudctl("devcloud", "proxy-command", check=True).stdout.strip()
    db = tmp / "controller.db"
    saved = os.environ.get("GCLOUDCTL_STATE_DIR")
    os.environ["GCLOUDCTL_STATE_DIR"] = str(tmp / "state")  # the tenant's known_hosts start empty
    state = {"tenant": tenant, "request": request, "key": str(key), "proxy": proxy, "tmp": tmp,
             "db_url": f"sqlite:///{db}", "numbers": {}}
    yield state
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


def status(world) -> dict:
    out = gcloudctl("-o", "json", "status", world["tenant"], "--db", world["db_url"], check=True)
    return json.loads(out.stdout)


def condition(view: dict, kind: str) -> dict:
    return next(c for c in view["conditions"] if c["type"] == kind)


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
        version = service.submit(world["request"].read_text(), caller=BYT_REQUESTER)
        assert version["approvalsRequired"] == 2  # level 3: two approvers
        version = service.approve(version["id"], caller=BYT_APPROVER1, reason="controller hardening test")
        assert version["state"] == "pending-approval"
        version = service.approve(version["id"], caller=BYT_APPROVER2, reason="controller hardening test")
        assert version["state"] == "approved"
    finally:
        store.dispose()
    approved = time.monotonic()
    run = controller_once(world)
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


def test_3_without_a_key_the_controller_says_so(world):
    """A controller started without --ssh-key hardens nothing and says NoKey for servers it would
    have to harden; here the tenant is asked to be hardened again (explicit request)."""
    asked = gcloudctl("controller", "harden", world["tenant"], "--db", world["db_url"], "--reason", "test")
    assert asked.returncode == 0, asked.stderr[-2000:]
    run = gcloudctl("-o", "json", "controller", "run", "--once", "--db", world["db_url"], timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    hardened = condition(status(world), "Hardened")
    assert (hardened["status"], hardened["reason"]) == ("False", "NoKey"), hardened
    assert "--ssh-key" in hardened["message"]
