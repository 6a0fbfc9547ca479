"""Fleet-wide observation: one bulk listing per resource kind for every managed tenant at once,
split into per-tenant observed states identical to what `OpenStackDriver.observe` gives.

Stage: observe (driver). Called by the controller's engine (`controller.engine.PipelineEngine`,
through `pipeline.plan_from_fleet`) once per controller cycle; the CLI keeps the per-tenant path.
It only reads (GET), never writes, and never decides: the split reuses the parsing of
`openstack_state.to_observed` and the ownership proof of `OpenStackDriver` (`_prove` rules:
a project named like the tenant in the agency's domain must carry the owner's tags, one
carrying them in another domain is refused) so the controller plans exactly as `plan` would.

Per cycle (whatever the number of tenants): projects (1), role assignments (1), Neutron quotas
(1), networks, subnets, routers, ports, security groups, floating IPs (6), servers of all
projects (1 per 1,000), the operator's keypairs (1), server groups (1), and with Cinder every
project's volumes (1 per 1,000). Nova and Cinder have
no bulk quota listing: a tenant's compute/volume quota is read at most once every
`quota_every` cycles and cached between (a per-tenant re-observation refreshes the cache).

The capability is declared, not probed: `fleet_observer(driver)` returns None (the caller
keeps the per-tenant path) unless the driver's REST API serves the admin bulk listings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from gcloudctl import naming
from gcloudctl.drivers.openstack import _NOT_OWNED_HINT, COMPUTE_MICROVERSION, VOLUME_MICROVERSION, SdkApi
from gcloudctl.drivers.openstack_state import RawSnapshot, to_observed
from gcloudctl.errors import NotOwned
from gcloudctl.ownership import Owner, claims, refusal
from gcloudctl.resources import Kind, ObservedState

NOVA_PAGE = 1000  # Nova's default osapi_max_limit: longer listings come in pages
NETWORK_QUOTA_KEYS = ("floatingip", "network", "port", "security_group", "security_group_rule", "router", "subnet")
COMPUTE_QUOTA_KEYS = ("instances", "cores", "ram")
VOLUME_QUOTA_KEYS = ("volumes", "gigabytes", "snapshots")
DEFAULT_QUOTA_EVERY = 10


class FleetObserver(Protocol):
    """What the controller needs from a fleet observation."""

    def begin_cycle(self) -> None:
        """Start a cycle: the next `observe` takes a new bulk snapshot."""

    def observe(self, owner: Owner, *, external_networks: Iterable[str] = ()) -> ObservedState:
        """The tenant's observed state, from the cycle's snapshot (same value as the driver's
        per-tenant `observe`; raises NotOwned as it does)."""

    def remember(self, observed: ObservedState) -> None:
        """A fresh per-tenant observation: refresh the cached quotas of its project."""

    def requests_per_cycle(self) -> dict[str, int]:
        """Bulk listing requests made by the last snapshot, by kind (for benchmarks)."""


@dataclass
class _Bulk:
    """One cycle's bulk listings, grouped by project id."""

    taken_at: float
    cycle: int
    projects: list[dict] = field(default_factory=list)
    role_assignments: dict[str, list[dict]] = field(default_factory=dict)
    network_quotas: dict[str, dict] = field(default_factory=dict)
    by_project: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # pid -> kind -> items
    external_networks: dict[str, str] = field(default_factory=dict)  # name -> id
    keypairs: list[dict] = field(default_factory=list)
    server_groups: dict[str, list[dict]] = field(default_factory=dict)

    def of(self, pid: str, kind: str) -> list[dict]:
        return self.by_project.get(pid, {}).get(kind, [])


