"""Stage: expand. TenantRequest (+ catalog, agency) -> DesiredState.

Every resource the tenant needs, with its deterministic name, ownership tags and the
addresses it must come after. Called by `pipeline` for plan/apply/reconcile. Pure: the
user-data renderer and the cloud facts it needs (CIDRs already taken) are passed in;
no network, files, environment or clock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from gcloudctl import naming
from gcloudctl.model.catalog import Agency, PlatformCatalog
from gcloudctl.model.request import Rule, SecurityGroup, Server, TenantRequest
from gcloudctl.quotas import effective_quotas
from gcloudctl.resources import Address, DesiredState, Kind, Ref, Resource

OPERATOR = "@operator"  # the identity gcloudctl itself acts as; drivers resolve it
UserDataRenderer = Callable[[str, Mapping, Mapping], str]


@dataclass(frozen=True)
class CloudFacts:
    """What expand needs to know about the cloud (gathered by the pipeline)."""

    existing_cidrs: Mapping[str, str] = field(default_factory=dict)  # network name -> cidr in this tenant
    taken_cidrs: tuple[str, ...] = ()  # CIDRs used by the agency's other tenants


def membership_name(user: str, role: str, foreign_domain: str | None = None) -> str:
    """A membership's address name: `user:role`; a user of another domain than the agency's
    (found by observe, never desired) is `user@DOMAIN:role`, so it can never pass for a member."""
    return f"{user}@{foreign_domain}:{role}" if foreign_domain else f"{user}:{role}"


def request_digest(request: TenantRequest) -> str:
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def allocate_cidr(pools: Iterable[ipaddress.IPv4Network], tenant: str, network: str, prefix: int,
                  taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """First free /prefix in the agency's pools, starting from a hash of tenant/network so
    that the same request tends to get the same CIDR on any cloud. Deterministic."""
    taken = list(taken)
    seed = int(hashlib.sha256(f"{tenant}/{network}".encode()).hexdigest(), 16)
    for pool in pools:
        if prefix < pool.prefixlen:
            continue
        count = 2 ** (prefix - pool.prefixlen)
        start = seed % count
        for step in range(count):
            candidate = ipaddress.IPv4Network((int(pool.network_address) + ((start + step) % count) * 2 ** (32 - prefix), prefix))
            if not any(candidate.overlaps(other) for other in taken):
                return candidate
    raise ValueError(f"no free /{prefix} left in the agency's CIDR pools for network {network!r}")


def needs_allocation(request: TenantRequest, facts: CloudFacts) -> bool:
    return any(net.cidr is None and net.name not in facts.existing_cidrs for net in request.spec.networks)


def _network_cidrs(request: TenantRequest, agency: Agency, facts: CloudFacts) -> dict[str, str]:
    cidrs: dict[str, str] = {n.name: str(n.cidr) for n in request.spec.networks if n.cidr is not None}
    taken = [ipaddress.IPv4Network(c) for c in list(cidrs.values()) + list(facts.taken_cidrs)]
    for net in request.spec.networks:
        if net.cidr is not None:
            continue
        if net.name in facts.existing_cidrs:
            cidrs[net.name] = facts.existing_cidrs[net.name]
            continue
        chosen = allocate_cidr(agency.cidrPools, request.name, net.name, net.prefixLength, taken)
        taken.append(chosen)
        cidrs[net.name] = str(chosen)
    return cidrs


def rule_key(rule_attrs: Mapping) -> str:
    ports = "any" if rule_attrs["port_min"] is None else f"{rule_attrs['port_min']}-{rule_attrs['port_max']}"
    remote = rule_attrs["remote_ip_prefix"] or (
        f"sg:{rule_attrs['remote_group'].address.name}" if isinstance(rule_attrs.get("remote_group"), Ref)
        else (f"sg:{rule_attrs['remote_group']}" if rule_attrs.get("remote_group") else "any"))
    return f"{rule_attrs['direction']}:{rule_attrs['ethertype']}:{rule_attrs['protocol'] or 'any'}:{ports}:{remote}"


def _rule_attrs(group: SecurityGroup, rule: Rule) -> dict:
    low, high = rule.port_range
    return {
        "security_group": Ref(Address(Kind.SECURITY_GROUP, group.name)),
        "direction": rule.direction,
        "ethertype": "IPv4",
        "protocol": None if rule.protocol == "any" else rule.protocol,
        "port_min": low,
        "port_max": high,
        "remote_ip_prefix": str(rule.remote) if rule.remote is not None else None,
        "remote_group": Ref(Address(Kind.SECURITY_GROUP, rule.remoteGroup)) if rule.remoteGroup else None,
    }


def _default_egress(group: SecurityGroup) -> list[dict]:
    return [{"security_group": Ref(Address(Kind.SECURITY_GROUP, group.name)), "direction": "egress",
             "ethertype": ethertype, "protocol": None, "port_min": None, "port_max": None,
             "remote_ip_prefix": None, "remote_group": None} for ethertype in ("IPv4", "IPv6")]


class _Builder:
    def __init__(self, tenant: str):
        self.tenant = tenant
        self.resources: dict[Address, Resource] = {}

    def add(self, kind: Kind, name: str, attrs: dict, depends_on: Iterable[Address] = (), extra: Mapping | None = None) -> Address:
        address = Address(kind, name)
        if address in self.resources:
            raise ValueError(f"duplicate resource {address}")
        refs = {v.address for v in _walk_refs(attrs)}
        deps = tuple(sorted(set(depends_on) | refs, key=lambda a: a.sort_key))
        self.resources[address] = Resource(address=address, attrs=attrs, depends_on=deps, extra=dict(extra or {}))
        return address

    def tags(self, address_text: str) -> list[str]:
        return naming.ownership_tags(self.tenant, address_text)


def _walk_refs(value) -> Iterable[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _walk_refs(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk_refs(v)


def expand(request: TenantRequest, catalog: PlatformCatalog, agency: Agency, *, domain: str,
           facts: CloudFacts = CloudFacts(), render_user_data: UserDataRenderer | None = None) -> DesiredState:
    """`domain`: the agency's Keystone domain (`AgencyRegistry.domain_of`): the project lives
    there and the members are that domain's users."""
    spec = request.spec
    tenant = request.name
    region = catalog.spec.regions[spec.region]
    b = _Builder(tenant)

    project = b.add(Kind.PROJECT, tenant, {
        "name": naming.project_name(tenant),
        "domain": domain,
        "description": request.metadata.description,
        "enabled": True,
        "tags": sorted(naming.project_tags(tenant, request.metadata.agency, spec.classification, spec.expiresAt)),
    })
    # the operator is gcloudctl's own service user (in its own domain): no domain to look it up in
    operator = b.add(Kind.MEMBERSHIP, membership_name(OPERATOR, "member"),
                     {"user": OPERATOR, "role": "member", "domain": None}, [project])
    for member in spec.members:
        for role in member.roles:
            b.add(Kind.MEMBERSHIP, membership_name(member.user, role),
                  {"user": member.user, "role": role, "domain": domain}, [project])

    q = effective_quotas(request, catalog.spec.flavors, agency)  # spec.quotas, or derived from the servers
    b.add(Kind.QUOTA, "compute", {"instances": q.instances, "cores": q.cores, "ram": q.ramMiB}, [project])
    network_quota = {"floatingip": q.floatingIPs}
    for ours, theirs in (("networks", "network"), ("ports", "port"), ("securityGroups", "security_group"),
                         ("securityGroupRules", "security_group_rule")):
        if getattr(q, ours) is not None:
            network_quota[theirs] = getattr(q, ours)
    b.add(Kind.QUOTA, "network", network_quota, [project])
    if region.blockStorage:
        b.add(Kind.QUOTA, "volume", {"volumes": q.volumes, "gigabytes": q.volumeGiB, "snapshots": q.snapshots},
              [project])

    keypairs = {}
    for kp in spec.keypairs:
        keypairs[kp.name] = kp.publicKey
        b.add(Kind.KEYPAIR, kp.name, {"name": naming.keypair_name(request.metadata.agency, tenant, kp.name), "public_key": kp.publicKey}, [project])

    cidrs = _network_cidrs(request, agency, facts)
    zones = {}
    for net in spec.networks:
        zones[net.name] = net.zone
        n_addr = f"network.{net.name}"
        b.add(Kind.NETWORK, net.name, {"name": net.name, "tags": sorted(b.tags(n_addr) + [f"gc-zone={net.zone}"])}, [project])
        b.add(Kind.SUBNET, net.name, {
            "name": net.name, "network": Ref(Address(Kind.NETWORK, net.name)), "ip_version": 4,
            "cidr": cidrs[net.name], "enable_dhcp": net.dhcp,
            "dns_nameservers": [str(d) for d in net.dnsNameservers],
            "tags": sorted(b.tags(f"subnet.{net.name}") + [naming.AGENCY_TAG_PREFIX + request.metadata.agency]),
        }, [project])

    router_addr = None
    if spec.router is not None:
        router_addr = b.add(Kind.ROUTER, spec.router.name, {
            "name": spec.router.name, "external_network": spec.router.externalNetwork,
            "tags": sorted(b.tags(f"router.{spec.router.name}")),
        }, [project])
        for net in spec.networks:
            if net.routed:
                b.add(Kind.ROUTER_INTERFACE, f"{spec.router.name}.{net.name}", {
                    "router": Ref(router_addr), "subnet": Ref(Address(Kind.SUBNET, net.name))}, [project])

    for group in spec.securityGroups:
        rules = [_rule_attrs(group, r) for r in group.rules]
        keep_defaults = spec.classification < 3 and not any(r.direction == "egress" for r in group.rules)
        if keep_defaults:
            rules += _default_egress(group)  # Neutron's own defaults: declared so they are not drift
        b.add(Kind.SECURITY_GROUP, group.name, {
            "name": group.name, "description": group.description,
            "tags": sorted(b.tags(f"security_group.{group.name}")),
        }, [project], extra={"keep_default_egress": keep_defaults})
        for attrs in rules:
            key = rule_key(attrs)
            if Address(Kind.SECURITY_GROUP_RULE, f"{group.name}/{key}") not in b.resources:
                b.add(Kind.SECURITY_GROUP_RULE, f"{group.name}/{key}", attrs, [project])

    for server in spec.servers:
        _expand_server(b, request, catalog, server, zones, keypairs, operator, router_addr, render_user_data)

    return DesiredState(tenant=tenant, resources=b.resources, request_digest=request_digest(request))


