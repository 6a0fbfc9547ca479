"""Stage: model. Documents owned by platform operators: the platform catalog and the agency
registry (data entered once and reused by every request). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gcloudctl.model.request import AgencyCode, Role, UserName, Zone

Level = Annotated[int, Field(ge=1, le=5)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocMeta(_Model):
    name: str
    version: str = "1"


class Region(_Model):
    cloud: str = Field(description="clouds.yaml entry used for this region.")
    externalNetworks: list[str] = Field(min_length=1)
    antiAffinityPolicy: Literal["anti-affinity", "soft-anti-affinity"] = "anti-affinity"
    maxClassification: Level = 4
    blockStorage: bool = Field(False, description="The region has Cinder: volume quotas are managed.")
    createMissingUsers: bool = Field(False, description="Create Keystone users named in members, in the agency's "
                                     "domain (dev clouds only; production users come from the identity provider).")
    allowedRoles: list[Role] = Field(default_factory=lambda: ["member", "reader"], min_length=1,
                                     description="Roles a request may grant its members in this region. `admin` "
                                     "only where the cloud's policy keeps it inside the project (on clouds with "
                                     "legacy policy it means admin of the whole cloud), and never at level >= 4.")


class Image(_Model):
    maxClassification: Level
    os: str = "debian12"
    loginUser: str = "debian"


class Flavor(_Model):
    vcpus: int = Field(ge=1)
    ramMiB: int = Field(ge=128)
    diskGiB: int = Field(ge=1)
    maxClassification: Level = 5


class VolumeType(_Model):
    """A block-storage volume type the platform offers (Cinder volume type of the same name)."""

    encrypted: bool = Field(False, description="Volumes of this type are encrypted at rest.")
    maxClassification: Level = 5


class LogTarget(_Model):
    """The central log host every hardened server forwards its logs to (level >= 3: central logging)."""

    host: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(
        description="Address of the central log receiver (syslog); an address, because the host firewall "
                    "admits outbound traffic by address.")
    port: int = Field(514, ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class CatalogSpec(_Model):
    regions: dict[str, Region] = Field(min_length=1)
    images: dict[str, Image] = Field(min_length=1)
    flavors: dict[str, Flavor] = Field(min_length=1)
    volumeTypes: dict[str, VolumeType] = Field(
        default_factory=dict, description="Volume types a request may name (regions with blockStorage).")
    zones: list[Zone] = Field(default_factory=lambda: ["dmz", "app", "db", "internal", "mgmt"])
    rulebook: str = "vn-nd85-tcvn11930"
    serveLevel5: bool = Field(False, description="Level 5 is not served by the shared G-Cloud unless enabled.")
    automationUser: UserName = "gcadmin"
    internalRanges: list[ipaddress.IPv4Network] = Field(
        default_factory=list, max_length=500,
        description="Networks that are not the internet for every agency (e.g. the government's private WAN), "
                    "besides the private ranges and each agency's pools: a rule admitting only these is not "
                    "internet-facing for the classification rules and the approval rules "
                    "(gcloudctl.policy.exposure). A public range listed here is trusted by every request.")
    adminSources: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list, max_length=100,
        description="Where the platform's operators and automation connect from: the host firewall of a "
                    "hardened server (level >= 3) admits SSH only from these (and from the tenant's bastion). "
                    "Empty: hardening at level >= 3 refuses to run rather than leave SSH open or lock it.")
    logging: LogTarget | None = Field(
        None, description="Central log host: hardened servers (level >= 3) forward every log line to it.")


class PlatformCatalog(_Model):
    apiVersion: Literal["gcloud.gov.vn/v1"]
    kind: Literal["PlatformCatalog"]
    metadata: DocMeta
    spec: CatalogSpec


class QuotaCeilings(_Model):
    instances: int = Field(ge=0)
    cores: int = Field(ge=0)
    ramMiB: int = Field(ge=0)
    floatingIPs: int = Field(ge=0)
    volumes: int = Field(0, ge=0)
    volumeGiB: int = Field(0, ge=0)


class Agency(_Model):
    name: str
    domain: str | None = Field(None, min_length=1, max_length=64,
                               description="Keystone domain that holds the agency's people and its tenants' "
                                           "projects (default: the agency code).")
    maxClassification: Level
    cidrPools: list[ipaddress.IPv4Network] = Field(min_length=1)
    quotaCeilings: QuotaCeilings
    approvers: list[UserName] = Field(default_factory=list, deprecated=True,
                                      description="Not consulted: an agency's approvers are the Keystone users "
                                                  "holding gcloud-approver on its domain. Accepted so older "
                                                  "registries still load.")


class RegistrySpec(_Model):
    agencies: dict[AgencyCode, Agency] = Field(min_length=1)


class AgencyRegistry(_Model):
    apiVersion: Literal["gcloud.gov.vn/v1"]
    kind: Literal["AgencyRegistry"]
    metadata: DocMeta
    spec: RegistrySpec

    def get(self, code: str) -> Agency | None:
        return self.spec.agencies.get(code)

    def domain_of(self, code: str) -> str | None:
        """The Keystone domain name of agency `code` (None if the agency is unknown)."""
        agency = self.get(code)
        return None if agency is None else (agency.domain or code)

    def agency_of_domain(self, domain_name: str | None) -> str | None:
        """The agency code whose Keystone domain is `domain_name` (None: no agency's)."""
        if not domain_name:
            return None
        return next((code for code in self.spec.agencies if self.domain_of(code) == domain_name), None)

