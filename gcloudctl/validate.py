"""Stage: validate. Semantic and policy checks of a loaded TenantRequest -> `Problem`s.

Called by `gcloudctl.pipeline.load_request` (so by `validate`, `plan`, `apply` and the
controller) after `gcloudctl.model.load` has checked the schema. It looks across documents:
references inside the request, the platform catalog (region, images, flavors, zones, external
networks, volume types and block storage), the agency registry (pools, ceilings, highest level), quotas against the servers,
cloud-init templates, and the classification rulebook (`gcloudctl.policy`). Every problem is
returned (never raised), with the path of the field and, when positions are given, its line
and column. Pure apart from reading user-data templates through `gcloudctl.hardening.userdata`;
it never talks to a cloud.
"""

from __future__ import annotations

import difflib
import ipaddress
from pathlib import Path
from typing import Any, Callable

from gcloudctl import naming, policy
from gcloudctl.errors import InvalidInput, Problem
from gcloudctl.i18n import gettext as _
from gcloudctl.model.catalog import Agency, AgencyRegistry, PlatformCatalog
from gcloudctl.model.load import Positions, load_located, sort_problems
from gcloudctl.model.request import TenantRequest
from gcloudctl.policy.rulebook import Rulebook
from gcloudctl.quotas import server_needs

UserDataCheck = Callable[[str | None, dict | None, dict], list[Problem]]
AUTO = "auto"  # validate_request(user_data_check=AUTO): gcloudctl.hardening.userdata if installed


def _user_data_checker() -> UserDataCheck | None:
    try:
        from gcloudctl.hardening.userdata import check_user_data
    except ImportError as exc:  # the hardening module is optional; anything else is a bug
        if exc.name and exc.name.startswith("gcloudctl.hardening"):
            return None
        raise
    return check_user_data


def _p(path: str, message: str, hint: str | None = None) -> Problem:
    return Problem(path=path, message=message, hint=hint)


# --------------------------------------------------------------------------- names and references

_DUPLICATE = {
    "networks": lambda: _("network name '{name}' is already used by {where}"),
    "securityGroups": lambda: _("securityGroup name '{name}' is already used by {where}"),
    "keypairs": lambda: _("keypair name '{name}' is already used by {where}"),
    "servers": lambda: _("server name '{name}' is already used by {where}"),
}


def _unique_names(req: TenantRequest) -> list[Problem]:
    found = []
    kinds = {"networks": req.spec.networks, "securityGroups": req.spec.securityGroups,
             "keypairs": req.spec.keypairs, "servers": req.spec.servers}
    for kind, items in kinds.items():
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.name in seen:
                found.append(_p(f"spec.{kind}[{i}].name", _DUPLICATE[kind]().format(
                    name=item.name, where=f"spec.{kind}[{seen[item.name]}]"), _("names must be unique per kind")))
            else:
                seen[item.name] = i
    members: dict[str, int] = {}
    for i, member in enumerate(req.spec.members):
        if member.user in members:
            found.append(_p(f"spec.members[{i}].user", _("user '{user}' is listed twice", user=member.user),
                            _("give one entry per user with all its roles")))
        members.setdefault(member.user, i)
    return found + _expanded_server_names(req)


def _expanded_server_names(req: TenantRequest) -> list[Problem]:
    """web (count 2) becomes web-1, web-2: those must not collide with another entry's names."""
    owner: dict[str, int] = {}
    found = []
    for s, server in enumerate(req.spec.servers):
        for index in range(1, server.count + 1):
            name = naming.server_name(server.name, index)
            if name in owner and owner[name] != s:
                other = req.spec.servers[owner[name]].name
                found.append(_p(f"spec.servers[{s}].name",
                                _("server '{server}' would create '{name}', which server '{other}' creates too",
                                  server=server.name, name=name, other=other), _("rename one of the entries")))
                break
            owner.setdefault(name, s)
    return found


