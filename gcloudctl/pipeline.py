"""Use cases shared by the CLI and the controller: load + validate, plan, apply, destroy.

The whole `apply` of a request (stale-plan check, checks before any write, apply, wait,
harden, verify) is `gcloudctl.usecases.apply.apply_request`, built on the steps here.

Stage: pipeline (the seam between pure stages and effects). Callers: `gcloudctl.cli` and
`gcloudctl.controller`. It reads the documents it is pointed at (files or the shipped
defaults) but never the environment: the CLI's composition root (`cli.context.AppContext`)
decides which files to use.
"""

from __future__ import annotations

import contextvars

# ======================================================================= config, load + validate
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from gcloudctl.errors import InvalidInput, Problem
from gcloudctl.i18n import gettext as _
from gcloudctl.model.catalog import AgencyRegistry, PlatformCatalog
from gcloudctl.model.load import Source, load_document
from gcloudctl.model.request import TenantRequest
from gcloudctl.policy.rulebook import Rulebook
from gcloudctl.validate import check_document

def _data_dir():
    """gcloudctl/data inside the installed package (a plain folder, not a package)."""
    return resources.files("gcloudctl").joinpath("data")


def _shipped(name: str) -> tuple[str, str]:
    """(text, display name) of a file shipped in gcloudctl/data."""
    resource = _data_dir().joinpath(*name.split("/"))
    return resource.read_text(encoding="utf-8"), f"<shipped>/{name}"


def shipped_rulebooks() -> list[str]:
    """Names of the rulebook profiles shipped with gcloudctl."""
    folder = _data_dir().joinpath("rulebooks")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_rulebook(name_or_file: str) -> Rulebook:
    """A rulebook by profile name (shipped) or by YAML file path."""
    path = Path(name_or_file)
    if name_or_file.endswith((".yaml", ".yml")) or path.is_file():
        return load_document(path, Rulebook)
    if name_or_file not in shipped_rulebooks():
        raise InvalidInput([Problem(path="", file="--rulebook", message=f"unknown rulebook profile {name_or_file!r}",
                                    hint=f"shipped profiles: {', '.join(shipped_rulebooks())}; or give a YAML file")])
    text, shown = _shipped(f"rulebooks/{name_or_file}.yaml")
    return load_document(text, Rulebook, shown)


@dataclass(frozen=True)
class Config:
    """The documents platform ops own: catalog, agency registry, classification rulebook."""

    catalog: PlatformCatalog
    agencies: AgencyRegistry
    rulebook: Rulebook

    @classmethod
    def load(cls, platform_file: str | Path | None = None, agencies_file: str | Path | None = None,
             rulebook: str | Path | None = None) -> "Config":
        """Load the given files, the shipped examples for those not given. The rulebook is a
        profile name or a file; by default the one the catalog names (spec.rulebook)."""
        problems: list[Problem] = []
        catalog = _load_or_collect(platform_file, "platform.yaml", PlatformCatalog, problems)
        agencies = _load_or_collect(agencies_file, "agencies.yaml", AgencyRegistry, problems)
        book = None
        if catalog is not None or rulebook is not None:
            try:
                book = load_rulebook(str(rulebook or catalog.spec.rulebook))
            except InvalidInput as exc:
                problems += exc.problems
        if problems:
            raise InvalidInput(problems)
        return cls(catalog=catalog, agencies=agencies, rulebook=book)


def _load_or_collect(file: str | Path | None, shipped: str, model_cls: type, problems: list[Problem]):
    try:
        if file is None:
            text, shown = _shipped(shipped)
            return load_document(text, model_cls, shown)
        return load_document(Path(file), model_cls)
    except InvalidInput as exc:
        problems += exc.problems
        return None


def check_request(source: Source, config: Config, filename: str | None = None
                  ) -> tuple[TenantRequest | None, list[Problem]]:
    """(request, []) when valid, else (None, every problem): schema, semantics and policy."""
    return check_document(source, config, filename)


