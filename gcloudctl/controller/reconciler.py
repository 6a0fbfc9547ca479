"""Stage: controller (reconcile). Make one leased tenant match its approved generation, once.

Level-based: it reads everything it needs (tenant row, approved version, the cloud through the
engine's observe+plan) and never asks what event happened. Called by `runner` for a tenant it
holds the lease of; returns an `Outcome` saying when to look again:

=====================  ==============================================================
what it finds          what it does
=====================  ==============================================================
not reconcilable       unschedule (pending, rejected, deleted, expired)
seal broken            Ready False TamperedRequest, Warning event, audit; NOTHING applied
                       (not even drift repair or destroy) until a new version is approved
terminal error before  wait for a new generation (blocked_generation)
deleting / expired     plan_destroy + apply, check leftovers, mark deleted | expired
empty plan             Ready/Synced True, Drifted False, phase ready, poll later
new generation         apply, verify, phase ready (or backoff / failed), harden new servers
converged              harden servers that ask for it and are new, replaced, or due for a
                       retry of a failed hardening (`hardened`): condition Hardened, event,
                       audit; a failed server is retried with backoff (next_at), never left
drift, enforce         apply (audited as drift repair), verify
drift, report          Drifted True + event with the diff, nothing applied
transient CloudError   back off exponentially with jitter
terminal error         phase failed, wait for a new generation
=====================  ==============================================================

Before applying and when writing status it checks the lease (fencing token), so a controller
that lost its lease never applies or writes. Every applied change is audited.

The seal (`seal.problems`): the approved version's stored text must hash to the digest its
approvals were given for, the submit and approve audit records must exist and say so, and the
audit chain must verify — checked in `_read`, incrementally (`seal.ChainWitness` keeps the last
verified head, so a pass costs O(records appended since), not O(all records) per tenant).
Sealed secret vars are opened (`unseal`) only after that check, just before loading.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from gcloudctl.controller import hardened, seal
from gcloudctl.controller.audit import AuditAction, canonical
from gcloudctl.controller.backoff import Backoff
from gcloudctl.controller.conditions import Condition, ConditionType, condition, set_condition
from gcloudctl.controller.engine import Engine
from gcloudctl.controller.lifecycle import LIVE, RECONCILABLE, Phase, Step, finished_phase_after_destroy, next_phase
from gcloudctl.controller.metrics import Metrics
from gcloudctl.controller.lifecycle import VersionKind, VersionState
from gcloudctl.controller.secrets import SecretsKeyError, sealed
from gcloudctl.controller.store import Claim, Store, TenantRow, Tx
from gcloudctl.errors import CloudError, GcloudctlError, Refused
from gcloudctl.usecases.apply import check_data_loss, check_destroy

log = logging.getLogger("gcloudctl.controller")


class Result(enum.StrEnum):
    CONVERGED = "converged"
    APPLIED = "applied"
    DRIFT_REPAIRED = "drift-repaired"
    DRIFT_REPORTED = "drift-reported"
    DESTROYED = "destroyed"
    IDLE = "idle"  # nothing to do for this phase
    BLOCKED = "blocked"  # terminal error earlier: waits for a new generation
    TRANSIENT = "transient-error"
    TERMINAL = "terminal-error"
    LOST_LEASE = "lost-lease"
    TAMPERED = "tampered"  # the approved version failed its seal check: nothing applied
    HARDENING_FAILED = "hardening-failed"  # converged, but a server's hardening failed: retried with backoff


@dataclass
class Outcome:
    tenant: str
    result: Result
    next_at: datetime | None = None
    changes: int = 0
    message: str = ""


@dataclass
class Snapshot:
    """What the reconciler read from the store, detached from the session."""

    name: str
    phase: Phase
    generation: int | None
    observed_generation: int | None
    drift_policy: str
    expires_at: datetime | None
    failures: int
    blocked_generation: int | None
    conditions: list[Condition]
    raw_yaml: str | None
    tampered: list[str] = field(default_factory=list)  # seal problems: apply nothing
    hardening: dict = field(default_factory=dict)  # server -> hardening record (`controller.hardened`)


@dataclass
class StatusUpdate:
    phase: Phase | None = None
    conditions: list[Condition] = field(default_factory=list)
    observed_generation: int | None = None
    next_at: datetime | None = None
    failures: int = 0
    blocked_generation: int | None = None
    last_error: str | None = None
    events: list[tuple[str, str, str, dict]] = field(default_factory=list)  # type, reason, message, data
    audits: list[tuple[str, dict]] = field(default_factory=list)  # action, data
    hardening: dict | None = None  # the new hardening record (None: unchanged)


class Reconciler:
    def __init__(self, store: Store, engine: Engine, *, holder: str, interval: float = 60.0,
                 backoff: Backoff = Backoff(), clock: Callable[[], datetime],
                 metrics: Metrics | None = None, unseal: Callable[[str, str], str] | None = None,
                 witness: seal.ChainWitness | None = None):
        """`unseal(text, tenant)` opens sealed secret vars (`secrets.VarSealer.unseal`); without
        it a version holding sealed vars fails with a configuration error."""
        self.store, self.engine, self.holder = store, engine, holder
        self.unseal, self.witness = unseal, witness or seal.ChainWitness()
        self.interval, self.backoff, self.clock = interval, backoff, clock
        self.metrics = metrics or Metrics()
        self._local = threading.local()  # the fence of the reconcile running in this thread

    # --- entry ----------------------------------------------------------------------------
    def reconcile(self, claim: Claim, fence: Callable[[], bool] | None = None) -> Outcome:
        """`fence()` says whether the lease is still safely held; applies stop starting changes
        as soon as it says no (self-fencing: before another controller can claim the tenant)."""
        self._local.fence = fence
        started = time.monotonic()
        snap = self._read(claim.tenant)
        try:
            outcome = self._dispatch(claim, snap)
        except CloudError as exc:
            outcome = self._failed(claim, snap, exc, transient=exc.transient, retry_after=exc.retry_after)
        except GcloudctlError as exc:  # Refused (quota pre-flight), InvalidInput (catalog changed) ...
            outcome = self._failed(claim, snap, exc, transient=False)
        except Exception as exc:  # noqa: BLE001 - a bug must back off like an outage, not spin
            log.exception("reconcile of %s crashed", claim.tenant, extra={"tenant": claim.tenant})
            error = CloudError(f"internal error: {type(exc).__name__}: {exc}", transient=True)
            outcome = self._failed(claim, snap, error, transient=True)
        self.metrics.reconciles.labels(outcome.result.value).inc()
        self.metrics.duration.observe(time.monotonic() - started)
        log.info("reconciled %s: %s %s", claim.tenant, outcome.result.value, outcome.message,
                 extra={"tenant": claim.tenant, "action": outcome.result.value,
                        "duration": round(time.monotonic() - started, 3)})
        return outcome

    def _dispatch(self, claim: Claim, snap: Snapshot | None) -> Outcome:
        if snap is None or snap.phase not in RECONCILABLE or snap.raw_yaml is None:
            return self._write(claim, snap, StatusUpdate(next_at=None), Result.IDLE)
        if snap.tampered:
            return self._write(claim, snap, self._tampered(snap), Result.TAMPERED, message="; ".join(snap.tampered))
        if snap.phase is not Phase.DELETING and snap.blocked_generation == snap.generation:
            return self._write(claim, snap, StatusUpdate(next_at=None, blocked_generation=snap.blocked_generation,
                                                         failures=snap.failures), Result.BLOCKED)
        request = self.engine.load(self._opened(snap), f"{snap.name}@{snap.generation}")
        now = self.clock()
        if snap.phase is Phase.DELETING or (snap.expires_at is not None and snap.expires_at <= now):
            return self._destroy(claim, snap, request)
        return self._converge(claim, snap, request)

    def _opened(self, snap: Snapshot) -> str:
        if not sealed(snap.raw_yaml):
            return snap.raw_yaml
        if self.unseal is None:
            raise SecretsKeyError(f"{snap.name}: the request holds sealed secret vars and this controller has no "
                                  "secrets key", hint="configure GCLOUDCTL_SECRETS_KEY (see docs/controller.md)")
        return self.unseal(snap.raw_yaml, snap.name)

    def _tampered(self, snap: Snapshot) -> StatusUpdate:
        """Ready False (TamperedRequest); the event and audit record once per distinct finding."""
        now, gen = self.clock(), snap.generation
        message = "; ".join(snap.tampered)[:2000]
        previous = next((c for c in snap.conditions if c.type is ConditionType.READY), None)
        conditions = set_condition(snap.conditions, condition(ConditionType.READY, False, "TamperedRequest",
                                                              message, gen, now))
        conditions = set_condition(conditions, condition(ConditionType.SYNCED, False, "TamperedRequest",
                                                         "nothing applied until a new version is approved", gen, now))
        update = StatusUpdate(phase=next_phase(snap.phase, Step.FAIL) if snap.phase in LIVE else None,
                              conditions=conditions, observed_generation=snap.observed_generation, next_at=None,
                              failures=snap.failures, blocked_generation=gen, last_error=message)
        if previous is None or previous.reason != "TamperedRequest" or previous.message != message:
            update.events.append(("Warning", "TamperedRequest",
                                  f"generation {gen} is not the text its approvers approved: {message}; "
                                  "nothing applied until a new version is approved", {}))
            update.audits.append((AuditAction.TAMPERED, {"generation": gen, "problems": snap.tampered}))
        return update

    # --- converge -------------------------------------------------------------------------
    def _converge(self, claim: Claim, snap: Snapshot, request: Any) -> Outcome:
        plan = self.engine.plan(request)
        new_generation = snap.observed_generation != snap.generation
        if plan.is_empty():
            update = self._converged(snap)
            failed = self._harden(snap, request, plan, update)
            return self._write(claim, snap, update, Result.HARDENING_FAILED if failed else Result.CONVERGED,
                               message=failed)
        if not new_generation:
            self.metrics.drift.labels(snap.drift_policy).inc(len(plan.changes))
            if snap.drift_policy == "report":
                return self._write(claim, snap, self._report_drift(snap, plan), Result.DRIFT_REPORTED)
        purpose = AuditAction.APPLY if new_generation else AuditAction.DRIFT_REPAIR
        # a volume leaves with its data only when the approved request says so (spec.allowDataLoss)
        _guard_data(check_data_loss, plan, request)
        if new_generation:
            self._mark_provisioning(claim, snap)
        result = self._apply(claim, snap, plan, request, purpose)
        if result is None:
            return Outcome(snap.name, Result.LOST_LEASE, message="lease lost before apply")
        if not result.ok:
            error = CloudError(_failure_text(result), transient=result.transient_only)
            outcome = self._failed(claim, snap, error, transient=error.transient)
            return outcome
        verify = self.engine.plan(request)
        if not verify.is_empty():
            error = CloudError(f"still {len(verify.changes)} change(s) after apply", transient=True)
            return self._failed(claim, snap, error, transient=True)
        update = self._converged(snap)
        if not new_generation:
            update.events.append(("Normal", "DriftRepaired", f"{len(plan.changes)} drifted change(s) undone",
                                  {"changes": _diff(plan)}))
        kind = Result.APPLIED if new_generation else Result.DRIFT_REPAIRED
        failed = self._harden(snap, request, verify, update)
        return self._write(claim, snap, update, Result.HARDENING_FAILED if failed else kind,
                           changes=len(plan.changes), message=failed)

    def _harden(self, snap: Snapshot, request: Any, plan: Any, update: StatusUpdate) -> str:
        """Harden the servers that are due (`hardened.due`) and fold the outcome into `update`:
        record, condition Hardened, events, audits, an earlier next_at for a retry. Returns a
        message when a server's hardening failed on this pass ("" otherwise)."""
        from gcloudctl.usecases.harden import HardeningKeyMissing

        servers = self.engine.hardening_targets(request, plan) if hasattr(self.engine, "hardening_targets") else {}
        if not servers and not snap.hardening:
            return ""
        now = self.clock()
        attempted = hardened.due(snap.hardening, servers, now)
        outcome, no_key, error = None, None, None
        fence = getattr(self._local, "fence", None)
        if attempted and fence is not None and not fence():
            return ""  # the lease is going: the status write would be refused anyway
        if attempted:
            try:
                outcome = self.engine.harden(request, attempted, fence=fence)
            except HardeningKeyMissing as exc:
                no_key = exc.message
            except GcloudctlError as exc:  # observing the hosts failed: retried like a failed host
                error = exc.message
            now = self.clock()
        previous = next((c for c in snap.conditions if c.type is ConditionType.HARDENED), None)
        step = hardened.record_pass(snap.hardening, servers, attempted, outcome, no_key=no_key, error=error,
                                    previous=previous,
                                    generation=snap.generation, now=now, backoff=self.backoff)
        update.hardening = step.record
        if step.condition is not None:
            update.conditions = set_condition(update.conditions or snap.conditions, step.condition)
        else:
            update.conditions = [c for c in (update.conditions or snap.conditions) if c.type is not ConditionType.HARDENED]
        update.events += step.events
        update.audits += step.audits
        if step.retry_at is not None and (update.next_at is None or step.retry_at < update.next_at):
            update.next_at = step.retry_at
        for name in attempted:
            self.metrics.hardened.labels("ok" if name not in step.failed and no_key is None
                                         else "nokey" if no_key else "failed").inc()
        if step.failed:
            return f"hardening failed on {', '.join(step.failed)}"
        return ""

    def _converged(self, snap: Snapshot) -> StatusUpdate:
        now, gen = self.clock(), snap.generation
        conditions = snap.conditions
        for kind, reason, message in ((ConditionType.READY, "Available", "the cloud matches the approved request"),
                                      (ConditionType.SYNCED, "ReconcileSuccess", "last reconcile succeeded")):
            conditions = set_condition(conditions, condition(kind, True, reason, message, gen, now))
        conditions = set_condition(conditions, condition(ConditionType.DRIFTED, False, "NoDrift", "", gen, now))
        update = StatusUpdate(phase=next_phase(snap.phase, Step.SUCCEED), conditions=conditions,
                              observed_generation=gen, next_at=now + timedelta(seconds=self.interval))
        if snap.phase is not Phase.READY:
            update.audits.append((AuditAction.PHASE, {"phase": Phase.READY.value, "generation": gen}))
        return update

    def _report_drift(self, snap: Snapshot, plan: Any) -> StatusUpdate:
        now, gen = self.clock(), snap.generation
        diff = _diff(plan)
        digest = hashlib.sha256(canonical({"d": diff}).encode()).hexdigest()[:12]
        message = f"{len(diff)} change(s) differ from the request (diff {digest}); driftPolicy is report"
        previous = next((c for c in snap.conditions if c.type is ConditionType.DRIFTED), None)
        conditions = set_condition(snap.conditions, condition(ConditionType.DRIFTED, True, "DriftDetected",
                                                              message, gen, now))
        conditions = set_condition(conditions, condition(ConditionType.SYNCED, False, "DriftReported",
                                                         "drift left in place by policy", gen, now))
        update = StatusUpdate(phase=snap.phase, conditions=conditions, observed_generation=gen,
                              next_at=now + timedelta(seconds=self.interval))
        if previous is None or previous.message != message:  # one event per distinct diff, not per poll
            update.events.append(("Warning", "DriftDetected", message, {"changes": diff}))
            update.audits.append((AuditAction.DRIFT_REPORT, {"generation": gen, "changes": diff}))
        return update

    # --- destroy --------------------------------------------------------------------------
    def _destroy(self, claim: Claim, snap: Snapshot, request: Any) -> Outcome:
        now = self.clock()
        expiring = snap.expires_at is not None and snap.expires_at <= now
        if snap.phase in LIVE:  # expiry starts the deletion
            self._set_phase(claim, snap, next_phase(snap.phase, Step.EXPIRE), "Expired",
                            f"expiresAt {snap.expires_at.isoformat()} has passed; destroying")
        plan = self.engine.plan_destroy(request)
        _guard_data(check_destroy, plan, request)  # level >= 3: volumes keep their data
        applied = 0
        if not plan.is_empty():
            result = self._apply(claim, snap, plan, request, AuditAction.DESTROY)
            if result is None:
                return Outcome(snap.name, Result.LOST_LEASE, message="lease lost before destroy")
            if not result.ok:
                return self._failed(claim, snap, CloudError(_failure_text(result), transient=True), transient=True)
            applied = len(plan.changes)
            leftovers = self.engine.plan_destroy(request)
            if not leftovers.is_empty():
                error = CloudError(f"{len(leftovers.changes)} resource(s) left after destroy", transient=True)
                return self._failed(claim, snap, error, transient=True)
        final = finished_phase_after_destroy(expiring)
        now = self.clock()
        conditions = set_condition(snap.conditions, condition(ConditionType.READY, False, final.value.capitalize(),
                                                              "nothing is left in the cloud", snap.generation, now))
        update = StatusUpdate(phase=final, conditions=conditions, observed_generation=snap.generation, next_at=None)
        update.events.append(("Normal", final.value.capitalize(), f"tenant {final.value}; {applied} resource(s) removed", {}))
        update.audits.append((AuditAction.PHASE, {"phase": final.value, "removed": applied}))
        return self._write(claim, snap, update, Result.DESTROYED, changes=applied)

    # --- effects --------------------------------------------------------------------------
    def _apply(self, claim: Claim, snap: Snapshot, plan: Any, request: Any, purpose: AuditAction) -> Any | None:
        with self.store.tx() as tx:
            if not tx.holds(claim, self.holder, self.clock()):
                return None
        fence = getattr(self._local, "fence", None)
        result = self.engine.apply(plan, request, fence=fence) if fence is not None else self.engine.apply(plan, request)
        outcomes = {o.get("address"): o.get("status") for o in result.to_dict().get("outcomes", [])}
        now = self.clock()
        with self.store.tx() as tx:
            for change in plan.changes:
                data = change.to_dict()
                tx.append_audit(now, self.holder, purpose, snap.name, {
                    "generation": snap.generation, "change": data, "outcome": outcomes.get(data.get("address"))})
        label = {AuditAction.APPLY: "apply", AuditAction.DRIFT_REPAIR: "drift-repair"}.get(purpose, "destroy")
        self.metrics.changes.labels(label).inc(len(plan.changes))
        return result

    def _mark_provisioning(self, claim: Claim, snap: Snapshot) -> None:
        self._set_phase(claim, snap, next_phase(snap.phase, Step.PROVISION), "Applying",
                        f"applying generation {snap.generation}")

    def _set_phase(self, claim: Claim, snap: Snapshot, phase: Phase, reason: str, message: str) -> None:
        now = self.clock()
        snap.conditions = set_condition(snap.conditions, condition(ConditionType.SYNCED, None, reason, message,
                                                                   snap.generation, now))
        with self.store.tx() as tx:
            tenant = tx.tenant(snap.name, lock=True)
            if tenant is None or not tx.holds(claim, self.holder, now):
                return
            if tenant.phase == Phase.DELETING.value and phase is not Phase.DELETING:
                return  # its deletion was approved since the snapshot: the deletion wins (see _write)
            tenant.phase, tenant.updated_at = phase.value, now
            tenant.conditions = _dump(snap.conditions)
            tx.add_event(snap.name, now, "Normal", reason, message, controller=self.holder)
        snap.phase = phase

    def _failed(self, claim: Claim, snap: Snapshot | None, error: GcloudctlError, *, transient: bool,
                retry_after: float | None = None) -> Outcome:
        if snap is None:
            return Outcome(claim.tenant, Result.IDLE)
        now, gen = self.clock(), snap.generation
        self.metrics.errors.labels("transient" if transient else "terminal").inc()
        failures = snap.failures + 1
        message = error.message[:2000]
        conditions = set_condition(snap.conditions, condition(ConditionType.SYNCED, False,
                                                              "ReconcileError" if transient else "TerminalError",
                                                              message, gen, now))
        deleting = snap.phase is Phase.DELETING
        if transient or deleting:
            delay = self.backoff.delay(failures, retry_after)
            update = StatusUpdate(phase=None if deleting else next_phase(snap.phase, Step.FAIL) if snap.phase in LIVE else None,
                                  conditions=conditions, observed_generation=snap.observed_generation,
                                  next_at=now + timedelta(seconds=delay), failures=failures, last_error=message)
            update.events.append(("Warning", "ReconcileError", f"{message} (retry in {delay:.0f}s)", {}))
            return self._write(claim, snap, update, Result.TRANSIENT, message=message)
        conditions = set_condition(conditions, condition(ConditionType.READY, False, "TerminalError", message, gen, now))
        update = StatusUpdate(phase=next_phase(snap.phase, Step.FAIL) if snap.phase in LIVE else None,
                              conditions=conditions, observed_generation=snap.observed_generation, next_at=None,
                              failures=failures, blocked_generation=gen, last_error=message)
        update.events.append(("Warning", "TerminalError", f"{message}; waiting for a new generation", {}))
        update.audits.append((AuditAction.PHASE, {"phase": Phase.FAILED.value, "generation": gen, "error": message}))
        return self._write(claim, snap, update, Result.TERMINAL, message=message)

    def _write(self, claim: Claim, snap: Snapshot | None, update: StatusUpdate, result: Result,
               changes: int = 0, message: str = "") -> Outcome:
        now = self.clock()
        with self.store.tx() as tx:
            tenant = tx.tenant(claim.tenant, lock=True)
            if not tx.holds(claim, self.holder, now):
                return Outcome(claim.tenant, Result.LOST_LEASE, message="lease lost before status write")
            if tenant is None:
                return Outcome(claim.tenant, Result.IDLE)
            if snap is not None and tenant.generation != snap.generation:
                # a new generation was approved meanwhile: keep it scheduled, write nothing stale
                tenant.next_reconcile_at = now
                return Outcome(claim.tenant, result, now, changes, "new generation approved meanwhile")
            if snap is not None and tenant.phase == Phase.DELETING.value and snap.phase is not Phase.DELETING:
                # its deletion was approved meanwhile (same generation): writing this reconcile's
                # phase (ready, failed ...) would undo the deletion; keep it scheduled instead
                tenant.next_reconcile_at = now
                return Outcome(claim.tenant, result, now, changes, "deletion approved meanwhile")
            _apply_update(tenant, update, now)
            for type_, reason, text, data in update.events:
                tx.add_event(claim.tenant, now, type_, reason, text, data, controller=self.holder)
            for action, data in update.audits:
                tx.append_audit(now, self.holder, action, claim.tenant, data)
        return Outcome(claim.tenant, result, update.next_at, changes, message)

    def _read(self, name: str) -> Snapshot | None:
        with self.store.tx() as tx:
            tenant = tx.tenant(name)
            if tenant is None:
                return None
            version = tx.version_of(name, tenant.generation) if tenant.generation else None
            snap = Snapshot(name, Phase(tenant.phase), tenant.generation, tenant.observed_generation,
                            tenant.drift_policy, tenant.expires_at, tenant.failures, tenant.blocked_generation,
                            [Condition.from_dict(c) for c in json.loads(tenant.conditions)],
                            version.raw_yaml if version else None,
                            hardening=json.loads(tenant.hardening or "{}"))
            if version is not None and snap.phase in RECONCILABLE:
                snap.tampered = self._seal_problems(tx, version, VersionKind.CHANGE)
                if snap.phase is Phase.DELETING and not (tenant.expires_at and tenant.expires_at <= self.clock()):
                    snap.tampered += self._deletion_problems(tx, tenant)
                snap.tampered += self.witness.breaks(tx)
            return snap

    def _deletion_problems(self, tx: Tx, tenant: TenantRow) -> list[str]:
        """A deletion that did not expire must have been filed and approved after the generation
        it destroys, and be sealed like any version."""
        deletions = [v for v in tx.versions(tenant.name, VersionState.APPROVED.value)
                     if v.kind == VersionKind.DELETE and v.generation > (tenant.generation or 0)]
        if not deletions:
            return ["the tenant is deleting without an approved deletion"]
        return self._seal_problems(tx, deletions[-1], VersionKind.DELETE)

    def _seal_problems(self, tx: Tx, version: Any, kind: VersionKind) -> list[str]:
        """Why the approved `version` must not be acted on ([] when it is sealed as approved)."""
        if version.kind != kind:
            return [f"generation {version.generation} is a {version.kind} version, not a {kind.value}"]
        facts = seal.VersionFacts(version.id, version.tenant, version.generation, version.digest,
                                  version.raw_yaml, version.audit_seq, version.kind)
        approvals = [seal.DecisionFacts(d.actor_id, d.actor, d.tenant, d.generation, d.digest, d.rules_version,
                                        d.audit_seq) for d in tx.decisions(version.id) if d.decision == "approve"]
        seqs = [version.audit_seq] + [a.audit_seq for a in approvals]
        records = {seq: record for seq in seqs if seq is not None
                   for record in [tx.audit_record(seq)] if record is not None}
        legacy = (tx.tenant_audit_records(version.tenant, {AuditAction.SUBMIT, AuditAction.DELETE,
                                                           AuditAction.APPROVE})
                  if None in seqs else [])
        return seal.problems(facts, approvals, records, legacy, _successors(tx, [*records.values(), *legacy]))


