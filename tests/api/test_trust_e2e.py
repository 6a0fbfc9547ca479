"""Issue 10 end to end on devcloud: people use their own Keystone identities through the request
API and the CLI, and the controller provisions only what two approvers sealed.

The BYT requester submits a level-3 request from its own clouds.yaml entry (`--api`, no `--as`);
one approval is not enough (the controller applies nothing); the second approver approves; the
controller provisions it in its agency's domain; status says ready. The BTC user gets 404 (exit 7)
for show, approve, delete, status and audit; the requester may not approve its own request
(exit 4). Deleting the tenant is a change like any other: at level 3 it needs two approvals
before the controller destroys anything, and then nothing of it is left in the cloud (checked
with the independent `openstack` CLI).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import yaml

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]

REQUESTER, APPROVER1, APPROVER2 = "devcloud-byt-requester", "devcloud-byt-approver1", "devcloud-byt-approver2"
BTC = "devcloud-btc-user"


def level3_request(name: str) -> str:
    """A small level-3 BYT tenant: one app network, one server, nothing open to the internet."""
    return yaml.safe_dump({
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
        "metadata": {"name": name, "agency": "BYT", "requester": "nguyen.van.a",
                     "description": "trust end-to-end test"},
        "spec": {
            "classification": 3, "region": "hn1",
            "quotas": {"instances": 2, "cores": 4, "ramMiB": 8192},
            "members": [{"user": "nguyen.van.a", "roles": ["member"]}],
            "networks": [{"name": "app", "cidr": "10.40.77.0/24", "zone": "app"}],
            "router": {"externalNetwork": "public"},
            "securityGroups": [{"name": "app", "rules": [
                {"direction": "ingress", "protocol": "tcp", "ports": "8443", "remote": "10.40.0.0/16"}]}],
            "servers": [{"name": "app", "count": 1, "flavor": "g1.small", "image": "debian-12-hardened",
                         "networks": ["app"], "securityGroups": ["app"]}],
        },
    }, sort_keys=False)


def run(server, *args: str, cloud: str | None = None, api: bool = True) -> subprocess.CompletedProcess:
    env = dict(server.env)
    if cloud:
        env["OS_CLOUD"] = cloud
    cmd = [sys.executable, "-m", "gcloudctl.cli.main", "-o", "json"]
    if api:
        cmd += ["--api", server.url]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=600)


def ok(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def controller_once(server) -> subprocess.CompletedProcess:
    """The controller on the API server's database, acting with the service user (devcloud-gcloudctl)."""
    return run(server, "--cloud", "devcloud-gcloudctl", "controller", "run", "--once", "--db", server.db_url,
               api=False)


def project_of(devcloud, name: str) -> list[dict]:
    return devcloud.openstack_json("project", "list", "--domain", "BYT", "--long")


def test_two_approvers_seal_a_level3_request_and_the_controller_provisions_it(devcloud, api_server, tmp_path):
    name = f"trust-{uuid.uuid4().hex[:6]}"
    request_file = tmp_path / f"{name}.yaml"
    request_file.write_text(level3_request(name))
    created = False
    try:
        version = ok(run(api_server, "request", "submit", str(request_file), cloud=REQUESTER))
        assert (version["tenant"], version["state"], version["approvalsRequired"]) == (name, "pending-approval", 2)
        assert version["submittedBy"] == "nguyen.van.a@BYT"

        own = run(api_server, "request", "approve", str(version["id"]), "--reason", "mine", cloud=REQUESTER)
        assert own.returncode == 4, own.stderr  # 403: the submitter never decides

        for args in (("request", "show", str(version["id"])),
                     ("request", "approve", str(version["id"]), "--reason", "not mine"),
                     ("request", "delete", name, "--reason", "not mine"),
                     ("status", name),
                     ("audit", "export", "--tenant", name)):
            other = run(api_server, *args, cloud=BTC)
            assert other.returncode == 7, f"BTC {' '.join(args)}: exit {other.returncode} {other.stderr}"
        listed = ok(run(api_server, "request", "list", cloud=BTC))
        assert all(row["tenant"] != name for row in listed)

        first = ok(run(api_server, "request", "approve", str(version["id"]), "--reason", "ok 1/2", cloud=APPROVER1))
        assert (first["state"], first["approvals"]) == ("pending-approval", 1)
        again = run(api_server, "request", "approve", str(version["id"]), "--reason", "twice", cloud=APPROVER1)
        assert again.returncode == 4, again.stderr  # a distinct approver is needed

        ok(controller_once(api_server))  # one approval: nothing to provision yet
        assert not any(p["Name"] == name for p in project_of(devcloud, name))
        assert ok(run(api_server, "status", name, cloud=REQUESTER))["phase"] == "pending-approval"

        second = ok(run(api_server, "request", "approve", str(version["id"]), "--reason", "ok 2/2", cloud=APPROVER2))
        assert (second["state"], second["approvals"]) == ("approved", 2)
        created = True
        ok(controller_once(api_server))

        status = ok(run(api_server, "status", name, cloud=REQUESTER))
        assert status["phase"] == "ready", status
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        projects = [p for p in project_of(devcloud, name) if p["Name"] == name]
        assert len(projects) == 1  # in the agency's domain
        servers = devcloud.openstack_json("server", "list", "--all-projects", "--project", projects[0]["ID"])
        assert [s["Name"] for s in servers] == ["app-1"]

        verdict = ok(run(api_server, "audit", "verify", cloud=APPROVER1))
        assert verdict["ok"] is True

        # Deleting is a change like any other: level 3 needs two approvals before anything goes.
        deletion = ok(run(api_server, "request", "delete", name, "--reason", "test done", cloud=REQUESTER))
        deletion_id = str(deletion.get("id") or deletion.get("request", {}).get("id"))
        ok(controller_once(api_server))
        assert len(devcloud.openstack_json("server", "list", "--all-projects", "--project", projects[0]["ID"])) == 1
        ok(run(api_server, "request", "approve", deletion_id, "--reason", "del 1/2", cloud=APPROVER1))
        ok(controller_once(api_server))
        assert any(p["Name"] == name for p in project_of(devcloud, name))
        ok(run(api_server, "request", "approve", deletion_id, "--reason", "del 2/2", cloud=APPROVER2))
        ok(controller_once(api_server))
        assert ok(run(api_server, "status", name, cloud=REQUESTER))["phase"] == "deleted"
        assert not any(p["Name"] == name for p in project_of(devcloud, name))
        created = False
    finally:
        if created:  # whatever a failed step left behind
            subprocess.run([sys.executable, "-m", "gcloudctl.cli.main", "--cloud", "devcloud-gcloudctl",
                            "destroy", name, "--agency", "BYT", "--yes"], env=api_server.env,
                           capture_output=True, timeout=300)
