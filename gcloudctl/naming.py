"""Stage: naming. Every OpenStack name and ownership tag gcloudctl writes comes from here.

Names are deterministic (the same request always yields the same names), so a create that
was interrupted is found and adopted on the next run instead of being duplicated. Tags carry
ownership: the tenant, the request digest and the logical address. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime, timezone

MANAGED_TAG = "gcloudctl"
TENANT_TAG_PREFIX = "gc-tenant="
ADDRESS_TAG_PREFIX = "gc-addr="
AGENCY_TAG_PREFIX = "gc-agency="
LEVEL_TAG_PREFIX = "gc-level="
EXPIRES_TAG_PREFIX = "gc-expires="  # a CI stack's expiresAt, in UTC: `get tenants` and `reap` read it
_EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Nova server metadata keys (servers have metadata from the first API version on).
META_TENANT = "gc-tenant"
META_ADDRESS = "gc-addr"
META_ROLE = "gc-role"
META_ZONE = "gc-zone"
META_USERDATA_DIGEST = "gc-userdata"
META_IMAGE = "gc-image"
META_BOOT_VOLUME = "gc-bootvol"  # "<type>:<GiB>" of a server booted from a volume
META_MOUNT = "gc-mount"  # a volume's mount point in the guest (Cinder volume metadata)


def project_name(tenant: str) -> str:
    return tenant


def server_name(role: str, index: int) -> str:
    """The i-th (1-based) server of a `servers[]` entry: web-1, web-2, ..."""
    return f"{role}-{index}"


def port_name(server: str, network: str) -> str:
    return f"{server}-{network}"


def volume_name(server: str, volume: str) -> str:
    """The `volume` data volume of server copy `server` (db-1 + data -> db-1-data)."""
    return f"{server}-{volume}"


def volume_metadata(tenant: str, address: str, mount_point: str | None) -> dict[str, str]:
    """Ownership of a Cinder volume (volumes have metadata, not tags), set in the create call."""
    meta = {META_TENANT: tenant, META_ADDRESS: address}
    if mount_point:
        meta[META_MOUNT] = mount_point
    return meta


def boot_volume_text(volume_type: str, size_gib: int) -> str:
    return f"{volume_type}:{size_gib}"


def keypair_name(agency: str, tenant: str, keypair: str) -> str:
    """Nova keypairs belong to a user (gcloudctl's service user), not a project: prefix them with
    the agency and the tenant, as two agencies may each have a tenant of the same name. "_" occurs
    in neither an agency code nor a tenant name, so one tenant's prefix never matches another's
    keypairs (and Nova before microversion 2.92 accepts only [_- a-zA-Z0-9] in keypair names)."""
    return f"{keypair_prefix(agency, tenant)}{keypair}"


def keypair_prefix(agency: str, tenant: str) -> str:
    return f"gc_{agency}_{tenant}_"


def ownership_tags(tenant: str, address: str) -> list[str]:
    return [MANAGED_TAG, TENANT_TAG_PREFIX + tenant, ADDRESS_TAG_PREFIX + address]


def project_tags(tenant: str, agency: str, level: int, expires_at: datetime | None = None) -> list[str]:
    tags = [MANAGED_TAG, TENANT_TAG_PREFIX + tenant, AGENCY_TAG_PREFIX + agency, LEVEL_TAG_PREFIX + str(level)]
    if expires_at is not None:
        tags.append(expiry_tag(expires_at))
    return tags


def expiry_tag(expires_at: datetime) -> str:
    """`gc-expires=2026-12-31T00:00:00Z`: the moment in UTC, to the second (Keystone tags may hold
    neither "/" nor ","; the form sorts as time does)."""
    return EXPIRES_TAG_PREFIX + expires_at.astimezone(timezone.utc).strftime(_EXPIRES_FORMAT)


def expiry_from_tags(tags: list[str] | None) -> datetime | None:
    """The expiry a project's `gc-expires=` tag records (UTC; None if absent or unreadable)."""
    for tag in tags or ():
        if tag.startswith(EXPIRES_TAG_PREFIX):
            try:
                return datetime.strptime(tag[len(EXPIRES_TAG_PREFIX):], _EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
            except ValueError:
                return None
    return None


def address_from_tags(tags: list[str] | None) -> str | None:
    for tag in tags or ():
        if tag.startswith(ADDRESS_TAG_PREFIX):
            return tag[len(ADDRESS_TAG_PREFIX):]
    return None


def tenant_from_tags(tags: list[str] | None) -> str | None:
    for tag in tags or ():
        if tag.startswith(TENANT_TAG_PREFIX):
            return tag[len(TENANT_TAG_PREFIX):]
    return None


def agency_from_tags(tags: list[str] | None) -> str | None:
    for tag in tags or ():
        if tag.startswith(AGENCY_TAG_PREFIX):
            return tag[len(AGENCY_TAG_PREFIX):]
    return None


def level_from_tags(tags: list[str] | None) -> int | None:
    """The classification level a project's `gc-level=N` tag records (None if absent or not a number)."""
    for tag in tags or ():
        if tag.startswith(LEVEL_TAG_PREFIX) and tag[len(LEVEL_TAG_PREFIX):].isdigit():
            return int(tag[len(LEVEL_TAG_PREFIX):])
    return None


def server_metadata(tenant: str, address: str, role: str, zone: str, image: str,
                    userdata_digest: str | None, boot_volume: str | None = None) -> dict[str, str]:
    meta = {META_TENANT: tenant, META_ADDRESS: address, META_ROLE: role, META_ZONE: zone, META_IMAGE: image}
    if userdata_digest:
        meta[META_USERDATA_DIGEST] = userdata_digest
    if boot_volume:
        meta[META_BOOT_VOLUME] = boot_volume
    return meta
