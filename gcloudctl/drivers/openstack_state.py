"""Driver-side normalisation: raw OpenStack API JSON -> ObservedState (same Address space as
the desired state). Pure functions, shared by the real and the fake OpenStack API so both
observe identically. Only ownership (tags, metadata, name prefixes) decides what is ours;
the project itself reaches here only once its ownership is proven (`gcloudctl.ownership`,
checked by the driver's snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gcloudctl import naming
from gcloudctl.expand import OPERATOR, membership_name, rule_key
from gcloudctl.ownership import Owner
from gcloudctl.resources import Address, Kind, ObservedState, Ref, Resource

ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                           "network:ha_router_replicated_interface")
IGNORED_PORT_OWNERS = ("network:dhcp", "network:router_gateway", "network:floatingip",
                       "network:router_centralized_snat", "network:router_ha_interface", "network:distributed")
GONE_SERVER_STATES = ("DELETED", "SOFT_DELETED")
# Cinder's volume statuses as the neutral states the planner reads (ACTIVE, BUILD, ERROR, DELETING)
_VOLUME_STATES = {"available": "ACTIVE", "in-use": "ACTIVE", "deleting": "DELETING"}
_VOLUME_FAILED = ("error", "error_deleting", "error_extending", "error_restoring", "error_managing")


def volume_state(status: str | None) -> str:
    """The neutral state of a Cinder volume status: ACTIVE (usable), BUILD (busy: creating,
    extending, attaching, ...), ERROR, DELETING."""
    if status in _VOLUME_FAILED:
        return "ERROR"
    return _VOLUME_STATES.get(status or "", "BUILD")


@dataclass
class RawSnapshot:
    project: dict | None = None  # the tenant's project, its ownership proven
    domain: str | None = None  # name of the project's (the agency's) Keystone domain
    role_assignments: list[dict] = field(default_factory=list)  # {"user", "user_id", "user_domain", "role", "role_id"}
    compute_quota: dict = field(default_factory=dict)
    network_quota: dict = field(default_factory=dict)
    volume_quota: dict | None = None
    networks: list[dict] = field(default_factory=list)
    subnets: list[dict] = field(default_factory=list)
    routers: list[dict] = field(default_factory=list)
    ports: list[dict] = field(default_factory=list)
    security_groups: list[dict] = field(default_factory=list)
    floating_ips: list[dict] = field(default_factory=list)
    servers: list[dict] = field(default_factory=list)
    keypairs: list[dict] = field(default_factory=list)
    server_groups: list[dict] = field(default_factory=list)
    volumes: list[dict] = field(default_factory=list)  # Cinder volume details (block storage only)
    external_networks: dict[str, str] = field(default_factory=dict)  # name -> id
    operator_user_id: str | None = None


class _Index:
    def __init__(self) -> None:
        self.by_id: dict[str, Address] = {}

    def ref(self, cloud_id: str | None) -> Ref | str | None:
        if cloud_id is None:
            return None
        address = self.by_id.get(cloud_id)
        return Ref(address) if address else cloud_id


def _unmanaged_address(kind: Kind, raw: dict) -> Address:
    return Address(kind, f"~{raw.get('name') or ''}@{raw['id'][:8]}")


def _tagged(kind: Kind, raw: dict, tenant: str) -> tuple[Address, bool]:
    tags = raw.get("tags") or []
    addr = naming.address_from_tags(tags)
    if addr and naming.tenant_from_tags(tags) == tenant:
        parsed = Address.parse(addr)
        if parsed.kind is kind:
            return parsed, True
    return _unmanaged_address(kind, raw), False


def to_observed(owner: Owner, raw: RawSnapshot) -> ObservedState:
    tenant = owner.tenant
    lookups = {f"external_network:{name}": net_id for name, net_id in raw.external_networks.items()}
    if raw.project is None:
        return ObservedState(tenant=tenant, resources={}, lookups=lookups)
    ext_names = {net_id: name for name, net_id in raw.external_networks.items()}
    idx = _Index()
    managed: dict[Address, Resource] = {}
    unmanaged: list[Resource] = []

    def keep(res: Resource) -> None:
        if res.managed:
            if res.address in managed:  # two resources claim one address: the second is a duplicate
                res = Resource(_unmanaged_address(res.address.kind, {"id": res.id, "name": res.attrs.get("name")}),
                               res.attrs, res.depends_on, res.id, res.status, False, res.extra)
                unmanaged.append(res)
                return
            managed[res.address] = res
        else:
            unmanaged.append(res)
        if res.id:
            idx.by_id[res.id] = res.address

    project = raw.project
    p_addr = Address(Kind.PROJECT, tenant)
    keep(Resource(p_addr, {"name": project["name"], "domain": raw.domain, "description": project.get("description") or "",
                           "enabled": project.get("enabled", True), "tags": sorted(project.get("tags") or [])},
                  id=project["id"]))

    for ra in raw.role_assignments:
        operator = ra.get("user_id") == raw.operator_user_id
        user = OPERATOR if operator else ra["user"]
        domain = None if operator else ra.get("user_domain")
        foreign = domain if domain != raw.domain else None  # a user of another domain is never a member
        keep(Resource(Address(Kind.MEMBERSHIP, membership_name(user, ra["role"], foreign)),
                      {"user": user, "role": ra["role"], "domain": domain},
                      (p_addr,), id=f"{ra.get('user_id')}:{ra.get('role_id')}",
                      extra={"user_id": ra.get("user_id"), "role_id": ra.get("role_id")}))

    keep(Resource(Address(Kind.QUOTA, "compute"), dict(raw.compute_quota), (p_addr,), id="compute"))
    keep(Resource(Address(Kind.QUOTA, "network"), dict(raw.network_quota), (p_addr,), id="network"))
    if raw.volume_quota is not None:
        keep(Resource(Address(Kind.QUOTA, "volume"), dict(raw.volume_quota), (p_addr,), id="volume"))

    prefix = naming.keypair_prefix(owner.agency, tenant)
    for kp in raw.keypairs:
        if kp["name"].startswith(prefix):
            keep(Resource(Address(Kind.KEYPAIR, kp["name"][len(prefix):]),
                          {"name": kp["name"], "public_key": (kp.get("public_key") or "").strip()}, (p_addr,), id=kp["name"]))

    for sg in raw.server_groups:
        keep(Resource(Address(Kind.SERVER_GROUP, sg["name"]), {"name": sg["name"], "policy": _sg_policy(sg)},
                      (p_addr,), id=sg["id"], extra={"members": list(sg.get("members") or [])}))

    for net in raw.networks:
        address, ours = _tagged(Kind.NETWORK, net, tenant)
        keep(Resource(address, {"name": net.get("name"), "tags": sorted(net.get("tags") or [])}, (p_addr,),
                      id=net["id"], status=net.get("status"), managed=ours))
    for sub in raw.subnets:
        address, ours = _tagged(Kind.SUBNET, sub, tenant)
        network = idx.ref(sub["network_id"])
        keep(Resource(address, {
            "name": sub.get("name"), "network": network, "ip_version": sub.get("ip_version"), "cidr": sub.get("cidr"),
            "enable_dhcp": sub.get("enable_dhcp"), "dns_nameservers": list(sub.get("dns_nameservers") or []),
            "tags": sorted(sub.get("tags") or [])}, _deps(p_addr, network), id=sub["id"], managed=ours))
    for router in raw.routers:
        address, ours = _tagged(Kind.ROUTER, router, tenant)
        gateway = (router.get("external_gateway_info") or {}).get("network_id")
        keep(Resource(address, {"name": router.get("name"), "external_network": ext_names.get(gateway, gateway),
                                "tags": sorted(router.get("tags") or [])}, (p_addr,),
                      id=router["id"], status=router.get("status"), managed=ours,
                      extra={"external_network_id": gateway}))

    for sg in sorted(raw.security_groups, key=lambda g: not g.get("tags")):  # the tagged claim their names first
        if sg.get("name") == "default":
            continue  # created by Neutron per project; removed with the project
        address, ours = _tagged(Kind.SECURITY_GROUP, sg, tenant)
        if not ours and not sg.get("tags") and sg.get("name") and Address(Kind.SECURITY_GROUP, sg["name"]) not in managed:
            # made but not yet tagged (an interrupted create): ours by its deterministic name, with
            # its rules, so the plan only sets its tags; the rules Neutron made are not deleted and
            # made again. (A group nobody asked for is deleted as before: it is not desired.)
            address, ours = Address(Kind.SECURITY_GROUP, sg["name"]), True
        keep(Resource(address, {"name": sg.get("name"), "description": sg.get("description") or "",
                                "tags": sorted(sg.get("tags") or [])}, (p_addr,), id=sg["id"], managed=ours))
    for sg in raw.security_groups:
        if sg.get("name") == "default":
            continue
        group_addr = idx.by_id[sg["id"]]
        for rule in sg.get("security_group_rules") or []:
            attrs = {
                "security_group": Ref(group_addr), "direction": rule["direction"], "ethertype": rule.get("ethertype", "IPv4"),
                "protocol": rule.get("protocol"), "port_min": rule.get("port_range_min"), "port_max": rule.get("port_range_max"),
                "remote_ip_prefix": rule.get("remote_ip_prefix"), "remote_group": idx.ref(rule.get("remote_group_id")),
            }
            address = Address(Kind.SECURITY_GROUP_RULE, f"{group_addr.name}/{rule_key(attrs)}")
            keep(Resource(address, attrs, _deps(p_addr, Ref(group_addr), attrs["remote_group"]), id=rule["id"],
                          managed=group_addr.name[:1] != "~"))

    server_ids = {s["id"] for s in raw.servers}
    for port in raw.ports:
        owner = port.get("device_owner") or ""
        if owner in ROUTER_INTERFACE_OWNERS:
            router = idx.ref(port.get("device_id"))
            for fixed in port.get("fixed_ips") or []:
                subnet = idx.ref(fixed.get("subnet_id"))
                if isinstance(router, Ref) and isinstance(subnet, Ref):
                    name = f"{router.address.name}.{subnet.address.name}"
                    ours = not name.startswith("~") and "~" not in name
                    address = Address(Kind.ROUTER_INTERFACE, name) if ours else _unmanaged_address(Kind.ROUTER_INTERFACE, port)
                else:
                    address, ours = _unmanaged_address(Kind.ROUTER_INTERFACE, port), False
                keep(Resource(address, {"router": router, "subnet": subnet}, _deps(p_addr, router, subnet),
                              id=port["id"], managed=ours,
                              extra={"router_id": port.get("device_id"), "subnet_id": fixed.get("subnet_id")}))
            continue
        if owner in IGNORED_PORT_OWNERS:
            continue
        address, ours = _tagged(Kind.PORT, port, tenant)
        fixed = port.get("fixed_ips") or []
        network, subnet = idx.ref(port.get("network_id")), idx.ref(fixed[0]["subnet_id"] if fixed else None)
        groups = sorted((idx.ref(g) for g in port.get("security_groups") or []), key=str)
        keep(Resource(address, {"name": port.get("name"), "network": network, "subnet": subnet,
                                "security_groups": groups, "tags": sorted(port.get("tags") or [])},
                      _deps(p_addr, network, subnet, *groups), id=port["id"], status=port.get("status"), managed=ours,
                      extra={"device_id": port.get("device_id"), "fixed_ips": [f.get("ip_address") for f in fixed],
                             "attached_to_unknown_server": bool(port.get("device_id")) and port.get("device_id") not in server_ids
                             and owner.startswith("compute:")}))

    ports_by_server: dict[str, list[Ref]] = {}
    for port in raw.ports:
        if port.get("device_id") and (port.get("device_owner") or "").startswith("compute:"):
            ref = idx.ref(port["id"])
            if isinstance(ref, Ref):
                ports_by_server.setdefault(port["device_id"], []).append(ref)
    group_of: dict[str, Ref] = {}
    for sg in raw.server_groups:
        for member in sg.get("members") or []:
            group_of[member] = idx.ref(sg["id"])
    boot_volumes = _boot_volumes(raw, tenant)
    for server in raw.servers:
        if server.get("status") in GONE_SERVER_STATES:
            continue
        meta = server.get("metadata") or {}
        ours = meta.get(naming.META_TENANT) == tenant and bool(meta.get(naming.META_ADDRESS))
        address = Address.parse(meta[naming.META_ADDRESS]) if ours else _unmanaged_address(Kind.SERVER, server)
        ports = sorted(ports_by_server.get(server["id"], []), key=str)
        flavor = server.get("flavor") or {}
        attrs = {
            "name": server.get("name"), "flavor": flavor.get("original_name") or flavor.get("id"),
            "image": meta.get(naming.META_IMAGE, (server.get("image") or {}).get("id") if isinstance(server.get("image"), dict) else None),
            "key_name": server.get("key_name"), "ports": ports, "server_group": group_of.get(server["id"]),
            "user_data_digest": meta.get(naming.META_USERDATA_DIGEST),
            "boot_volume": meta.get(naming.META_BOOT_VOLUME), "metadata": dict(meta),
        }
        deleting = server.get("OS-EXT-STS:task_state") == "deleting"  # gone soon: not a server to keep
        keep(Resource(address, attrs, _deps(p_addr, *ports, group_of.get(server["id"])), id=server["id"],
                      status="DELETING" if deleting else server.get("status"), managed=ours,
                      extra={"addresses": server.get("addresses") or {}, "fault": (server.get("fault") or {}).get("message"),
                             "boot_volume_id": boot_volumes.get(server["id"])}))

    _volumes(raw, tenant, p_addr, idx, boot_volumes, keep)

    interface_by_subnet = {r.attrs["subnet"].address: r.address for r in list(managed.values()) + unmanaged
                           if r.address.kind is Kind.ROUTER_INTERFACE and isinstance(r.attrs.get("subnet"), Ref)}
    for fip in sorted(raw.floating_ips, key=lambda f: not f.get("tags")):  # the tagged claim their servers first
        address, ours = _tagged(Kind.FLOATING_IP, fip, tenant)
        port = idx.ref(fip.get("port_id"))
        if not ours and not fip.get("tags") and isinstance(port, Ref) and port.address in managed:
            # made but not yet tagged (the run that created it died between create and tag): the
            # floating IP of the server whose port it is on. Adopted (the plan sets its tags), so
            # the tenant's public address survives the crash.
            claimed = Address(Kind.FLOATING_IP, port.address.name.rsplit(".", 1)[0])
            if claimed not in managed:
                address, ours = claimed, True
        deps = [p_addr, port]
        if isinstance(port, Ref):
            port_res = managed.get(port.address) or next((u for u in unmanaged if u.address == port.address), None)
            subnet = port_res.attrs.get("subnet") if port_res else None
            if isinstance(subnet, Ref) and subnet.address in interface_by_subnet:
                deps.append(Ref(interface_by_subnet[subnet.address]))
        if fip.get("router_id"):
            deps.append(idx.ref(fip["router_id"]))
        network = fip.get("floating_network_id")
        keep(Resource(address, {"external_network": ext_names.get(network, network), "port": port,
                                "tags": sorted(fip.get("tags") or [])}, _deps(*deps), id=fip["id"],
                      status=fip.get("status"), managed=ours,
                      extra={"floating_ip_address": fip.get("floating_ip_address"), "fixed_ip_address": fip.get("fixed_ip_address")}))

    return ObservedState(tenant=tenant, resources=managed, unmanaged=tuple(unmanaged), project_id=project["id"], lookups=lookups)


def _boot_volumes(raw: RawSnapshot, tenant: str) -> dict[str, str]:
    """server id -> id of the volume it boots from (made by Nova from the image, deleted with the
    server): part of its server, never a volume of its own. One of ours boots from a volume when
    its metadata says so (`gc-bootvol`); that volume is the bootable one attached to it."""
    booted = {s["id"] for s in raw.servers if (s.get("metadata") or {}).get(naming.META_BOOT_VOLUME)
              and (s.get("metadata") or {}).get(naming.META_TENANT) == tenant}
    found = {}
    for vol in raw.volumes:
        if (vol.get("metadata") or {}).get(naming.META_ADDRESS) or str(vol.get("bootable")).lower() != "true":
            continue
        for att in vol.get("attachments") or []:
            if att.get("server_id") in booted:
                found.setdefault(att["server_id"], vol["id"])
    return found


def _volumes(raw: RawSnapshot, tenant: str, p_addr: Address, idx: _Index, boot_volumes: dict[str, str],
             keep) -> None:
    """Volumes (ours by their metadata, set in the create call) and their attachments. An
    attachment is ours when both its volume and its server are; its address is its volume's."""
    booted = set(boot_volumes.values())
    for vol in sorted(raw.volumes, key=lambda v: not (v.get("metadata") or {}).get(naming.META_ADDRESS)):
        if vol["id"] in booted:
            continue
        meta = vol.get("metadata") or {}
        claimed = meta.get(naming.META_ADDRESS) or ""
        ours = meta.get(naming.META_TENANT) == tenant and claimed.startswith(f"{Kind.VOLUME.value}.")
        address = Address.parse(claimed) if ours else _unmanaged_address(Kind.VOLUME, vol)
        attachments = [{"server_id": a.get("server_id"), "device": a.get("device")} for a in vol.get("attachments") or []]
        keep(Resource(address, {"name": vol.get("name"), "size": vol.get("size"), "type": vol.get("volume_type"),
                                "metadata": {k: v for k, v in meta.items() if k.startswith("gc-")}},
                      (p_addr,), id=vol["id"], status=volume_state(vol.get("status")), managed=ours,
                      extra={"attachments": attachments, "cloud_status": vol.get("status")}))
        for att in attachments:
            server = idx.ref(att["server_id"])
            volume = idx.ref(vol["id"])
            mine = ours and isinstance(server, Ref) and isinstance(volume, Ref) and volume.address == address
            a_addr = Address(Kind.VOLUME_ATTACHMENT, address.name) if mine else \
                _unmanaged_address(Kind.VOLUME_ATTACHMENT, {"id": f"{vol['id']}", "name": vol.get("name")})
            keep(Resource(a_addr, {"volume": volume, "server": server}, _deps(p_addr, volume, server),
                          id=f"{att['server_id']}/{vol['id']}", managed=mine,
                          extra={"server_id": att["server_id"], "volume_id": vol["id"], "device": att["device"]}))


def _sg_policy(group: dict) -> str:
    if group.get("policy"):
        return group["policy"]
    policies = group.get("policies") or []
    return policies[0] if policies else ""


def _deps(*items: Any) -> tuple[Address, ...]:
    out = []
    for item in items:
        if isinstance(item, Ref):
            out.append(item.address)
        elif isinstance(item, Address):
            out.append(item)
    return tuple(dict.fromkeys(out))
