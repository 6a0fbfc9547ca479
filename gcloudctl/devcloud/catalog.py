"""What devcloud's bootstrap creates, and the clouds.yaml entries that point at it.

Stage: pure data and pure functions (called by bootstrap and lifecycle). Must not call any
API or touch files; `merge_clouds` takes and returns plain dicts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.config import Secrets
from gcloudctl.devcloud.layout import REGION

CLOUD_ADMIN = "devcloud"
CLOUD_GCLOUDCTL = "devcloud-gcloudctl"
ROLES = ("admin", "member", "reader", "service")
SERVICE_USERS = ("nova", "neutron", "glance", "placement")
GCLOUDCTL_USER = "gcloudctl"


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


def cloud_entries(secrets: Secrets) -> dict[str, dict]:
    return {
        CLOUD_ADMIN: cloud_entry("admin", secrets.admin_password),
        CLOUD_GCLOUDCTL: cloud_entry(GCLOUDCTL_USER, secrets.gcloudctl_password),
    }


def merge_clouds(existing: dict | None, entries: dict[str, dict]) -> dict:
    """Existing clouds.yaml content with devcloud's entries set; every other key is kept."""
    merged = dict(existing or {})
    clouds = dict(merged.get("clouds") or {})
    clouds.update(entries)
    merged["clouds"] = clouds
    return merged
