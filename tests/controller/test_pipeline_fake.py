"""The controller over the real pipeline (planner, executor, OpenStack driver) against the
in-memory FakeCloud API: drift repair, self-healing, expiry, delete — asserting the world.
The same scenarios run against the real devcloud in test_devcloud.py."""

from datetime import timedelta

import pytest

from gcloudctl import pipeline
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService
from gcloudctl.drivers.fake import FakeCloud

from .conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR, request_text

NAME = "byt-his-staging"


@pytest.fixture
def config():
    return pipeline.Config.load()


@pytest.fixture
def cloud():
    return FakeCloud()


@pytest.fixture
def engine(config, cloud):
    return PipelineEngine(config, lambda region: cloud)


@pytest.fixture
def real_service(store, config, rules, clock):
    return RequestService(store=store, agencies=config.agencies, rules=rules, clock=clock,
                          load_request=lambda text, name: pipeline.load_request(text, config, filename=name))


@pytest.fixture
def runner(store, engine, clock):
    return Runner(store, Reconciler(store, engine, holder="ctl", interval=60, clock=clock), clock=clock, workers=2)


def provision(service, runner, **changes):
    version = service.submit(request_text(NAME, **changes), caller=BYT_REQUESTER)
    for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
        service.approve(version["id"], caller=approver, reason="ok")
    summary = runner.run_once()
    assert summary.counts() == {"applied": 1}, summary.to_dict()
    return version


def project_id(cloud):
    return next(p["id"] for p in cloud.api.projects.values() if NAME in p["name"])


def servers_of(cloud):
    pid = project_id(cloud)
    return {s["name"]: s for s in cloud.api.servers.values() if s["tenant_id"] == pid}


def rules_from_anywhere(cloud, port):
    return [r for r in cloud.api.neutron["security-group-rules"].values()
            if r.get("remote_ip_prefix") == "0.0.0.0/0" and r.get("port_range_min") == port]


def test_no_op_cycle_makes_no_writes(real_service, runner, cloud):
    provision(real_service, runner)
    writes = sum(cloud.api.writes.values())
    assert runner.run_once().counts() == {"converged": 1}
    assert sum(cloud.api.writes.values()) == writes


