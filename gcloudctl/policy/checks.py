"""Stage: validate (policy). The fixed set of checks a rulebook rule can name.

Each check takes the request, the platform catalog and its typed parameters and returns
`Violation`s (field path + what exactly is wrong). Which checks run, from which level and
with which parameters is data (`gcloudctl.policy.rulebook`). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

from gcloudctl.model.catalog import PlatformCatalog
from gcloudctl.model.request import Rule, Server, TenantRequest
from gcloudctl.policy import rulebook as rb

ADMIN_PROTOCOLS = ("tcp", "udp")
PROFILE_ORDER = ("L1", "L2", "L3", "L4")


@dataclass(frozen=True)
class Violation:
    path: str
    detail: str = ""


# --------------------------------------------------------------------------- request facts

def network_zones(request: TenantRequest) -> dict[str, str]:
    return {net.name: net.zone for net in request.spec.networks}


def primary_zone(request: TenantRequest, server: Server) -> str | None:
    """The zone of a server's first network: where its floating IP and identity live."""
    return network_zones(request).get(server.networks[0]) if server.networks else None


def server_zones(request: TenantRequest, server: Server) -> set[str]:
    zones = network_zones(request)
    return {zones[n] for n in server.networks if n in zones}


def from_internet(rule: Rule) -> bool:
    """True when the rule's remote side is the internet (no remote at all means any source)."""
    if rule.remoteGroup is not None:
        return False
    if rule.remote is None:
        return True
    return rule.remote.prefixlen < 8 and not rule.remote.is_private


def covers_port(rule: Rule, port: int) -> bool:
    if rule.protocol == "any":
        return True
    if rule.protocol not in ADMIN_PROTOCOLS:
        return False
    low, high = rule.port_range
    return low is None or low <= port <= high


def only_ports(rule: Rule, allowed: list[int]) -> bool:
    if rule.protocol not in ADMIN_PROTOCOLS:
        return False
    low, high = rule.port_range
    if low is None or high - low >= len(allowed):
        return False
    return all(port in allowed for port in range(low, high + 1))


def zone_words(zone: str | None) -> str:
    return f"zone '{zone}'" if zone else "no known zone"


def describe_rule(rule: Rule) -> str:
    ports = f" port {rule.ports}" if rule.ports is not None else " all ports" if rule.protocol in ADMIN_PROTOCOLS else ""
    remote = str(rule.remote) if rule.remote is not None else "anywhere"
    return f"{rule.direction} {rule.protocol}{ports} from {remote}"


def internet_rules(request: TenantRequest, direction: str) -> Iterator[tuple[int, int, Rule]]:
    for g, group in enumerate(request.spec.securityGroups):
        for r, rule in enumerate(group.rules):
            if rule.direction == direction and from_internet(rule):
                yield g, r, rule


def _rule_path(g: int, r: int) -> str:
    return f"spec.securityGroups[{g}].rules[{r}]"


# --------------------------------------------------------------------------- checks

def level_not_served(req: TenantRequest, catalog: PlatformCatalog, params: rb.NoParams) -> list[Violation]:
    if catalog.spec.serveLevel5:
        return []
    return [Violation("spec.classification", f"level {req.spec.classification} is not served by this platform")]


def world_ingress_ports(req: TenantRequest, catalog: PlatformCatalog, params: rb.PortsInZones) -> list[Violation]:
    found: list[Violation] = []
    open_groups: set[str] = set()
    for g, r, rule in internet_rules(req, "ingress"):
        group = req.spec.securityGroups[g].name
        if not only_ports(rule, params.ports):
            found.append(Violation(_rule_path(g, r), f"group '{group}' allows {describe_rule(rule)}"))
        open_groups.add(group)
    for s, server in enumerate(req.spec.servers):
        zone = primary_zone(req, server)
        for i, group in enumerate(server.securityGroups):
            if group in open_groups and zone not in params.zones:
                found.append(Violation(f"spec.servers[{s}].securityGroups[{i}]",
                                       f"server '{server.name}' in {zone_words(zone)} uses group '{group}', "
                                       "which is open to the internet"))
    return found


def world_ingress_forbidden_ports(req: TenantRequest, catalog: PlatformCatalog, params: rb.Ports) -> list[Violation]:
    found = []
    for g, r, rule in internet_rules(req, "ingress"):
        hit = [port for port in params.ports if covers_port(rule, port)]
        if hit:
            found.append(Violation(_rule_path(g, r), f"{describe_rule(rule)} opens port(s) {', '.join(map(str, hit))}"))
    return found


