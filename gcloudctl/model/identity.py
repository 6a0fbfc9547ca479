"""Stage: model. Who is calling: the authenticated caller as a value.

Every use case that acts for a person (submit, approve, reject, delete, read status or audit)
takes a `Caller`. The edges build it: the request API from a Keystone token it validated
(`gcloudctl.drivers.keystone`), the CLI's break-glass direct mode from the operating-system
user (`authenticated=False`). The use cases decide what the caller may do; the edges never do.
Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class GcloudRole(enum.StrEnum):
    """Keystone roles that mean something to gcloudctl.

    Requesters and approvers hold theirs on their agency's Keystone domain; operators hold
    `gcloud-operator` (or Keystone `admin`) on any scope."""

    REQUESTER = "gcloud-requester"
    APPROVER = "gcloud-approver"
    OPERATOR = "gcloud-operator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    """The identity behind one call.

    `agency` is the agency code whose Keystone domain holds the user (None for platform
    operators outside every agency domain); `roles` are the roles the token carries for that
    agency's scope (plus operator/admin from any scope). `authenticated` is False only on the
    break-glass direct-database path, where the name is the operating-system user.
    """

    user_id: str
    user_name: str
    domain_id: str | None = None
    domain_name: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    agency: str | None = None
    authenticated: bool = True

    @property
    def is_operator(self) -> bool:
        return bool({GcloudRole.OPERATOR, GcloudRole.ADMIN} & self.roles)

    @property
    def is_requester(self) -> bool:
        return GcloudRole.REQUESTER in self.roles

    @property
    def is_approver(self) -> bool:
        return GcloudRole.APPROVER in self.roles

    @property
    def actor(self) -> str:
        """How the caller is named in events and the audit trail: `name@domain`, or
        `os:name` for an unauthenticated (break-glass) caller."""
        if not self.authenticated:
            return f"os:{self.user_name}"
        return f"{self.user_name}@{self.domain_name}" if self.domain_name else self.user_name

    def audit_fields(self) -> dict[str, Any]:
        """What an audit record keeps about the caller (never a token)."""
        return {"userId": self.user_id, "user": self.user_name, "domain": self.domain_name,
                "agency": self.agency, "roles": sorted(self.roles), "authenticated": self.authenticated}

    def sees_agency(self, agency: str) -> bool:
        """Operators see every agency; everyone else only their own."""
        return self.is_operator or (self.agency is not None and self.agency == agency)