def _guard_data(check: Callable[..., None], plan: Any, request: Any) -> None:
    """Volumes leave with their data only when the approved request says so (`spec.allowDataLoss`);
    the refusal says how, in the controller's terms (not the CLI's flag)."""
    spec = getattr(request, "spec", None)
    try:
        check(plan, allow_data_loss=bool(getattr(spec, "allowDataLoss", False)))
    except Refused as exc:
        raise Refused(f"{exc.message}; to delete them, submit a request with spec.allowDataLoss: true "
                      "and have it approved") from exc


def _successors(tx: Tx, records: list) -> dict[int, str | None]:
    """seq -> the prev_hash of the next record (the head hash for the last record)."""
    head = tx.audit_head()
    found: dict[int, str | None] = {}
    for record in records:
        if head is not None and record.seq == head[0]:
            found[record.seq] = head[1]
        else:
            after = tx.audit_record(record.seq + 1)
            found[record.seq] = after.prev_hash if after else None
    return found


def _apply_update(tenant: TenantRow, update: StatusUpdate, now: datetime) -> None:
    if update.phase is not None:
        tenant.phase = update.phase.value
    if update.conditions:
        tenant.conditions = _dump(update.conditions)
    if update.observed_generation is not None:
        tenant.observed_generation = update.observed_generation
    tenant.next_reconcile_at = update.next_at
    tenant.failures, tenant.blocked_generation = update.failures, update.blocked_generation
    tenant.last_error = update.last_error
    if update.hardening is not None:
        tenant.hardening = json.dumps(update.hardening, sort_keys=True)
    tenant.last_reconciled_at = tenant.updated_at = now


def _dump(conditions: list[Condition]) -> str:
    return json.dumps([c.to_dict() for c in conditions])


def _diff(plan: Any) -> list[dict]:
    return [change.to_dict() for change in plan.changes]


def _failure_text(result: Any) -> str:
    data = result.to_dict()
    failed = [o for o in data.get("outcomes", []) if o.get("status") == "failed"]
    first = failed[0] if failed else {}
    return f"{len(failed)} change(s) failed; first: {first.get('address', '?')}: {first.get('error', 'unknown')}"