class OpenStackFleet:
    """Fleet observation over an `OpenStackDriver` (its REST API, domain cache and ownership rules)."""

    def __init__(self, driver: Any, *, quota_every: int = DEFAULT_QUOTA_EVERY, max_age: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        """`quota_every`: read a tenant's Nova/Cinder quota at most once per that many cycles;
        `max_age`: a snapshot older than this (seconds) is retaken even without `begin_cycle`
        (the controller's continuous loop has no cycle boundary)."""
        if quota_every < 1:
            raise ValueError("quota_every must be at least 1")
        self.driver, self.api = driver, driver.api
        self.quota_every, self.max_age, self.clock = quota_every, max_age, clock
        self._lock = threading.Lock()
        self._bulk: _Bulk | None = None
        self._cycle = 0
        self._quotas: dict[str, tuple[int, dict[str, dict | None]]] = {}  # pid -> (cycle read, quotas)
        self._last_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ cycle
    def begin_cycle(self) -> None:
        with self._lock:
            self._bulk = None

    def requests_per_cycle(self) -> dict[str, int]:
        return dict(self._last_counts)

    def _snapshot(self) -> _Bulk:
        with self._lock:
            if self._bulk is None or self.clock() - self._bulk.taken_at > self.max_age:
                self._cycle += 1
                self._bulk = self._load(self._cycle)
            return self._bulk

    def _load(self, cycle: int) -> _Bulk:
        api, counts = self.api, {}

        def get(kind: str, service: str, path: str, key: str, **kw: Any) -> list[dict]:
            counts[kind] = counts.get(kind, 0) + 1
            return api.request(service, "GET", path, **kw)[key]

        bulk = _Bulk(taken_at=self.clock(), cycle=cycle)
        bulk.projects = get("projects", "identity", "/projects", "projects")
        for ra in get("role_assignments", "identity", "/role_assignments", "role_assignments",
                      params={"include_names": "True"}):
            pid = ((ra.get("scope") or {}).get("project") or {}).get("id")
            if pid:
                bulk.role_assignments.setdefault(pid, []).append(ra)
        for quota in get("network_quotas", "network", "/quotas", "quotas"):
            pid = quota.get("project_id") or quota.get("tenant_id")
            if pid:
                bulk.network_quotas[pid] = quota
        for kind, path in (("networks", "/networks"), ("subnets", "/subnets"), ("routers", "/routers"),
                           ("ports", "/ports"), ("security_groups", "/security-groups"),
                           ("floatingips", "/floatingips")):
            for item in get(kind, "network", path, kind):
                pid = item.get("project_id") or item.get("tenant_id")
                bulk.by_project.setdefault(pid, {}).setdefault(kind, []).append(item)
                if kind == "networks" and item.get("router:external"):
                    bulk.external_networks[item["name"]] = item["id"]
        for server in self._paged(counts, "servers", "compute", "/servers/detail", COMPUTE_MICROVERSION):
            bulk.by_project.setdefault(server.get("tenant_id"), {}).setdefault("servers", []).append(server)
        if api.has_service("block-storage"):
            for volume in self._paged(counts, "volumes", "block-storage", "/volumes/detail", VOLUME_MICROVERSION):
                bulk.by_project.setdefault(volume.get("os-vol-tenant-attr:tenant_id"), {}).setdefault(
                    "volumes", []).append(volume)
        bulk.keypairs = [k["keypair"] for k in get("keypairs", "compute", "/os-keypairs", "keypairs",
                                                   microversion=COMPUTE_MICROVERSION)]
        for group in get("server_groups", "compute", "/os-server-groups", "server_groups",
                         params={"all_projects": "True"}, microversion=COMPUTE_MICROVERSION):
            bulk.server_groups.setdefault(group.get("project_id"), []).append(group)
        self._last_counts = counts
        return bulk

    def _paged(self, counts: dict[str, int], kind: str, service: str, path: str, microversion: str) -> list[dict]:
        """Every project's `kind` (servers, volumes), following the API's pages."""
        out: list[dict] = []
        params: dict[str, str] = {"all_tenants": "1"}
        while True:
            counts[kind] = counts.get(kind, 0) + 1
            reply = self.api.request(service, "GET", path, params=dict(params), microversion=microversion)
            page = reply[kind]
            out += page
            more = any(link.get("rel") == "next" for link in reply.get(f"{kind}_links") or [])
            if not page or not more:
                return out
            params["marker"] = page[-1]["id"]

    # ------------------------------------------------------------------ per tenant
    def observe(self, owner: Owner, *, external_networks: Iterable[str] = ()) -> ObservedState:
        return to_observed(owner, self.raw(owner, external_networks=external_networks))

    def raw(self, owner: Owner, *, external_networks: Iterable[str] = ()) -> RawSnapshot:
        """The tenant's part of the snapshot, as `OpenStackDriver.snapshot` would read it."""
        bulk = self._snapshot()
        raw = RawSnapshot(operator_user_id=self.api.operator_user_id, domain=owner.domain)
        if external_networks:
            raw.external_networks = dict(bulk.external_networks)
        project = self._prove(owner, bulk)
        if project is None:
            return raw
        raw.project = project
        pid = project["id"]
        raw.role_assignments = [{"user": a["user"]["name"], "user_id": a["user"]["id"],
                                 "user_domain": (a["user"].get("domain") or {}).get("name"),
                                 "role": a["role"]["name"], "role_id": a["role"]["id"]}
                                for a in bulk.role_assignments.get(pid, []) if "user" in a]
        quotas = self._tenant_quotas(pid, bulk)
        raw.compute_quota = quotas["compute"]
        raw.network_quota = quotas["network"]
        raw.volume_quota = quotas["volume"]
        raw.networks = bulk.of(pid, "networks")
        raw.subnets = bulk.of(pid, "subnets")
        raw.routers = bulk.of(pid, "routers")
        raw.ports = bulk.of(pid, "ports")
        raw.security_groups = bulk.of(pid, "security_groups")
        raw.floating_ips = bulk.of(pid, "floatingips")
        raw.servers = bulk.of(pid, "servers")
        if self.api.has_service("block-storage"):
            raw.volumes = bulk.of(pid, "volumes")
        raw.keypairs = bulk.keypairs
        raw.server_groups = bulk.server_groups.get(pid, [])
        return raw

    def _prove(self, owner: Owner, bulk: _Bulk) -> dict | None:
        """The owner's project from the snapshot's project list, proven by the same rules as
        `OpenStackDriver._prove` (NotOwned for a look-alike; None when there is none)."""
        name = naming.project_name(owner.tenant)
        projects = [p for p in bulk.projects if p.get("name") == name]
        if not projects:
            return None
        domain_id = self.driver.domain_id(owner.domain)
        mine = [p for p in projects if p.get("domain_id") == domain_id]
        moved = [p for p in projects if p.get("domain_id") != domain_id and claims(owner, p.get("tags"))]
        for project in mine + moved:
            why = refusal(owner, project_name=project["name"],
                          project_domain=self.driver.domain_name(project.get("domain_id")),
                          in_owner_domain=project in mine, tags=project.get("tags"))
            if why:
                raise NotOwned(why, hint=_NOT_OWNED_HINT)
        if not mine:
            return None
        self.driver.cache.project_domains[mine[0]["id"]] = domain_id
        return mine[0]

    def _tenant_quotas(self, pid: str, bulk: _Bulk) -> dict[str, dict | None]:
        """Network quota from the bulk listing (per project only when it is not listed there);
        compute and volume quotas from the cache, read again once `quota_every` cycles old."""
        with self._lock:
            cached = self._quotas.get(pid)
        fresh = cached is not None and bulk.cycle - cached[0] < self.quota_every
        quotas = dict(cached[1]) if fresh else self._read_quotas(pid)
        if pid in bulk.network_quotas:
            quotas["network"] = _pick(bulk.network_quotas[pid], NETWORK_QUOTA_KEYS)
        elif "network" not in quotas or quotas["network"] is None:
            quotas["network"] = _pick(self.api.request("network", "GET", f"/quotas/{pid}")["quota"],
                                      NETWORK_QUOTA_KEYS)
        if not fresh:
            with self._lock:
                self._quotas[pid] = (bulk.cycle, quotas)
        return quotas

    def _read_quotas(self, pid: str) -> dict[str, dict | None]:
        api = self.api
        quotas: dict[str, dict | None] = {"volume": None}
        quotas["compute"] = _pick(api.request("compute", "GET", f"/os-quota-sets/{pid}",
                                              microversion=COMPUTE_MICROVERSION)["quota_set"], COMPUTE_QUOTA_KEYS)
        if api.has_service("block-storage"):
            quotas["volume"] = _pick(api.request("block-storage", "GET", f"/os-quota-sets/{pid}")["quota_set"],
                                     VOLUME_QUOTA_KEYS)
        return quotas

    def remember(self, observed: ObservedState) -> None:
        pid = observed.project_id
        if not pid:
            return
        found: dict[str, dict | None] = {"volume": None}
        for res in observed.resources.values():
            if res.address.kind is Kind.QUOTA:
                found[res.address.name] = dict(res.attrs)
        if "compute" not in found:
            return
        with self._lock:
            self._quotas[pid] = (self._cycle, found)


def _pick(quota: dict, keys: tuple[str, ...]) -> dict:
    return {k: quota[k] for k in keys if k in quota}


def fleet_observer(driver: Any, *, quota_every: int = DEFAULT_QUOTA_EVERY, max_age: float = 30.0,
                   clock: Callable[[], float] = time.monotonic) -> OpenStackFleet | None:
    """The driver's fleet observer, or None when its REST API does not declare the admin bulk
    listings (all projects' servers, all role assignments): the caller keeps the per-tenant path.
    `SdkApi` (a real Keystone/Neutron/Nova, as admin) serves them; an in-memory API declares it
    with `serves_bulk_listings = True` (`drivers.fake_fleet.FleetFakeApi`)."""
    api = getattr(driver, "api", None)
    if api is None or not (isinstance(api, SdkApi) or getattr(type(api), "serves_bulk_listings", False) is True):
        return None
    return OpenStackFleet(driver, quota_every=quota_every, max_age=max_age, clock=clock)

