"""Fleet-wide observation on the real devcloud (issue 13 part 6).

A Keystone domain of our own (agency BCH, unique per run, deleted at the end) holds cheap
tenants made by the controller (a network with its subnet and a security group; no router:
devcloud's `public` is a /24 shared with the other suites). Specification:
- for each tenant, the fleet snapshot's observation equals `OpenStackDriver.observe`;
- a no-op controller cycle makes the same number of HTTP requests (counted by the session's
  response hook, i.e. at the HTTP layer) for 2 and for 6 tenants, and writes nothing.
It connects to the running devcloud as admin and never restarts it (the shared `devcloud`
fixture may switch guests mode: not used here).
"""

from __future__ import annotations

import pytest

from gcloudctl.drivers.openstack_fleet import fleet_observer
from gcloudctl.ownership import Owner
from tests.controller.test_fleet_support import AGENCY, PREFIX, DevcloudDomain, Stack, config, devcloud_driver

pytestmark = [pytest.mark.devcloud]


@pytest.fixture(scope="module")
def driver():
    from gcloudctl.errors import GcloudctlError

    try:
        return devcloud_driver("devcloud")
    except GcloudctlError as exc:
        pytest.skip(f"devcloud is not running: {exc.message}")


@pytest.fixture
def world(driver, tmp_path):
    domain = DevcloudDomain(driver)
    cfg = config(tmp_path, domain.name)
    stack = Stack(f"sqlite:///{tmp_path / 'c.db'}", cfg, driver, fleet=True, workers=4)
    try:
        yield domain, stack
    finally:
        stack.close()
        assert domain.close(cfg) == []


def _provision(stack, names):
    for name in names:
        stack.submit(name, router=False)
    summary = stack.runner.run_once()
    assert summary.counts() == {"applied": len(names)}, summary.to_dict()


def _noop_cycle(stack, driver) -> int:
    before = dict(driver.api.requests)
    summary = stack.runner.run_once()
    assert set(summary.counts()) == {"converged"}, summary.to_dict()
    delta = {k: n - before.get(k, 0) for k, n in driver.api.requests.items() if n != before.get(k, 0)}
    assert not [k for k in delta if not k.endswith(" GET")], delta
    return sum(delta.values())


def test_fleet_snapshot_equals_per_tenant_observation_on_devcloud(world, driver):
    domain, stack = world
    names = [f"{PREFIX}{domain.name[-6:]}-{i}" for i in range(3)]
    _provision(stack, names)
    fleet = fleet_observer(driver)
    assert fleet is not None
    fleet.begin_cycle()
    for tenant in names + [f"{PREFIX}{domain.name[-6:]}-none"]:
        owner = Owner(tenant=tenant, agency=AGENCY, domain=domain.name)
        fleet_view = fleet.observe(owner, external_networks=["public"])
        assert fleet_view == driver.observe(owner, external_networks=["public"]), tenant
    assert len([r for r in fleet_view.resources]) == 0  # the tenant not made has nothing


def test_noop_cycle_requests_same_for_2_and_6_tenants_on_devcloud(world, driver):
    domain, stack = world
    names = [f"{PREFIX}{domain.name[-6:]}-{i}" for i in range(6)]
    _provision(stack, names[:2])
    _noop_cycle(stack, driver)  # the cache of quotas read by the applies is in place: steady state next
    two = _noop_cycle(stack, driver)
    _provision_more = names[2:]
    for name in _provision_more:
        stack.submit(name, router=False)
    summary = stack.runner.run_once()
    assert summary.counts() == {"applied": 4, "converged": 2}, summary.to_dict()
    _noop_cycle(stack, driver)
    six = _noop_cycle(stack, driver)
    assert two == six <= 20, (two, six)
