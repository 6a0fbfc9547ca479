"""Stage: ownership. Who owns a tenant, and the one rule that proves a project is theirs.

A tenant is known by its owner: the tenant name, the agency and the agency's Keystone domain
(`Owner`). A project is the tenant's only if it lives in the agency's domain AND carries the
managed-by tag, `gc-tenant=<tenant>` and `gc-agency=<agency>` (`refusal` says why not). Names
are unique per domain in Keystone, so two agencies may each have a tenant `portal` side by
side; a project named like the tenant in another domain belongs to someone else.

Callers: `gcloudctl.pipeline` builds owners (from a request, or by finding a tenant by name);
`gcloudctl.drivers.openstack` applies the proof to what it observes, before anything is read
further or written. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from gcloudctl import naming


@dataclass(frozen=True)
class Owner:
    """The tenant as its owner names it: tenant name, agency code, Keystone domain name."""

    tenant: str
    agency: str
    domain: str

    def __str__(self) -> str:
        return f"{self.tenant} (agency {self.agency}, domain {self.domain})"


@dataclass(frozen=True)
class Claim:
    """What a project's tags say about its owner (None: the tag is missing)."""

    managed: bool
    tenant: str | None
    agency: str | None

    @classmethod
    def of(cls, tags: list[str] | None) -> "Claim":
        tags = list(tags or [])
        return cls(managed=naming.MANAGED_TAG in tags, tenant=naming.tenant_from_tags(tags),
                   agency=naming.agency_from_tags(tags))

    def names(self, owner: Owner) -> bool:
        """The tags claim the project for exactly this owner's tenant and agency."""
        return self.managed and self.tenant == owner.tenant and self.agency == owner.agency

    def describe(self) -> str:
        parts = [naming.MANAGED_TAG if self.managed else f"no {naming.MANAGED_TAG!r} tag",
                 f"{naming.TENANT_TAG_PREFIX}{self.tenant}" if self.tenant else f"no {naming.TENANT_TAG_PREFIX} tag",
                 f"{naming.AGENCY_TAG_PREFIX}{self.agency}" if self.agency else f"no {naming.AGENCY_TAG_PREFIX} tag"]
        return ", ".join(parts)


def refusal(owner: Owner, *, project_name: str, project_domain: str, in_owner_domain: bool,
            tags: list[str] | None) -> str | None:
    """Why the project is NOT the owner's tenant (a message naming the owner found), or None
    when ownership is proven."""
    claim = Claim.of(tags)
    if in_owner_domain and claim.names(owner):
        return None
    found = f"project {project_name!r} in domain {project_domain!r} ({claim.describe()})"
    if not in_owner_domain:
        return (f"{found} claims tenant {owner.tenant!r} of agency {owner.agency} but is not in the agency's "
                f"domain {owner.domain!r}; it is not the tenant's")
    return f"{found} is not tenant {owner.tenant!r} of agency {owner.agency}: its tags do not prove it"


def claims(owner: Owner, tags: list[str] | None) -> bool:
    """The tags name this owner's tenant and agency (wherever the project lives)."""
    return Claim.of(tags).names(owner)
