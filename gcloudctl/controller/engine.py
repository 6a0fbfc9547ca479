"""Stage: controller (port to the core). What the reconciler needs from `gcloudctl.pipeline`.

`Engine` is the port: load a stored request, plan it, apply a plan, plan a destroy, list the
servers that ask for hardening, harden and verify some of them, and count API calls. `PipelineEngine` is the adapter over the one planner/executor that the CLI also uses;
tests pass their own engine. The adapter gets the driver of the request's region from an
injected factory (the CLI's `AppContext.driver`), one per region, so no connection is made here.
Hardening goes through the same use case as `gcloudctl apply` (`usecases.harden`) with the
controller's own SSH access (`Access`: its key and proxy command, from its configuration —
never from a request or the store); without one, `harden` raises `HardeningKeyMissing`.

Fleet observation (`fleet`, injected; None keeps the per-tenant path): a factory giving a
driver's fleet observer (`drivers.openstack_fleet.fleet_observer`, None when the driver does
not serve the bulk listings). With it, `plan` reads the tenant from the cycle's bulk snapshot
(`pipeline.plan_from_fleet`: a non-empty plan is made again from a per-tenant observation
before anything is applied) and `begin_cycle` (called by `Runner.run_once` through its
`on_cycle`) makes the next plan take a new snapshot. Verify after apply and destroy stay
per tenant.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

from gcloudctl.model import TenantRequest


class PlanLike(Protocol):
    changes: Any  # sequence of changes with .to_dict() and .drift

    def is_empty(self) -> bool: ...

    def data_loss(self) -> tuple: ...  # the changes that destroy stored data (volumes)

    def to_dict(self) -> dict: ...


class ResultLike(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def transient_only(self) -> bool: ...

    def to_dict(self) -> dict: ...


class Engine(Protocol):
    def load(self, text: str, filename: str) -> TenantRequest: ...

    def plan(self, request: TenantRequest) -> PlanLike: ...

    def plan_destroy(self, request: TenantRequest) -> PlanLike: ...

    def apply(self, plan: PlanLike, request: TenantRequest, fence: Callable[[], bool] | None = None) -> ResultLike: ...

    def hardening_targets(self, request: TenantRequest, plan: PlanLike) -> dict[str, str]: ...

    def harden(self, request: TenantRequest, names: list[str], fence: Callable[[], bool] | None = None) -> Any: ...

    def api_calls(self) -> dict[str, int]: ...


class PipelineEngine:
    """The real engine: `gcloudctl.pipeline` over drivers made by `driver_for_region(region)`."""

    def __init__(self, config: Any, driver_for_region: Callable[[str], Any], *, parallelism: int = 10,
                 access: Any = None, harden_timeout: float = 900.0, host_ops: Any = None,
                 fleet: Callable[[Any], Any] | None = None):
        """`access`: the controller's `usecases.harden.Access` (None: no key configured);
        `harden_timeout`: the deadline of one hardening pass; `host_ops`: tests' host effects;
        `fleet(driver)`: the driver's fleet observer or None (None here: per-tenant observation)."""
        self.access, self.harden_timeout, self.host_ops = access, harden_timeout, host_ops
        self.config = config
        self._factory = driver_for_region
        self._fleet_factory = fleet
        self._drivers: dict[str, Any] = {}
        self._fleets: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.parallelism = parallelism

    def driver(self, request: TenantRequest) -> Any:
        region = request.spec.region
        with self._lock:
            if region not in self._drivers:
                self._drivers[region] = self._factory(region)
            return self._drivers[region]

    def fleet(self, request: TenantRequest) -> Any:
        """The fleet observer of the request's region (None: observe per tenant)."""
        if self._fleet_factory is None:
            return None
        driver = self.driver(request)
        region = request.spec.region
        with self._lock:
            if region not in self._fleets:
                self._fleets[region] = self._fleet_factory(driver)
            return self._fleets[region]

    def begin_cycle(self) -> None:
        """A new controller cycle: the next plan of each region takes a new bulk snapshot."""
        with self._lock:
            fleets = [f for f in self._fleets.values() if f is not None]
        for fleet in fleets:
            fleet.begin_cycle()

    def load(self, text: str, filename: str) -> TenantRequest:
        from gcloudctl import pipeline

        return pipeline.load_request(text, self.config, filename=filename)

    def plan(self, request: TenantRequest) -> PlanLike:
        from gcloudctl import pipeline

        fleet = self.fleet(request)
        if fleet is None:
            return pipeline.plan_request(request, self.driver(request), self.config)
        return pipeline.plan_from_fleet(request, self.driver(request), self.config, fleet)

    def plan_destroy(self, request: TenantRequest) -> PlanLike:
        from gcloudctl import pipeline

        return pipeline.plan_destroy(pipeline.owner_of(request, self.config), self.driver(request))

    def apply(self, plan: PlanLike, request: TenantRequest, fence: Callable[[], bool] | None = None) -> ResultLike:
        """Apply; `fence()` false (the lease is no longer safely held) stops starting changes."""
        from gcloudctl import pipeline

        cancel = (lambda: not fence()) if fence is not None else None
        return pipeline.apply_plan(plan, self.driver(request), parallelism=self.parallelism, cancel=cancel)

    def hardening_targets(self, request: TenantRequest, plan: PlanLike) -> dict[str, str]:
        """Server name -> id of the ACTIVE servers that ask for hardening, from the plan's own
        observation (no extra API call)."""
        from gcloudctl.resources import Kind
        from gcloudctl.usecases.harden import hardening_levels

        levels = hardening_levels(request)
        observed = getattr(plan, "observed", None)
        if not levels or observed is None:
            return {}
        return {r.attrs["name"]: r.id for r in observed.resources.values()
                if r.address.kind is Kind.SERVER and r.attrs.get("name") in levels and str(r.status).upper() == "ACTIVE"}

    def harden(self, request: TenantRequest, names: list[str], fence: Callable[[], bool] | None = None) -> Any:
        """Harden and verify `names` with the controller's access (raises HardeningKeyMissing
        without a usable key, before anything is contacted)."""
        from gcloudctl import pipeline
        from gcloudctl.usecases import Deadline
        from gcloudctl.usecases.apply import firewall_settings
        from gcloudctl.usecases.harden import HardeningKeyMissing, check_access, harden_servers, hardening_levels

        if self.access is None:
            raise HardeningKeyMissing("no SSH key is configured for the controller")
        check_access(self.access)
        levels = {name: level for name, level in hardening_levels(request).items() if name in names}
        return harden_servers(pipeline.owner_of(request, self.config), self.driver(request), levels, self.access,
                              deadline=Deadline.within(self.harden_timeout), ops=self.host_ops,
                              firewall=firewall_settings(request, self.config))

    def api_calls(self) -> dict[str, int]:
        """API calls per service (the driver's `api.requests` counter), summed over drivers."""
        totals: dict[str, int] = {}
        with self._lock:
            drivers = list({id(d): d for d in self._drivers.values()}.values())
        for driver in drivers:
            counts = getattr(getattr(driver, "api", None), "requests", None) or {}
            for service, n in dict(counts).items():
                totals[service] = totals.get(service, 0) + int(n)
        return totals
