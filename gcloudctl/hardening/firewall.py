"""Host firewall facts: what each server's own security groups let in and out, plus the
platform's admin sources and central log host, shaped for the nftables template of `gc_firewall`.

Stage: pure (reads an `ObservedState` and catalog values, returns plain JSON-able dicts; no I/O).
Callers: `hardening.hosts.hosts_from_observed` (per-server SG facts), `hardening.inventory.
build_inventory` (host variables) and the apply/harden paths through `inventory_settings`.
It must not call a driver or decide policy: the rulebook decides what a request may declare;
this only carries what the tenant declared (and Neutron holds) onto the host.

Why on the host too: Neutron's security groups are enforced by the cloud's firewall driver
(devcloud runs `noop`), and a level-3 host must hold its own line (defence in depth).

Rules kept on the host (level >= 3; the template renders them):
- inbound: default drop; established/related, loopback and rate-limited ICMP; SSH (tcp/22) only
  from the admin sources (catalog `spec.adminSources`, plus the tenant bastion's fixed IPs for
  servers behind it) — a security-group rule that also covers 22 does not open SSH to others;
  then every ingress rule of the server's groups (protocol, port range, source CIDR or the fixed
  IPs of the ports in the remote group).
- outbound: default drop; established/related and loopback; every egress rule of the server's
  groups; the central log host (catalog `spec.logging`); the platform's DNS/NTP (group_vars
  `gcloudctl_platform_egress`); a bastion may open SSH to the tenant's subnets.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Mapping

from gcloudctl.resources import Address, Kind, ObservedState, Ref

SSH_PORT = 22
ANY = {"IPv4": "0.0.0.0/0", "IPv6": "::/0"}


def _ref_address(value: Any) -> Address | None:
    return value.address if isinstance(value, Ref) else None


def _ports_text(low: Any, high: Any) -> str | None:
    if low is None and high is None:
        return None
    low = int(low if low is not None else high)
    high = int(high if high is not None else low)
    return str(low) if low == high else f"{low}-{high}"


def _network(text: str) -> str | None:
    """A CIDR in canonical form, or None for something that is not one (never rendered)."""
    try:
        return str(ipaddress.ip_network(str(text), strict=False))
    except ValueError:
        return None


def _group_members(observed: ObservedState) -> dict[Address, list[str]]:
    """Security group -> fixed IPs (/32, /128) of the ports that carry it."""
    members: dict[Address, set[str]] = {}
    for res in observed.resources.values():
        if res.address.kind is not Kind.PORT:
            continue
        ips = [ip for ip in (res.extra.get("fixed_ips") or []) if ip]
        for group in res.attrs.get("security_groups") or []:
            addr = _ref_address(group)
            if addr is None:
                continue
            for ip in ips:
                net = _network(ip)
                if net:
                    members.setdefault(addr, set()).add(net)
    return {k: sorted(v) for k, v in members.items()}


def _merge(flows: Iterable[tuple[str, str, str | None, str]], peer_key: str) -> list[dict]:
    """(direction-free) (family, proto, ports, peer) tuples -> [{proto, ports, <peer_key>: [...]}]."""
    grouped: dict[tuple[str, str | None], set[str]] = {}
    for _family, proto, ports, peer in flows:
        grouped.setdefault((proto, ports), set()).add(peer)

    def order(item):
        (proto, ports), _ = item
        low = int(ports.split("-")[0]) if ports else -1
        return (low, ports or "", proto)

    out = []
    for (proto, ports), peers in sorted(grouped.items(), key=order):
        rule: dict = {"proto": proto}
        if ports:
            rule["ports"] = ports
        rule[peer_key] = sorted(peers, key=lambda p: (":" in p, ipaddress.ip_network(p)))
        out.append(rule)
    return out


def _rule_flows(rule_attrs: Mapping, members: Mapping[Address, list[str]]) -> list[tuple[str, str, str | None, str]]:
    family = "IPv6" if rule_attrs.get("ethertype") == "IPv6" else "IPv4"
    proto = rule_attrs.get("protocol") or "any"
    proto = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmp"}.get(str(proto), str(proto))
    if proto == "icmp" and family == "IPv6":
        proto = "ipv6-icmp"
    if proto not in ("tcp", "udp", "icmp", "ipv6-icmp", "any"):
        return []  # other IP protocols (gre, vrrp...) are not rendered: the host keeps dropping them
    ports = _ports_text(rule_attrs.get("port_min"), rule_attrs.get("port_max")) if proto in ("tcp", "udp") else None
    remote_group = _ref_address(rule_attrs.get("remote_group"))
    if remote_group is not None:
        peers = [p for p in members.get(remote_group, []) if (":" in p) == (family == "IPv6")]
    elif rule_attrs.get("remote_group"):
        peers = []  # a group of another project: its members are unknown here, so nothing is opened
    else:
        peer = _network(rule_attrs.get("remote_ip_prefix") or ANY[family])
        peers = [peer] if peer and (":" in peer) == (family == "IPv6") else []
    return [(family, proto, ports, p) for p in peers]


def server_firewalls(observed: ObservedState) -> dict[Address, dict]:
    """Server address -> {security_groups, ingress, egress} from the groups on the server's ports.

    ingress: [{proto, ports?, sources: [cidr]}]; egress: [{proto, ports?, destinations: [cidr]}];
    proto is tcp | udp | icmp | ipv6-icmp | any; ports "443" or "8000-8080" (tcp/udp only).
    """
    members = _group_members(observed)
    rules_by_group: dict[Address, list[Mapping]] = {}
    for res in observed.resources.values():
        if res.address.kind is Kind.SECURITY_GROUP_RULE:
            group = _ref_address(res.attrs.get("security_group"))
            if group is not None:
                rules_by_group.setdefault(group, []).append(res.attrs)
    out: dict[Address, dict] = {}
    for res in observed.resources.values():
        if res.address.kind is not Kind.SERVER:
            continue
        groups: set[Address] = set()
        for port_ref in res.attrs.get("ports") or []:
            port = observed.resources.get(_ref_address(port_ref)) if _ref_address(port_ref) else None
            if port is not None:
                groups |= {a for a in map(_ref_address, port.attrs.get("security_groups") or []) if a}
        ingress, egress = [], []
        for group in groups:
            for rule in rules_by_group.get(group, []):
                flows = _rule_flows(rule, members)
                (ingress if rule.get("direction") == "ingress" else egress).extend(flows)
        names = sorted(str((observed.resources.get(g).attrs.get("name") if observed.resources.get(g) else None)
                           or g.name) for g in groups)
        out[res.address] = {"security_groups": names, "ingress": _merge(ingress, "sources"),
                            "egress": _merge(egress, "destinations")}
    return out


def tenant_subnets(observed: ObservedState) -> list[str]:
    """The CIDRs of the tenant's subnets (a bastion may open SSH to these)."""
    cidrs = {_network(r.attrs.get("cidr") or "") for r in observed.resources.values() if r.address.kind is Kind.SUBNET}
    return sorted((c for c in cidrs if c), key=lambda p: (":" in p, ipaddress.ip_network(p)))


def inventory_settings(catalog_spec: Any) -> dict:
    """Keyword arguments for `build_inventory` from the platform catalog's `spec`
    (`adminSources`, `logging`): `build_inventory(..., **inventory_settings(catalog.spec))`."""
    log = getattr(catalog_spec, "logging", None)
    return {
        "admin_sources": [str(n) for n in getattr(catalog_spec, "adminSources", None) or []],
        "log_target": None if log is None else {"host": str(log.host), "port": int(log.port),
                                                "protocol": str(log.protocol)},
    }


def ssh_sources(admin_sources: Iterable[str], bastion_ips: Iterable[str] = ()) -> list[str]:
    """Who may open SSH to a host: the admin sources, and the bastion's own addresses."""
    nets = {n for n in (_network(s) for s in [*admin_sources, *bastion_ips]) if n}
    return sorted(nets, key=lambda p: (":" in p, ipaddress.ip_network(p)))


def log_egress(log_target: Mapping | None) -> list[dict]:
    """The outbound flow to the central log host, in the egress rule shape."""
    if not log_target:
        return []
    net = _network(str(log_target["host"]))
    return [{"proto": log_target.get("protocol", "tcp"), "ports": str(int(log_target.get("port", 514))),
             "destinations": [net]}] if net else []
