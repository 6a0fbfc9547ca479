"""Stage: controller (intake). The use cases behind `gcloudctl request ...`, `status`, `audit ...`.

Each use case is one transaction: read the rows, ask `lifecycle` and `approvals` what may
happen, write the new rows, an event and an audit record. Every use case takes the `Caller`
(`gcloudctl.model.identity`) and decides here — never at the edges — what that caller may do:

- an agency's people see, submit, approve, delete and audit only their agency's requests and
  tenants; another agency's request or tenant is `NotFound`, exactly as if it did not exist;
  platform operators see all;
- submit: `gcloud-requester` of the request's `metadata.agency` (or an operator);
- approve / reject: `approvals.check_approver` (approver of the agency, by Keystone user id,
  never the submitter, distinct approvers) under the server's rules (`rules`, never the caller's);
  the rules' version is recorded on the version and on every decision;
- delete files a deletion *version* that needs approval like any change; the tenant moves to
  deleting only when it is approved.

Sealing: the stored text has secret `userData.vars` sealed (`secrets.VarSealer`); its sha256 is
the digest the submit audit record (which also holds the text) and every approval (decision
row and audit record) are bound to. The reconciler checks that binding (`seal`) before applying.

Called by the CLI's break-glass direct mode and by the request API (`gcloudctl.api`); the
reconciler never calls it. Dependencies are passed in (`compose.request_service` assembles
them): the store, the agency registry, the approval rules, a request loader, a clock, the var
sealer and the platform catalog (for the approval conditions' `approvals.Context`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import yaml
from pydantic import ValidationError

from gcloudctl.controller import approvals, audit, secrets
from gcloudctl.controller.audit import AuditAction
from gcloudctl.controller.conditions import Condition, iso
from gcloudctl.controller.lifecycle import (
    FINISHED, Phase, Step, VersionKind, VersionState, next_phase, next_version_state,
)
from gcloudctl.controller.seal import digest as sha256
from gcloudctl.controller.store import DecisionRow, RequestRow, Store, TenantRow, Tx
from gcloudctl.errors import Forbidden, InvalidInput, NotFound, Refused
from gcloudctl.model import TenantRequest
from gcloudctl.model.identity import Caller, GcloudRole

Clock = Callable[[], datetime]
RequestLoader = Callable[[str, str], TenantRequest]  # (text, filename) -> validated request


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_stored(raw_yaml: str) -> TenantRequest | None:
    """A stored version as a model, without re-running semantic validation (the catalog may have
    changed since it was approved). None when it no longer parses (or is a deletion)."""
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
    sealer: secrets.VarSealer | None = None  # None: a request with secret vars is refused (never stored in clear)
    catalog: Any = None  # the server's PlatformCatalog: what is "internal" to the approval conditions

    def __post_init__(self) -> None:
        self.rules_version = approvals.rules_version(self.rules)
        self.context = approvals.Context(catalog=self.catalog, agencies=self.agencies)

    # --- intake ---------------------------------------------------------------------------
    def submit(self, text: str, *, caller: Caller, filename: str = "<request>") -> dict[str, Any]:
        """Store a new version (generation) of a tenant's request, pending approval."""
        request = self.load_request(text, filename)
        name, agency, now = request.metadata.name, request.metadata.agency, self.clock()
        _may_submit(caller, agency, filename)
        stored, sealed_count = self._seal(text, name)
        digest = sha256(stored)
        with self.store.tx() as tx:
            tenant = tx.tenant(name, lock=True)
            if tenant is not None and tenant.agency != agency:
                raise _name_taken(caller, tenant)
            same = self._identical_open_version(tx, tenant, text)
            if same is not None:
                return self._version_view(tx, same) | {"unchanged": True}
            phase = next_phase(Phase(tenant.phase) if tenant else None, Step.SUBMIT)
            need = approvals.requirement(self.rules, request, self._approved_request(tx, tenant),
                                         context=self.context)
            self._supersede_pending(tx, name, now)
            generation = (tenant.latest_generation if tenant else 0) + 1
            row = tx.add_version(RequestRow(
                tenant=name, generation=generation, agency=agency, kind=VersionKind.CHANGE.value,
                requester=request.metadata.requester, submitted_by=caller.actor, submitted_by_id=caller.user_id,
                digest=digest, raw_yaml=stored, sealed_vars=sealed_count, rules_version=self.rules_version,
                state=VersionState.PENDING.value, approvals_required=need.approvals,
                approval_reasons=json.dumps(list(need.reasons)), submitted_at=now))
            if tenant is None:
                tenant = tx.add_tenant(_new_tenant(request, now))
            elif Phase(tenant.phase) in FINISHED:
                _restart(tenant)
            tenant.latest_generation, tenant.phase, tenant.updated_at = generation, phase.value, now
            tx.add_event(name, now, "Normal", "Submitted",
                         f"generation {generation} submitted by {caller.actor}; needs {need.approvals} approval(s)",
                         _who(caller))
            record = tx.append_audit(now, caller.actor, AuditAction.SUBMIT, name, {
                "requestId": row.id, "kind": row.kind, "generation": generation, "digest": digest,
                "submittedDigest": sha256(text), "agency": agency, "requester": row.requester,
                "approvalsRequired": need.approvals, "reasons": list(need.reasons),
                "rulesVersion": self.rules_version, "sealedVars": sealed_count, "yaml": stored,
                "caller": caller.audit_fields()})
            row.audit_seq = record.seq
            return self._version_view(tx, row)

    def approve(self, request_id: int, *, caller: Caller, reason: str) -> dict[str, Any]:
        now = self.clock()
        with self.store.tx() as tx:
            row, tenant = self._pending(tx, request_id, Step.APPROVE, caller)
            already = {d.actor_id or d.actor for d in tx.decisions(row.id) if d.decision == "approve"}
            approvals.check_approver(self.rules, caller=caller, agency_code=row.agency,
                                     submitted_by_id=row.submitted_by_id, already_ids=already)
            given = len(already) + 1
            self._decide(tx, row, caller, "approve", reason, now, AuditAction.APPROVE,
                         {"approvals": given, "approvalsRequired": row.approvals_required})
            if given < row.approvals_required:
                tx.add_event(row.tenant, now, "Normal", "Approval",
                             f"generation {row.generation}: {given} of {row.approvals_required} approvals "
                             f"({caller.actor})", _who(caller))
                return self._version_view(tx, row)
            if row.kind == VersionKind.DELETE:
                self._activate_deletion(tx, row, tenant, now, caller)
            else:
                self._activate(tx, row, tenant, now)
                tx.add_event(row.tenant, now, "Normal", "Approved",
                             f"generation {row.generation} approved ({caller.actor})", _who(caller))
            return self._version_view(tx, row)

    def reject(self, request_id: int, *, caller: Caller, reason: str) -> dict[str, Any]:
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason (--reason)")
        now = self.clock()
        with self.store.tx() as tx:
            row, tenant = self._pending(tx, request_id, Step.REJECT, caller)
            approvals.check_approver(self.rules, caller=caller, agency_code=row.agency,
                                     submitted_by_id=row.submitted_by_id, already_ids=set())
            self._decide(tx, row, caller, "reject", reason, now, AuditAction.REJECT, {})
            row.state = next_version_state(VersionState(row.state), Step.REJECT).value
            row.decided_at = now
            tenant.phase = next_phase(Phase(tenant.phase), Step.REJECT).value
            tenant.updated_at = now
            tx.add_event(row.tenant, now, "Warning", "Rejected",
                         f"generation {row.generation} ({row.kind}) rejected by {caller.actor}: {reason}", _who(caller))
            return self._version_view(tx, row)

    def delete(self, tenant_name: str, *, caller: Caller, reason: str = "") -> dict[str, Any]:
        """File the deletion of a tenant: a version of kind `delete`, pending approval like any
        change (the rules' escalations judge the tenant's approved request, compared with
        itself: one approver, two from classification level 3). The agency's requesters and
        approvers (and operators) may file it; having submitted some version gives no power."""
        now = self.clock()
        with self.store.tx() as tx:
            tenant = self._tenant(tx, tenant_name, caller, lock=True)
            if not (caller.is_operator or (caller.agency == tenant.agency
                                           and (caller.is_requester or caller.is_approver))):
                raise Forbidden(f"{caller.actor} may not ask for the deletion of {tenant_name}",
                                hint=f"a {GcloudRole.REQUESTER.value} or {GcloudRole.APPROVER.value} of agency "
                                     f"{tenant.agency} may")
            next_phase(Phase(tenant.phase), Step.REQUEST_DELETE)  # raises when gone or being deleted
            latest = tx.version_of(tenant.name, tenant.latest_generation)
            if latest is not None and latest.kind == VersionKind.DELETE and latest.state == VersionState.PENDING:
                return self._version_view(tx, latest) | {"unchanged": True}
            approved = tx.version_of(tenant.name, tenant.generation) if tenant.generation else None
            current = parse_stored(approved.raw_yaml) if approved else None
            need = (approvals.requirement(self.rules, current, current, context=self.context) if current
                    else approvals.Requirement(self.rules.spec.approvalsRequired))
            self._supersede_pending(tx, tenant.name, now)
            generation = tenant.latest_generation + 1
            text = _deletion_text(tenant, approved, reason)
            row = tx.add_version(RequestRow(
                tenant=tenant.name, generation=generation, agency=tenant.agency, kind=VersionKind.DELETE.value,
                requester=caller.user_name[:64], submitted_by=caller.actor, submitted_by_id=caller.user_id,
                digest=sha256(text), raw_yaml=text, sealed_vars=0, rules_version=self.rules_version,
                state=VersionState.PENDING.value, approvals_required=need.approvals,
                approval_reasons=json.dumps(list(need.reasons)), submitted_at=now))
            tenant.latest_generation, tenant.updated_at = generation, now
            tx.add_event(tenant.name, now, "Normal", "DeleteRequested",
                         f"deletion requested by {caller.actor} (generation {generation}, needs {need.approvals} "
                         f"approval(s)): {reason}", _who(caller))
            record = tx.append_audit(now, caller.actor, AuditAction.DELETE, tenant.name, {
                "requestId": row.id, "kind": row.kind, "generation": generation, "digest": row.digest,
                "approvalsRequired": need.approvals, "reasons": list(need.reasons), "reason": reason,
                "rulesVersion": self.rules_version, "caller": caller.audit_fields()})
            row.audit_seq = record.seq
            return self._version_view(tx, row)

    def harden_again(self, tenant_name: str, *, caller: Caller, reason: str,
                     servers: list[str] | None = None) -> dict[str, Any]:
        """Ask the controller to harden the tenant's servers again (all, or `servers`): their
        hardening record is forgotten and the tenant is due now. Operators and the agency's
        approvers may ask; recorded as an event and an audit record."""
        now = self.clock()
        with self.store.tx() as tx:
            tenant = self._tenant(tx, tenant_name, caller, lock=True)
            if not (caller.is_operator or (caller.agency == tenant.agency and caller.is_approver)):
                raise Forbidden(f"{caller.actor} may not ask for {tenant_name} to be hardened again",
                                hint=f"a {GcloudRole.APPROVER.value} of agency {tenant.agency} or an operator may")
            record = json.loads(tenant.hardening or "{}")
            names = sorted(record if servers is None else set(servers) & set(record))
            for name in names:
                record.pop(name, None)
            tenant.hardening = json.dumps(record, sort_keys=True)
            tenant.next_reconcile_at = tenant.updated_at = now
            text = (f"{caller.actor} asked for {'every server' if servers is None else ', '.join(sorted(servers))} "
                    f"to be hardened again: {reason}")
            tx.add_event(tenant.name, now, "Normal", "HardenRequested", text, _who(caller))
            tx.append_audit(now, caller.actor, AuditAction.HARDEN_REQUEST, tenant.name, {
                "servers": servers, "forgotten": names, "reason": reason, "caller": caller.audit_fields()})
            return status_view(tx, tenant)

    # --- reading --------------------------------------------------------------------------
    def list_versions(self, *, caller: Caller, tenant: str | None = None,
                      state: str | None = None) -> list[dict[str, Any]]:
        with self.store.tx() as tx:
            return [self._version_view(tx, row, brief=True) for row in tx.versions(tenant, state)
                    if caller.sees_agency(row.agency)]

    def show(self, request_id: int, *, caller: Caller) -> dict[str, Any]:
        with self.store.tx() as tx:
            row = self._version(tx, request_id, caller)
            return self._version_view(tx, row) | {"yaml": secrets.mask(row.raw_yaml)}

    def status(self, tenant: str, *, caller: Caller) -> dict[str, Any]:
        with self.store.tx() as tx:
            return status_view(tx, self._tenant(tx, tenant, caller), with_events=True)

    def audit_verify(self, *, caller: Caller, expect_head: str | None = None) -> dict[str, Any]:
        """The whole chain is verified for anyone (its integrity is one fact); what a record
        says is only exported to those who may see its tenant (`audit_export`)."""
        with self.store.tx() as tx:
            head = tx.audit_head()
            records = list(tx.audit_records(upto=head[0] if head else None))  # not what others appended since
            beyond = tx.audit_beyond_head()
        breaks = audit.verify(records, head)
        if beyond is not None:
            breaks.append(audit.Break(beyond, "a record was stored past the chain head (inserted behind the chain's back)"))
        if expect_head and (head is None or head[1] != expect_head) and not any(
                r.hash == expect_head for r in records):
            breaks.append(audit.Break(None, "the expected head hash is not in the chain (anchor mismatch)"))
        return {"ok": not breaks, "records": len(records), "head": {"seq": head[0], "hash": head[1]} if head else None,
                "breaks": [b.to_dict() for b in breaks]}

    def audit_export(self, *, caller: Caller, since: datetime | None = None,
                     tenant: str | None = None) -> list[dict[str, Any]]:
        """Audit records the caller may see: an agency's people get their agency's tenants'
        records only; operators get everything (records about no tenant too)."""
        with self.store.tx() as tx:
            if tenant is not None:
                self._tenant(tx, tenant, caller)
            visible = None if caller.is_operator else {t.name for t in tx.tenants() if caller.sees_agency(t.agency)}
            return [r.to_dict() for r in tx.audit_records(since)
                    if (tenant is None or r.tenant == tenant) and (visible is None or r.tenant in visible)]

    # --- helpers --------------------------------------------------------------------------
    def _tenant(self, tx: Tx, name: str, caller: Caller, lock: bool = False) -> TenantRow:
        tenant = tx.tenant(name, lock=lock)
        if tenant is None or not caller.sees_agency(tenant.agency):
            raise NotFound(f"no tenant named {name}", hint="see `gcloudctl request list`")
        return tenant

    def _version(self, tx: Tx, request_id: int, caller: Caller, lock: bool = False) -> RequestRow:
        row = tx.version(request_id, lock=lock)
        if row is None or not caller.sees_agency(row.agency):
            raise NotFound(f"no request version with id {request_id}", hint="see `gcloudctl request list`")
        return row

    def _pending(self, tx: Tx, request_id: int, step: Step, caller: Caller) -> tuple[RequestRow, TenantRow]:
        row = self._version(tx, request_id, caller, lock=True)
        next_version_state(VersionState(row.state), step)  # raises if already decided
        tenant = tx.tenant(row.tenant, lock=True)
        if tenant is None:
            raise NotFound(f"no tenant named {row.tenant}")
        return row, tenant

    def _decide(self, tx: Tx, row: RequestRow, caller: Caller, decision: str, reason: str, now: datetime,
                action: AuditAction, extra: dict[str, Any]) -> None:
        """One decision, bound to (tenant, generation, digest, rules version) in its row and in
        its audit record, whose seq the row keeps (the reconciler checks both)."""
        binding = {"tenant": row.tenant, "generation": row.generation, "digest": row.digest,
                   "rules_version": self.rules_version}
        decided = tx.add_decision(DecisionRow(request_id=row.id, actor=caller.actor, actor_id=caller.user_id,
                                              decision=decision, reason=reason, at=now, **binding))
        record = tx.append_audit(now, caller.actor, action, row.tenant, {
            "requestId": row.id, "kind": row.kind, "generation": row.generation, "digest": row.digest,
            "rulesVersion": self.rules_version, "approverId": caller.user_id, "reason": reason,
            "caller": caller.audit_fields(), **extra})
        decided.audit_seq = record.seq

    def _seal(self, text: str, tenant: str) -> tuple[str, int]:
        if self.sealer is not None:
            return self.sealer.seal(text, tenant)
        if secrets.has_secret_vars(text):
            raise Refused("the request has secret userData.vars and this server has no secrets key to seal them",
                          hint="platform ops: configure GCLOUDCTL_SECRETS_KEY (see docs/controller.md)")
        return text, 0

    def _identical_open_version(self, tx: Tx, tenant: TenantRow | None, text: str) -> RequestRow | None:
        if tenant is None or Phase(tenant.phase) in FINISHED:
            return None
        latest = tx.version_of(tenant.name, tenant.latest_generation)
        if (latest is None or latest.kind != VersionKind.CHANGE
                or latest.state not in (VersionState.PENDING, VersionState.APPROVED)):
            return None
        if not latest.sealed_vars:
            return latest if latest.digest == sha256(text) else None
        try:  # sealing is randomised: compare the submitted texts
            return latest if self.sealer and self.sealer.unseal(latest.raw_yaml, tenant.name) == text else None
        except secrets.SecretsKeyError:
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

    def _activate_deletion(self, tx: Tx, row: RequestRow, tenant: TenantRow, now: datetime, caller: Caller) -> None:
        """A deletion got its last approval: the tenant is destroyed (nothing to destroy when it
        never had an approved generation). Its desired generation stays the one to destroy."""
        row.state = next_version_state(VersionState(row.state), Step.APPROVE).value
        row.decided_at = now
        phase = next_phase(Phase(tenant.phase), Step.DELETE)
        tenant.phase, tenant.updated_at = phase.value, now
        tenant.next_reconcile_at = now if phase is Phase.DELETING else None
        tenant.blocked_generation, tenant.failures = None, 0
        tx.add_event(tenant.name, now, "Normal", "DeleteApproved",
                     f"deletion (generation {row.generation}) approved ({caller.actor}); tenant {phase.value}",
                     _who(caller))
        tx.append_audit(now, caller.actor, AuditAction.PHASE, tenant.name,
                        {"phase": phase.value, "deletion": row.generation, "requestId": row.id})

    def _version_view(self, tx: Tx, row: RequestRow, brief: bool = False) -> dict[str, Any]:
        view = {"id": row.id, "tenant": row.tenant, "generation": row.generation, "kind": row.kind,
                "state": row.state, "agency": row.agency, "requester": row.requester,
                "submittedBy": row.submitted_by, "submittedAt": iso(row.submitted_at), "digest": row.digest,
                "approvalsRequired": row.approvals_required, "rulesVersion": row.rules_version,
                "sealedVars": row.sealed_vars}
        decisions = tx.decisions(row.id)
        view["approvals"] = len({d.actor_id or d.actor for d in decisions if d.decision == "approve"})
        if not brief:
            view["approvalReasons"] = json.loads(row.approval_reasons)
            view["decisions"] = [{"actor": d.actor, "decision": d.decision, "reason": d.reason, "at": iso(d.at),
                                  "rulesVersion": d.rules_version} for d in decisions]
        return view


