"""Stage: controller (reconcile). Is the approved version still the text its approvers approved?

A request version is *sealed* at submit: its stored text (`raw_yaml`, secret vars already sealed
by `secrets`) has a sha256 `digest`, and the submit audit record holds the tenant, generation,
digest and how many approvals the rules asked for. Every approval is bound to (tenant,
generation, digest, rules version) in its decision row and in its own audit record, whose seq
the row keeps. Before applying anything the reconciler asks `problems`:

- the stored text hashes to the digest;
- the submit audit record exists and names this tenant, generation and digest;
- enough distinct approvers (by Keystone user id) have a decision row AND an approve audit
  record that agree on all of it — the number needed is the one the audit record says, not the
  row (a row edited to need fewer approvals does not help);
- the audit chain verifies (`ChainWitness`).

A tenant that is being deleted (and has not expired) needs the same of its approved deletion
version, so a phase set to `deleting` by hand destroys nothing.

`problems` is pure. `ChainWitness` remembers the last verified chain head (seq, hash) and on the
next call verifies only the records appended since — after checking the anchor record still
has its hash — so the chain costs O(new records) per pass, not O(all records) per tenant.
Called by `reconciler._read`; it reads through the `Tx` given and never writes.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Iterable

from gcloudctl.controller import audit
from gcloudctl.controller.audit import AuditAction, Sealed


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VersionFacts:
    request_id: int
    tenant: str
    generation: int
    digest: str
    raw_yaml: str
    audit_seq: int | None
    kind: str = "change"  # a deletion's filing record is `request.delete`, a change's `request.submit`


@dataclass(frozen=True)
class DecisionFacts:
    actor_id: str | None
    actor: str
    tenant: str | None
    generation: int | None
    digest: str | None
    rules_version: str | None
    audit_seq: int | None


def problems(version: VersionFacts, approvals: list[DecisionFacts], records: dict[int, Sealed],
             legacy: Iterable[Sealed] = (), successors: dict[int, str | None] | None = None) -> list[str]:
    """Why `version` must not be applied ([] when it may). `records` are the audit records by
    seq that the version and its approvals point at; `legacy` the tenant's submit/approve records,
    for versions stored before decisions kept their audit seq (migration 0002). `successors`
    maps each of those records' seq to the `prev_hash` of the record after it (the head hash for
    the last): a record only counts when its own hash holds and the chain still links to it, so
    a record edited after `ChainWitness` last passed over it is caught here, in O(1)."""
    found: list[str] = []
    if digest(version.raw_yaml) != version.digest:
        found.append("the stored request text does not hash to its digest (edited after submit)")
    if successors is not None:
        broken = sorted(r.seq for r in [*records.values(), *legacy] if not _intact(r, successors))
        if broken:
            found.append(f"audit record(s) {', '.join(map(str, broken))} were changed after they were written")
        records = {seq: r for seq, r in records.items() if seq not in broken}
        legacy = [r for r in legacy if r.seq not in broken]
    legacy = list(legacy)
    submit = records.get(version.audit_seq) if version.audit_seq else _legacy_submit(version, legacy)
    if submit is None or not _is_submit_of(submit, version):
        found.append("no submit audit record witnesses this tenant, generation and digest")
        return found
    needed = int(submit.data.get("approvalsRequired") or 1)
    witnessed = {a.actor_id or a.actor for a in approvals if _witnessed(a, version, records, legacy)}
    if len(witnessed) < needed:
        found.append(f"only {len(witnessed)} of {needed} approval(s) are bound to this digest and witnessed "
                     "by the audit trail")
    return found


def _intact(record: Sealed, successors: dict[int, str | None]) -> bool:
    body = audit.body(record.seq, record.at, record.actor, record.action, record.tenant, record.data)
    return audit.chain_hash(record.prev_hash, body) == record.hash and successors.get(record.seq) == record.hash


def _filing_action(version: VersionFacts) -> str:
    return AuditAction.DELETE if version.kind == "delete" else AuditAction.SUBMIT


def _is_submit_of(record: Sealed, version: VersionFacts) -> bool:
    data = record.data
    return (record.action == _filing_action(version) and record.tenant == version.tenant
            and data.get("generation") == version.generation and data.get("digest") == version.digest)


def _legacy_submit(version: VersionFacts, legacy: list[Sealed]) -> Sealed | None:
    return next((r for r in legacy if r.action == _filing_action(version)
                 and r.data.get("requestId") == version.request_id), None)


def _witnessed(decision: DecisionFacts, version: VersionFacts, records: dict[int, Sealed],
               legacy: list[Sealed]) -> bool:
    if decision.audit_seq is not None:
        if (decision.tenant, decision.generation, decision.digest) != (version.tenant, version.generation,
                                                                      version.digest):
            return False
        record = records.get(decision.audit_seq)
        candidates = [record] if record is not None else []
    else:  # a decision from before migration 0002: match its approve record by request and actor
        candidates = [r for r in legacy if r.actor == decision.actor]
    return any(_is_approval_of(r, decision, version) for r in candidates)


def _is_approval_of(record: Sealed, decision: DecisionFacts, version: VersionFacts) -> bool:
    data = record.data
    if (record.action != AuditAction.APPROVE or record.tenant != version.tenant
            or data.get("requestId") != version.request_id or data.get("generation") != version.generation
            or data.get("digest") != version.digest):
        return False
    if decision.actor_id is not None and data.get("approverId") != decision.actor_id:
        return False
    return decision.rules_version is None or data.get("rulesVersion") == decision.rules_version


class ChainWitness:
    """Verifies the audit chain, incrementally from the last head it verified (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._anchor: tuple[int, str] | None = None
        self.full_verifications = 0  # how often the whole chain was read (tests, metrics)
        self.records_verified = 0

    def breaks(self, tx) -> list[str]:
        """Problems with the chain as the store holds it now ([] when it verifies)."""
        with self._lock:
            head = tx.audit_head()
            if head is not None and head == self._anchor:
                return []
            start = self._anchor
            if start is not None:
                at = tx.audit_record(start[0])
                if at is None or at.hash != start[1] or (head is not None and head[0] < start[0]):
                    start = None  # the anchor was rewritten or the chain shrank: verify it all
            if start is None:
                self.full_verifications += 1
                records = list(tx.audit_records(upto=head[0] if head else None))
                found = audit.verify(records, head)
            else:
                records = list(tx.audit_records_after(start[0], upto=head[0] if head else None))
                found = audit.verify(records, head, start=start)
            self.records_verified += len(records)
            beyond = tx.audit_beyond_head()
            if beyond is not None:
                found.append(audit.Break(beyond, "a record was stored past the chain head (inserted behind "
                                                 "the chain's back)"))
            if found:
                self._anchor = None
                return [f"audit chain: record {b.seq}: {b.message}" for b in found]
            self._anchor = head
            return []
