"""Stage: controller (port to the core). What the reconciler needs from `gcloudctl.pipeline`.

`Engine` is the port: load a stored request, plan it, apply a plan, plan a destroy, and count
API calls. `PipelineEngine` is the adapter over the one planner/executor that the CLI also uses;
tests pass their own engine. The adapter gets the driver of the request's region from an
injected factory (the CLI's `AppContext.driver`), one per region, so no connection is made here.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

from gcloudctl.model import TenantRequest


class PlanLike(Protocol):
    changes: Any  # sequence of changes with .to_dict() and .drift

    def is_empty(self) -> bool: ...

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

    def api_calls(self) -> dict[str, int]: ...


class PipelineEngine:
    """The real engine: `gcloudctl.pipeline` over drivers made by `driver_for_region(region)`."""

    def __init__(self, config: Any, driver_for_region: Callable[[str], Any], *, parallelism: int = 10):
        self.config = config
        self._factory = driver_for_region
        self._drivers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.parallelism = parallelism

    def driver(self, request: TenantRequest) -> Any:
        region = request.spec.region
        with self._lock:
            if region not in self._drivers:
                self._drivers[region] = self._factory(region)
            return self._drivers[region]

    def load(self, text: str, filename: str) -> TenantRequest:
        from gcloudctl import pipeline

        return pipeline.load_request(text, self.config, filename=filename)

    def plan(self, request: TenantRequest) -> PlanLike:
        from gcloudctl import pipeline

        return pipeline.plan_request(request, self.driver(request), self.config)

    def plan_destroy(self, request: TenantRequest) -> PlanLike:
        from gcloudctl import pipeline

        return pipeline.plan_destroy(pipeline.owner_of(request, self.config), self.driver(request))

    def apply(self, plan: PlanLike, request: TenantRequest, fence: Callable[[], bool] | None = None) -> ResultLike:
        """Apply; `fence()` false (the lease is no longer safely held) stops starting changes."""
        from gcloudctl import pipeline

        cancel = (lambda: not fence()) if fence is not None else None
        return pipeline.apply_plan(plan, self.driver(request), parallelism=self.parallelism, cancel=cancel)

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