def _may_submit(caller: Caller, agency: str, filename: str) -> None:
    if caller.is_operator:
        return
    if caller.agency != agency:
        mine = f"agency {caller.agency}" if caller.agency else "no agency"
        raise Forbidden(f"{filename}: metadata.agency is {agency}, but {caller.actor} belongs to {mine}",
                        hint=f"you may submit requests of your own agency only (metadata.agency: {caller.agency})"
                        if caller.agency else "ask your agency's IT unit for the gcloud-requester role")
    if not caller.is_requester:
        raise Forbidden(f"{caller.actor} may not submit requests for agency {agency}",
                        hint=f"submitting needs the role {GcloudRole.REQUESTER.value} in the agency's domain")


def _name_taken(caller: Caller, tenant: TenantRow) -> Refused:
    if caller.sees_agency(tenant.agency):
        return Refused(f"tenant {tenant.name} belongs to agency {tenant.agency}",
                       hint="choose another metadata.name")
    return Refused(f"the tenant name {tenant.name} is not available", hint="choose another metadata.name")


def _who(caller: Caller) -> dict[str, Any]:
    """What an event records about the caller (the audit record keeps `audit_fields`)."""
    return {"actor": caller.actor, "userId": caller.user_id, "authenticated": caller.authenticated}


def _deletion_text(tenant: TenantRow, approved: RequestRow | None, reason: str) -> str:
    """The sealed text of a deletion version: which approved generation (and digest) it destroys."""
    return yaml.safe_dump({
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantDeletion",
        "metadata": {"name": tenant.name, "agency": tenant.agency},
        "spec": {"generation": approved.generation if approved else None,
                 "digest": approved.digest if approved else None, "reason": reason},
    }, sort_keys=False, allow_unicode=True)


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