def test_rule_opened_by_hand_is_removed_in_one_cycle(real_service, runner, cloud):
    provision(real_service, runner)
    group = next(g for g in cloud.api.neutron["security-groups"].values()
                 if g["project_id"] == project_id(cloud) and g["name"] != "default")
    cloud.api.request("network", "POST", "/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}})
    assert rules_from_anywhere(cloud, 22)
    assert runner.run_once().counts() == {"drift-repaired": 1}
    assert not rules_from_anywhere(cloud, 22)
    assert rules_from_anywhere(cloud, 443), "the requested rule stays"
    assert "tenant.drift-repair" in [r["action"] for r in real_service.audit_export(caller=OPERATOR)]


def test_report_policy_leaves_drift_and_says_so(real_service, runner, cloud):
    provision(real_service, runner, **{"spec.driftPolicy": "report"})
    group = next(g for g in cloud.api.neutron["security-groups"].values()
                 if g["project_id"] == project_id(cloud) and g["name"] != "default")
    cloud.api.request("network", "POST", "/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}})
    assert runner.run_once().counts() == {"drift-reported": 1}
    assert rules_from_anywhere(cloud, 22)
    status = real_service.status(NAME, caller=OPERATOR)
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert drifted["status"] == "True"
    event = next(e for e in status["events"] if e["reason"] == "DriftDetected")
    assert "1 change(s)" in event["message"]


def test_deleted_server_is_recreated(real_service, runner, cloud):
    provision(real_service, runner)
    before = servers_of(cloud)
    victim = sorted(before)[0]
    cloud.api.request("compute", "DELETE", f"/servers/{before[victim]['id']}")
    assert victim not in servers_of(cloud)
    assert runner.run_once().counts() == {"drift-repaired": 1}
    after = servers_of(cloud)
    assert set(after) == set(before) and after[victim]["id"] != before[victim]["id"]


def test_error_server_is_replaced(real_service, runner, cloud):
    provision(real_service, runner)
    before = servers_of(cloud)
    victim = sorted(before)[0]
    cloud.api.servers[before[victim]["id"]]["status"] = "ERROR"
    assert runner.run_once().counts() == {"drift-repaired": 1}
    after = servers_of(cloud)
    assert after[victim]["id"] != before[victim]["id"] and after[victim]["status"] == "ACTIVE"
    assert len(after) == len(before)


def test_expired_tenant_leaves_nothing(real_service, runner, cloud, clock):
    provision(real_service, runner, **{"spec.expiresAt": (clock() + timedelta(minutes=5)).isoformat()})
    clock.advance(301)
    assert runner.run_once().counts() == {"destroyed": 1}
    assert real_service.status(NAME, caller=OPERATOR)["phase"] == "expired"
    assert not [p for p in cloud.api.projects.values() if NAME in p["name"]]
    assert not [s for s in cloud.api.servers.values()]
    assert not [n for n in cloud.api.neutron["networks"].values() if n.get("project_id") != "admin"]


def test_delete_request_destroys_tenant(real_service, runner, cloud):
    provision(real_service, runner)
    deletion = real_service.delete(NAME, caller=BYT_APPROVER1, reason="end of project")
    assert runner.run_once().counts() == {"converged": 1}, "nothing is destroyed before approval"
    real_service.approve(deletion["id"], caller=BYT_APPROVER2, reason="ok")
    assert runner.run_once().counts() == {"destroyed": 1}
    assert real_service.status(NAME, caller=OPERATOR)["phase"] == "deleted"
    assert not cloud.api.servers and not [p for p in cloud.api.projects.values() if NAME in p["name"]]


def test_transient_api_errors_back_off(real_service, runner, cloud, clock):
    version = real_service.submit(request_text(NAME), caller=BYT_REQUESTER)
    for approver in (BYT_APPROVER1, BYT_APPROVER2):
        real_service.approve(version["id"], caller=approver, reason="ok")
    cloud.api.inject("GET", r"/projects", 503, times=1)
    assert runner.run_once().counts() == {"transient-error": 1}
    assert real_service.status(NAME, caller=OPERATOR)["lastError"]
    clock.advance(600)
    assert runner.run_once(only_due=True).counts() == {"applied": 1}


def test_sealed_secret_var_reaches_the_server_user_data(store, config, rules, clock, cloud, engine, sealer,
                                                       tmp_path, monkeypatch):
    """A secret var is sealed in the store and the controller renders the server's user data
    from the clear value (the digest on the server is that of the clear rendering)."""
    import hashlib
    import shutil

    from gcloudctl import naming
    from gcloudctl.hardening.userdata import default_templates_dir, render_user_data

    from .conftest import submit_approved

    secret = "S3cret-for-the-app-7"
    templates = tmp_path / "templates"
    templates.mkdir()
    shutil.copy(default_templates_dir() / "default.yaml.j2", templates)
    (templates / "secret.yaml.j2").write_text(
        '#cloud-config\nwrite_files:\n  - path: /etc/app.env\n    content: "DB_PASSWORD={{ vars.db_password }}"\n')
    monkeypatch.setenv("GCLOUDCTL_TEMPLATES_DIR", str(templates))
    service = RequestService(store=store, agencies=config.agencies, rules=rules, clock=clock, sealer=sealer,
                             load_request=lambda text, name: pipeline.load_request(text, config, filename=name))
    runner = Runner(store, Reconciler(store, engine, holder="ctl", interval=60, clock=clock, unseal=sealer.unseal),
                    clock=clock)
    servers = [{"name": "web", "count": 1, "flavor": "g1.small", "image": "debian-12-hardened", "networks": ["app"],
                "securityGroups": ["web"], "userData": {"template": "secret.yaml.j2",
                                                        "vars": {"db_password": secret}}}]
    version = submit_approved(service, request_text(NAME, **{"spec.servers": servers}))
    assert version["sealedVars"] == 1
    assert runner.run_once().counts() == {"applied": 1}
    store.dispose()
    assert not [p for p in tmp_path.glob("controller.db*") if secret.encode() in p.read_bytes()]
    clear = render_user_data("secret.yaml.j2", {"db_password": secret}, {}, templates)
    [server] = servers_of(cloud).values()
    assert server["metadata"][naming.META_USERDATA_DIGEST] == hashlib.sha256(clear.encode()).hexdigest()[:16]
