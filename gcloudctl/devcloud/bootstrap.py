"""Idempotent creation of devcloud's identity, service catalog, flavors, images and networks.

Stage: effect (HTTP to the local APIs through `rest.Session`). Called by lifecycle after the
APIs answer. Every step looks before it creates, so `up` can run it any number of times.
Must not start or stop services, and must not delete anything it finds.
"""

from __future__ import annotations

import time
from typing import Callable
from urllib.parse import quote

from gcloudctl.devcloud import catalog as cat
from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.config import Secrets
from gcloudctl.devcloud.layout import REGION
from gcloudctl.devcloud.rest import Session
from gcloudctl.errors import CloudError

Progress = Callable[[str], None]


def _find(session: Session, service_type: str, path: str, key: str) -> dict | None:
    items = session.get(service_type, path)[key]
    return items[0] if items else None


def _ensure_named(session: Session, collection: str, name: str, body: dict, query: str = "") -> dict:
    found = _find(session, "identity", f"/{collection}?name={quote(name)}{query}", collection)
    if found:
        return found
    singular = collection[:-1]
    return session.post("identity", f"/{collection}", {singular: {"name": name, **body}})[singular]


def identity(session: Session, secrets: Secrets, features: frozenset[str] = frozenset({"cinder"})) -> None:
    """Roles, the service project and users, the gcloudctl user, and the service catalog
    (an optional service's endpoints only while it is on; never removed once made)."""
    roles = {name: _ensure_named(session, "roles", name, {}) for name in cat.ROLES}
    service_project = _ensure_named(session, "projects", "service", {"domain_id": "default",
                                                                      "description": "devcloud service users"})
    admin_project = _find(session, "identity", "/projects?name=admin", "projects")
    for name in cat.SERVICE_USERS:
        user = _ensure_user(session, name, secrets.service_password, service_project["id"])
        for role in ("admin", "service"):
            _grant(session, service_project["id"], user["id"], roles[role]["id"])
    user = _ensure_user(session, cat.GCLOUDCTL_USER, secrets.gcloudctl_password, admin_project["id"])
    _grant(session, admin_project["id"], user["id"], roles["admin"]["id"])
    agencies(session, secrets, roles, admin_project["id"])
    for service in svc.selected(features):
        for entry in ((service.catalog,) if service.catalog else ()) + service.extra_catalog:
            if entry.service_type != "identity":
                _ensure_endpoints(session, service, entry)


def agencies(session: Session, secrets: Secrets, roles: dict[str, dict], admin_project_id: str) -> None:
    """A Keystone domain per agency, and the people of `catalog.PEOPLE` with their roles:
    agency people on their agency's domain, the operator on the admin project."""
    domains = {"Default": {"id": "default"}}
    for code in cat.AGENCY_DOMAINS:
        domains[code] = _ensure_named(session, "domains", code, {
            "description": f"gcloudctl agency {code}: its people and its tenants' projects", "enabled": True})
    for person in cat.PEOPLE:
        domain_id = domains[person.domain]["id"]
        user = _ensure_user(session, person.name, secrets.people_password, None, domain_id)
        for role in person.roles:
            if person.domain == "Default":
                _grant(session, admin_project_id, user["id"], roles[role]["id"])
            else:
                session.call("PUT", "identity", f"/domains/{domain_id}/users/{user['id']}/roles/{roles[role]['id']}")


def _ensure_user(session: Session, name: str, password: str, project_id: str | None,
                 domain_id: str = "default") -> dict:
    found = _find(session, "identity", f"/users?name={quote(name)}&domain_id={domain_id}", "users")
    if found:  # never re-set the password: Keystone would revoke the user's live tokens
        return found
    body = {"name": name, "password": password, "domain_id": domain_id, "enabled": True}
    if project_id:
        body["default_project_id"] = project_id
    return session.post("identity", "/users", {"user": body})["user"]


def _grant(session: Session, project_id: str, user_id: str, role_id: str) -> None:
    session.call("PUT", "identity", f"/projects/{project_id}/users/{user_id}/roles/{role_id}")


