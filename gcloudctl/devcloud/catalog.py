"""What devcloud's bootstrap creates, and the clouds.yaml entries that point at it.

Stage: pure data and pure functions (called by bootstrap and lifecycle). Must not call any
API or touch files; `merge_clouds` takes and returns plain dicts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.config import Secrets
from gcloudctl.devcloud.layout import CINDER_BACKEND, REGION

CLOUD_ADMIN = "devcloud"
CLOUD_GCLOUDCTL = "devcloud-gcloudctl"
ROLES = ("admin", "member", "reader", "service", "gcloud-requester", "gcloud-approver", "gcloud-operator")
SERVICE_USERS = ("nova", "neutron", "glance", "placement", "cinder")
GCLOUDCTL_USER = "gcloudctl"

# One Keystone domain per agency of the example registry (gcloudctl/data/agencies.yaml): the
# agency's people live there and its tenants' projects are created there.
AGENCY_DOMAINS = ("BYT", "BTC", "QNI")


@dataclass(frozen=True)
class Person:
    """A user of an agency (or the platform) and the clouds.yaml entry that logs in as them.

    Agency people hold their roles on their agency's domain and their entry asks for a
    domain-scoped token; the operator holds `gcloud-operator` on the admin project."""

    cloud: str
    name: str
    domain: str
    roles: tuple[str, ...]


PEOPLE = (
    Person("devcloud-byt-requester", "nguyen.van.a", "BYT", ("gcloud-requester",)),
    Person("devcloud-byt-approver1", "tran.thi.b", "BYT", ("gcloud-approver",)),
    Person("devcloud-byt-approver2", "le.van.c", "BYT", ("gcloud-approver",)),
    Person("devcloud-btc-user", "hoang.van.e", "BTC", ("gcloud-requester", "gcloud-approver")),
    Person("devcloud-qni-requester", "do.van.g", "QNI", ("gcloud-requester",)),
    Person("devcloud-operator", "gc.operator", "Default", ("gcloud-operator",)),
)


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int


@dataclass(frozen=True)
class Image:
    name: str
    os_distro: str
    os_version: str


@dataclass(frozen=True)
class ExternalNetwork:
    name: str = "public"
    physnet: str = "public"
    subnet_name: str = "public-subnet"
    cidr: str = "172.24.4.0/24"  # a database row only: nothing is ever routed there
    gateway: str = "172.24.4.1"
    pool_start: str = "172.24.4.10"
    pool_end: str = "172.24.4.250"


# The example platform catalog's flavors and images (gcloudctl/data/platform.yaml).
FLAVORS = (
    Flavor("g1.small", 1, 2048, 10),
    Flavor("g1.medium", 2, 4096, 20),
    Flavor("g1.large", 4, 8192, 40),
)
IMAGES = (
    Image("debian-12-hardened", "debian", "12"),
    Image("ubuntu-24.04-hardened", "ubuntu", "24.04"),
)
EXTERNAL_NETWORK = ExternalNetwork()


@dataclass(frozen=True)
class VolumeType:
    name: str
    description: str
    backend: str = CINDER_BACKEND
    encryption: tuple[tuple[str, object], ...] | None = None  # Cinder's encryption spec, if any


# The platform catalog's volume types (gcloudctl/data/platform.yaml `volumeTypes`). The key of
# `encrypted` comes from Cinder's fixed-key manager (secrets.json `volume_key`).
LUKS = (("provider", "luks"), ("cipher", "aes-xts-plain64"), ("key_size", 256), ("control_location", "front-end"))
VOLUME_TYPES = (
    VolumeType("standard", "devcloud: sparse file volumes, not encrypted"),
    VolumeType("encrypted", "devcloud: sparse file volumes, LUKS aes-xts-plain64 256-bit (front-end)", encryption=LUKS),
)


def qcow2_image(virtual_size: int = 1 << 30, length: int = 1024) -> bytes:
    """A tiny but valid qcow2 (v2) header that Glance's format inspector accepts."""
    cluster_bits = 16
    l1_size = max(1, -(-virtual_size // ((1 << cluster_bits) * ((1 << cluster_bits) // 8))))
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",  # magic
        2,  # version
        0, 0,  # backing file offset, size
        cluster_bits,
        virtual_size,
        0,  # crypt method
        l1_size,
        3 << cluster_bits,  # l1 table offset
        1 << cluster_bits,  # refcount table offset
        1,  # refcount table clusters
        0, 0,  # snapshots
    )
    return header + b"\0" * (length - len(header))


def cloud_entry(username: str, password: str, project: str = "admin") -> dict:
    return {
        "auth": {"auth_url": svc.BY_NAME["keystone"].url + "/v3", "username": username,
                 "password": password, "project_name": project, "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "region_name": REGION,
        "interface": "public",
        "identity_api_version": 3,
    }


def person_entry(person: Person, password: str) -> dict:
    """Agency people get a token scoped to their agency's domain; the operator to `admin`."""
    if person.domain == "Default":
        return cloud_entry(person.name, password)
    return {
        "auth": {"auth_url": svc.BY_NAME["keystone"].url + "/v3", "username": person.name,
                 "password": password, "user_domain_name": person.domain, "domain_name": person.domain},
        "region_name": REGION,
        "interface": "public",
        "identity_api_version": 3,
    }


def cloud_entries(secrets: Secrets) -> dict[str, dict]:
    entries = {
        CLOUD_ADMIN: cloud_entry("admin", secrets.admin_password),
        CLOUD_GCLOUDCTL: cloud_entry(GCLOUDCTL_USER, secrets.gcloudctl_password),
    }
    if secrets.people_password:
        entries.update({person.cloud: person_entry(person, secrets.people_password) for person in PEOPLE})
    return entries


def merge_clouds(existing: dict | None, entries: dict[str, dict]) -> dict:
    """Existing clouds.yaml content with devcloud's entries set; every other key is kept."""
    merged = dict(existing or {})
    clouds = dict(merged.get("clouds") or {})
    clouds.update(entries)
    merged["clouds"] = clouds
    return merged
