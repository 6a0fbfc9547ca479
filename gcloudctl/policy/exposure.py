"""Stage: validate (policy). What "from the internet" means — the one definition.

Called by the rulebook's checks (`gcloudctl.policy.checks`: `admin-sources-restricted`,
`internet-ingress-web-only`, `egress-default-deny`, …) and by the approval rules
(`gcloudctl.controller.approvals`, condition `opensIngressFromInternet`), so the two can never
disagree about whether a request exposes a service. Pure: takes networks and documents, returns
values; no I/O.

The definition:

- **Internet addresses** are every IPv4 address except the private ranges (RFC 1918
  10/8, 172.16/12, 192.168/16; 100.64/10 shared CGNAT space; 127/8 loopback; 169.254/16
  link-local), the addresses that are never the source or target of unicast traffic (0/8,
  224/4 multicast, 240/4 reserved and broadcast), the agency's CIDR pools (agency registry)
  and the ranges the platform catalog declares internal (`spec.internalRanges`, e.g. the
  government's private WAN).
- A set of remote prefixes is judged **as a union**: `0.0.0.0/1` + `128.0.0.0/1`, or the 221
  public /8 networks listed one by one, reach the whole internet although no single prefix is
  wider than /1 or /8. A rule without `remote` and without `remoteGroup` admits any source
  (`0.0.0.0/0`); a `remoteGroup` rule admits only members of that group (no addresses).
- A union is **internet-facing when it reaches any internet address at all** — the whole
  internet, a public /8 or one partner's /32. Why not "a large share of it": at level 2 the
  control is to *restrict administration sources* to known networks, and from level 3 *no
  ingress from anywhere except published web ports*; a public address is reached across the
  internet, and the platform can vouch neither for who stands behind it (a partner's NAT
  address is shared by its whole office, guests and malware included) nor for how long it stays
  theirs. Any threshold ("more than a /8") would be arbitrary and could be met just below it.
  A trusted partner network is admitted by platform ops declaring it in the catalog's
  `internalRanges` (one reviewed decision, in one place), or by reaching the tenant over the
  agency's own network (its pools) — never by a request quietly naming a public address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator

from gcloudctl.model.catalog import Agency, PlatformCatalog
from gcloudctl.model.request import Rule, TenantRequest

IPv4Network = ipaddress.IPv4Network
ANYWHERE = IPv4Network("0.0.0.0/0")

PRIVATE_RANGES: tuple[IPv4Network, ...] = tuple(IPv4Network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",                                     # RFC 6598 shared address space (CGNAT)
    "127.0.0.0/8",                                       # loopback
    "169.254.0.0/16",                                    # link-local
))
NOT_UNICAST: tuple[IPv4Network, ...] = tuple(IPv4Network(n) for n in (
    "0.0.0.0/8",                                         # "this network"
    "224.0.0.0/4",                                       # multicast
    "240.0.0.0/4",                                       # reserved, and the limited broadcast address
))

_ALL = 1 << 32


# --------------------------------------------------------------------------- address sets

@dataclass(frozen=True)
class AddressSet:
    """A set of IPv4 addresses as sorted, disjoint, non-adjacent [start, end) spans."""

    spans: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, networks: Iterable[IPv4Network]) -> "AddressSet":
        return cls._merged((int(n.network_address), int(n.network_address) + n.num_addresses) for n in networks)

    @classmethod
    def _merged(cls, spans: Iterable[tuple[int, int]]) -> "AddressSet":
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return cls(tuple((s, e) for s, e in merged))

    def __or__(self, other: "AddressSet") -> "AddressSet":
        return AddressSet._merged(self.spans + other.spans)

    def __sub__(self, other: "AddressSet") -> "AddressSet":
        out: list[tuple[int, int]] = []
        cut = list(other.spans)
        for start, end in self.spans:
            for c_start, c_end in cut:
                if c_end <= start or c_start >= end:
                    continue
                if c_start > start:
                    out.append((start, c_start))
                start = max(start, c_end)
                if start >= end:
                    break
            if start < end:
                out.append((start, end))
        return AddressSet(tuple(out))

    def __and__(self, other: "AddressSet") -> "AddressSet":
        return self - (self - other)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def __len__(self) -> int:
        return sum(end - start for start, end in self.spans)

    def networks(self) -> list[IPv4Network]:
        """The set as the fewest CIDR networks."""
        return [net for start, end in self.spans
                for net in ipaddress.summarize_address_range(ipaddress.IPv4Address(start),
                                                             ipaddress.IPv4Address(end - 1))]


EVERYTHING = AddressSet(((0, _ALL),))


# --------------------------------------------------------------------------- what is internal

@dataclass(frozen=True)
class InternalRanges:
    """The ranges that are not the internet for one agency's requests, besides the private ones:
    the platform catalog's `internalRanges` and the agency's CIDR pools."""

    platform: tuple[IPv4Network, ...] = ()
    agency: tuple[IPv4Network, ...] = ()

    @classmethod
    def of(cls, catalog: PlatformCatalog | None, agency: Agency | None) -> "InternalRanges":
        return cls(platform=tuple(catalog.spec.internalRanges) if catalog is not None else (),
                   agency=tuple(agency.cidrPools) if agency is not None else ())

    @cached_property
    def internet(self) -> AddressSet:
        """Every internet address: all of IPv4 minus private, non-unicast and internal ranges."""
        return EVERYTHING - AddressSet.of(PRIVATE_RANGES + NOT_UNICAST + self.platform + self.agency)


# --------------------------------------------------------------------------- the judgement

@dataclass(frozen=True)
class Exposure:
    """Which internet addresses a union of remote prefixes reaches."""

    reached: AddressSet
    internet: AddressSet

    @property
    def internet_facing(self) -> bool:
        """THE decision: any internet address at all (see the module docstring for why)."""
        return bool(self.reached)

    @property
    def whole_internet(self) -> bool:
        return bool(self.reached) and self.reached == self.internet

    def describe(self) -> str:
        if self.whole_internet:
            return "the whole internet"
        if not self.reached:
            return "no internet address"
        nets = self.reached.networks()
        shown = ", ".join(map(str, nets[:3])) + (f", … ({len(nets)} networks)" if len(nets) > 3 else "")
        count = len(self.reached)
        return f"{count} internet address{'es' if count != 1 else ''} ({shown})"


def exposure(remotes: Iterable[IPv4Network], internal: InternalRanges) -> Exposure:
    """The internet addresses that the union of `remotes` reaches."""
    internet = internal.internet
    return Exposure(reached=AddressSet.of(remotes) & internet, internet=internet)


def rule_remotes(rule: Rule) -> tuple[IPv4Network, ...]:
    """The addresses a security-group rule admits: its `remote`; none for a `remoteGroup` rule
    (only the group's members); any source (`0.0.0.0/0`) when it names neither."""
    if rule.remoteGroup is not None:
        return ()
    return (rule.remote if rule.remote is not None else ANYWHERE,)


def rules_exposure(rules: Iterable[Rule], internal: InternalRanges) -> Exposure:
    """The union of several rules' remotes, judged as one."""
    return exposure((net for rule in rules for net in rule_remotes(rule)), internal)


def internal_ranges(request: TenantRequest, catalog: PlatformCatalog | None, agencies) -> InternalRanges:
    """The internal ranges for `request`'s agency (`agencies`: an `AgencyRegistry` or None)."""
    agency = agencies.get(request.metadata.agency) if agencies is not None else None
    return InternalRanges.of(catalog, agency)


# --------------------------------------------------------------------------- ingress reach per scope

ReachKey = tuple[str, str, str, str]  # (scope kind "group"|"server", name, protocol, ports)


def ingress_reach(request: TenantRequest, internal: InternalRanges) -> dict[ReachKey, AddressSet]:
    """For each group and each server (the union of all groups it uses), per (protocol, ports) of
    an ingress rule, the internet addresses let in. Used to see what a new version *opens*."""
    reach: dict[ReachKey, AddressSet] = {}
    groups = {group.name: group for group in request.spec.securityGroups}

    def add(kind: str, name: str, rules: Iterator[Rule]) -> None:
        by_service: dict[tuple[str, str], list[Rule]] = {}
        for rule in rules:
            if rule.direction == "ingress":
                by_service.setdefault((rule.protocol, str(rule.ports)), []).append(rule)
        for (protocol, ports), service_rules in by_service.items():
            reached = rules_exposure(service_rules, internal).reached
            if reached:
                reach[(kind, name, protocol, ports)] = reached

    for group in request.spec.securityGroups:
        add("group", group.name, iter(group.rules))
    for server in request.spec.servers:
        add("server", server.name,
            (rule for name in server.securityGroups if name in groups for rule in groups[name].rules))
    return reach


def opened_ingress(new: TenantRequest, old: TenantRequest | None, internal: InternalRanges,
                   within: IPv4Network = ANYWHERE) -> AddressSet:
    """Internet addresses (inside `within`) that `new` lets in on some group, server, protocol
    and ports where `old` (None: a first version) did not."""
    before = ingress_reach(old, internal) if old is not None else {}
    limit = AddressSet.of([within])
    opened = AddressSet()
    for key, reached in ingress_reach(new, internal).items():
        fresh = (reached - before.get(key, AddressSet())) & limit
        if fresh:
            opened = opened | fresh
    return opened