def load_request(source: Source, config: Config, filename: str | None = None) -> TenantRequest:
    """Load, validate and policy-check a request; raise InvalidInput with all problems."""
    request, problems = check_document(source, config, filename)
    if problems:
        raise InvalidInput(problems)
    return request
# ======================================================================= end of config, load + validate


# ------------------------------------------------------------------------------------------
# Use cases over a cloud: observe -> plan -> apply (shared by the CLI and the controller).
# ------------------------------------------------------------------------------------------
from gcloudctl import planner as _planner  # noqa: E402
from gcloudctl.drivers.base import CloudDriver, IdMap  # noqa: E402
from gcloudctl.errors import NotOwned as _NotOwned, Refused as _Refused  # noqa: E402
from gcloudctl.executor import ApplyResult, ProgressFn, apply as _apply  # noqa: E402
from gcloudctl.expand import CloudFacts, expand as _expand, needs_allocation  # noqa: E402
from gcloudctl.ownership import Owner  # noqa: E402
from gcloudctl.plan import Action as _Action, Plan  # noqa: E402
from gcloudctl.resources import Address, DesiredState, Kind, ObservedState  # noqa: E402


def owner_of(request: TenantRequest, config: "Config") -> Owner:
    """Who owns the tenant a request describes: its name, its agency, the agency's domain."""
    agency = request.metadata.agency
    return Owner(tenant=request.name, agency=agency, domain=config.agencies.domain_of(agency) or agency)


def find_owner(tenant: str, driver: CloudDriver, config: "Config", *, agency: str | None = None) -> Owner | None:
    """The owner of the tenant named `tenant` when only its name is given (`destroy NAME`,
    `describe`, `inventory`, `harden`): the agency its projects' `gc-agency` tags name, or
    `agency`. None when no project claims the name (for that agency). Refused when several
    agencies have a tenant of that name (ask for --agency); NotOwned when the project's tags
    name no agency of the registry. The proof itself (domain and all tags) is made by observe."""
    found = driver.find_tenant(tenant)
    if agency is not None:
        found = [p for p in found if p["agency"] == agency]
    if not found:
        return None
    agencies = sorted({p["agency"] or "" for p in found})
    if len(agencies) > 1:
        listed = ", ".join(f"{a or '(no gc-agency tag)'} (domain {p['domain']})" for a in agencies
                           for p in found if (p["agency"] or "") == a)
        raise _Refused(_("several agencies have a tenant named {tenant!r}: {listed}", tenant=tenant, listed=listed),
                       hint=_("say whose with --agency CODE"))
    code = agencies[0]
    domain = config.agencies.domain_of(code) if code else None
    if domain is None:
        project = found[0]
        raise _NotOwned(f"project {project['name']!r} in domain {project['domain']!r} ({', '.join(project['tags'])}) "
                        f"names {'no agency' if not code else f'agency {code!r}, unknown to the agency registry'}: "
                        f"it is not provably a tenant of any agency", hint="gcloudctl touches only projects it can prove "
                        "an agency owns; ask platform ops")
    return Owner(tenant=tenant, agency=code, domain=domain)


def list_tenants(driver: CloudDriver, config: "Config") -> list[dict]:
    """Projects tagged gcloudctl, each with its agency and domain, and `owned`: whether the
    project sits in its agency's domain (the tags alone prove nothing)."""
    rows = []
    for row in driver.list_tenants():
        expected = config.agencies.domain_of(row["agency"]) if row.get("agency") else None
        rows.append({**row, "owned": expected is not None and row.get("domain") == expected})
    return rows


def _user_data_renderer():
    try:
        from gcloudctl.hardening.userdata import render_user_data
    except ImportError:  # pragma: no cover - hardening ships with the package
        return None
    return render_user_data