def floating_ip_zones(req: TenantRequest, catalog: PlatformCatalog, params: rb.Zones) -> list[Violation]:
    return [Violation(f"spec.servers[{s}].floatingIP",
                      f"server '{server.name}' is in {zone_words(primary_zone(req, server))}")
            for s, server in enumerate(req.spec.servers)
            if server.floatingIP and primary_zone(req, server) not in params.zones]


def floating_ip_forbidden_zones(req: TenantRequest, catalog: PlatformCatalog, params: rb.Zones) -> list[Violation]:
    found = []
    for s, server in enumerate(req.spec.servers):
        bad = sorted(server_zones(req, server) & set(params.zones))
        if server.floatingIP and bad:
            found.append(Violation(f"spec.servers[{s}].floatingIP",
                                   f"server '{server.name}' has a network in zone(s) {', '.join(bad)}"))
    return found


def egress_restricted(req: TenantRequest, catalog: PlatformCatalog, params: rb.NoParams) -> list[Violation]:
    return [Violation(_rule_path(g, r), f"group '{req.spec.securityGroups[g].name}' allows {describe_rule(rule)}"
                      .replace(" from ", " to "))
            for g, r, rule in internet_rules(req, "egress")
            if rule.protocol == "any" or rule.ports is None]


def security_groups_required(req: TenantRequest, catalog: PlatformCatalog, params: rb.NoParams) -> list[Violation]:
    return [Violation(f"spec.servers[{s}].securityGroups", f"server '{server.name}' has no security group")
            for s, server in enumerate(req.spec.servers) if not server.securityGroups]


def required_zones(req: TenantRequest, catalog: PlatformCatalog, params: rb.Zones) -> list[Violation]:
    present = set(network_zones(req).values())
    missing = [zone for zone in params.zones if zone not in present]
    return [Violation("spec.networks", f"missing: {', '.join(missing)}")] if missing else []


def isolated_zones(req: TenantRequest, catalog: PlatformCatalog, params: rb.Zones) -> list[Violation]:
    return [Violation(f"spec.networks[{n}].routed", f"network '{net.name}' in zone '{net.zone}' is routed")
            for n, net in enumerate(req.spec.networks) if net.zone in params.zones and net.routed]


def bastion_required(req: TenantRequest, catalog: PlatformCatalog, params: rb.Bastion) -> list[Violation]:
    pattern = re.compile(params.namePattern)
    for server in req.spec.servers:
        if pattern.search(server.name) and params.zone in server_zones(req, server):
            return []
    return [Violation("spec.servers", f"no server name matches '{params.namePattern}' with a network in zone "
                                      f"'{params.zone}'")]


def anti_affinity_required(req: TenantRequest, catalog: PlatformCatalog, params: rb.MinCount) -> list[Violation]:
    return [Violation(f"spec.servers[{s}].antiAffinity", f"server '{server.name}' has count {server.count}")
            for s, server in enumerate(req.spec.servers)
            if server.count >= params.minCount and not server.antiAffinity]


def no_expiry(req: TenantRequest, catalog: PlatformCatalog, params: rb.NoParams) -> list[Violation]:
    return [Violation("spec.expiresAt", f"expiresAt is {req.spec.expiresAt.isoformat()}")] if req.spec.expiresAt else []


def default_hardening_profile(level: int) -> str:
    """The hardening profile a server gets when it names none: L<level>, at most L4."""
    return f"L{min(max(level, 1), 4)}"


def hardening_minimum(req: TenantRequest, catalog: PlatformCatalog, params: rb.MinProfile) -> list[Violation]:
    found = []
    for s, server in enumerate(req.spec.servers):
        profile = server.hardening.profile if server.hardening and server.hardening.profile else None
        if profile is not None and PROFILE_ORDER.index(profile) < PROFILE_ORDER.index(params.profile):
            found.append(Violation(f"spec.servers[{s}].hardening.profile",
                                   f"server '{server.name}' asks for {profile}, below {params.profile}"))
    return found


Check = Callable[[TenantRequest, PlatformCatalog, rb._Model], list[Violation]]
CHECKS: dict[str, Check] = {
    "level-not-served": level_not_served,
    "world-ingress-ports": world_ingress_ports,
    "world-ingress-forbidden-ports": world_ingress_forbidden_ports,
    "floating-ip-zones": floating_ip_zones,
    "floating-ip-forbidden-zones": floating_ip_forbidden_zones,
    "egress-restricted": egress_restricted,
    "security-groups-required": security_groups_required,
    "required-zones": required_zones,
    "isolated-zones": isolated_zones,
    "bastion-required": bastion_required,
    "anti-affinity-required": anti_affinity_required,
    "no-expiry": no_expiry,
    "hardening-minimum": hardening_minimum,
}
assert set(CHECKS) == set(rb.CHECK_PARAMS), "every check has parameters and an evaluator"
