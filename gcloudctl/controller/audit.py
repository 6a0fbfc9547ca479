"""Stage: controller (audit). The hash chain an inspector can verify, and secret masking.

Each record's hash is sha256(previous hash + canonical JSON of the record), the first record's
previous hash is 64 zeros. `store.Store.append_audit` writes records through `seal`; `verify`
walks the stored rows and reports every break: an edited field (hash mismatch), a deleted or
inserted row (sequence gap, previous-hash mismatch) and a truncated tail (head mismatch).
Everything that enters a record passes `mask` first, so no secret is ever stored.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from gcloudctl.logs import MASK, mask_secrets

GENESIS = "0" * 64

_SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd|phrase)?|secret|token|private[_-]?key|api[_-]?key|credential|auth|cookie|session[_-]?key)")


class AuditAction(enum.StrEnum):
    SUBMIT = "request.submit"
    APPROVE = "request.approve"
    REJECT = "request.reject"
    DELETE = "request.delete"
    APPLY = "tenant.apply"  # a change applied for a new generation
    DRIFT_REPAIR = "tenant.drift-repair"  # a change applied to undo drift
    DRIFT_REPORT = "tenant.drift-report"  # drift found and left in place (driftPolicy: report)
    DESTROY = "tenant.destroy"  # a change applied while deleting or expiring
    PHASE = "tenant.phase"  # the tenant's phase changed
    TAMPERED = "tenant.tampered"  # the approved version failed its seal check: nothing applied
    HARDEN = "tenant.harden"  # servers hardened and verified, or hardening that failed (per server)
    HARDEN_REQUEST = "tenant.harden-request"  # someone asked for the tenant's servers to be hardened again


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (its value is masked, or sealed in `userData.vars`)."""
    return bool(_SECRET_KEY.search(str(key)))


def mask(value: Any) -> Any:
    """Mask secrets structurally (by key) and textually (`gcloudctl.logs.mask_secrets`)."""
    if isinstance(value, dict):
        # a boolean is never a secret (keeps e.g. `authenticated: false` readable)
        return {str(k): (MASK if is_secret_key(k) and v not in (None, "") and not isinstance(v, bool) else mask(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return mask_secrets(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask_secrets(str(value))


def canonical(record: dict[str, Any]) -> str:
    """One JSON text per record: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(previous: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(record)).encode("utf-8")).hexdigest()


def body(seq: int, at: str, actor: str, action: str, tenant: str | None, data: dict[str, Any]) -> dict[str, Any]:
    """The hashed fields of a record (everything but the hashes themselves)."""
    return {"seq": seq, "at": at, "actor": actor, "action": action, "tenant": tenant, "data": data}


@dataclass(frozen=True)
class Sealed:
    seq: int
    at: str
    actor: str
    action: str
    tenant: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {**body(self.seq, self.at, self.actor, self.action, self.tenant, self.data),
                "prevHash": self.prev_hash, "hash": self.hash}


def seal(previous_hash: str, seq: int, at: str, actor: str, action: str, tenant: str | None,
         data: dict[str, Any]) -> Sealed:
    """A new record after `previous_hash`, masked and hashed."""
    clean = mask(data)
    digest = chain_hash(previous_hash, body(seq, at, actor, action, tenant, clean))
    return Sealed(seq, at, actor, action, tenant, clean, previous_hash, digest)


@dataclass(frozen=True)
class Break:
    seq: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "message": self.message}


def verify(records: Iterable[Sealed], head: tuple[int, str] | None,
           start: tuple[int, str] = (0, GENESIS)) -> list[Break]:
    """Every break in the chain, in order. `head` is the (seq, hash) the store says is last.
    `start` is a (seq, hash) already verified: `records` are the ones after it (incremental)."""
    breaks: list[Break] = []
    expected_prev, expected_seq, last = start[1], start[0] + 1, None
    for record in records:
        if record.seq != expected_seq:
            breaks.append(Break(record.seq, f"sequence gap: expected {expected_seq}, found {record.seq} "
                                            "(a record was deleted or inserted)"))
        if record.prev_hash != expected_prev:
            breaks.append(Break(record.seq, "previous-hash mismatch: the record before it was changed, "
                                            "deleted or this one inserted"))
        recomputed = chain_hash(record.prev_hash,
                                body(record.seq, record.at, record.actor, record.action, record.tenant, record.data))
        if recomputed != record.hash:
            breaks.append(Break(record.seq, "hash mismatch: the record's content was changed"))
        expected_prev, expected_seq, last = record.hash, record.seq + 1, record
    if head is not None:
        head_seq, head_hash = head
        last_pair = (last.seq, last.hash) if last else start
        if last_pair != (head_seq, head_hash):
            found = f"{last.seq}" if last else "no records"
            breaks.append(Break(head_seq, f"head mismatch: the chain should end at record {head_seq}, "
                                          f"found {found} (records were removed from the end)"))
    elif last is not None:
        breaks.append(Break(None, "the chain head is missing"))
    return breaks
