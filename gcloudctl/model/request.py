"""Stage: model. The TenantRequest document (v1), as frozen pydantic models.

Field names follow the published format (camelCase in YAML). Only checks that need no other
document live here (types, patterns, ranges, local consistency); references, catalog, agency
and policy checks are in `gcloudctl.validate`. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

API_VERSION = "gcloud.gov.vn/v1"

TenantName = Annotated[str, StringConstraints(pattern=r"^[a-z]([a-z0-9-]{1,38})[a-z0-9]$")]
LocalName = Annotated[str, StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$")]
AgencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,9}$")]
UserName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9._-]{0,62}$")]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=r"^[A-Za-z0-9._ -]*$")]
Role = Literal["member", "reader", "admin"]
Zone = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,15}$")]

_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\n\r]{0,200})?$"
)


def _refuse_number_as_address(value: Any, example: str) -> None:
    """Pydantic would read `true` as 0.0.0.1/32 and `0` as 0.0.0.0/32: addresses are written as text."""
    if isinstance(value, (bool, int, float)):
        raise ValueError(f"write the address as text, like {example}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Metadata(_Model):
    name: TenantName = Field(description="Tenant name: lowercase DNS label, 3..40 chars.")
    agency: AgencyCode = Field(description="Agency code from the agency registry.")
    requester: UserName
    description: str = Field("", max_length=255)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=20)


class Quotas(_Model):
    instances: int = Field(ge=0, le=10_000)
    cores: int = Field(ge=0, le=100_000)
    ramMiB: int = Field(ge=0, le=100_000_000)
    floatingIPs: int = Field(0, ge=0, le=1_000)
    volumes: int = Field(0, ge=0, le=10_000)
    volumeGiB: int = Field(0, ge=0, le=1_000_000)
    snapshots: int = Field(0, ge=0, le=10_000)
    networks: int | None = Field(None, ge=0, le=1_000)
    ports: int | None = Field(None, ge=0, le=100_000)
    securityGroups: int | None = Field(None, ge=0, le=1_000)
    securityGroupRules: int | None = Field(None, ge=0, le=100_000)


class Member(_Model):
    user: UserName
    roles: list[Role] = Field(min_length=1)


class Network(_Model):
    name: LocalName
    cidr: ipaddress.IPv4Network | None = Field(
        None, description="IPv4 CIDR; omitted: allocated from the agency's pool, stable across runs.")
    zone: Zone = "app"
    dhcp: bool = True
    dnsNameservers: list[ipaddress.IPv4Address] = Field(default_factory=list, max_length=5)
    prefixLength: int = Field(24, ge=16, le=28, description="Size of an allocated subnet when cidr is omitted.")
    routed: bool = Field(True, description="Attach to the tenant router (false: isolated, e.g. a mgmt zone).")

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, value: Any) -> Any:
        _refuse_number_as_address(value, "10.40.1.0/24")
        if isinstance(value, str):
            try:
                ipaddress.IPv4Network(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"not a valid IPv4 network ({exc}); write it like 10.40.1.0/24") from None
        return value


class Router(_Model):
    externalNetwork: str = "public"
    name: LocalName = "main"


PortRange = Annotated[str, StringConstraints(pattern=r"^\d{1,5}(-\d{1,5})?$")]


class Rule(_Model):
    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp", "icmp", "any"] = "any"
    ports: PortRange | int | None = Field(None, description='"443" or "8000-8080"; tcp/udp only.')
    remote: ipaddress.IPv4Network | None = Field(None, description="Remote IPv4 CIDR.")
    remoteGroup: LocalName | None = Field(None, description="Name of a security group of this request.")
    description: str = Field("", max_length=255)

    @field_validator("remote", mode="before")
    @classmethod
    def _remote_as_text(cls, value: Any) -> Any:
        _refuse_number_as_address(value, "0.0.0.0/0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Rule":
        if self.remote is not None and self.remoteGroup is not None:
            raise ValueError("give either remote or remoteGroup, not both")
        if self.ports is not None:
            if self.protocol not in ("tcp", "udp"):
                raise ValueError("ports apply only to protocol tcp or udp")
            low, high = self.port_range
            if not (1 <= low <= high <= 65535):
                raise ValueError(f"port range {self.ports} must be within 1-65535 and low <= high")
        return self

    @property
    def port_range(self) -> tuple[int, int] | tuple[None, None]:
        if self.ports is None:
            return (None, None)
        text = str(self.ports)
        low, _, high = text.partition("-")
        return int(low), int(high or low)


class SecurityGroup(_Model):
    name: LocalName
    description: str = Field("", max_length=255)
    rules: list[Rule] = Field(default_factory=list, max_length=200)


class Keypair(_Model):
    name: LocalName
    publicKey: str = Field(max_length=16384)

    @field_validator("publicKey")
    @classmethod
    def _ssh_public_key(cls, value: str) -> str:
        if "PRIVATE KEY" in value:
            raise ValueError("this is a private key; give the public key (the .pub file) and keep the private key secret")
        if not _SSH_KEY.match(value.strip()):
            raise ValueError("not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment')")
        return value.strip()


class UserData(_Model):
    template: str = Field("default.yaml.j2", max_length=128)
    vars: dict[str, Any] = Field(default_factory=dict)


class Hardening(_Model):
    profile: Literal["L1", "L2", "L3", "L4"] | None = Field(
        None, description="Hardening profile; default derives from the classification level.")


VolumeTypeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MountPoint = Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._/-]{1,254}$")]


class Volume(_Model):
    """A data volume of each copy of a server (one volume per copy: web-1's `data`, web-2's `data`)."""

    name: LocalName
    sizeGiB: int = Field(ge=1, le=65_536, description="Size in GiB; it may grow later (extend), never shrink.")
    type: VolumeTypeName = Field(description="A volume type of the platform catalog (`spec.volumeTypes`).")
    mountPoint: MountPoint | None = Field(None, description="Where the guest mounts it, e.g. /var/lib/postgresql.")


class BootVolume(_Model):
    """Boot the server from a volume made from its image (deleted with the server)."""

    sizeGiB: int = Field(ge=1, le=65_536)
    type: VolumeTypeName


class Server(_Model):
    name: LocalName
    count: int = Field(1, ge=1, le=50)
    flavor: str
    image: str
    networks: list[LocalName] = Field(min_length=1, max_length=8)
    securityGroups: list[LocalName] = Field(default_factory=list, max_length=10)
    keypair: LocalName | None = None
    floatingIP: bool = False
    antiAffinity: bool = False
    userData: UserData | None = None
    hardening: Hardening | None = None
    metadata: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=20)
    volumes: list[Volume] = Field(default_factory=list, max_length=16,
                                  description="Data volumes attached to each copy of the server.")
    bootVolume: BootVolume | None = None


class Spec(_Model):
    classification: int = Field(ge=1, le=5, description="Security level 1..5 (Decree 85/2016).")
    region: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    expiresAt: datetime | None = Field(None, description="When the tenant is destroyed (CI stacks); timezone required.")
    driftPolicy: Literal["enforce", "report"] = "enforce"
    allowDataLoss: bool = Field(
        False, description="The approvers agree that volumes this request no longer lists, and on deletion all of "
                           "the tenant's volumes, are deleted with their data. The controller refuses such deletes "
                           "without it (the CLI's --allow-data-loss is the same permission for one command).")
    quotas: Quotas | None = Field(
        None, description="Project quotas. Omitted: derived from the servers (instances, cores, RAM plus 25% "
                          "headroom; floating IPs as used), capped by the agency's ceilings (gcloudctl.quotas).")
    members: list[Member] = Field(default_factory=list, max_length=200)
    networks: list[Network] = Field(default_factory=list, max_length=20)
    router: Router | None = None
    securityGroups: list[SecurityGroup] = Field(default_factory=list, max_length=50)
    keypairs: list[Keypair] = Field(default_factory=list, max_length=20)
    servers: list[Server] = Field(default_factory=list, max_length=50)

    @field_validator("expiresAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError('expiresAt needs a timezone, e.g. "2026-12-31T00:00:00+07:00"')
        return value


class TenantRequest(_Model):
    apiVersion: Literal["gcloud.gov.vn/v1"]
    kind: Literal["TenantRequest"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name