def _references(req: TenantRequest) -> list[Problem]:
    found = []
    networks = {n.name for n in req.spec.networks}
    groups = {g.name for g in req.spec.securityGroups}
    keypairs = {k.name for k in req.spec.keypairs}

    def missing(path: str, what: str, name: str, known: set[str]) -> None:
        listed = ", ".join(sorted(known)) or _("none")
        found.append(_p(path, _("{what} '{name}' is not defined in this request", what=what, name=name),
                        _("defined: {names}", names=listed)))

    for s, server in enumerate(req.spec.servers):
        for i, net in enumerate(server.networks):
            if net not in networks:
                missing(f"spec.servers[{s}].networks[{i}]", _("network"), net, networks)
        if len(set(server.networks)) != len(server.networks):
            found.append(_p(f"spec.servers[{s}].networks", _("a network is listed twice")))
        for i, group in enumerate(server.securityGroups):
            if group not in groups:
                missing(f"spec.servers[{s}].securityGroups[{i}]", _("security group"), group, groups)
        if server.keypair is not None and server.keypair not in keypairs:
            missing(f"spec.servers[{s}].keypair", _("keypair"), server.keypair, keypairs)
    for g, group in enumerate(req.spec.securityGroups):
        for r, rule in enumerate(group.rules):
            if rule.remoteGroup is not None and rule.remoteGroup not in groups:
                missing(f"spec.securityGroups[{g}].rules[{r}].remoteGroup", _("security group"), rule.remoteGroup,
                        groups)
    return found


def _router(req: TenantRequest) -> list[Problem]:
    """A floating IP reaches a server through the router and the server's first network."""
    found = []
    routed = {n.name: n.routed for n in req.spec.networks}
    for s, server in enumerate(req.spec.servers):
        if not server.floatingIP:
            continue
        if req.spec.router is None:
            found.append(_p(f"spec.servers[{s}].floatingIP",
                            _("server '{server}' asks for a floating IP but the request has no router",
                              server=server.name), _("add 'router: {example}'", example="{externalNetwork: public}")))
        elif routed.get(server.networks[0]) is False:
            found.append(_p(f"spec.servers[{s}].floatingIP",
                            _("server '{server}' asks for a floating IP but its first network '{network}' is not "
                              "routed", server=server.name, network=server.networks[0]),
                            _("list a routed network first")))
    return found


# --------------------------------------------------------------------------- catalog

def _catalog(req: TenantRequest, catalog: PlatformCatalog) -> list[Problem]:
    found = []
    level = req.spec.classification
    region = catalog.spec.regions.get(req.spec.region)
    if region is None:
        found.append(_p("spec.region", _("region '{region}' is not in the platform catalog", region=req.spec.region),
                        _("regions: {names}", names=", ".join(sorted(catalog.spec.regions)))))
    else:
        if level > region.maxClassification:
            found.append(_p("spec.classification",
                            _("region '{region}' serves up to level {limit}; the request is level {level}",
                              region=req.spec.region, limit=region.maxClassification, level=level),
                            _("choose a region accredited for this level")))
        if req.spec.router is not None and req.spec.router.externalNetwork not in region.externalNetworks:
            found.append(_p("spec.router.externalNetwork",
                            _("external network '{network}' does not exist in region '{region}'",
                              network=req.spec.router.externalNetwork, region=req.spec.region),
                            _("external networks there: {names}", names=", ".join(region.externalNetworks))))
    if region is not None:
        found += _roles(req, region.allowedRoles)
    for n, net in enumerate(req.spec.networks):
        if net.zone not in catalog.spec.zones:
            found.append(_p(f"spec.networks[{n}].zone", _("zone '{zone}' is not one of the platform's zones",
                                                          zone=net.zone),
                            _("zones: {names}", names=", ".join(catalog.spec.zones))))
    for s, server in enumerate(req.spec.servers):
        found += _allowed(f"spec.servers[{s}].image", "image", server.image, catalog.spec.images, level)
        found += _allowed(f"spec.servers[{s}].flavor", "flavor", server.flavor, catalog.spec.flavors, level)
    return found


ADMIN_MAX_LEVEL = 3  # `admin` is never granted to a tenant's member at level 4 or 5, whatever the catalog says


def _roles(req: TenantRequest, allowed: list[str]) -> list[Problem]:
    """Roles are the catalog's decision: each region lists the roles a request may grant."""
    found = []
    level = req.spec.classification
    for m, member in enumerate(req.spec.members):
        for r, role in enumerate(member.roles):
            path = f"spec.members[{m}].roles[{r}]"
            if role not in allowed:
                found.append(_p(path, _("role '{role}' may not be granted in region '{region}'", role=role,
                                        region=req.spec.region),
                                _("roles allowed there: {names} (the platform catalog decides)",
                                  names=", ".join(allowed))))
            elif role == "admin" and level > ADMIN_MAX_LEVEL:
                found.append(_p(path, _("role 'admin' is never granted at level {level} (only up to level {limit})",
                                        level=level, limit=ADMIN_MAX_LEVEL), _("grant member or reader")))
    return found


_WHAT = {"image": lambda: _("image"), "flavor": lambda: _("flavor"), "volumeType": lambda: _("volume type")}
_WHATS = {"image": lambda: _("images"), "flavor": lambda: _("flavors"), "volumeType": lambda: _("volume types")}