def desired_and_observed(request: TenantRequest, driver: CloudDriver, config: "Config", *,
                         observe: Callable[..., ObservedState] | None = None) -> tuple[DesiredState, ObservedState]:
    """Observe the tenant (a fixed number of list calls; or `observe`, e.g. a fleet snapshot's
    `observe`, with the driver's signature) and expand the request against it."""
    spec = request.spec
    external = {spec.router.externalNetwork} if spec.router else set()
    if any(s.floatingIP for s in spec.servers):
        external |= set(config.catalog.spec.regions[spec.region].externalNetworks[:1])
    owner = owner_of(request, config)
    observed = (observe or driver.observe)(owner, external_networks=sorted(external))
    existing = {r.attrs["name"]: r.attrs["cidr"] for r in observed.resources.values() if r.address.kind is Kind.SUBNET}
    facts = CloudFacts(existing_cidrs=existing)
    if needs_allocation(request, facts):
        facts = CloudFacts(existing_cidrs=existing,
                           taken_cidrs=tuple(driver.taken_cidrs(request.metadata.agency, exclude_tenant=request.name)))
    agency = config.agencies.get(request.metadata.agency)
    desired = _expand(request, config.catalog, agency, domain=owner.domain, facts=facts,
                      render_user_data=_user_data_renderer())
    return desired, observed


def plan_request(request: TenantRequest, driver: CloudDriver, config: "Config") -> Plan:
    """Observe + plan. Raises NotOwned (exit 4) when a project named like the tenant is not
    provably the agency's, and Refused (exit 4) when a pre-flight fails: the quota pre-flight
    (numbers in the message) or the members pre-flight (a member who is not a user of the
    agency's domain). All before any write."""
    desired, observed = desired_and_observed(request, driver, config)
    return _checked_plan(request, desired, observed, driver, config)


def plan_from_fleet(request: TenantRequest, driver: CloudDriver, config: "Config", fleet: Any) -> Plan:
    """`plan_request` for the controller's cycle: plan from the fleet snapshot (`fleet.observe`,
    `drivers.openstack_fleet`: no request of its own for this tenant); when that plan is empty
    (the common case) it is the answer, pre-flights included (they cost nothing on an empty
    plan). When it is not (drift, a new generation), the snapshot may be stale: the tenant is
    observed again on its own and planned from that, so nothing is ever applied from the bulk
    view; the fresh observation refreshes the fleet's cached quotas of the tenant."""
    desired, observed = desired_and_observed(request, driver, config, observe=fleet.observe)
    plan = _planner.plan(desired, observed)
    if plan.is_empty():
        return _checked_plan(request, desired, observed, driver, config, plan)
    plan = plan_request(request, driver, config)
    if plan.observed is not None:
        fleet.remember(plan.observed)
    return plan


def _checked_plan(request: TenantRequest, desired: DesiredState, observed: ObservedState, driver: CloudDriver,
                  config: "Config", plan: Plan | None = None) -> Plan:
    """Plan `desired` against `observed` (unless `plan` is that plan) and run the pre-flights."""
    flavors = {name: {"vcpus": f.vcpus, "ramMiB": f.ramMiB} for name, f in config.catalog.spec.flavors.items()}
    agency = config.agencies.get(request.metadata.agency)
    problems = _planner.quota_preflight(desired, flavors, agency.quotaCeilings.model_dump())
    if problems:
        raise _Refused(_("quota pre-flight failed:") + "\n  " + "\n  ".join(problems),
                       hint=_("raise spec.quotas (within the agency ceiling) or request fewer servers"))
    plan = plan if plan is not None else _planner.plan(desired, observed)
    _members_preflight(request, plan, driver, owner_of(request, config))
    from gcloudctl import preflight as _preflight  # the cloud pre-flight: flavors, images, external networks, agency total

    problems = _preflight.check(plan, desired, observed, driver, owner_of(request, config),
                                agency.quotaCeilings.model_dump())
    if problems:
        raise _Refused(_("cloud pre-flight failed (nothing was changed):") + "\n  " + "\n  ".join(problems),
                       hint=_("the platform catalog or the request names what this cloud does not have, or the "
                               "agency's tenants together would exceed its quota ceilings: ask platform ops, or "
                               "lower spec.quotas"))
    return plan