def user_data_context(request: TenantRequest, catalog: PlatformCatalog, server: Server, index: int) -> dict:
    """What a user-data template sees for the index-th (1-based) copy of `server`. The one
    definition used by validation (which renders copy 1) and by expand (every copy)."""
    from gcloudctl.policy import default_hardening_profile

    name = naming.server_name(server.name, index)
    zones = {n.name: n.zone for n in request.spec.networks}
    keys = {k.name: k.publicKey for k in request.spec.keypairs}
    profile = (server.hardening.profile if server.hardening and server.hardening.profile
               else default_hardening_profile(request.spec.classification))
    return {
        "tenant": request.name, "agency": request.metadata.agency, "server": name, "hostname": name,
        "role": server.name, "zone": zones.get(server.networks[0], "app"),
        "classification_level": request.spec.classification,
        "automation_user": catalog.spec.automationUser,
        "ssh_authorized_keys": [keys[server.keypair]] if server.keypair in keys else [],
        "hardening_profile": profile,
    }


def _expand_volume(b: _Builder, server_name: str, volume, server_addr: Address, operator: Address) -> None:
    """A data volume of one server copy, and its attachment to that copy. The volume is made
    inside the project (gcloudctl's role there first), while the server boots; the attachment
    comes after both."""
    project = Address(Kind.PROJECT, b.tenant)
    local = f"{server_name}.{volume.name}"
    v_addr = b.add(Kind.VOLUME, local, {
        "name": naming.volume_name(server_name, volume.name), "size": volume.sizeGiB, "type": volume.type,
        "metadata": naming.volume_metadata(b.tenant, f"volume.{local}", volume.mountPoint),
    }, [project, operator])
    b.add(Kind.VOLUME_ATTACHMENT, local, {"volume": Ref(v_addr), "server": Ref(server_addr)}, [project, operator])


