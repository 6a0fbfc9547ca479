"""The driver contract (gcloudctl.drivers.base), checked against BOTH the in-memory fake and
the real devcloud OpenStack: the fake is only trusted because it passes the same cases."""

from __future__ import annotations

import copy
import secrets

import pytest

from gcloudctl import pipeline
from gcloudctl.drivers.base import IdMap
from gcloudctl.drivers.fake import FakeCloud
from gcloudctl.ownership import Owner
from gcloudctl.plan import Action
from gcloudctl.resources import Address, Kind
from tests.fixtures.core import request_from


def _small(doc: dict, name: str, level: int) -> dict:
    """Project, quotas, one network, one group with rules, no servers: fast on a real cloud."""
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    doc["spec"]["classification"] = level
    doc["spec"]["networks"] = [{"name": "app", "cidr": "10.40.7.0/24", "zone": "app"}]
    doc["spec"]["router"] = None
    doc["spec"]["servers"] = []
    doc["spec"]["keypairs"] = []
    doc["spec"]["securityGroups"] = [{"name": "web", "rules": [
        {"direction": "ingress", "protocol": "tcp", "ports": "443", "remoteGroup": "web"},
        {"direction": "egress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"}]}]
    return doc


def _owner(tenant: str) -> Owner:
    return Owner(tenant, "BYT", "BYT")  # the requests below are BYT's (examples/byt-his-staging.yaml)


@pytest.fixture(params=["fake", pytest.param("devcloud", marks=[pytest.mark.devcloud, pytest.mark.slow])])
def driver(request):
    if request.param == "fake":
        yield FakeCloud()
        return
    devcloud = request.getfixturevalue("devcloud")
    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    yield OpenStackDriver(SdkApi(devcloud.cloud_name), create_missing_users=True)


@pytest.fixture
def tenant(driver):
    name = f"byt-ct-{secrets.token_hex(3)}"
    yield name
    pipeline.apply_plan(pipeline.plan_destroy(_owner(name), driver), driver)


def test_observe_of_unknown_tenant_is_empty(driver, tenant):
    observed = driver.observe(_owner(tenant))
    assert observed.project_id is None and not observed.resources and not observed.unmanaged


def test_create_then_observe_then_idempotent_delete(driver, tenant, config, example_doc):
    request = request_from(_small(example_doc, tenant, 3), config)
    plan = pipeline.plan_request(request, driver, config)
    assert pipeline.apply_plan(plan, driver).ok
    observed = driver.observe(_owner(tenant))
    assert observed.project_id
    kinds = {a.kind for a in observed.resources}
    assert {Kind.PROJECT, Kind.NETWORK, Kind.SUBNET, Kind.SECURITY_GROUP, Kind.SECURITY_GROUP_RULE, Kind.QUOTA} <= kinds
    assert not observed.unmanaged
    # level 3: Neutron's allow-all egress defaults were removed at create; only declared rules remain
    rules = sorted(a.name for a in observed.resources if a.kind is Kind.SECURITY_GROUP_RULE)
    assert rules == ["web/egress:IPv4:tcp:443-443:10.0.0.0/8", "web/ingress:IPv4:tcp:443-443:sg:web"], rules
    assert pipeline.plan_request(request, driver, config).is_empty()

    network = observed.resources[Address(Kind.NETWORK, "app")]
    ids = IdMap.from_observed(observed)
    subnet = observed.resources[Address(Kind.SUBNET, "app")]
    driver.delete(subnet, ids)
    driver.delete(subnet, ids)  # already gone: success
    driver.delete(network, ids)
    driver.delete(network, ids)
    plan = pipeline.plan_request(request, driver, config)
    assert sorted((c.action, str(c.address)) for c in plan.changes) == [
        (Action.CREATE, "network.app"), (Action.CREATE, "subnet.app")]


def test_duplicate_rule_create_converges(driver, tenant, config, example_doc):
    request = request_from(_small(example_doc, tenant, 2), config)
    assert pipeline.apply_plan(pipeline.plan_request(request, driver, config), driver).ok
    observed = driver.observe(_owner(tenant))
    rule = next(r for r in observed.resources.values() if r.address.kind is Kind.SECURITY_GROUP_RULE)
    again = driver.create(rule, IdMap.from_observed(observed))
    assert again == rule.id, "creating an existing rule returns the existing rule"


def test_level2_keeps_default_egress_without_drift(driver, tenant, config, example_doc):
    doc = _small(example_doc, tenant, 2)
    doc["spec"]["securityGroups"][0]["rules"] = doc["spec"]["securityGroups"][0]["rules"][:1]  # no egress declared
    request = request_from(doc, config)
    assert pipeline.apply_plan(pipeline.plan_request(request, driver, config), driver).ok
    assert pipeline.plan_request(request, driver, config).is_empty()
    names = sorted(a.name for a in driver.observe(_owner(tenant)).resources if a.kind is Kind.SECURITY_GROUP_RULE)
    assert "web/egress:IPv4:any:any:any" in names and "web/egress:IPv6:any:any:any" in names


def test_project_and_members_live_in_the_agencys_domain(driver, tenant, config, example_doc):
    """Issue 11: the project is created in the agency's Keystone domain, members are users of
    that domain, and the same name seen from another agency is nobody's project."""
    from gcloudctl.expand import OPERATOR

    request = request_from(_small(example_doc, tenant, 2), config)
    assert pipeline.apply_plan(pipeline.plan_request(request, driver, config), driver).ok
    domain_id = driver.domain_id("BYT")
    found = driver.api.request("identity", "GET", "/projects", params={"name": tenant, "domain_id": domain_id})["projects"]
    assert [p["domain_id"] for p in found] == [domain_id]
    assert [(c["agency"], c["domain"]) for c in driver.find_tenant(tenant)] == [("BYT", "BYT")]
    observed = driver.observe(_owner(tenant))
    members = {(r.attrs["user"], r.attrs["domain"]) for r in observed.resources.values() if r.address.kind is Kind.MEMBERSHIP}
    assert members == {(OPERATOR, None), ("nguyen.van.a", "BYT")}
    assert driver.observe(Owner(tenant, "QNI", "QNI")).project_id is None, "QNI's namesake would be its own"
