"""Stage: controller (status). Conditions Ready / Synced / Drifted / Hardened, Kubernetes style.

Called by the reconciler and `service` to compute a tenant's new condition list. A condition's
`lastTransitionTime` changes only when its status changes. Pure: the time is passed in.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone


class ConditionType(enum.StrEnum):
    READY = "Ready"
    SYNCED = "Synced"
    DRIFTED = "Drifted"
    HARDENED = "Hardened"  # the servers that ask for hardening are hardened and verified


class Status(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: Status
    reason: str
    message: str
    observedGeneration: int | None
    lastTransitionTime: str  # ISO 8601, UTC

    def to_dict(self) -> dict:
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Condition":
        return cls(ConditionType(data["type"]), Status(data["status"]), data.get("reason", ""),
                   data.get("message", ""), data.get("observedGeneration"), data["lastTransitionTime"])


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Return `conditions` with `new` in place of the same type, keeping the transition time
    when the status did not change."""
    result, found = [], False
    for old in conditions:
        if old.type != new.type:
            result.append(old)
            continue
        found = True
        result.append(new if old.status != new.status else replace(new, lastTransitionTime=old.lastTransitionTime))
    if not found:
        result.append(new)
    order = list(ConditionType)
    return sorted(result, key=lambda c: order.index(c.type))


def condition(kind: ConditionType, ok: bool | None, reason: str, message: str,
              generation: int | None, now: datetime) -> Condition:
    status = Status.UNKNOWN if ok is None else (Status.TRUE if ok else Status.FALSE)
    return Condition(kind, status, reason, message, generation, iso(now))


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a Z; `moment` must be timezone-aware."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
