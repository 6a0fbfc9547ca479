"""A tiny test double of the pipeline (the controller's `Engine` port): a world of resource
addresses per tenant. It lets controller tests assert the resulting world (what exists, what
status was written) without a cloud. The real pipeline is exercised by the devcloud tests."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from gcloudctl.errors import CloudError
from gcloudctl.model import TenantRequest

from .conftest import load_model


@dataclass(frozen=True)
class FakeChange:
    action: str
    address: str
    reason: str = ""

    @property
    def drift(self) -> bool:
        return self.reason.startswith("drift")

    def to_dict(self) -> dict:
        return {"action": self.action, "address": self.address, "reason": self.reason}


@dataclass(frozen=True)
class FakePlan:
    tenant: str
    changes: tuple[FakeChange, ...]

    def is_empty(self) -> bool:
        return not self.changes

    def data_loss(self) -> tuple:
        return ()  # the fake world has no volumes

    def to_dict(self) -> dict:
        return {"tenant": self.tenant, "changes": [c.to_dict() for c in self.changes]}


@dataclass
class FakeResult:
    outcomes: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o["status"] == "done" for o in self.outcomes)

    @property
    def transient_only(self) -> bool:
        failed = [o for o in self.outcomes if o["status"] == "failed"]
        return bool(failed) and all(o["transient"] for o in failed)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "outcomes": self.outcomes}


def desired(request: TenantRequest) -> set[str]:
    spec = request.spec
    addresses = {"project"} | {f"network/{n.name}" for n in spec.networks}
    for group in spec.securityGroups:
        addresses.add(f"sg/{group.name}")
        for rule in group.rules:
            addresses.add(f"rule/{group.name}/{rule.direction}/{rule.protocol}/{rule.ports}/{rule.remote or rule.remoteGroup}")
    for server in spec.servers:
        addresses |= {f"server/{server.name}-{i}" for i in range(server.count)}
    return addresses


class FakeWorld:
    """In-memory cloud. `fail_plan[tenant]` / `fail_apply[tenant]`: errors to raise next."""

    def __init__(self):
        self.resources: dict[str, set[str]] = defaultdict(set)
        self.writes: Counter = Counter()  # per tenant
        self.calls: Counter = Counter()  # per service
        self.fail_plan: dict[str, list[Exception]] = defaultdict(list)
        self.fail_apply: dict[str, list[Exception]] = defaultdict(list)
        self.lock = threading.Lock()

    # the Engine port
    def load(self, text: str, filename: str) -> TenantRequest:
        return load_model(text, filename)

    def plan(self, request: TenantRequest) -> FakePlan:
        name = request.metadata.name
        self._observe(name)
        with self.lock:
            have = set(self.resources.get(name, set()))
        want = desired(request)
        changes = [FakeChange("create", a) for a in sorted(want - have)]
        changes += [FakeChange("delete", a, "drift: not in the request") for a in sorted(have - want)]
        return FakePlan(name, tuple(changes))

    def plan_destroy(self, request: TenantRequest) -> FakePlan:
        name = request.metadata.name
        self._observe(name)
        with self.lock:
            have = sorted(self.resources.get(name, set()))
        return FakePlan(name, tuple(FakeChange("delete", a) for a in reversed(have)))

    def apply(self, plan: FakePlan, request: TenantRequest, fence=None) -> FakeResult:
        errors = self.fail_apply.get(plan.tenant)
        if errors:
            error = errors.pop(0)
            if isinstance(error, CloudError) and error.status == 0:  # a failed change, not an exception
                return FakeResult([{"address": c.address, "status": "failed", "error": error.message,
                                    "transient": error.transient} for c in plan.changes])
            raise error
        outcomes = []
        for change in plan.changes:
            with self.lock:
                self.calls["write"] += 1
                self.writes[plan.tenant] += 1
                if change.action == "delete":
                    self.resources[plan.tenant].discard(change.address)
                else:
                    self.resources[plan.tenant].add(change.address)
            outcomes.append({"address": change.address, "status": "done"})
        return FakeResult(outcomes)

    def api_calls(self) -> dict[str, int]:
        with self.lock:
            return dict(self.calls)

    def _observe(self, name: str) -> None:
        errors = self.fail_plan.get(name)
        if errors:
            raise errors.pop(0)
        with self.lock:
            self.calls["network"] += 1
            self.calls["compute"] += 1
