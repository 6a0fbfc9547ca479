"""Issue 3 end to end on the real devcloud: apply the example request, check every resource
with the independent `openstack` CLI, converge to zero writes, catch out-of-band changes,
destroy to zero leftovers."""

from __future__ import annotations

import pytest

from gcloudctl import pipeline
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi
from tests.cloud.helpers import leftovers, openstack, request_file, unique_tenant

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]


@pytest.fixture(scope="module")
def tenant(devcloud, tmp_path_factory):
    name = unique_tenant()
    path = request_file(tmp_path_factory.mktemp("req"), name)
    config = pipeline.Config.load()
    request = pipeline.load_request(path, config, filename=str(path))
    yield {"name": name, "path": path, "config": config, "request": request}
    driver = OpenStackDriver(SdkApi(devcloud.cloud_name), create_missing_users=True)
    pipeline.apply_plan(pipeline.plan_destroy(pipeline.owner_of(request, config), driver), driver)


def _driver(devcloud):
    api = SdkApi(devcloud.cloud_name)
    return api, OpenStackDriver(api, create_missing_users=True)


def test_1_apply_creates_everything_the_request_names(devcloud, tenant):
    api, driver = _driver(devcloud)
    plan = pipeline.plan_request(tenant["request"], driver, tenant["config"])
    assert plan.counts()["create"] == 32
    result = pipeline.apply_plan(plan, driver)
    assert result.ok, result.to_dict()

    name = tenant["name"]
    project = openstack("project", "show", name)
    assert f"gc-tenant={name}" in project["tags"] and "gc-agency=BYT" in project["tags"]
    pid = project["id"]
    nets = {n["Name"]: n for n in openstack("network", "list", "--project", pid, "--long")}
    assert set(nets) == {"app", "db"}
    subnets = {s["Name"]: s for s in openstack("subnet", "list", "--project", pid)}
    assert subnets["app"]["Subnet"] == "10.40.1.0/24"
    assert subnets["db"]["Subnet"].startswith("10.40."), "db is allocated from the BYT pool"
    router = next(r for r in openstack("router", "list", "--project", pid, "--long") if r["Name"] == "main")
    assert router["External gateway info"] and "network_id" in str(router["External gateway info"])
    servers = {s["Name"]: s for s in openstack("server", "list", "--all-projects", "--project", pid, "--long")}
    assert set(servers) == {"web-1", "web-2", "db-1"}
    assert all(s["Status"] == "ACTIVE" for s in servers.values())
    fips = openstack("floating", "ip", "list", "--project", pid)
    assert len(fips) == 2 and all(f["Port"] for f in fips)
    groups = {g["Name"]: g for g in openstack("security", "group", "list", "--project", pid)}
    assert {"web", "db"} <= set(groups)
    rules = openstack("security", "group", "rule", "list", groups["web"]["ID"], "--long")
    ingress = sorted((r["IP Protocol"], r["Port Range"], r["IP Range"] or r["Remote Security Group"])
                     for r in rules if r["Direction"] == "ingress")
    assert ingress[0][:2] == ("tcp", "22:22") and ingress[1] == ("tcp", "443:443", "0.0.0.0/0")
    quota = openstack("quota", "show", pid)
    limits = {q["Resource"]: q["Limit"] for q in quota} if isinstance(quota, list) else quota
    assert limits["instances"] == 10 and limits["cores"] == 32 and limits["floating_ips"] == 2, limits
    keypairs = [k["Name"] for k in openstack("keypair", "list")]
    assert f"gc_BYT_{name}_ops" in keypairs
    members = openstack("role", "assignment", "list", "--project", pid, "--names")
    assert any(m["User"].startswith("nguyen.van.a") and m["Role"] == "member" for m in members)


def test_2_second_apply_makes_zero_writes(devcloud, tenant):
    api, driver = _driver(devcloud)
    before = api.total_requests
    plan = pipeline.plan_request(tenant["request"], driver, tenant["config"])
    assert plan.is_empty(), [c.to_dict() for c in plan.changes]
    pipeline.apply_plan(plan, driver)
    writes = {k: n for k, n in api.requests.items() if not k.endswith(" GET") and k != "identity POST"}
    assert writes == {}, f"a converged tenant must see zero writes; saw {writes}"
    assert api.requests["identity POST"] == 1, "one login"
    # 15, and 17 where the region has block storage (Cinder's volume quota and volume list)
    assert api.total_requests - before <= 17, dict(api.requests)


def test_3_out_of_band_rule_and_port_show_in_plan_and_are_repaired(devcloud, tenant):
    name = tenant["name"]
    pid = openstack("project", "show", name)["id"]
    web = next(g for g in openstack("security", "group", "list", "--project", pid) if g["Name"] == "web")
    openstack("security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "3389",
              "--remote-ip", "0.0.0.0/0", web["ID"])
    app = next(n for n in openstack("network", "list", "--project", pid) if n["Name"] == "app")
    openstack("port", "create", "--network", app["ID"], "--project", pid, "manual-port")

    api, driver = _driver(devcloud)
    plan = pipeline.plan_request(tenant["request"], driver, tenant["config"])
    lines = sorted(f"{c.action.value} {c.address}" for c in plan.changes)
    assert len(lines) == 2, lines
    assert lines[0].startswith("delete port.~manual-port@")
    assert lines[1] == "delete security_group_rule.web/ingress:IPv4:tcp:3389-3389:0.0.0.0/0"
    assert pipeline.apply_plan(plan, driver).ok
    assert pipeline.plan_request(tenant["request"], driver, tenant["config"]).is_empty()
    assert not [p for p in openstack("port", "list", "--project", pid) if p["Name"] == "manual-port"]


def test_4_destroy_leaves_nothing(devcloud, tenant):
    name = tenant["name"]
    pid = openstack("project", "show", name)["id"]
    api, driver = _driver(devcloud)
    owner = pipeline.owner_of(tenant["request"], tenant["config"])
    result = pipeline.apply_plan(pipeline.plan_destroy(owner, driver), driver)
    assert result.ok, result.to_dict()
    assert leftovers(name, pid) == {}
