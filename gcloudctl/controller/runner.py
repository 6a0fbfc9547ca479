"""Stage: controller (loop). Claim due tenants under leases, reconcile them on N workers.

The work queue is the `tenants` table itself: `next_reconcile_at` says when a tenant is due
(poll interval after success, backoff after a transient error, NULL after a terminal one, *now*
after an approval or a delete). A controller claims due tenants by taking their leases
(`Tx.claim_due`: FOR UPDATE SKIP LOCKED on PostgreSQL), so each tenant has one worker in one
controller at a time; a heartbeat renews the leases of tenants in flight; a dead controller's
leases expire after `lease_seconds` and the still-due tenants are claimed by another.
Called by `gcloudctl controller run [--once]`; the CLI builds it (composition root).

`on_cycle` (injected, e.g. `PipelineEngine.begin_cycle`) is called at the start of every
`run_once` pass: the engine's fleet observation then takes one bulk snapshot for the pass.
The continuous loop has no pass boundary; there the snapshot is retaken by age.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from gcloudctl.controller.lifecycle import RECONCILABLE
from gcloudctl.controller.reconciler import Outcome, Reconciler, Result
from gcloudctl.controller.store import Claim, Store

log = logging.getLogger("gcloudctl.controller")


def holder_id() -> str:
    """A controller's identity in leases and audit records: host, pid and a random suffix."""
    return f"controller@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(o.result in (Result.TRANSIENT, Result.TERMINAL, Result.BLOCKED, Result.LOST_LEASE,
                                    Result.TAMPERED, Result.HARDENING_FAILED)
                       for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.result.value] = counts.get(outcome.result.value, 0) + 1
        return counts

    def to_dict(self) -> dict:
        return {"ok": self.ok, "counts": self.counts(),
                "tenants": [{"tenant": o.tenant, "result": o.result.value, "changes": o.changes,
                             "message": o.message} for o in self.outcomes]}


class Runner:
    def __init__(self, store: Store, reconciler: Reconciler, *, clock: Callable[[], datetime], workers: int = 4,
                 lease_seconds: float = 30.0, claim_poll: float = 1.0, on_cycle: Callable[[], None] | None = None):
        self.store, self.reconciler, self.clock = store, reconciler, clock
        self.on_cycle = on_cycle
        self.holder = reconciler.holder
        self.workers, self.lease_seconds, self.claim_poll = max(1, workers), lease_seconds, claim_poll
        self._inflight: dict[str, tuple[Claim, Future]] = {}
        self._renewed: dict[str, float] = {}  # tenant -> monotonic time of its last confirmed lease
        self._lock = threading.Lock()
        self.metrics = reconciler.metrics

    # --- one pass (cron / CI, tests) -----------------------------------------------------
    def run_once(self, *, only_due: bool = False) -> Summary:
        """Reconcile every reconcilable tenant once (or only the due ones), then return."""
        summary = Summary()
        if self.on_cycle is not None:
            self.on_cycle()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="reconcile") as pool:
            stop = threading.Event()
            beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
            beat.start()
            try:
                while True:
                    claims = self._claim(self.workers * 4, only_due=only_due, seen={o.tenant for o in summary.outcomes})
                    if not claims:
                        break
                    futures = [self._submit(pool, claim) for claim in claims]
                    summary.outcomes.extend(f.result() for f in futures)
            finally:
                stop.set()
                beat.join()
        return summary

    # --- forever -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Claim and reconcile until `stop` is set; then finish in-flight work and release."""
        heartbeat_stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(heartbeat_stop,), name="leases", daemon=True)
        beat.start()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="reconcile")
        try:
            while not stop.is_set():
                self.metrics.beat()
                free = self.workers - len(self._inflight)
                for claim in self._claim(free, only_due=True):
                    self._submit(pool, claim)
                with self._lock:
                    futures = [f for _, f in self._inflight.values()]
                if futures and free <= 0:
                    wait(futures, timeout=self.claim_poll, return_when=FIRST_COMPLETED)
                else:
                    stop.wait(self.claim_poll)
        finally:
            pool.shutdown(wait=True)
            heartbeat_stop.set()
            beat.join()

    # --- pieces --------------------------------------------------------------------------
    def _claim(self, limit: int, *, only_due: bool, seen: set[str] = frozenset()) -> list[Claim]:
        if limit <= 0:
            return []
        with self._lock:
            busy = set(self._inflight) | set(seen)
        with self.store.tx() as tx:
            return tx.claim_due(self.holder, self.clock(), limit, self.lease_seconds, exclude=busy,
                                phases=None if only_due else {p.value for p in RECONCILABLE})

    def _submit(self, pool: ThreadPoolExecutor, claim: Claim) -> Future:
        with self._lock:
            self._renewed[claim.tenant] = time.monotonic()
        future = pool.submit(self._work, claim)
        with self._lock:
            self._inflight[claim.tenant] = (claim, future)
            self.metrics.inflight.set(len(self._inflight))
        return future

    def _work(self, claim: Claim) -> Outcome:
        try:
            return self.reconciler.reconcile(claim, fence=lambda: self._safely_held(claim))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker pool
            log.exception("reconcile of %s crashed", claim.tenant, extra={"tenant": claim.tenant})
            return Outcome(claim.tenant, Result.TRANSIENT, message=f"crashed: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:  # forget it first, so the heartbeat never mistakes the release for a loss
                self._inflight.pop(claim.tenant, None)
                self.metrics.inflight.set(len(self._inflight))
            with self.store.tx() as tx:
                tx.release(claim, self.holder)

    def _safely_held(self, claim: Claim) -> bool:
        """Self-fencing: the lease counts as ours only while its last confirmed renewal is less
        than two thirds of a lease old, so we stop writing before anyone else can claim it."""
        with self._lock:
            renewed = self._renewed.get(claim.tenant)
        return renewed is not None and time.monotonic() - renewed < self.lease_seconds * 2 / 3

    def _heartbeat(self, stop: threading.Event) -> None:
        """Renew the leases of tenants in flight every third of a lease period."""
        while not stop.wait(self.lease_seconds / 3):
            with self._lock:
                claims = [claim for claim, _ in self._inflight.values()]
            self.metrics.leases.set(len(claims))
            if not claims:
                continue
            beat_started = time.monotonic()  # a renewal counts from before it was sent
            try:
                with self.store.tx() as tx:
                    held = tx.renew(self.holder, claims, self.clock(), self.lease_seconds)
            except Exception:  # noqa: BLE001 - the database may be briefly unreachable; retry next beat
                log.warning("lease renewal failed", exc_info=True)
                continue
            with self._lock:  # a reconcile that finished meanwhile released its lease: not a loss
                lost = [c for c in claims if c.tenant not in held and self._inflight.get(c.tenant, (None,))[0] is c]
                for claim in claims:
                    if claim.tenant in held:
                        self._renewed[claim.tenant] = beat_started
            for claim in lost:
                log.warning("lost the lease of %s; its reconcile will not apply or write status", claim.tenant,
                            extra={"tenant": claim.tenant})
