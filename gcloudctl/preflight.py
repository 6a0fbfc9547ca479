"""Stage: plan (pre-flight against the cloud). Before the first write, what only the cloud can
judge: the flavors and images the plan's new servers use exist, the external networks its
router and floating IPs use exist, and a tenant's quota that grows keeps its agency's total
(the sum over all of the agency's tenants) within the agency's ceilings — volumes and volume
GiB included where the region has block storage.

Called by `pipeline.plan_request` (CLI plan/apply, controller, request API), after planning,
so it looks only at what the plan would create or change: a no-op plan costs no request here.
The rules are pure functions over values (`needs`, `catalog_problems`, `agency_problems`);
`check` reads the cloud only through the driver (read-only calls: `missing_flavors`,
`missing_images`, `agency_quotas`). It must never write, and never talk to a cloud itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from gcloudctl.i18n import gettext as _
from gcloudctl.ownership import Owner
from gcloudctl.plan import Action, Plan
from gcloudctl.resources import DesiredState, Kind, ObservedState

WRITING = (Action.CREATE, Action.REPLACE, Action.UPDATE)
# the tenant quota keys (as the driver reads them) -> the agency ceiling keys (agencies.yaml)
CEILING_OF = {"instances": "instances", "cores": "cores", "ram": "ramMiB", "floatingip": "floatingIPs",
              "volumes": "volumes", "gigabytes": "volumeGiB"}


@dataclass(frozen=True)
class Needs:
    """What the plan's writes rely on the cloud for."""

    flavors: Mapping[str, tuple[str, ...]]  # flavor -> servers (created or replaced) using it
    images: Mapping[str, tuple[str, ...]]  # image -> servers
    external_networks: Mapping[str, tuple[str, ...]]  # network -> routers / floating IPs using it
    quota: Mapping[str, int] | None  # the tenant's quota after the plan, when the plan sets it; else None


def needs(plan: Plan, desired: DesiredState) -> Needs:
    """Pure: the cloud things the plan's creates and changes need."""
    flavors: dict[str, list[str]] = {}
    images: dict[str, list[str]] = {}
    for change in plan.changes:
        if change.address.kind is Kind.SERVER and change.action in (Action.CREATE, Action.REPLACE) and change.after:
            flavors.setdefault(change.after.attrs["flavor"], []).append(change.address.name)
            images.setdefault(change.after.attrs["image"], []).append(change.address.name)
    networks: dict[str, list[str]] = {}
    for res in desired.resources.values():
        if res.address.kind in (Kind.ROUTER, Kind.FLOATING_IP) and res.attrs.get("external_network"):
            networks.setdefault(res.attrs["external_network"], []).append(str(res.address))
    quota = None
    if any(c.address.kind is Kind.QUOTA and c.action in WRITING for c in plan.changes):
        quota = {}
        for res in desired.resources.values():
            if res.address.kind is Kind.QUOTA:
                quota.update({k: v for k, v in res.attrs.items() if k in CEILING_OF})
    freeze = lambda d: {k: tuple(sorted(v)) for k, v in sorted(d.items())}  # noqa: E731
    return Needs(freeze(flavors), freeze(images), freeze(networks), quota)


def catalog_problems(need: Needs, *, missing_flavors: list[str], missing_images: list[str],
                     external_networks: Mapping[str, str]) -> list[str]:
    """Pure: one line per thing the cloud lacks, naming it and who uses it.
    `external_networks`: the observation's lookups ("external_network:<name>" -> id)."""
    problems = []
    for name in missing_flavors:
        problems.append(_("flavor {name!r} (server {servers}) does not exist in the cloud", name=name,
                          servers=", ".join(need.flavors[name])))
    for name in missing_images:
        problems.append(_("image {name!r} (server {servers}) does not exist in the cloud (removed or renamed?)",
                          name=name, servers=", ".join(need.images[name])))
    for name, users in need.external_networks.items():
        if f"external_network:{name}" not in external_networks:
            problems.append(_("external network {name!r} ({users}) does not exist in the cloud", name=name,
                              users=", ".join(users)))
    return problems


def agency_problems(agency: str, ceilings: Mapping[str, Any], quota: Mapping[str, int],
                    others: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Pure: the agency's total (this tenant's quota after the plan + its other tenants') over a
    ceiling. A quota of -1 (unlimited) in another tenant is over any ceiling."""
    problems = []
    for key, ceiling_key in CEILING_OF.items():
        ceiling = ceilings.get(ceiling_key)
        if ceiling is None or key not in quota:
            continue
        values = {tenant: q.get(key, 0) for tenant, q in others.items()}
        unlimited = sorted(t for t, v in values.items() if v is not None and v < 0)
        if unlimited:
            problems.append(_("agency {agency} quota {key}: tenant {tenants} has no limit (-1), the agency ceiling "
                              "is {ceiling}", agency=agency, key=ceiling_key, tenants=", ".join(unlimited),
                              ceiling=ceiling))
            continue
        rest = sum(values.values())
        total = quota[key] + rest
        if total > ceiling:
            detail = ", ".join(f"{t} {v}" for t, v in sorted(values.items()) if v)
            others_text = (_("its other tenants: {detail}", detail=detail) if detail else _("its other tenants"))
            problems.append(_("agency {agency} quota {key}: {quota} (this tenant) + {rest} ({others}) = {total} "
                              "exceeds the agency ceiling {ceiling}", agency=agency, key=ceiling_key,
                              quota=quota[key], rest=rest, others=others_text, total=total, ceiling=ceiling))
    return problems


def check(plan: Plan, desired: DesiredState, observed: ObservedState, driver: Any, owner: Owner,
          ceilings: Mapping[str, Any]) -> list[str]:
    """Every pre-flight problem of the plan, reading the cloud through the driver (read-only).
    Costs: nothing for a no-op plan; one flavor list and one image list when servers are
    created (cached per driver); when the tenant's quota is set, the agency's other tenants'
    quotas (`driver.agency_quotas`)."""
    need = needs(plan, desired)
    problems = catalog_problems(
        need,
        missing_flavors=driver.missing_flavors(need.flavors) if need.flavors else [],
        missing_images=driver.missing_images(need.images) if need.images else [],
        external_networks=observed.lookups)
    if need.quota:
        problems += agency_problems(owner.agency, ceilings, need.quota, driver.agency_quotas(owner))
    return problems