def _allowed(path: str, what: str, name: str, table: dict[str, Any], level: int) -> list[Problem]:
    """`what` is "image", "flavor" or "volumeType"."""
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = (_("did you mean '{name}'?", name=close[0]) if close
                else _("{what}: {names}", what=_WHATS[what](), names=", ".join(sorted(table))))
        return [_p(path, _("{what} '{name}' is not in the platform catalog", what=_WHAT[what](), name=name), hint)]
    limit = table[name].maxClassification
    if level > limit:
        usable = sorted(k for k, v in table.items() if v.maxClassification >= level)
        return [_p(path, _("{what} '{name}' may serve up to level {limit}; the request is level {level}",
                           what=_WHAT[what](), name=name, limit=limit, level=level),
                   _("{what} allowed at level {level}: {names}", what=_WHATS[what](), level=level,
                     names=", ".join(usable) or _("none")))]
    return []


# --------------------------------------------------------------------------- volumes

def _volumes(req: TenantRequest, catalog: PlatformCatalog) -> list[Problem]:
    """Volumes need a region with block storage, types of the catalog allowed at the level, and
    names unique per server (each copy of a server gets its own volume of each name)."""
    found = []
    level = req.spec.classification
    region = catalog.spec.regions.get(req.spec.region)
    types = catalog.spec.volumeTypes
    for s, server in enumerate(req.spec.servers):
        path = f"spec.servers[{s}]"
        if region is not None and not region.blockStorage and (server.volumes or server.bootVolume):
            found.append(_p(f"{path}.volumes" if server.volumes else f"{path}.bootVolume",
                            _("server '{server}' has volumes but region '{region}' has no block storage",
                              server=server.name, region=req.spec.region),
                            _("choose a region with block storage (platform catalog: blockStorage: true), or "
                              "remove the volumes")))
            continue
        seen: dict[str, int] = {}
        for v, volume in enumerate(server.volumes):
            if volume.name in seen:
                first = f"{path}.volumes[{seen[volume.name]}]"
                found.append(_p(f"{path}.volumes[{v}].name", _("volume name '{name}' is already used by {where}",
                                                               name=volume.name, where=first),
                                _("volume names must be unique per server")))
            seen.setdefault(volume.name, v)
            found += _allowed(f"{path}.volumes[{v}].type", "volumeType", volume.type, types, level)
        if server.bootVolume is not None:
            found += _allowed(f"{path}.bootVolume.type", "volumeType", server.bootVolume.type, types, level)
    return found


# --------------------------------------------------------------------------- agency

def _agency(req: TenantRequest, agency: Agency | None, registry: AgencyRegistry) -> list[Problem]:
    if agency is None:
        return [_p("metadata.agency", _("agency '{agency}' is not in the agency registry", agency=req.metadata.agency),
                   _("agencies: {names}", names=", ".join(sorted(registry.spec.agencies))))]
    found = []
    level = req.spec.classification
    if level > agency.maxClassification:
        found.append(_p("spec.classification", _("agency {agency} may run systems up to level {limit}; the request "
                                                 "is level {level}", agency=req.metadata.agency,
                                                 limit=agency.maxClassification, level=level),
                        _("ask platform ops to raise the agency's accreditation, or lower the level")))
    quotas = req.spec.quotas
    for name in ("instances", "cores", "ramMiB", "floatingIPs", "volumes", "volumeGiB") if quotas else ():
        asked, ceiling = getattr(quotas, name), getattr(agency.quotaCeilings, name)
        if asked > ceiling:
            found.append(_p(f"spec.quotas.{name}", _("quota {name} {asked} exceeds the agency's ceiling {ceiling}",
                                                     name=name, asked=asked, ceiling=ceiling),
                            _("lower the quota or ask platform ops to raise the ceiling")))
    return found + _cidrs(req, agency)


