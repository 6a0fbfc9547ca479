"""Stage: validate (policy). The fixed set of checks a rulebook rule can name.

Each check takes the request, the `Setting` it is judged in (platform catalog, and the ranges
that are not the internet for the request's agency) and its typed parameters, and returns
`Violation`s (field path + what exactly is wrong). Which checks run, from which level and
with which parameters is data (`gcloudctl.policy.rulebook`). Whether a rule is "from the
internet" is decided by `gcloudctl.policy.exposure` alone (the approval rules use the same
function). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

from gcloudctl.model.catalog import PlatformCatalog
from gcloudctl.model.request import Rule, Server, TenantRequest
from gcloudctl.policy import rulebook as rb
from gcloudctl.policy.exposure import Exposure, InternalRanges, rules_exposure

ADMIN_PROTOCOLS = ("tcp", "udp")
PROFILE_ORDER = ("L1", "L2", "L3", "L4")


@dataclass(frozen=True)
class Violation:
    path: str
    detail: str = ""


@dataclass(frozen=True)
class Setting:
    """What a check may know besides the request: the platform catalog and the ranges that are
    not the internet for the request's agency (catalog `internalRanges`, the agency's pools)."""

    catalog: PlatformCatalog
    internal: InternalRanges = InternalRanges()


# --------------------------------------------------------------------------- request facts

def network_zones(request: TenantRequest) -> dict[str, str]:
    return {net.name: net.zone for net in request.spec.networks}


def primary_zone(request: TenantRequest, server: Server) -> str | None:
    """The zone of a server's first network: where its floating IP and identity live."""
    return network_zones(request).get(server.networks[0]) if server.networks else None


def server_zones(request: TenantRequest, server: Server) -> set[str]:
    zones = network_zones(request)
    return {zones[n] for n in server.networks if n in zones}


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


def internet_rules(request: TenantRequest, direction: str, internal: InternalRanges,
                   covers: Callable[[Rule], bool] = lambda rule: True
                   ) -> Iterator[tuple[int, int, Rule, Exposure]]:
    """Per group, the rules in `direction` (that `covers` selects) whose union reaches the
    internet (`exposure`), and of those the rules that contribute internet addresses, each with
    the union's exposure (what the whole group lets in or out)."""
    for g, group in enumerate(request.spec.securityGroups):
        chosen = [(r, rule) for r, rule in enumerate(group.rules) if rule.direction == direction and covers(rule)]
        union = rules_exposure((rule for _, rule in chosen), internal)
        if not union.internet_facing:
            continue
        for r, rule in chosen:
            if rules_exposure([rule], internal).internet_facing:
                yield g, r, rule, union


def server_exposure(request: TenantRequest, server: Server, internal: InternalRanges) -> Exposure:
    """The internet addresses a server admits: the union of the ingress rules of all its groups."""
    groups = {group.name: group for group in request.spec.securityGroups}
    return rules_exposure((rule for name in server.securityGroups if name in groups
                           for rule in groups[name].rules if rule.direction == "ingress"), internal)


def _from_where(rule: Rule, union: Exposure, internal: InternalRanges) -> str:
    """`describe_rule`, plus what the group's rules let through together when that is more."""
    alone = rules_exposure([rule], internal)
    if alone.reached == union.reached:
        return describe_rule(rule)
    return f"{describe_rule(rule)}; with the group's other rules: {union.describe()}"


def _rule_path(g: int, r: int) -> str:
    return f"spec.securityGroups[{g}].rules[{r}]"


# --------------------------------------------------------------------------- checks

def level_not_served(req: TenantRequest, setting: Setting, params: rb.NoParams) -> list[Violation]:
    if setting.catalog.spec.serveLevel5:
        return []
    return [Violation("spec.classification", f"level {req.spec.classification} is not served by this platform")]


def world_ingress_ports(req: TenantRequest, setting: Setting, params: rb.PortsInZones) -> list[Violation]:
    found: list[Violation] = []
    open_groups: set[str] = set()
    for g, r, rule, union in internet_rules(req, "ingress", setting.internal):
        group = req.spec.securityGroups[g].name
        if not only_ports(rule, params.ports):
            found.append(Violation(_rule_path(g, r),
                                   f"group '{group}' allows {_from_where(rule, union, setting.internal)}"))
        open_groups.add(group)
    for s, server in enumerate(req.spec.servers):
        zone = primary_zone(req, server)
        if zone in params.zones or not server_exposure(req, server, setting.internal).internet_facing:
            continue
        for i, group in enumerate(server.securityGroups):
            if group in open_groups:
                found.append(Violation(f"spec.servers[{s}].securityGroups[{i}]",
                                       f"server '{server.name}' in {zone_words(zone)} uses group '{group}', "
                                       "which is open to the internet"))
    return found


def world_ingress_forbidden_ports(req: TenantRequest, setting: Setting, params: rb.Ports) -> list[Violation]:
    """Each port is judged on the union of the group's ingress rules that cover it."""
    hits: dict[tuple[int, int], tuple[Rule, Exposure, list[int]]] = {}
    for port in params.ports:
        covering = partial(_covers, port=port)
        for g, r, rule, union in internet_rules(req, "ingress", setting.internal, covering):
            hits.setdefault((g, r), (rule, union, []))[2].append(port)
    return [Violation(_rule_path(g, r),
                      f"{_from_where(rule, union, setting.internal)} opens port(s) {', '.join(map(str, ports))}")
            for (g, r), (rule, union, ports) in sorted(hits.items())]


