"""Stage: apply. Runs exactly the changes a Plan holds, over their dependency graph, with
bounded parallelism; dependents of a failed change are skipped, never attempted.

Called by pipeline.apply_plan (CLI apply/destroy, controller). It talks to the cloud only
through a CloudDriver. Transient errors (classified by the driver) are retried with
exponential backoff and jitter; permanent ones fail the change at once.

Bounded: `apply(..., deadline=)` (a `time.monotonic()` instant; `timeout=` seconds is the same
thing relative to the start; an enclosing `deadline_scope` also counts) is handed to every
worker through `gcloudctl.drivers.base.deadline_scope`, so the driver cuts each HTTP request
and each wait for a server to it. At the deadline nothing more starts, changes in flight are
stopped (CANCELLED) after a short grace, and `apply` returns with `timed_out` set: it never
waits for a worker stuck in the cloud.
"""

from __future__ import annotations

import contextvars
import enum
import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from gcloudctl.drivers.base import CloudDriver, IdMap, current_deadline, deadline_scope
from gcloudctl.errors import CloudError, TimeoutExpired
from gcloudctl.i18n import gettext  # not `_`: this module uses `_` for values it drops
from gcloudctl.plan import Action, Change, Plan
from gcloudctl.resources import Address, Kind

log = logging.getLogger("gcloudctl.executor")


class Status(str, enum.Enum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # a change it depends on failed, or the deadline passed before it started
    CANCELLED = "cancelled"  # started, then stopped at the deadline (the cloud may still finish it:
    # the next run adopts what it made, by its deterministic name)


class Step(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, eq=False)
class Node:
    step: Step
    change: Change

    def __hash__(self) -> int:
        return hash((self.step, self.change.address))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and (self.step, self.change.address) == (other.step, other.change.address)

    @property
    def address(self) -> Address:
        return self.change.address

    def __str__(self) -> str:
        return f"{self.step.value} {self.address}"


@dataclass
class Outcome:
    node: Node
    status: Status
    seconds: float = 0.0
    error: str | None = None
    transient: bool = False
    attempts: int = 0

    def to_dict(self) -> dict:
        data = {"step": self.node.step.value, "address": str(self.node.address), "status": self.status.value,
                "seconds": round(self.seconds, 3)}
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return all(o.status is Status.DONE for o in self.outcomes) and not self.timed_out

    @property
    def cancelled(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.CANCELLED]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.FAILED]

    @property
    def transient_only(self) -> bool:
        return bool(self.failed) and all(o.transient for o in self.failed)

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for o in self.outcomes:
            counts[o.status.value] += 1
        return counts

    def to_dict(self) -> dict:
        return {"ok": self.ok, "seconds": round(self.seconds, 3), "timed_out": self.timed_out,
                "counts": self.counts(), "outcomes": [o.to_dict() for o in self.outcomes]}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.5
    cap: float = 8.0

    def delay(self, attempt: int, error: CloudError) -> float:
        if error.retry_after:
            return min(error.retry_after, self.cap * 4)
        return min(self.cap, self.base * 2 ** attempt) * (0.5 + random.random() / 2)


def build_graph(plan: Plan) -> dict[Node, set[Node]]:
    """Node -> nodes it must wait for."""
    nodes: dict[tuple[Step, Address], Node] = {}
    for change in plan.changes:
        if change.action in (Action.DELETE, Action.REPLACE):
            nodes[(Step.DELETE, change.address)] = Node(Step.DELETE, change)
        if change.action in (Action.CREATE, Action.REPLACE):
            nodes[(Step.CREATE, change.address)] = Node(Step.CREATE, change)
        if change.action is Action.UPDATE:
            nodes[(Step.UPDATE, change.address)] = Node(Step.UPDATE, change)

    graph: dict[Node, set[Node]] = {node: set() for node in nodes.values()}
    # who depends on whom in the observed world (for deletes)
    observed_dependents: dict[Address, list[Address]] = {}
    for change in plan.changes:
        if change.before is not None:
            for dep in change.before.depends_on:
                observed_dependents.setdefault(dep, []).append(change.address)

    for (step, address), node in nodes.items():
        change = node.change
        if step in (Step.CREATE, Step.UPDATE):
            for dep in change.after.depends_on if change.after else ():
                for dep_step in (Step.CREATE, Step.UPDATE):
                    if (dep_step, dep) in nodes:
                        graph[node].add(nodes[(dep_step, dep)])
            if step is Step.CREATE and (Step.DELETE, address) in nodes:
                graph[node].add(nodes[(Step.DELETE, address)])
        else:  # DELETE waits for the deletes of everything that depends on it ...
            for dependent in observed_dependents.get(address, ()):
                if (Step.DELETE, dependent) in nodes and not _port_goes_first(nodes[(Step.DELETE, dependent)], node):
                    graph[node].add(nodes[(Step.DELETE, dependent)])
            # ... except a server whose ports go too: those are deleted first (below)
            for dep in change.before.depends_on if change.before else ():
                if (Step.DELETE, dep) in nodes and _port_goes_first(node, nodes[(Step.DELETE, dep)]):
                    graph[node].add(nodes[(Step.DELETE, dep)])
    return graph