def _cidrs(req: TenantRequest, agency: Agency) -> list[Problem]:
    found = []
    pools = agency.cidrPools
    placed: list[tuple[int, ipaddress.IPv4Network]] = []
    for n, net in enumerate(req.spec.networks):
        path = f"spec.networks[{n}]"
        if net.cidr is None:
            if not any(pool.prefixlen <= net.prefixLength for pool in pools):
                found.append(_p(f"{path}.prefixLength", _("a /{prefix} cannot be allocated from the agency's pools "
                                                          "({pools})", prefix=net.prefixLength,
                                                          pools=", ".join(map(str, pools)))))
            continue
        if not any(net.cidr.subnet_of(pool) for pool in pools):
            found.append(_p(f"{path}.cidr", _("{cidr} is outside the agency's CIDR pools ({pools})", cidr=net.cidr,
                                              pools=", ".join(map(str, pools))),
                            _("choose a subnet of the pool, or omit cidr to have one allocated")))
        for other, cidr in placed:
            if net.cidr.overlaps(cidr):
                found.append(_p(f"{path}.cidr", _("{cidr} overlaps {other_cidr} of spec.networks[{index}]",
                                                  cidr=net.cidr, other_cidr=cidr, index=other)))
                break
        placed.append((n, net.cidr))
    return found


# --------------------------------------------------------------------------- quotas

def _quotas(req: TenantRequest, catalog: PlatformCatalog, agency: Agency | None) -> list[Problem]:
    """The servers fit the quotas: those the request sets, or (omitted) the agency's ceilings
    that cap the derived ones (`gcloudctl.quotas`)."""
    need = server_needs(req.spec, catalog.spec.flavors)
    found = []
    for name, needed in need.items():
        if req.spec.quotas is not None:
            quota = getattr(req.spec.quotas, name)
            if needed > quota:
                found.append(_p(f"spec.quotas.{name}", _("the servers need {name} {needed} but the quota is {quota}",
                                                         name=name, needed=needed, quota=quota),
                                _("raise spec.quotas.{name} to at least {needed} or remove servers", name=name,
                                  needed=needed)))
        elif agency is not None and needed > getattr(agency.quotaCeilings, name):
            ceiling = getattr(agency.quotaCeilings, name)
            found.append(_p("spec.servers", _("the servers need {name} {needed}, more than the agency's ceiling "
                                              "{ceiling}", name=name, needed=needed, ceiling=ceiling),
                            _("request fewer or smaller servers, or ask platform ops to raise the ceiling")))
    return found


# --------------------------------------------------------------------------- user data

def user_data_context(req: TenantRequest, catalog: PlatformCatalog, server_index: int) -> dict:
    """What a template sees at validation: the first copy of the server (see expand)."""
    from gcloudctl.expand import user_data_context as context_for

    return context_for(req, catalog, req.spec.servers[server_index], 1)


def _user_data(req: TenantRequest, catalog: PlatformCatalog, check: UserDataCheck | None) -> list[Problem]:
    if check is None:
        return []
    found = []
    for s, server in enumerate(req.spec.servers):
        if server.userData is None:
            continue
        context = user_data_context(req, catalog, s)
        for problem in check(server.userData.template, dict(server.userData.vars), context):
            suffix = problem.path.removeprefix("spec.userData")
            found.append(Problem(path=f"spec.servers[{s}].userData{suffix}", message=problem.message,
                                 hint=problem.hint, rule=problem.rule))
    return found


# --------------------------------------------------------------------------- entry points

def validate_request(req: TenantRequest, catalog: PlatformCatalog, agencies: AgencyRegistry,
                     rulebook: Rulebook, *, positions: Positions | None = None,
                     user_data_check: UserDataCheck | str | None = AUTO) -> list[Problem]:
    """Every semantic and policy problem of *req*, located by *positions* when given.
    *user_data_check*: AUTO, a function like `check_user_data`, or None to skip templates."""
    check = _user_data_checker() if user_data_check == AUTO else user_data_check
    agency = agencies.get(req.metadata.agency)
    found = (_unique_names(req) + _references(req) + _router(req) + _catalog(req, catalog) + _volumes(req, catalog)
             + _agency(req, agency, agencies) + _quotas(req, catalog, agency) + _user_data(req, catalog, check)
             + policy.evaluate(req, rulebook, catalog, agencies))
    if positions is not None:
        found = [positions.place(p) for p in found]
    return sort_problems(found)


def check_document(source: str | bytes | Path, config: Any, filename: str | None = None
                   ) -> tuple[TenantRequest | None, list[Problem]]:
    """Load and check one request; *config* has .catalog, .agencies, .rulebook (pipeline.Config)."""
    try:
        loaded = load_located(source, TenantRequest, filename)
    except InvalidInput as exc:
        return None, exc.problems
    problems = validate_request(loaded.model, config.catalog, config.agencies, config.rulebook,
                                positions=loaded.positions)
    return (loaded.model if not problems else None), problems


def check_file(path: Path | str, config: Any) -> tuple[TenantRequest | None, list[Problem]]:
    """`check_document` for a file: (the request, []) when valid, else (None, problems)."""
    return check_document(Path(path), config)