def _ensure_endpoints(session: Session, service: svc.Service, entry: svc.Catalog) -> None:
    found = _find(session, "identity", f"/services?type={entry.service_type}", "services")
    if not found:
        found = session.post("identity", "/services", {"service": {
            "type": entry.service_type, "name": entry.name, "enabled": True}})["service"]
    existing = session.get("identity", f"/endpoints?service_id={found['id']}")["endpoints"]
    url = service.url + entry.path
    for interface in ("public", "internal"):
        if any(e["interface"] == interface and e["url"] == url for e in existing):
            continue
        session.post("identity", "/endpoints", {"endpoint": {
            "service_id": found["id"], "interface": interface, "url": url, "region_id": REGION, "enabled": True}})


def flavors(session: Session) -> None:
    existing = {f["name"] for f in session.get("compute", "/flavors?is_public=None")["flavors"]}
    for flavor in cat.FLAVORS:
        if flavor.name in existing:
            continue
        session.post("compute", "/flavors", {"flavor": {
            "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram_mib, "disk": flavor.disk_gib,
            "os-flavor-access:is_public": True}})


def images(session: Session) -> None:
    payload = cat.qcow2_image()
    for image in cat.IMAGES:
        found = _find(session, "image", f"/v2/images?name={quote(image.name)}", "images")
        if found and found["status"] == "active":
            continue
        if found is None:
            found = session.post("image", "/v2/images", {
                "name": image.name, "disk_format": "qcow2", "container_format": "bare",
                "visibility": "public", "os_distro": image.os_distro, "os_version": image.os_version,
                "min_disk": 1, "hw_qemu_guest_agent": "yes"})
        session.call("PUT", "image", f"/v2/images/{found['id']}/file", raw=payload,
                     headers={"Content-Type": "application/octet-stream"})


def external_network(session: Session) -> None:
    net = cat.EXTERNAL_NETWORK
    found = _find(session, "network", f"/v2.0/networks?name={net.name}", "networks")
    if not found:
        found = _create_external_network(session, net)
    if _find(session, "network", f"/v2.0/subnets?network_id={found['id']}&name={net.subnet_name}", "subnets"):
        return
    session.post("network", "/v2.0/subnets", {"subnet": {
        "name": net.subnet_name, "network_id": found["id"], "ip_version": 4, "cidr": net.cidr,
        "gateway_ip": net.gateway, "enable_dhcp": False,
        "allocation_pools": [{"start": net.pool_start, "end": net.pool_end}]}})


def _create_external_network(session: Session, net: cat.ExternalNetwork) -> dict:
    """Create `public`; a 409 (physnet in use) means it exists after all: look again.

    Seen once right after a neutron-server restart: the by-name list came back empty while
    the network existed, and the create then hit FlatNetworkInUse.
    """
    try:
        return session.post("network", "/v2.0/networks", {"network": {
            "name": net.name, "router:external": True, "shared": False,
            "provider:network_type": "flat", "provider:physical_network": net.physnet,
            "description": "devcloud external network (database rows only, no traffic)"}})["network"]
    except CloudError as exc:
        if exc.status != 409:
            raise
    for _ in range(20):
        found = _find(session, "network", f"/v2.0/networks?name={net.name}", "networks")
        if found:
            return found
        time.sleep(0.5)
    raise CloudError(f"external network {net.name!r}: its physnet is in use but no network of that name is "
                     "visible", transient=False, status=409,
                     hint="check `openstack --os-cloud devcloud network list --external`.")


def volumes(session: Session, progress: Progress) -> None:
    """Cinder's volume types (catalog.VOLUME_TYPES), each on the file backend, and the
    encryption spec of the encrypted ones. Looks before it creates; never changes a spec it finds."""
    progress("bootstrap: volume types " + ", ".join(t.name for t in cat.VOLUME_TYPES))
    existing = {t["name"]: t for t in session.get("block-storage", "/types?is_public=None")["volume_types"]}
    for vtype in cat.VOLUME_TYPES:
        found = existing.get(vtype.name)
        if found is None:
            found = session.post("block-storage", "/types", {"volume_type": {
                "name": vtype.name, "description": vtype.description, "os-volume-type-access:is_public": True,
                "extra_specs": {"volume_backend_name": vtype.backend}}})["volume_type"]
        if vtype.encryption is None:
            continue
        current = session.get("block-storage", f"/types/{found['id']}/encryption")
        if current.get("encryption_id") or current.get("provider"):
            continue
        session.post("block-storage", f"/types/{found['id']}/encryption", {"encryption": dict(vtype.encryption)})


def cloud(session: Session, progress: Progress) -> None:
    progress("bootstrap: flavors, images, external network 'public'")
    flavors(session)
    images(session)
    external_network(session)
