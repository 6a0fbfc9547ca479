"""Driver interface: the only door between gcloudctl's pure core and a cloud.

Contract (kept by every driver, checked by tests/unit/test_driver_contract.py against the fake
and by the devcloud suite against OpenStack):
- observe(owner) never mutates; costs a fixed number of list calls, whatever the tenant's size;
  it refuses (NotOwned) a project named like the tenant that is not provably the owner's
  (`gcloudctl.ownership`: in the agency's domain, with all ownership tags);
- find_tenant(name) lists candidate projects by their `gc-tenant` tag in every domain (unproven);
- check_users(domain, names) says which members are not users of the agency's domain (read-only);
- create(resource, ids) returns the new id; calling it again for a resource that already
  exists under the same deterministic name must not duplicate it (callers adopt twins first);
- update(before, after, changed, ids) converges the named attributes; idempotent;
- delete(resource, ids) treats "already gone" as success (ignore_missing);
- wait_created(resource, ids) / wait_deleted(resource, ids) (optional) wait until a change has
  taken effect (a server ACTIVE / gone); the executor calls them outside its --parallelism
  slots, so 20 booting servers do not queue behind each other;
- find(resource, ids) (optional) returns the id of what an earlier, failed attempt at create
  made, or None; the executor calls it before retrying a create, so retries never duplicate;
- errors are raised as gcloudctl.errors.CloudError with `transient` classified once, here;
- missing_flavors(names) / missing_images(names) say which the cloud lacks (one list call
  each, read-only); agency_quotas(owner) gives the quotas of the agency's other tenants
  (read-only; used by the pre-flight, `gcloudctl.preflight`);
- every call is bounded: a driver honours the deadline of the calling context
  (`deadline_scope`, a `time.monotonic()` instant): each HTTP request's timeout is cut to what
  is left, waits stop at it, and past it calls raise `gcloudctl.errors.TimeoutExpired`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Iterable, Iterator, Protocol

from gcloudctl.errors import TimeoutExpired

from gcloudctl.ownership import Owner
from gcloudctl.resources import Address, ObservedState, Ref, Resource


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("gcloudctl_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(deadline: float | None) -> Iterator[float | None]:
    """Bound every driver call made in this context (and in contexts copied from it, e.g. the
    executor's workers) by `deadline`, a `time.monotonic()` instant; None adds no bound. An
    inner scope never extends an outer one. Yields the effective deadline."""
    outer = _DEADLINE.get()
    effective = deadline if outer is None else (outer if deadline is None else min(outer, deadline))
    token = _DEADLINE.set(effective)
    try:
        yield effective
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float | None:
    """The deadline of the calling context (None: unbounded)."""
    return _DEADLINE.get()


def remaining(clock=time.monotonic) -> float | None:
    """Seconds left before the context's deadline (None: unbounded); raises TimeoutExpired when
    none are left, so a call past the deadline never starts."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    left = deadline - clock()
    if left <= 0:
        raise TimeoutExpired("the command's time limit (--timeout) ran out",
                             hint="re-run the same command: finished steps are not repeated")
    return left


class IdMap:
    """Thread-safe Address -> cloud id map, seeded from the observed state, filled by creates."""

    def __init__(self, ids: dict[Address, str] | None = None, lookups: dict[str, str] | None = None):
        self._ids = dict(ids or {})
        self.lookups = dict(lookups or {})
        self._lock = threading.Lock()

    def __getitem__(self, address: Address) -> str:
        with self._lock:
            return self._ids[address]

    def get(self, address: Address) -> str | None:
        with self._lock:
            return self._ids.get(address)

    def __setitem__(self, address: Address, value: str) -> None:
        with self._lock:
            self._ids[address] = value

    def discard(self, address: Address) -> None:
        with self._lock:
            self._ids.pop(address, None)

    def resolve(self, value):
        """Replace Refs (also inside lists) by ids."""
        if isinstance(value, Ref):
            return self[value.address]
        if isinstance(value, (list, tuple)):
            return [self.resolve(v) for v in value]
        return value

    @classmethod
    def from_observed(cls, observed: ObservedState) -> "IdMap":
        ids = {a: r.id for a, r in observed.resources.items() if r.id}
        return cls(ids, dict(observed.lookups))


class CloudDriver(Protocol):
    def observe(self, owner: Owner, *, external_networks: Iterable[str] = ()) -> ObservedState: ...

    def find_tenant(self, tenant: str) -> list[dict]: ...

    def check_users(self, domain: str, names: Iterable[str]) -> dict[str, str]: ...

    def create(self, resource: Resource, ids: IdMap) -> str: ...

    def update(self, before: Resource, after: Resource, changed: tuple[str, ...], ids: IdMap) -> None: ...

    def delete(self, resource: Resource, ids: IdMap) -> None: ...

    def list_tenants(self) -> list[dict]: ...

    def taken_cidrs(self, agency: str, *, exclude_tenant: str | None = None) -> list[str]: ...

    def missing_flavors(self, names: Iterable[str]) -> list[str]: ...

    def missing_images(self, names: Iterable[str]) -> list[str]: ...

    def agency_quotas(self, owner: Owner) -> dict[str, dict[str, int]]: ...
