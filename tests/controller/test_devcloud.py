"""The controller on the real devcloud, changes made with the independent `openstack` CLI:
a rule opened to 0.0.0.0/0 is removed within one cycle (enforce) or reported (report); a
deleted server is recreated; an ERROR server is replaced; an expired tenant is destroyed with
nothing left. The tests of one module share a tenant and run in order."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store
from tests.cloud.helpers import leftovers, openstack, unique_tenant
from tests.controller.conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]


class ShiftableClock:
    """Real time, plus an offset a test can move forward (to reach expiresAt)."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


def small_request(name: str, *, drift_policy: str = "enforce", servers: bool = True) -> str:
    import yaml

    from .conftest import request_doc

    doc = request_doc(name)
    doc["spec"]["driftPolicy"] = drift_policy
    doc["spec"]["expiresAt"] = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    doc["spec"]["servers"] = [{"name": "web", "count": 1, "flavor": "g1.small", "image": "debian-12-hardened",
                               "networks": ["app"], "securityGroups": ["web"], "keypair": "ops"}] if servers else []
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture(scope="module")
def ctl(devcloud, tmp_path_factory):
    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    saved = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(devcloud.clouds_yaml)  # for openstacksdk and the openstack CLI
    config = pipeline.Config.load()
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('ctl') / 'controller.db'}")
    clock = ShiftableClock()
    engine = PipelineEngine(config, lambda region: OpenStackDriver(SdkApi(devcloud.cloud_name), create_missing_users=True))
    service = RequestService(store, config.agencies, approvals.parse_rules(approvals.default_rules_text()),
                             lambda text, name: pipeline.load_request(text, config, filename=name), clock)
    runner = Runner(store, Reconciler(store, engine, holder="devcloud-test", interval=60, clock=clock),
                    clock=clock, workers=2)
    state = {"service": service, "runner": runner, "clock": clock, "engine": engine, "names": []}
    yield state
    for name in state["names"]:  # whatever a failed test left behind
        request = pipeline.load_request(small_request(name), config, filename=name)
        driver = engine.driver(request)
        pipeline.apply_plan(pipeline.plan_destroy(pipeline.owner_of(request, config), driver), driver)
    store.dispose()
    if saved is None:
        os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
    else:
        os.environ["OS_CLIENT_CONFIG_FILE"] = saved


def provision(ctl, text):
    service = ctl["service"]
    version = service.submit(text, caller=BYT_REQUESTER)
    ctl["names"].append(version["tenant"])
    for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
        service.approve(version["id"], caller=approver, reason="devcloud test")
    summary = ctl["runner"].run_once()
    results = {o.tenant: o.result.value for o in summary.outcomes}
    assert summary.ok and results[version["tenant"]] == "applied", summary.to_dict()
    return version["tenant"]


@pytest.fixture(scope="module")
def tenant(ctl):
    return provision(ctl, small_request(unique_tenant("byt-ctl")))


def project_id(name):
    return openstack("project", "show", name)["id"]


def web_group(name):
    return next(g for g in openstack("security", "group", "list", "--project", project_id(name)) if g["Name"] == "web")


def open_ssh_to_world(name):
    return openstack("security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "22",
                     "--remote-ip", "0.0.0.0/0", web_group(name)["ID"])["id"]


def rules_from_anywhere(name, port):
    rules = openstack("security", "group", "rule", "list", web_group(name)["ID"], "--long")
    # the CLI shows "0.0.0.0/0" as the IP range of a rule whose remote is a group: exclude those
    return [r for r in rules if r["IP Range"] == "0.0.0.0/0" and not r.get("Remote Security Group")
            and r["Port Range"] == f"{port}:{port}" and r["Direction"] == "ingress"]


def servers(name):
    return {s["Name"]: s for s in openstack("server", "list", "--all-projects", "--project", project_id(name))}


def test_1_provisioned_and_ready(ctl, tenant):
    status = ctl["service"].status(tenant, caller=OPERATOR)
    assert status["phase"] == "ready"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True", "Synced": "True",
                                                                      "Drifted": "False"}
    assert set(servers(tenant)) == {"web-1"}


def test_2_no_op_cycle_writes_nothing(ctl, tenant):
    assert ctl["runner"].run_once().counts() == {"converged": 1}


def test_3_rule_opened_to_the_world_is_removed_in_one_cycle(ctl, tenant):
    open_ssh_to_world(tenant)
    assert rules_from_anywhere(tenant, 22)
    assert ctl["runner"].run_once().counts() == {"drift-repaired": 1}
    assert not rules_from_anywhere(tenant, 22)
    assert rules_from_anywhere(tenant, 443), "the requested rule stays"


def test_4_deleted_server_is_recreated(ctl, tenant):
    before = servers(tenant)["web-1"]
    openstack("server", "delete", "--wait", before["ID"], parse=False)
    assert "web-1" not in servers(tenant)
    assert ctl["runner"].run_once().counts() == {"drift-repaired": 1}
    after = servers(tenant)["web-1"]
    assert after["ID"] != before["ID"] and after["Status"] == "ACTIVE"


def test_5_error_server_is_replaced(ctl, tenant):
    before = servers(tenant)["web-1"]
    openstack("server", "set", "--auto-approve", "--state", "error", before["ID"], parse=False)
    assert servers(tenant)["web-1"]["Status"] == "ERROR"
    assert ctl["runner"].run_once().counts() == {"drift-repaired": 1}
    after = servers(tenant)
    assert list(after) == ["web-1"] and after["web-1"]["ID"] != before["ID"] and after["web-1"]["Status"] == "ACTIVE"


def test_6_report_policy_records_drift_and_leaves_it(ctl):
    name = provision(ctl, small_request(unique_tenant("byt-rep"), drift_policy="report", servers=False))
    open_ssh_to_world(name)
    assert ctl["runner"].run_once().counts().get("drift-reported") == 1
    assert rules_from_anywhere(name, 22), "report never changes the cloud"
    status = ctl["service"].status(name, caller=OPERATOR)
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert drifted["status"] == "True" and drifted["reason"] == "DriftDetected"
    assert any(e["reason"] == "DriftDetected" for e in status["events"])


def test_7_expired_tenants_are_destroyed_with_nothing_left(ctl, tenant):
    ids = {name: project_id(name) for name in ctl["names"]}
    ctl["clock"].offset = timedelta(days=2)  # past every tenant's expiresAt
    summary = ctl["runner"].run_once()
    assert summary.counts() == {"destroyed": len(ids)}, summary.to_dict()
    for name, pid in ids.items():
        assert ctl["service"].status(name, caller=OPERATOR)["phase"] == "expired"
        assert leftovers(name, pid) == {}, f"{name} left resources behind"
    ctl["names"].clear()
    assert ctl["service"].audit_verify(caller=OPERATOR)["ok"]