def _members_preflight(request: TenantRequest, plan: Plan, driver: CloudDriver, owner: Owner) -> None:
    """Members to be added must be users of the agency's domain (a user of another domain is
    refused even where the cloud creates missing users). Costs nothing when no member is new."""
    new = {c.after.attrs["user"] for c in plan.changes
           if c.address.kind is Kind.MEMBERSHIP and c.action in (_Action.CREATE, _Action.REPLACE) and c.after is not None}
    if not new:
        return
    problems = driver.check_users(owner.domain, sorted(new))
    if problems:
        where = {m.user: i for i, m in enumerate(request.spec.members)}
        lines = [f"spec.members[{where[user]}].user: {why}" if user in where else why for user, why in sorted(problems.items())]
        raise _Refused(_("members pre-flight failed:") + "\n  " + "\n  ".join(lines),
                       hint=_("list only people of domain {domain!r} in spec.members (ask the agency's identity admin)",
                              domain=owner.domain))


def plan_destroy(owner: Owner | None, driver: CloudDriver) -> Plan:
    """Everything the tenant owns, in Neutron-aware reverse dependency order; the project must
    be proven the owner's (NotOwned otherwise). `None` (no such tenant): an empty plan."""
    if owner is None:
        return Plan(tenant="", changes=(), destroy=True)
    return _planner.plan_destroy(driver.observe(owner))


def apply_plan(plan: Plan, driver: CloudDriver, *, parallelism: int = 10, progress: ProgressFn | None = None,
               timeout: float | None = None, cancel=None) -> ApplyResult:
    """Execute exactly the plan's changes. A converged tenant's plan is empty: zero writes.
    `cancel()` returning true stops starting further changes (the controller's lease fence)."""
    if plan.is_empty():
        return ApplyResult()
    ids = IdMap.from_observed(plan.observed) if plan.observed is not None else IdMap()
    return _apply(plan, driver, ids, parallelism=parallelism, progress=progress, timeout=timeout, cancel=cancel)


def wait_for_building(plan: Plan, driver: CloudDriver, announce: Callable[[list[str]], None] | None = None) -> list[str]:
    """Servers an earlier, interrupted run left building, which this plan did not touch (the
    planner does not count "still building" as a change): wait until they are ACTIVE, so that
    `apply --wait` ends with every server usable. A server that goes to ERROR raises CloudError
    (the next apply replaces it). Returns the names waited for."""
    wait_active = getattr(driver, "wait_active", None)
    if plan.observed is None or wait_active is None:
        return []
    touched = {change.address for change in plan.changes}
    building = [res for res in plan.observed.resources.values()
                if res.address.kind is Kind.SERVER and res.status in _planner.BUILDING_SERVER_STATES
                and res.address not in touched]
    names = sorted(res.attrs["name"] for res in building)
    if building:
        if announce:
            announce(names)
        from gcloudctl.drivers.base import current_deadline

        ids = IdMap.from_observed(plan.observed)
        limit = current_deadline()  # pool threads do not inherit the command's deadline scope: pass it
        with ThreadPoolExecutor(max_workers=min(32, len(building)), thread_name_prefix="wait") as pool:
            # one shared poll; each wait in a copy of this context (the language and the deadline go with it)
            futures = [pool.submit(contextvars.copy_context().run, wait_active, res, ids, deadline=limit)
                       for res in building]
            for future in futures:
                future.result()
    return names


def observe_hosts(owner: Owner, driver: CloudDriver) -> list[dict]:
    """The tenant's servers as inventory hosts (name, role, zones, fixed/floating IPs, image, status)."""
    return observe_hosts_and_level(owner, driver)[0]


def observe_hosts_and_level(owner: Owner, driver: CloudDriver) -> tuple[list[dict], int | None]:
    """`observe_hosts` plus the tenant's classification level from its project's `gc-level=` tag
    (None when the project or the tag is missing), from one observation."""
    from gcloudctl.hardening.hosts import hosts_from_observed

    return hosts_from_observed(driver.observe(owner), owner)