def _expand_server(b: _Builder, request: TenantRequest, catalog: PlatformCatalog, server: Server,
                   zones: Mapping[str, str], keypairs: Mapping[str, str], operator: Address,
                   router_addr: Address | None, render_user_data: UserDataRenderer | None) -> None:
    tenant = request.name
    region = catalog.spec.regions[request.spec.region]
    project = Address(Kind.PROJECT, tenant)
    group_addr = None
    if server.antiAffinity:
        group_addr = b.add(Kind.SERVER_GROUP, server.name, {"name": server.name, "policy": region.antiAffinityPolicy},
                           [project, operator])
    zone = zones.get(server.networks[0], "app")
    for index in range(1, server.count + 1):
        name = naming.server_name(server.name, index)
        ports = []
        for net in server.networks:
            p_addr = b.add(Kind.PORT, f"{name}.{net}", {
                "name": naming.port_name(name, net),
                "network": Ref(Address(Kind.NETWORK, net)),
                "subnet": Ref(Address(Kind.SUBNET, net)),
                "security_groups": [Ref(Address(Kind.SECURITY_GROUP, g)) for g in sorted(server.securityGroups)],
                "tags": sorted(b.tags(f"port.{name}.{net}")),
            }, [project])
            ports.append(p_addr)
        user_data, digest = None, None
        if render_user_data is not None:
            template = server.userData.template if server.userData else "default.yaml.j2"
            variables = dict(server.userData.vars) if server.userData else {}
            context = user_data_context(request, catalog, server, index)
            user_data = render_user_data(template, variables, context)
            digest = hashlib.sha256(user_data.encode()).hexdigest()[:16]
        s_addr = f"server.{name}"
        boot = (naming.boot_volume_text(server.bootVolume.type, server.bootVolume.sizeGiB)
                if server.bootVolume is not None else None)
        attrs = {
            "name": name,
            "flavor": server.flavor,
            "image": server.image,
            "key_name": naming.keypair_name(request.metadata.agency, tenant, server.keypair) if server.keypair else None,
            "ports": sorted((Ref(p) for p in ports), key=str),
            "server_group": Ref(group_addr) if group_addr else None,
            "user_data_digest": digest,
            "boot_volume": boot,
            "metadata": {**server.metadata, **naming.server_metadata(tenant, s_addr, server.name, zone, server.image,
                                                                   digest, boot)},
        }
        deps = [project, operator] + ([Address(Kind.KEYPAIR, server.keypair)] if server.keypair else [])
        extra = {"nics": [Ref(p) for p in ports]}  # NIC order (the first network is the primary)
        if user_data:
            extra["user_data"] = user_data
        server_addr = b.add(Kind.SERVER, name, attrs, deps, extra=extra)
        for volume in server.volumes:
            _expand_volume(b, name, volume, server_addr, operator)
        if server.floatingIP:
            first = server.networks[0]
            deps = [project]
            if router_addr is not None:
                deps += [router_addr, Address(Kind.ROUTER_INTERFACE, f"{router_addr.name}.{first}")]
            region_ext = request.spec.router.externalNetwork if request.spec.router else region.externalNetworks[0]
            b.add(Kind.FLOATING_IP, name, {
                "external_network": region_ext, "port": Ref(ports[0]),
                "tags": sorted(b.tags(f"floating_ip.{name}")),
            }, deps)
