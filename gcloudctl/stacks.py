"""Stage: pre-flight and selection for CI stacks (tenants with `spec.expiresAt`).

Pure: takes values and a moment `now` (the caller's clock), returns values or raises `Refused`.
Callers: the CLI's plan/apply path (`gcloudctl.cli.tenants._plan_for`: an expired request is
refused before anything is observed or written, exit 4), `gcloudctl reap` and `get tenants`
(`gcloudctl.cli.stacks`). It must not read the clock, the environment or a cloud itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from gcloudctl import naming
from gcloudctl.errors import Refused
from gcloudctl.i18n import gettext as _
from gcloudctl.model.request import TenantRequest


def iso_utc(moment: datetime) -> str:
    """`2026-12-31T00:00:00Z`: how outputs write a moment."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


def expiry_preflight(request: TenantRequest, now: datetime) -> None:
    """Refuse (exit 4) a request whose `spec.expiresAt` has passed: applying it would create a
    stack only to have it reaped. Destroying it is still allowed (`destroy`, `reap`)."""
    expires = request.spec.expiresAt
    if is_expired(expires, now):
        raise Refused(_("the request {tenant} expired at {expires} (now {now}): it is not applied",
                        tenant=request.name, expires=iso_utc(expires), now=iso_utc(now)),
                      hint=_("move spec.expiresAt into the future, or remove the stack with "
                             "`gcloudctl destroy` / `gcloudctl reap`"))


@dataclass(frozen=True)
class Stack:
    """A tenant that carries an expiry: what `reap` looks at."""

    tenant: str
    region: str
    agency: str | None
    expires_at: datetime


def expiry_of(row: dict) -> datetime | None:
    """The expiry of a tenant row: its `expires_at` when the driver gives one, else its tags."""
    value = row.get("expires_at")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return naming.expiry_from_tags([naming.EXPIRES_TAG_PREFIX + value])
    return naming.expiry_from_tags(row.get("tags"))


def expired_stacks(rows: list[dict], now: datetime, *, agency: str | None = None) -> list[Stack]:
    """The rows (each with `tenant`, `region`, `agency`, and an expiry `expiry_of` can read) whose
    expiry has passed, of `agency` when given, oldest first. Only rows proven the agency's
    (`owned`) are candidates: a project whose tags merely claim an agency is never reaped."""
    found = []
    for row in rows:
        expires = expiry_of(row)
        if not is_expired(expires, now) or not row.get("owned", False):
            continue
        if agency is not None and row.get("agency") != agency:
            continue
        found.append(Stack(tenant=row["tenant"], region=row["region"], agency=row.get("agency"), expires_at=expires))
    return sorted(found, key=lambda s: (s.expires_at, s.region, s.tenant))
