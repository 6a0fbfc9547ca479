"""Stage: resources. The shared vocabulary of desired and observed state.

A `Resource` is plain data: an `Address` (kind + logical name), comparable attributes, and
the addresses it must come after. Attribute values that point at other resources are
`Ref`s (addresses); drivers resolve them to cloud ids. Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping


class Kind(str, enum.Enum):
    PROJECT = "project"
    QUOTA = "quota"
    MEMBERSHIP = "membership"
    NETWORK = "network"
    SUBNET = "subnet"
    ROUTER = "router"
    ROUTER_INTERFACE = "router_interface"
    SECURITY_GROUP = "security_group"
    SECURITY_GROUP_RULE = "security_group_rule"
    KEYPAIR = "keypair"
    SERVER_GROUP = "server_group"
    PORT = "port"
    SERVER = "server"
    FLOATING_IP = "floating_ip"
    VOLUME = "volume"
    VOLUME_ATTACHMENT = "volume_attachment"


# Creation order of kinds (a topological order of the kinds' dependencies); deletes go in reverse.
KIND_ORDER: tuple[Kind, ...] = (
    Kind.PROJECT, Kind.MEMBERSHIP, Kind.QUOTA, Kind.KEYPAIR, Kind.SERVER_GROUP,
    Kind.NETWORK, Kind.SUBNET, Kind.ROUTER, Kind.ROUTER_INTERFACE,
    Kind.SECURITY_GROUP, Kind.SECURITY_GROUP_RULE, Kind.PORT, Kind.VOLUME, Kind.SERVER, Kind.VOLUME_ATTACHMENT,
    Kind.FLOATING_IP,
)
KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


@dataclass(frozen=True, order=True)
class Address:
    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}.{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Address":
        kind, _, name = text.partition(".")
        return cls(Kind(kind), name)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (KIND_RANK[self.kind], self.name)


@dataclass(frozen=True)
class Ref:
    """A reference from one resource's attributes to another resource."""

    address: Address

    def __str__(self) -> str:
        return f"<{self.address}>"


@dataclass(frozen=True)
class Resource:
    address: Address
    attrs: Mapping[str, Any]
    depends_on: tuple[Address, ...] = ()
    # observed-only facts
    id: str | None = None
    status: str | None = None  # e.g. ACTIVE, ERROR, DOWN (volumes: the driver's neutral ACTIVE/BUILD/ERROR/DELETING)
    managed: bool = True  # False: found in the tenant without our ownership tag
    extra: Mapping[str, Any] = field(default_factory=dict)  # informative, never diffed

    @property
    def name(self) -> str:
        return self.attrs.get("name", self.address.name)


# Pseudo-field of a server change: its status -> ACTIVE (a stopped server is started, not replaced).
POWER = "power"

# Attributes that are part of what we ask the cloud for but that the cloud cannot change
# without replacing the resource (create-only).
REPLACE_ON_CHANGE: dict[Kind, frozenset[str]] = {
    Kind.SUBNET: frozenset({"cidr", "network", "ip_version"}),
    Kind.SECURITY_GROUP_RULE: frozenset({"direction", "ethertype", "protocol", "port_min", "port_max",
                                         "remote_ip_prefix", "remote_group", "security_group"}),
    Kind.KEYPAIR: frozenset({"public_key"}),
    Kind.SERVER_GROUP: frozenset({"policy"}),
    Kind.PORT: frozenset({"network"}),
    Kind.SERVER: frozenset({"flavor", "image", "key_name", "ports", "server_group", "user_data_digest", "boot_volume"}),
    Kind.VOLUME: frozenset({"type"}),  # a volume's size only grows in place (extend); the planner refuses a shrink
    Kind.VOLUME_ATTACHMENT: frozenset({"volume", "server"}),
    Kind.FLOATING_IP: frozenset({"external_network"}),
    Kind.MEMBERSHIP: frozenset({"user", "role", "domain"}),
    Kind.PROJECT: frozenset({"domain"}),  # Keystone cannot move a project (observe refuses one elsewhere)
    Kind.ROUTER_INTERFACE: frozenset({"router", "subnet"}),
}

# Attributes whose values must never be shown (plans, logs, audit).
SECRET_ATTRS = frozenset({"user_data", "password", "admin_pass", "private_key", "token"})


@dataclass(frozen=True)
class DesiredState:
    tenant: str
    resources: Mapping[Address, Resource]
    request_digest: str = ""

    def __iter__(self):
        return iter(self.resources.values())


@dataclass(frozen=True)
class ObservedState:
    tenant: str
    resources: Mapping[Address, Resource]
    unmanaged: tuple[Resource, ...] = ()  # in the tenant but not ours: drift to remove
    project_id: str | None = None
    # ids of things outside the tenant the plan needs (external networks by name, ...)
    lookups: Mapping[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A digest of everything observed, used to refuse a saved plan once the world moved."""
        items = []
        for res in sorted(list(self.resources.values()) + list(self.unmanaged), key=lambda r: (str(r.address), r.id or "")):
            items.append([str(res.address), res.id, res.status == "ERROR", canonical(res.attrs)])
        return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def canonical(value: Any) -> Any:
    """Plain, JSON-able, order-stable form of an attribute value."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(canonical(v) for v in value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def mask(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in SECRET_ATTRS else canonical(v)) for k, v in attrs.items()}