def _covers(rule: Rule, *, port: int) -> bool:
    return covers_port(rule, port)


def floating_ip_zones(req: TenantRequest, setting: Setting, params: rb.Zones) -> list[Violation]:
    return [Violation(f"spec.servers[{s}].floatingIP",
                      f"server '{server.name}' is in {zone_words(primary_zone(req, server))}")
            for s, server in enumerate(req.spec.servers)
            if server.floatingIP and primary_zone(req, server) not in params.zones]


def floating_ip_forbidden_zones(req: TenantRequest, setting: Setting, params: rb.Zones) -> list[Violation]:
    found = []
    for s, server in enumerate(req.spec.servers):
        bad = sorted(server_zones(req, server) & set(params.zones))
        if server.floatingIP and bad:
            found.append(Violation(f"spec.servers[{s}].floatingIP",
                                   f"server '{server.name}' has a network in zone(s) {', '.join(bad)}"))
    return found


def egress_restricted(req: TenantRequest, setting: Setting, params: rb.NoParams) -> list[Violation]:
    return [Violation(_rule_path(g, r), f"group '{req.spec.securityGroups[g].name}' allows {describe_rule(rule)}"
                      .replace(" from ", " to "))
            for g, r, rule, _ in internet_rules(req, "egress", setting.internal)
            if rule.protocol == "any" or rule.ports is None]


def security_groups_required(req: TenantRequest, setting: Setting, params: rb.NoParams) -> list[Violation]:
    return [Violation(f"spec.servers[{s}].securityGroups", f"server '{server.name}' has no security group")
            for s, server in enumerate(req.spec.servers) if not server.securityGroups]


def required_zones(req: TenantRequest, setting: Setting, params: rb.Zones) -> list[Violation]:
    present = set(network_zones(req).values())
    missing = [zone for zone in params.zones if zone not in present]
    return [Violation("spec.networks", f"missing: {', '.join(missing)}")] if missing else []


def isolated_zones(req: TenantRequest, setting: Setting, params: rb.Zones) -> list[Violation]:
    return [Violation(f"spec.networks[{n}].routed", f"network '{net.name}' in zone '{net.zone}' is routed")
            for n, net in enumerate(req.spec.networks) if net.zone in params.zones and net.routed]


def bastion_required(req: TenantRequest, setting: Setting, params: rb.Bastion) -> list[Violation]:
    pattern = re.compile(params.namePattern)
    for server in req.spec.servers:
        if pattern.search(server.name) and params.zone in server_zones(req, server):
            return []
    return [Violation("spec.servers", f"no server name matches '{params.namePattern}' with a network in zone "
                                      f"'{params.zone}'")]


def anti_affinity_required(req: TenantRequest, setting: Setting, params: rb.MinCount) -> list[Violation]:
    return [Violation(f"spec.servers[{s}].antiAffinity", f"server '{server.name}' has count {server.count}")
            for s, server in enumerate(req.spec.servers)
            if server.count >= params.minCount and not server.antiAffinity]


def no_expiry(req: TenantRequest, setting: Setting, params: rb.NoParams) -> list[Violation]:
    return [Violation("spec.expiresAt", f"expiresAt is {req.spec.expiresAt.isoformat()}")] if req.spec.expiresAt else []


def default_hardening_profile(level: int) -> str:
    """The hardening profile a server gets when it names none: L<level>, at most L4."""
    return f"L{min(max(level, 1), 4)}"


def hardening_minimum(req: TenantRequest, setting: Setting, params: rb.MinProfile) -> list[Violation]:
    found = []
    for s, server in enumerate(req.spec.servers):
        profile = server.hardening.profile if server.hardening and server.hardening.profile else None
        if profile is not None and PROFILE_ORDER.index(profile) < PROFILE_ORDER.index(params.profile):
            found.append(Violation(f"spec.servers[{s}].hardening.profile",
                                   f"server '{server.name}' asks for {profile}, below {params.profile}"))
    return found


def volumes_encrypted(req: TenantRequest, setting: Setting, params: rb.NoParams) -> list[Violation]:
    """Every data and boot volume uses a type the catalog marks `encrypted` (unknown types are
    the catalog check's to report)."""
    types = setting.catalog.spec.volumeTypes
    found = []
    for s, server in enumerate(req.spec.servers):
        named = [(f"spec.servers[{s}].volumes[{v}].type", vol.name, vol.type) for v, vol in enumerate(server.volumes)]
        if server.bootVolume is not None:
            named.append((f"spec.servers[{s}].bootVolume.type", "boot", server.bootVolume.type))
        for path, name, kind in named:
            if kind in types and not types[kind].encrypted:
                found.append(Violation(path, f"server '{server.name}' volume '{name}' has type '{kind}', "
                                             "which is not encrypted"))
    return found


Check = Callable[[TenantRequest, Setting, rb._Model], list[Violation]]
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
    "volumes-encrypted": volumes_encrypted,
}
assert set(CHECKS) == set(rb.CHECK_PARAMS), "every check has parameters and an evaluator"
