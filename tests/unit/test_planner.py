"""Golden tests for the pure planner: each case states the world, the request change and why
the plan must look the way it does."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import pytest

from gcloudctl import pipeline, planner
from gcloudctl.ownership import Owner
from gcloudctl.drivers.base import IdMap
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.executor import apply
from gcloudctl.plan import render_text
from tests.fixtures.core import request_from


def converge(cloud: FakeCloud, request, config) -> None:
    plan = pipeline.plan_request(request, cloud, config)
    result = pipeline.apply_plan(plan, cloud)
    assert result.ok, result.to_dict()


def converged(doc: dict, config):
    """A fake cloud holding the tenant of `doc`, applied: (api, cloud, request)."""
    api = FakeApi()
    cloud = FakeCloud(api)
    request = request_from(doc, config)
    converge(cloud, request, config)
    return api, cloud, request


def plan_lines(plan) -> list[str]:
    return [f"{c.action.value} {c.address}" for c in plan.changes]


@dataclass
class Case:
    id: str
    reason: str
    edit_request: Callable[[dict], None] = lambda doc: None
    edit_cloud: Callable[[FakeApi], None] = lambda api: None
    expected: tuple[str, ...] = ()


def _open_rule(api: FakeApi) -> None:
    group = next(g for g in api.neutron["security-groups"].values() if g["name"] == "web")
    api._neutron_create("security-group-rules", {"security_group_id": group["id"], "direction": "ingress",
                                                 "protocol": "tcp", "port_range_min": 3389, "port_range_max": 3389,
                                                 "remote_ip_prefix": "0.0.0.0/0"})


def _hand_port(api: FakeApi) -> None:
    net = next(n for n in api.neutron["networks"].values() if n["name"] == "app")
    subnet = next(s for s in api.neutron["subnets"].values() if s["network_id"] == net["id"])
    api._neutron_create("ports", {"name": "manual", "network_id": net["id"], "project_id": net["project_id"],
                                  "fixed_ips": [{"subnet_id": subnet["id"]}]})


def _server_error(api: FakeApi) -> None:
    next(s for s in api.servers.values() if s["name"] == "web-2")["status"] = "ERROR"


def _server_stopped(api: FakeApi) -> None:
    next(s for s in api.servers.values() if s["name"] == "web-1")["status"] = "SHUTOFF"


def _server_deleting(api: FakeApi) -> None:
    next(s for s in api.servers.values() if s["name"] == "web-2")["OS-EXT-STS:task_state"] = "deleting"


def _server_building_unbound(api: FakeApi) -> None:
    """Just created by a run that was then killed: Nova has not bound its port yet."""
    server = next(s for s in api.servers.values() if s["name"] == "web-1")
    server.update(status="BUILD", _polls=-1000)  # stays BUILD while the test looks
    for port in api.neutron["ports"].values():
        if port.get("device_id") == server["id"]:
            port.update(device_id="", device_owner="")


def _server_deleted(api: FakeApi) -> None:
    sid = next(s["id"] for s in api.servers.values() if s["name"] == "db-1")
    api.request("compute", "DELETE", f"/servers/{sid}")


def _quota_changed(api: FakeApi) -> None:
    for quota in api.compute_quotas.values():
        quota["instances"] = 99


def _more_web(doc: dict) -> None:
    doc["spec"]["servers"][0]["count"] = 3
    doc["spec"]["quotas"]["floatingIPs"] = 3


def _flavor_change(doc: dict) -> None:
    doc["spec"]["servers"][1]["flavor"] = "g1.large"


def _drop_db_group(doc: dict) -> None:
    doc["spec"]["servers"][1]["securityGroups"] = ["web"]
    doc["spec"]["securityGroups"] = [g for g in doc["spec"]["securityGroups"] if g["name"] != "db"]


CASES = [
    Case("converged", "a tenant that matches its request needs nothing"),
    Case("hand-made-rule", "rules are a set: a rule added by hand is drift to delete",
         edit_cloud=_open_rule, expected=("delete security_group_rule.web/ingress:IPv4:tcp:3389-3389:0.0.0.0/0",)),
    Case("hand-made-port", "a port gcloudctl did not create is drift to delete",
         edit_cloud=_hand_port, expected=("delete port.~manual@",)),
    Case("server-error", "a server in ERROR is replaced (self-healing)",
         edit_cloud=_server_error, expected=("replace server.web-2",)),
    Case("server-stopped", "a server that stopped (its guest died, or stopped by hand) is started, not replaced",
         edit_cloud=_server_stopped, expected=("update server.web-1",)),
    Case("server-deleting", "a server being deleted is gone soon: it is replaced, not kept",
         edit_cloud=_server_deleting, expected=("replace server.web-2",)),
    Case("server-building", "a server still building has no port bound yet: that is not a change",
         edit_cloud=_server_building_unbound),
    Case("server-deleted", "a server deleted out of band is created again",
         edit_cloud=_server_deleted, expected=("create server.db-1",)),
    Case("quota-drift", "quota changed by hand is set back",
         edit_cloud=_quota_changed, expected=("update quota.compute",)),
    Case("scale-out", "count 2 -> 3 adds one port, one server and its floating IP; the quota follows",
         edit_request=_more_web, expected=("update quota.network", "create port.web-3.app", "create server.web-3",
                                           "create floating_ip.web-3")),
    Case("flavor-change", "a flavor is create-only: the server is replaced",
         edit_request=_flavor_change, expected=("replace server.db-1",)),
    Case("drop-group", "a group no longer requested goes; its rules go with it (no separate deletes)",
         edit_request=_drop_db_group, expected=("update port.db-1.db", "delete security_group.db")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan_golden(case: Case, config, example_doc) -> None:
    api, cloud, _ = converged(example_doc, config)
    case.edit_cloud(api)
    doc = copy.deepcopy(example_doc)
    case.edit_request(doc)
    plan = pipeline.plan_request(request_from(doc, config), cloud, config)
    lines = plan_lines(plan)
    assert len(lines) == len(case.expected), f"{case.reason}\n{render_text(plan)}"
    for want in case.expected:
        assert any(line.startswith(want) for line in lines), f"{case.reason}: missing {want!r}\n{render_text(plan)}"


def test_drift_repaired_by_apply_and_second_plan_empty(config, example_doc) -> None:
    api, cloud, request = converged(example_doc, config)
    _open_rule(api)
    _hand_port(api)
    _server_error(api)
    converge(cloud, request, config)
    assert pipeline.plan_request(request, cloud, config).is_empty()
    assert not any(r.get("port_range_min") == 3389 for r in api.neutron["security-group-rules"].values())
    assert not any(p.get("name") == "manual" for p in api.neutron["ports"].values())
    assert all(s["status"] == "ACTIVE" for s in api.servers.values())


def test_stopped_server_is_started_in_place(config, example_doc) -> None:
    api, cloud, request = converged(example_doc, config)
    _server_stopped(api)
    before = next(s["id"] for s in api.servers.values() if s["name"] == "web-1")
    plan = pipeline.plan_request(request, cloud, config)
    (change,) = plan.changes
    assert change.changed == (planner.POWER,) and change.reason == "drift: server is SHUTOFF"
    assert "power: SHUTOFF -> ACTIVE" in render_text(plan)
    converge(cloud, request, config)
    web1 = next(s for s in api.servers.values() if s["name"] == "web-1")
    assert (web1["id"], web1["status"]) == (before, "ACTIVE")  # same server, its disk kept
    assert pipeline.plan_request(request, cloud, config).is_empty()


def test_server_being_deleted_is_replaced_and_the_next_plan_is_empty(config, example_doc) -> None:
    api, cloud, request = converged(example_doc, config)
    _server_deleting(api)
    before = next(s["id"] for s in api.servers.values() if s["name"] == "web-2")
    converge(cloud, request, config)
    web2 = [s for s in api.servers.values() if s["name"] == "web-2"]
    assert len(web2) == 1 and web2[0]["id"] != before and web2[0]["status"] == "ACTIVE"
    assert pipeline.plan_request(request, cloud, config).is_empty()


def test_converged_apply_makes_zero_writes(config, example_doc) -> None:
    api, cloud, request = converged(example_doc, config)
    api.writes.clear()
    plan = pipeline.plan_request(request, cloud, config)
    pipeline.apply_plan(plan, cloud)
    assert sum(api.writes.values()) == 0


def test_observe_cost_does_not_grow_with_servers(config, example_doc) -> None:
    counts = []
    for count in (2, 20):
        doc = copy.deepcopy(example_doc)
        doc["spec"]["servers"][0]["count"] = count
        doc["spec"]["servers"][0]["floatingIP"] = False
        doc["spec"]["quotas"].update(instances=30, cores=40, ramMiB=80000)
        api, cloud, request = converged(doc, config)
        api.requests.clear()
        assert pipeline.plan_request(request, cloud, config).is_empty()
        counts.append(sum(api.requests.values()))
    assert counts[0] == counts[1] <= 16  # 14, plus Cinder's volume quota and volume list


def test_destroy_leaves_nothing_and_removes_default_group(config, example_doc) -> None:
    api, cloud, _ = converged(example_doc, config)
    plan = pipeline.plan_destroy(Owner("byt-his-staging", "BYT", "BYT"), cloud)
    assert pipeline.apply_plan(plan, cloud).ok
    assert not api.projects and not api.servers and not api.keypairs and not api.server_groups
    leftovers = {k: [x for x in v.values() if x.get("project_id") != "admin"] for k, v in api.neutron.items()}
    assert all(not items for items in leftovers.values()), leftovers


def test_interrupted_create_is_adopted_not_duplicated(config, example_doc) -> None:
    """A network created without its ownership tags (crash between create and tag on a cloud
    without tag-on-create) is adopted by name, not created twice."""
    api = FakeApi()
    cloud = FakeCloud(api)
    request = request_from(example_doc, config)
    plan = pipeline.plan_request(request, cloud, config)
    project_only = [c for c in plan.changes if c.address.kind.value in ("project", "membership", "quota")]
    from gcloudctl.plan import Plan
    pipeline.apply_plan(Plan(plan.tenant, tuple(project_only), observed=plan.observed), cloud)
    pid = next(iter(api.projects))
    api._neutron_create("networks", {"name": "app", "project_id": pid})  # untagged twin
    plan = pipeline.plan_request(request, cloud, config)
    app_changes = [c for c in plan.changes if str(c.address) == "network.app" or "~app@" in str(c.address)]
    assert [c.action.value for c in app_changes] == ["update"], render_text(plan)
    converge(cloud, request, config)
    assert sum(1 for n in api.neutron["networks"].values() if n["name"] == "app") == 1


def test_quota_preflight_refuses_with_numbers(config, example_doc) -> None:
    doc = copy.deepcopy(example_doc)
    doc["spec"]["servers"][0]["count"] = 12
    doc["spec"]["quotas"]["floatingIPs"] = 8
    doc["spec"]["quotas"]["cores"] = 40
    doc["spec"]["quotas"]["ramMiB"] = 80000
    from gcloudctl.errors import InvalidInput, Refused
    try:
        request = request_from(doc, config)
    except InvalidInput as exc:  # validation may catch it first: both must carry numbers
        assert "13" in exc.message and "10" in exc.message
        return
    with pytest.raises(Refused) as err:
        pipeline.plan_request(request, FakeCloud(), config)
    assert "needs 13" in err.value.message and "quota is 10" in err.value.message


def test_plan_text_masks_user_data(config, example_doc) -> None:
    doc = copy.deepcopy(example_doc)
    doc["spec"]["servers"][0]["userData"] = {"template": "default.yaml.j2", "vars": {"db_password": "S3cr3t-value"}}
    plan = pipeline.plan_request(request_from(doc, config), FakeCloud(), config)
    import json
    assert "S3cr3t-value" not in render_text(plan)
    assert "S3cr3t-value" not in json.dumps(plan.to_dict())


def test_cloud_without_tag_creation_creates_then_tags(config, example_doc) -> None:
    api = FakeApi(tag_creation=False)
    cloud = FakeCloud(api)
    request = request_from(example_doc, config)
    converge(cloud, request, config)
    assert pipeline.plan_request(request, cloud, config).is_empty()
    assert all(n["tags"] for n in api.neutron["networks"].values() if n["name"] != "public")


def test_retried_create_never_duplicates(config, example_doc) -> None:
    """The tag call after a create fails transiently once: the retry finds the network the
    first attempt made (by its deterministic name) and tags it instead of creating a twin."""
    api = FakeApi(tag_creation=False)
    api.inject("PUT", r"^/networks/[^/]+/tags$", 503, times=1)
    api.inject("POST", r"^/servers$", 502, times=1, after=True)  # the server exists; the reply was lost
    api.inject("POST", r"^/ports$", 504, times=2, after=True)
    cloud = FakeCloud(api)
    request = request_from(example_doc, config)
    converge(cloud, request, config)
    assert sorted(n["name"] for n in api.neutron["networks"].values()) == ["app", "db", "public"]
    assert sorted(s["name"] for s in api.servers.values()) == ["db-1", "web-1", "web-2"]
    assert sorted(p["name"] for p in api.neutron["ports"].values() if p.get("name")) == ["db-1-db", "web-1-app", "web-2-app"]
    assert pipeline.plan_request(request, cloud, config).is_empty()


def test_crash_between_create_and_tag_is_adopted(config, example_doc) -> None:
    """On a cloud without tag-creation, the tag call keeps failing (as if the process died
    between the two calls): the next run adopts the untagged network by its deterministic
    name; no duplicate, no orphan."""
    api = FakeApi(tag_creation=False)
    api.inject("PUT", r"^/networks/[^/]+/tags$", 400, times=2)
    cloud = FakeCloud(api)
    request = request_from(example_doc, config)
    first = pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud)
    assert not first.ok
    api.faults.clear()
    plan = pipeline.plan_request(request, cloud, config)
    adopted = [c for c in plan.changes if c.reason.startswith("adopt")]
    assert sorted(str(c.address) for c in adopted) == ["network.app", "network.db"], render_text(plan)
    converge(cloud, request, config)
    assert pipeline.plan_request(request, cloud, config).is_empty()
    names = sorted(n["name"] for n in api.neutron["networks"].values())
    assert names == ["app", "db", "public"]
