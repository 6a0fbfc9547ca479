"""Fleet-wide observation in the controller (issue 13 part 6), on the in-memory cloud.

Specification:
- the fleet snapshot splits into exactly the per-tenant observations (converged, drifted, not
  yet created, and a look-alike project refused as not owned, as `observe` refuses it);
- a no-op cycle costs the same number of API requests for 10 and for 200 tenants (the
  per-tenant path grows with them);
- a drifted tenant is observed again on its own before anything is written (drift that
  appeared after the snapshot is repaired too) and repaired;
- Nova quotas (no bulk listing) are read once every `quota_every` cycles, cached between.
The same equality and flat count are checked on devcloud in tests/cloud/test_fleet_devcloud.py.
"""

from __future__ import annotations

import pytest

from gcloudctl import naming
from gcloudctl.drivers.fake_fleet import FleetFakeApi, fleet_fake_cloud
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.drivers.openstack_fleet import fleet_observer
from gcloudctl.errors import NotOwned
from gcloudctl.ownership import Owner
from tests.unit.volumes_support import block_storage_config

from .test_fleet_support import AGENCY, PREFIX, Stack, config, tenant_text


class LoggingApi(FleetFakeApi):
    """The in-memory API, remembering every request's (service, method, path)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.log: list[tuple[str, str, str]] = []

    def request(self, service, method, path, **kw):
        self.log.append((service, method, path))
        return super().request(service, method, path, **kw)


def stack(tmp_path, api, *, fleet=True, quota_every=10, name="c"):
    cfg = block_storage_config(config(tmp_path), block_storage=api.block_storage)  # the catalog says what the cloud has
    return Stack(f"sqlite:///{tmp_path / (name + '.db')}", cfg, fleet_fake_cloud(api), fleet=fleet,
                 quota_every=quota_every)


def owner(tenant: str) -> Owner:
    return Owner(tenant=tenant, agency=AGENCY, domain=AGENCY)


def provision(st, count: int, start: int = 0, *, check: bool = True) -> list[str]:
    names = [f"{PREFIX}{i:04d}" for i in range(start, start + count)]
    for name in names:
        st.submit(name)
    summary = st.runner.run_once()
    if check:
        assert summary.counts() == {"applied": count}, summary.to_dict()
    return names


def noop_cycle_requests(st, api) -> int:
    before = len(api.log)
    summary = st.runner.run_once()
    assert set(summary.counts()) == {"converged"}, summary.to_dict()
    assert not [entry for entry in api.log[before:] if entry[1] != "GET"], "a no-op cycle wrote"
    return len(api.log) - before


def project(api, tenant):
    return next(p for p in api.projects.values() if p["name"] == naming.project_name(tenant))


@pytest.mark.parametrize("block_storage", [False, True], ids=["no-cinder", "cinder"])
def test_fleet_snapshot_equals_per_tenant_observation(tmp_path, block_storage):
    api = LoggingApi(domains=("BYT", AGENCY), block_storage=block_storage)
    st = stack(tmp_path, api)
    names = provision(st, 4)
    # drift on one tenant: a rule opened by hand and a network nobody asked for
    pid = project(api, names[1])["id"]
    group = next(g for g in api.neutron["security-groups"].values() if g["project_id"] == pid and g["name"] == "web")
    api._neutron_create("security-group-rules", {"security_group_id": group["id"], "direction": "ingress",
                                                 "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
                                                 "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0",
                                                 "project_id": pid})
    api._neutron_create("networks", {"name": "by-hand", "project_id": pid})
    # a look-alike: a project named like a tenant in the agency's domain without its tags
    api.add_project(naming.project_name(f"{PREFIX}lookalike"), AGENCY, [])
    fleet = fleet_observer(st.driver)
    fleet.begin_cycle()
    for tenant in names + [f"{PREFIX}not-yet-made"]:
        for external in ((), ("public",)):
            assert fleet.observe(owner(tenant), external_networks=external) == \
                st.driver.observe(owner(tenant), external_networks=external), tenant
    with pytest.raises(NotOwned) as per_tenant:
        st.driver.observe(owner(f"{PREFIX}lookalike"))
    with pytest.raises(NotOwned) as fleet_wide:
        fleet.observe(owner(f"{PREFIX}lookalike"))
    assert fleet_wide.value.message == per_tenant.value.message
    st.close()


def test_noop_cycle_requests_do_not_grow_with_tenants(tmp_path):
    counts = {}
    for n in (10, 200):
        api = LoggingApi(domains=(AGENCY,))
        st = stack(tmp_path, api, name=f"fleet{n}")
        provision(st, n)
        noop_cycle_requests(st, api)  # the quotas read by the applies are cached: a steady cycle follows
        counts[n] = noop_cycle_requests(st, api)
        st.close()
    assert counts[10] == counts[200] <= 20, counts
    # the per-tenant path for comparison: grows with the tenants
    api = LoggingApi(domains=(AGENCY,))
    st = stack(tmp_path, api, fleet=False, name="per-tenant")
    provision(st, 10)
    assert noop_cycle_requests(st, api) >= 10 * 10
    st.close()


def test_drifted_tenant_is_observed_again_and_repaired(tmp_path):
    api = LoggingApi(domains=(AGENCY,))
    st = stack(tmp_path, api)
    names = provision(st, 3)
    pid = project(api, names[0])["id"]
    group = next(g for g in api.neutron["security-groups"].values() if g["project_id"] == pid and g["name"] == "web")

    def open_port(port):
        return api._neutron_create("security-group-rules", {
            "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": port, "port_range_max": port, "remote_ip_prefix": "0.0.0.0/0", "project_id": pid})

    open_port(22)
    fleet = st.engine.fleet(st.engine.load(tenant_text(names[0]), "t"))
    fleet.begin_cycle()
    fleet.observe(owner(names[0]))  # the cycle's snapshot is taken now: it sees port 22 only
    open_port(3389)  # drift after the snapshot: only a per-tenant observation sees it
    st.runner.on_cycle = None  # keep this snapshot for the pass
    before = len(api.log)
    summary = st.runner.run_once()
    results = {o.tenant: o.result.value for o in summary.outcomes}
    assert results == {names[0]: "drift-repaired", names[1]: "converged", names[2]: "converged"}
    opened = [r for r in api.neutron["security-group-rules"].values()
              if r["security_group_id"] == group["id"] and r.get("remote_ip_prefix") == "0.0.0.0/0"]
    assert opened == []  # both removed: the repair was planned from a fresh observation
    cycle = api.log[before:]
    first_write = next(i for i, entry in enumerate(cycle) if entry[1] != "GET")
    assert ("network", "GET", "/security-groups") in cycle[:first_write]  # re-observed before the first write
    # per-tenant project reads: the drifted tenant's re-observation and its verify; none for the others
    assert sum(1 for entry in cycle if entry[2] == "/projects") == 2
    st.close()


def test_nova_quotas_are_read_once_every_n_cycles(tmp_path):
    api = LoggingApi(domains=(AGENCY,))
    st = stack(tmp_path, api, quota_every=3)
    provision(st, 5)
    reads = []
    for _ in range(7):
        before = len(api.log)
        assert set(st.runner.run_once().counts()) == {"converged"}
        reads.append(sum(1 for s, m, p in api.log[before:] if s == "compute" and p.startswith("/os-quota-sets/")))
    # the applies' own observations filled the cache in the first pass (cycle 1); then every 3rd cycle
    assert reads == [0, 0, 5, 0, 0, 5, 0], reads
    # a quota changed by hand is seen at the next read, and repaired
    pid = project(api, f"{PREFIX}0000")["id"]
    api.compute_quotas[pid]["instances"] = 9
    results = [st.runner.run_once().counts() for _ in range(2)]
    assert results[0] == {"converged": 5} and results[1] == {"drift-repaired": 1, "converged": 4}, results
    assert api.compute_quotas[pid]["instances"] == 1
    st.close()


def test_fleet_capability_is_declared_not_probed():
    assert fleet_observer(FakeCloud(FakeApi())) is None  # no bulk listings: the per-tenant path
    assert fleet_observer(fleet_fake_cloud()) is not None
    with pytest.raises(ValueError):
        fleet_observer(fleet_fake_cloud(), quota_every=0)


def test_snapshot_is_retaken_by_age_without_a_cycle_boundary(tmp_path):
    """The continuous loop (`Runner.run`) has no pass boundary: a snapshot older than `max_age`
    is retaken, a younger one is reused."""
    api = LoggingApi(domains=(AGENCY,))
    st = stack(tmp_path, api)
    names = provision(st, 2)
    now = [100.0]
    fleet = fleet_observer(st.driver, max_age=30, clock=lambda: now[0])

    def bulk_reads():
        return sum(1 for s, m, p in api.log if p == "/role_assignments")

    start = bulk_reads()
    fleet.observe(owner(names[0]))
    now[0] += 29
    fleet.observe(owner(names[1]))
    assert bulk_reads() - start == 1
    now[0] += 2
    fleet.observe(owner(names[0]))
    assert bulk_reads() - start == 2
    fleet.begin_cycle()
    fleet.observe(owner(names[0]))
    assert bulk_reads() - start == 3
    st.close()
