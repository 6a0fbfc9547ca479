"""Stage: controller (intake). The use cases behind `gcloudctl request ...`, `status`, `audit ...`.

Each use case is one transaction: read the rows, ask `lifecycle` and `approvals` what may
happen, write the new rows, an event and an audit record. Every action is taken under an
identity (`actor`). Called by the CLI (thin) and by tests; the reconciler never calls it.
Dependencies are passed in: the store, the agency registry, the approval rules, a request
loader (`gcloudctl.pipeline.load_request`) and a clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from gcloudctl.controller import approvals, audit
from gcloudctl.controller.audit import AuditAction
from gcloudctl.controller.conditions import Condition, iso
from gcloudctl.controller.lifecycle import FINISHED, Phase, Step, VersionState, next_phase, next_version_state
from gcloudctl.controller.store import RequestRow, Store, TenantRow, Tx, DecisionRow
from gcloudctl.errors import InvalidInput, NotFound, Refused
from gcloudctl.model import TenantRequest

Clock = Callable[[], datetime]
RequestLoader = Callable[[str, str], TenantRequest]  # (text, filename) -> validated request


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_stored(raw_yaml: str) -> TenantRequest | None:
    """A stored version as a model, without re-running semantic validation (the catalog may have
    changed since it was approved). None when it no longer parses."""
    try:
        return TenantRequest.model_validate(yaml.safe_load(raw_yaml))
    except (yaml.YAMLError, ValidationError):
        return None


@dataclass
class RequestService:
    store: Store
    agencies: Any  # has .get(code) -> Agency | None (gcloudctl.model.AgencyRegistry)
    rules: approvals.ApprovalRules
    load_request: RequestLoader
    clock: Clock = field(default=utcnow)

    # --- intake ---------------------------------------------------------------------------
    def submit(self, text: str, *, actor: str, filename: str = "<request>") -> dict[str, Any]:
        """Store a new version (generation) of a tenant's request, pending approval."""
        request = self.load_request(text, filename)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        name, now = request.metadata.name, self.clock()
        with self.store.tx() as tx:
            tenant = tx.tenant(name, lock=True)
            if tenant is not None and tenant.agency != request.metadata.agency:
                raise Refused(f"tenant {name} belongs to agency {tenant.agency}, not {request.metadata.agency}")
            same = self._identical_open_version(tx, tenant, digest)
            if same is not None:
                return self._version_view(tx, same) | {"unchanged": True}
            phase = next_phase(Phase(tenant.phase) if tenant else None, Step.SUBMIT)
            previous = self._approved_request(tx, tenant)
            need = approvals.requirement(self.rules, request, previous)
            self._supersede_pending(tx, name, now)
            generation = (tenant.latest_generation if tenant else 0) + 1
            row = tx.add_version(RequestRow(
                tenant=name, generation=generation, agency=request.metadata.agency,
                requester=request.metadata.requester, submitted_by=actor, digest=digest, raw_yaml=text,
                state=VersionState.PENDING.value, approvals_required=need.approvals,
                approval_reasons=json.dumps(list(need.reasons)), submitted_at=now))
            if tenant is None:
                tenant = tx.add_tenant(_new_tenant(request, now))
            elif Phase(tenant.phase) in FINISHED:
                _restart(tenant)
            tenant.latest_generation, tenant.phase, tenant.updated_at = generation, phase.value, now
            tx.add_event(name, now, "Normal", "Submitted",
                         f"generation {generation} submitted by {actor}; needs {need.approvals} approval(s)")
            tx.append_audit(now, actor, AuditAction.SUBMIT, name, {
                "requestId": row.id, "generation": generation, "digest": digest, "agency": row.agency,
                "requester": row.requester, "approvalsRequired": need.approvals, "reasons": list(need.reasons)})
            return self._version_view(tx, row)

    def approve(self, request_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.tx() as tx:
            row, tenant = self._pending(tx, request_id, Step.APPROVE)
            already = {d.actor for d in tx.decisions(row.id) if d.decision == "approve"}
            approvals.check_approver(self.rules, actor=actor, agency_code=row.agency,
                                     agency=self.agencies.get(row.agency), requester=row.requester,
                                     submitted_by=row.submitted_by, already=already)
            tx.add_decision(DecisionRow(request_id=row.id, actor=actor, decision="approve", reason=reason, at=now))
            given = len(already) + 1
            tx.append_audit(now, actor, AuditAction.APPROVE, row.tenant, {
                "requestId": row.id, "generation": row.generation, "digest": row.digest, "reason": reason,
                "approvals": given, "approvalsRequired": row.approvals_required})
            if given < row.approvals_required:
                tx.add_event(row.tenant, now, "Normal", "Approval",
                             f"generation {row.generation}: {given} of {row.approvals_required} approvals ({actor})")
                return self._version_view(tx, row)
            self._activate(tx, row, tenant, now)
            tx.add_event(row.tenant, now, "Normal", "Approved", f"generation {row.generation} approved ({actor})")
            return self._version_view(tx, row)

    def reject(self, request_id: int, *, actor: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            raise InvalidInput("a rejection needs --reason")
        now = self.clock()
        with self.store.tx() as tx:
            row, tenant = self._pending(tx, request_id, Step.REJECT)
            approvals.check_approver(self.rules, actor=actor, agency_code=row.agency,
                                     agency=self.agencies.get(row.agency), requester=row.requester,
                                     submitted_by=row.submitted_by, already=set())
            tx.add_decision(DecisionRow(request_id=row.id, actor=actor, decision="reject", reason=reason, at=now))
            row.state = next_version_state(VersionState(row.state), Step.REJECT).value
            row.decided_at = now
            tenant.phase = next_phase(Phase(tenant.phase), Step.REJECT).value
            tenant.updated_at = now
            tx.add_event(row.tenant, now, "Warning", "Rejected", f"generation {row.generation} rejected by {actor}: {reason}")
            tx.append_audit(now, actor, AuditAction.REJECT, row.tenant, {
                "requestId": row.id, "generation": row.generation, "digest": row.digest, "reason": reason})
            return self._version_view(tx, row)

    def delete(self, tenant_name: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Ask the controller to destroy a tenant. Allowed to the agency's approvers and to the
        tenant's requesters."""
        now = self.clock()
        with self.store.tx() as tx:
            tenant = self._tenant(tx, tenant_name, lock=True)
            requesters = {v.requester for v in tx.versions(tenant_name)} | {v.submitted_by for v in tx.versions(tenant_name)}
            agency = self.agencies.get(tenant.agency)
            if actor not in requesters and (agency is None or actor not in agency.approvers):
                raise Refused(f"{actor} may not delete {tenant_name}",
                              hint=f"the tenant's requesters or an approver of {tenant.agency} may delete it")
            phase = next_phase(Phase(tenant.phase), Step.DELETE)
            self._supersede_pending(tx, tenant_name, now)
            tenant.phase, tenant.updated_at = phase.value, now
            tenant.next_reconcile_at = now if phase is Phase.DELETING else None
            tenant.blocked_generation, tenant.failures = None, 0
            tx.add_event(tenant_name, now, "Normal", "DeleteRequested", f"deletion requested by {actor}: {reason}")
            tx.append_audit(now, actor, AuditAction.DELETE, tenant_name, {"reason": reason, "phase": phase.value})
            return status_view(tx, tenant)

    # --- reading --------------------------------------------------------------------------
    def list_versions(self, tenant: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        with self.store.tx() as tx:
            return [self._version_view(tx, row, brief=True) for row in tx.versions(tenant, state)]

    def show(self, request_id: int) -> dict[str, Any]:
        with self.store.tx() as tx:
            row = tx.version(request_id)
            if row is None:
                raise NotFound(f"no request version with id {request_id}", hint="see `gcloudctl request list`")
            return self._version_view(tx, row) | {"yaml": row.raw_yaml}

    def status(self, tenant_name: str) -> dict[str, Any]:
        with self.store.tx() as tx:
            return status_view(tx, self._tenant(tx, tenant_name), with_events=True)

    def audit_verify(self, expect_head: str | None = None) -> dict[str, Any]:
        with self.store.tx() as tx:
            head = tx.audit_head()
            records = list(tx.audit_records())
        breaks = audit.verify(records, head)
        if expect_head and (head is None or head[1] != expect_head) and not any(
                r.hash == expect_head for r in records):
            breaks.append(audit.Break(None, "the expected head hash is not in the chain (anchor mismatch)"))
        return {"ok": not breaks, "records": len(records), "head": {"seq": head[0], "hash": head[1]} if head else None,
                "breaks": [b.to_dict() for b in breaks]}

    def audit_export(self, since: datetime | None = None) -> list[dict[str, Any]]:
        with self.store.tx() as tx:
            return [r.to_dict() for r in tx.audit_records(since)]

    # --- helpers --------------------------------------------------------------------------
    def _tenant(self, tx: Tx, name: str, lock: bool = False) -> TenantRow:
        tenant = tx.tenant(name, lock=lock)
        if tenant is None:
            raise NotFound(f"no tenant named {name}", hint="see `gcloudctl request list`")
        return tenant

    def _pending(self, tx: Tx, request_id: int, step: Step) -> tuple[RequestRow, TenantRow]:
        row = tx.version(request_id, lock=True)
        if row is None:
            raise NotFound(f"no request version with id {request_id}", hint="see `gcloudctl request list`")
        next_version_state(VersionState(row.state), step)  # raises if already decided
        return row, self._tenant(tx, row.tenant, lock=True)

    def _identical_open_version(self, tx: Tx, tenant: TenantRow | None, digest: str) -> RequestRow | None:
        if tenant is None or Phase(tenant.phase) in FINISHED:
            return None
        latest = tx.version_of(tenant.name, tenant.latest_generation)
        if latest and latest.digest == digest and latest.state in (VersionState.PENDING, VersionState.APPROVED):
            return latest
        return None

    def _approved_request(self, tx: Tx, tenant: TenantRow | None) -> TenantRequest | None:
        if tenant is None or tenant.generation is None or Phase(tenant.phase) in FINISHED:
            return None
        row = tx.version_of(tenant.name, tenant.generation)
        return parse_stored(row.raw_yaml) if row else None

    def _supersede_pending(self, tx: Tx, tenant: str, now: datetime) -> None:
        for row in tx.versions(tenant, VersionState.PENDING.value):
            row.state = next_version_state(VersionState.PENDING, Step.SUBMIT).value
            row.decided_at = now

    def _activate(self, tx: Tx, row: RequestRow, tenant: TenantRow, now: datetime) -> None:
        """The version got its last approval: it becomes the tenant's desired generation."""
        request = parse_stored(row.raw_yaml)
        row.state = next_version_state(VersionState(row.state), Step.APPROVE).value
        row.decided_at = now
        tenant.phase = next_phase(Phase(tenant.phase), Step.APPROVE).value
        tenant.generation = row.generation
        tenant.drift_policy = request.spec.driftPolicy if request else "enforce"
        tenant.expires_at = request.spec.expiresAt if request else None
        tenant.next_reconcile_at, tenant.failures, tenant.blocked_generation = now, 0, None
        tenant.updated_at = now

    def _version_view(self, tx: Tx, row: RequestRow, brief: bool = False) -> dict[str, Any]:
        view = {"id": row.id, "tenant": row.tenant, "generation": row.generation, "state": row.state,
                "agency": row.agency, "requester": row.requester, "submittedBy": row.submitted_by,
                "submittedAt": iso(row.submitted_at), "digest": row.digest,
                "approvalsRequired": row.approvals_required}
        decisions = tx.decisions(row.id)
        view["approvals"] = sum(1 for d in decisions if d.decision == "approve")
        if not brief:
            view["approvalReasons"] = json.loads(row.approval_reasons)
            view["decisions"] = [{"actor": d.actor, "decision": d.decision, "reason": d.reason, "at": iso(d.at)}
                                 for d in decisions]
        return view


def _new_tenant(request: TenantRequest, now: datetime) -> TenantRow:
    return TenantRow(name=request.metadata.name, agency=request.metadata.agency, phase=Phase.PENDING_APPROVAL.value,
                     latest_generation=0, generation=None, observed_generation=None, drift_policy="enforce",
                     expires_at=None, conditions="[]", next_reconcile_at=None, failures=0, updated_at=now)


def _restart(tenant: TenantRow) -> None:
    """A finished tenant (deleted, expired, rejected) is submitted afresh: forget its old life."""
    tenant.generation = tenant.observed_generation = tenant.blocked_generation = None
    tenant.conditions, tenant.failures, tenant.last_error, tenant.next_reconcile_at = "[]", 0, None, None


def status_view(tx: Tx, tenant: TenantRow, with_events: bool = False) -> dict[str, Any]:
    lease = tx.lease(tenant.name)
    view = {
        "tenant": tenant.name, "agency": tenant.agency, "phase": tenant.phase,
        "generation": tenant.generation, "observedGeneration": tenant.observed_generation,
        "latestGeneration": tenant.latest_generation, "driftPolicy": tenant.drift_policy,
        "expiresAt": iso(tenant.expires_at) if tenant.expires_at else None,
        "conditions": [Condition.from_dict(c).to_dict() for c in json.loads(tenant.conditions)],
        "lastError": tenant.last_error,
        "nextReconcileAt": iso(tenant.next_reconcile_at) if tenant.next_reconcile_at else None,
        "lease": {"holder": lease.holder, "expiresAt": iso(lease.expires_at) if lease.expires_at else None}
        if lease and lease.holder else None,
    }
    if with_events:
        view["events"] = [{"at": iso(e.at), "type": e.type, "reason": e.reason, "message": e.message}
                          for e in tx.events(tenant.name)]
    return view