def _port_goes_first(server: Node, port: Node) -> bool:
    """When a server and its port are both deleted for good, the port goes first. Nova then has
    nothing to unbind: on Neutron an unbind (a port PUT that moves the binding) costs about ten
    times a port delete and runs inside the server's delete, so ports-first ends a teardown of
    many servers sooner. Replacements keep the usual order (server, then port)."""
    return (server.change.address.kind is Kind.SERVER and port.change.address.kind is Kind.PORT
            and server.change.action is Action.DELETE and port.change.action is Action.DELETE)


ProgressFn = Callable[[str, Node, Outcome | None], None]


GRACE = 3.0  # seconds past the deadline for changes in flight to notice it and stop


def apply(plan: Plan, driver: CloudDriver, ids: IdMap, *, parallelism: int = 10,
          progress: ProgressFn | None = None, timeout: float | None = None, deadline: float | None = None,
          retry: RetryPolicy = RetryPolicy(), clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep, cancel: Callable[[], bool] | None = None) -> ApplyResult:
    """Run the plan's changes. `cancel` (e.g. "our lease is no longer safely held") is asked
    before each change starts its API phase; once it says yes, nothing more is started and the
    rest is skipped. `deadline` (monotonic) / `timeout` (seconds from now) bound the whole run,
    waits for servers included; see the module docstring."""
    graph = build_graph(plan)
    started = clock()
    limits = [d for d in (deadline, None if timeout is None else started + timeout, current_deadline()) if d is not None]
    deadline = min(limits) if limits else None
    result = ApplyResult()
    done: dict[Node, Outcome] = {}
    running: dict[Future, Node] = {}
    lock = threading.Lock()
    notify = progress or (lambda *_: None)

    api_slots = threading.Semaphore(max(1, parallelism))

    def run(node: Node) -> Outcome:
        t0 = clock()
        if cancel is not None and cancel():
            return Outcome(node, Status.SKIPPED, error=gettext("skipped: cancelled"))
        notify("start", node, None)
        attempt = 0
        while True:
            attempt += 1
            try:
                if attempt > 1 and cancel is not None and cancel():
                    return Outcome(node, Status.SKIPPED, clock() - t0, error=gettext("skipped: cancelled"), attempts=attempt)
                with api_slots:  # the API phase is bounded by --parallelism ...
                    adopted = (attempt > 1 and node.step is Step.CREATE and _adopt_earlier_attempt(node, driver, ids))
                    if not adopted:
                        _execute(node, driver, ids)
                _settle(node, driver, ids)  # ... waiting for the cloud to finish is not
                return Outcome(node, Status.DONE, clock() - t0, attempts=attempt)
            except TimeoutExpired:
                return Outcome(node, Status.CANCELLED, clock() - t0, attempts=attempt,
                               error=gettext("cancelled: the time limit ran out while it was running"))
            except CloudError as exc:
                left = None if deadline is None else deadline - clock()
                if exc.transient and attempt < retry.attempts and (left is None or left > 0):
                    delay = retry.delay(attempt, exc)
                    log.info("%s: transient error (%s), retry %d in %.1fs", node, exc.message, attempt, delay)
                    sleep(delay if left is None else min(delay, left))
                    continue
                return Outcome(node, Status.FAILED, clock() - t0, error=exc.message, transient=exc.transient, attempts=attempt)
            except Exception as exc:  # noqa: BLE001 - a driver bug must not take the run down
                log.exception("%s failed unexpectedly", node)
                return Outcome(node, Status.FAILED, clock() - t0, error=f"{type(exc).__name__}: {exc}", attempts=attempt)

    def finish(future: Future) -> None:
        node = running.pop(future)
        outcome = future.result()
        if outcome.status is Status.CANCELLED:
            result.timed_out = True
        with lock:
            done[node] = outcome
        notify("done" if outcome.status is Status.DONE else "fail", node, outcome)

    workers = min(256, max(1, parallelism, len(graph)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply")
    try:
        with deadline_scope(deadline):
            pending = set(graph)
            while pending or running:
                progressed = True
                while progressed:
                    progressed = False
                    for node in sorted(pending, key=lambda n: n.change.sort_key()):
                        waits = graph[node]
                        if any(w in done and done[w].status is not Status.DONE for w in waits):
                            outcome = Outcome(node, Status.SKIPPED, error=gettext("skipped: a change it depends on did not succeed"))
                            done[node] = outcome
                            pending.discard(node)
                            notify("skip", node, outcome)
                            progressed = True
                        elif deadline is not None and clock() >= deadline:
                            outcome = Outcome(node, Status.SKIPPED, error=gettext("skipped: timeout"))
                            done[node] = outcome
                            pending.discard(node)
                            result.timed_out = True
                            progressed = True
                        elif all(w in done for w in waits):
                            pending.discard(node)
                            # each worker runs in a copy of this context: the deadline goes with it
                            running[pool.submit(contextvars.copy_context().run, run, node)] = node
                            progressed = True
                if not running:
                    if pending:  # a cycle would leave nodes behind: never expected, but never hang
                        for node in list(pending):
                            done[node] = Outcome(node, Status.SKIPPED, error=gettext("skipped: unresolved dependency"))
                            pending.discard(node)
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED,
                                   timeout=None if deadline is None else max(0.05, deadline - clock()))
                for future in finished:
                    finish(future)
                if deadline is not None and clock() >= deadline and running:
                    result.timed_out = True
                    _stop_running(running, finish, notify, done, lock, clock, deadline)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # never wait for a worker stuck in the cloud
    order = {node: i for i, node in enumerate(sorted(graph, key=lambda n: n.change.sort_key()))}
    result.outcomes = sorted(done.values(), key=lambda o: order[o.node])
    result.seconds = clock() - started
    return result


def _stop_running(running: dict[Future, Node], finish, notify, done: dict[Node, Outcome], lock, clock, deadline) -> None:
    """At the deadline: the changes in flight get a short grace to notice it (their HTTP calls
    and waits are cut to it) and report; those still running after it are abandoned."""
    finished, _ = wait(list(running), timeout=max(0.0, deadline + GRACE - clock()))
    for future in finished:
        finish(future)
    for future, node in list(running.items()):
        future.cancel()
        outcome = Outcome(node, Status.CANCELLED, error=gettext("cancelled: still running at the time limit (abandoned)"))
        running.pop(future)
        with lock:
            done[node] = outcome
        notify("fail", node, outcome)


def _adopt_earlier_attempt(node: Node, driver: CloudDriver, ids: IdMap) -> bool:
    """Before retrying a create, look for what the failed attempt may already have made."""
    find = getattr(driver, "find", None)
    existing = find(node.change.after, ids) if find else None
    if existing:
        ids[node.change.address] = existing
        log.info("%s: adopted what an earlier attempt created (%s)", node, existing)
    return bool(existing)


def _settle(node: Node, driver: CloudDriver, ids: IdMap) -> None:
    """Wait until the change has taken effect (a server ACTIVE, or gone), if the driver says how."""
    if node.step is Step.CREATE and hasattr(driver, "wait_created"):
        driver.wait_created(node.change.after, ids)
    elif node.step is Step.DELETE and hasattr(driver, "wait_deleted"):
        driver.wait_deleted(node.change.before, ids)


def _execute(node: Node, driver: CloudDriver, ids: IdMap) -> None:
    change = node.change
    if node.step is Step.CREATE:
        new_id = driver.create(change.after, ids)
        ids[change.address] = new_id
    elif node.step is Step.UPDATE:
        if change.before.id:
            ids[change.address] = change.before.id
        driver.update(change.before, change.after, change.changed, ids)
    else:
        driver.delete(change.before, ids)
        if change.action is Action.DELETE:
            ids.discard(change.address)
