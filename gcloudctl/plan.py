"""Stage: plan (the value). A Plan is a sorted, serialisable list of Changes.

Produced by `planner.plan`, consumed by `executor.apply` and rendered by the CLI. Secrets are
masked in every serialised form; a saved plan holds digests of the request and of the
observed state so that it is refused once the world has moved. Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from gcloudctl.i18n import gettext as _
from gcloudctl.resources import KIND_RANK, Address, Kind, ObservedState, Resource, canonical, mask

PLAN_FORMAT = "gcloudctl.plan/v1"


class Action(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-"}


@dataclass(frozen=True)
class Change:
    action: Action
    address: Address
    before: Resource | None  # observed (None for create)
    after: Resource | None  # desired (None for delete)
    changed: tuple[str, ...] = ()
    reason: str = ""

    @property
    def drift(self) -> bool:
        return self.reason.startswith("drift")

    @property
    def loses_data(self) -> bool:
        """The change destroys stored data: a volume deleted or replaced, or a server booted from
        a volume (its boot volume goes with it) deleted or replaced."""
        if self.action not in (Action.DELETE, Action.REPLACE) or self.before is None:
            return False
        kind = self.address.kind
        return kind is Kind.VOLUME or (kind is Kind.SERVER and bool(self.before.attrs.get("boot_volume")))

    def sort_key(self) -> tuple:
        rank = KIND_RANK[self.address.kind]
        return (1, -rank, self.address.name) if self.action is Action.DELETE else (0, rank, self.address.name)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action.value, "address": str(self.address), "reason": self.reason}
        if self.changed:
            data["changed"] = list(self.changed)
        if self.before is not None:
            data["id"] = self.before.id
            data["before"] = mask({k: self.before.attrs.get(k) for k in (self.changed or self.before.attrs)})
        if self.after is not None:
            data["after"] = mask({k: self.after.attrs.get(k) for k in (self.changed or self.after.attrs)})
        return data


@dataclass(frozen=True)
class Plan:
    tenant: str
    changes: tuple[Change, ...]
    request_digest: str = ""
    observed_fingerprint: str = ""
    destroy: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # what the plan was made from: apply needs the ids of resources it does not change
    observed: ObservedState | None = field(default=None, compare=False, repr=False)

    def is_empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return counts

    def drift(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.drift)

    def data_loss(self) -> tuple[Change, ...]:
        """The changes that destroy stored data (`Change.loses_data`): apply refuses them unless
        the caller allows data loss (`usecases.apply`)."""
        return tuple(c for c in self.changes if c.loses_data)

    def summary(self) -> str:
        c = self.counts()
        if self.is_empty():
            return _("No changes. The tenant matches the request.")
        return _("Plan: {create} to create, {update} to update, {replace} to replace, {delete} to delete.",
                 create=c["create"], update=c["update"], replace=c["replace"], delete=c["delete"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "tenant": self.tenant,
            "destroy": self.destroy,
            "request_digest": self.request_digest,
            "observed_fingerprint": self.observed_fingerprint,
            "summary": self.counts(),
            "warnings": list(self.warnings),
            "changes": [c.to_dict() for c in self.changes],
        }


def render_text(plan: Plan) -> str:
    """terraform-plan-like text; secrets masked."""
    lines = []
    for change in plan.changes:
        head = f"  {SYMBOL[change.action]:>3} {change.address}"
        if change.before is not None and change.before.id:
            head += f"  (id {change.before.id})"
        if change.reason:
            head += f"  # {change.reason}"
        lines.append(head)
        if change.action in (Action.UPDATE, Action.REPLACE) and change.before is not None and change.after is not None:
            for key in change.changed:
                old = mask({key: change.before.attrs.get(key)})[key]
                new = mask({key: change.after.attrs.get(key)})[key]
                lines.append(f"        {key}: {_short(old)} -> {_short(new)}")
        elif change.action is Action.CREATE and change.after is not None:
            shown = {k: v for k, v in mask(change.after.attrs).items() if k not in ("tags", "metadata") and v not in (None, [], "")}
            if shown:
                lines.append("        " + ", ".join(f"{k}={_short(v)}" for k, v in shown.items()))
    for warning in plan.warnings:
        lines.append(f"  ! {warning}")
    lines.append(plan.summary())
    return "\n".join(lines)


def _short(value: Any, limit: int = 80) -> str:
    text = str(canonical(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
