"""Stage: plan. desired + observed -> Plan (ordered Changes). Called by pipeline (plan, apply,
destroy, reconcile, drift detection). Pure: takes values, returns values; no I/O, no clock.

Rules, in one place:
- desired and observed (managed) with equal attributes: nothing to do;
- attribute differences: update, or replace when a create-only attribute changed (and the
  replacement cascades to resources that hold a create-only reference to it);
- a server in ERROR is replaced, a server that stopped (SHUTOFF: it died, or someone stopped it
  outside gcloudctl) is started (self-healing); the pseudo-field `power` says so in the plan;
- a server being deleted (an earlier run's replacement, or by hand) is not there any more: a
  desired one is replaced (the delete is sent again, which Nova ignores, and awaited);
- a server still building has no port bound yet (Nova binds them during the build): its ports
  are not compared until it has some, so a run after a crash does not replace a server that an
  interrupted run just created;
- desired but not observed: create, unless an untagged twin with the same deterministic name
  exists (an interrupted create): then adopt it (update that sets the ownership tags);
- observed but not desired, and anything in the tenant gcloudctl did not create: delete — except
  a quota set the request does not manage while the project stays (a region whose catalog
  entry has no block storage on a cloud that runs Cinder: its volume quota is left alone);
- a volume grows in place (update: size); a smaller size than the volume has is refused
  (`Refused`, exit 4: a volume never shrinks); a volume that failed, or is being deleted, is
  replaced; a volume attachment follows its server and volume (replaced with either);
- a change that destroys a volume's data (a volume deleted or replaced, a server with a boot
  volume deleted or replaced) is planned like any other and listed in the plan's warnings; the
  apply use case refuses it unless the caller allows data loss (`Plan.data_loss`).
"""

from __future__ import annotations

from dataclasses import replace as _with
from typing import Iterable, Mapping

from gcloudctl.errors import Refused
from gcloudctl.plan import Action, Change, Plan
from gcloudctl.resources import POWER, REPLACE_ON_CHANGE, Address, DesiredState, Kind, ObservedState, Ref, Resource, canonical

FAILED_SERVER_STATES = frozenset({"ERROR"})
STOPPED_SERVER_STATES = frozenset({"SHUTOFF"})
DELETING_SERVER_STATES = frozenset({"DELETING"})  # set by observe from Nova's task_state
BUILDING_SERVER_STATES = frozenset({"BUILD"})
# the kinds whose failed or vanishing instances are replaced (the driver reports neutral states)
_REPLACED_WHEN_FAILED = frozenset({Kind.SERVER, Kind.VOLUME})
# create-only references that force the referrer to be replaced with its target
_CASCADE_FIELDS: dict[Kind, frozenset[str]] = {
    Kind.SUBNET: frozenset({"network"}),
    Kind.PORT: frozenset({"network", "subnet"}),
    Kind.ROUTER_INTERFACE: frozenset({"router", "subnet"}),
    Kind.SERVER: frozenset({"ports", "server_group"}),
    Kind.VOLUME_ATTACHMENT: frozenset({"server", "volume"}),
}


def diff(desired: Resource, observed: Resource) -> tuple[str, ...]:
    """Names of desired attributes whose observed value differs."""
    changed = []
    for key, value in desired.attrs.items():
        if canonical(value) != canonical(observed.attrs.get(key)):
            changed.append(key)
    return tuple(sorted(changed))


def _adoption_candidates(observed: ObservedState) -> dict[tuple[Kind, str], Resource]:
    twins = {}
    for res in observed.unmanaged:
        name = res.attrs.get("name")
        if name:
            twins.setdefault((res.address.kind, name), res)
    return twins


def plan(desired: DesiredState, observed: ObservedState) -> Plan:
    changes: dict[Address, Change] = {}
    twins = _adoption_candidates(observed)
    adopted: set[str] = set()
    shrinks: list[str] = []

    for address, want in desired.resources.items():
        have = observed.resources.get(address)
        if have is None:
            twin = twins.get((address.kind, want.attrs.get("name")))
            if (twin is not None and twin.id not in adopted
                    and twin.status not in FAILED_SERVER_STATES | DELETING_SERVER_STATES):
                adopted.add(twin.id)
                changed = diff(want, twin)
                replace = set(changed) & REPLACE_ON_CHANGE.get(address.kind, frozenset())
                action = Action.REPLACE if replace else Action.UPDATE
                changes[address] = Change(action, address, twin, want, changed,
                                          reason="adopt: untagged twin of an interrupted create")
            else:
                changes[address] = Change(Action.CREATE, address, None, want, reason="missing")
            continue
        if address.kind in _REPLACED_WHEN_FAILED and have.status in FAILED_SERVER_STATES | DELETING_SERVER_STATES:
            changes[address] = Change(Action.REPLACE, address, have, want,
                                      reason=f"drift: {address.kind.value} is {have.status}")
            continue
        changed = diff(want, have)
        if address.kind is Kind.VOLUME and "size" in changed and _shrinks(want, have):
            shrinks.append(f"{address} ({want.attrs['name']}): {have.attrs.get('size')} GiB -> "
                           f"{want.attrs['size']} GiB")
            continue
        if address.kind is Kind.SERVER and have.status in BUILDING_SERVER_STATES and not have.attrs.get("ports"):
            changed = tuple(c for c in changed if c != "ports")
        replace = set(changed) & REPLACE_ON_CHANGE.get(address.kind, frozenset())
        if address.kind is Kind.SERVER and have.status in STOPPED_SERVER_STATES and not replace:
            changes[address] = Change(Action.UPDATE, address, _with(have, attrs={**have.attrs, POWER: have.status}),
                                      _with(want, attrs={**want.attrs, POWER: "ACTIVE"}), (*changed, POWER),
                                      reason=f"drift: server is {have.status}")
            continue
        if not changed:
            continue
        action = Action.REPLACE if replace else Action.UPDATE
        changes[address] = Change(action, address, have, want, changed, reason="changed: " + ", ".join(changed))

    if shrinks:
        raise Refused("a volume cannot shrink:\n  " + "\n  ".join(shrinks),
                      hint="keep sizeGiB at least the volume's size (volumes only grow); to start smaller, give "
                           "the volume a new name (the old one is deleted: --allow-data-loss)")
    _cascade_replacements(desired, observed, changes)

    keeps_project = Address(Kind.PROJECT, desired.tenant) in desired.resources
    for address, have in observed.resources.items():
        if address not in desired.resources:
            if address.kind is Kind.QUOTA and keeps_project:
                continue  # a quota the request does not manage (e.g. Cinder's where the region has no block storage)
            changes[address] = Change(Action.DELETE, address, have, None, reason="drift: not in the request")
    for res in observed.unmanaged:
        if res.id in adopted:
            continue
        changes[res.address] = Change(Action.DELETE, res.address, res, None, reason="drift: not created by gcloudctl")

    _prune_cascaded_deletes(changes)
    ordered = tuple(sorted(changes.values(), key=Change.sort_key))
    return Plan(tenant=desired.tenant, changes=ordered, request_digest=desired.request_digest,
                observed_fingerprint=observed.fingerprint(), observed=observed, warnings=_data_loss_warnings(ordered))


def _shrinks(want: Resource, have: Resource) -> bool:
    size = have.attrs.get("size")
    return isinstance(size, int) and want.attrs["size"] < size


def _data_loss_warnings(changes: Iterable[Change]) -> tuple[str, ...]:
    return tuple(f"{c.address}: this {c.action.value} destroys the data on it; apply refuses it without "
                 "--allow-data-loss" for c in changes if c.loses_data)


def _cascade_replacements(desired: DesiredState, observed: ObservedState, changes: dict[Address, Change]) -> None:
    """A resource holding a create-only reference to a replaced resource is replaced too."""
    pending = [a for a, c in changes.items() if c.action is Action.REPLACE]
    while pending:
        target = pending.pop()
        for address, want in desired.resources.items():
            fields = _CASCADE_FIELDS.get(address.kind, frozenset())
            if not any(target in _refs(want.attrs.get(f)) for f in fields):
                continue
            have = observed.resources.get(address)
            current = changes.get(address)
            if have is None or (current is not None and current.action in (Action.REPLACE, Action.CREATE)):
                continue
            changes[address] = Change(Action.REPLACE, address, have, want, (current.changed if current else ()),
                                      reason=f"replaced with {target}")
            pending.append(address)


def _prune_cascaded_deletes(changes: dict[Address, Change]) -> None:
    """Drop deletes the cloud does by itself: rules go with their security group (Neutron),
    role assignments go with their project (Keystone). Fewer calls, same end state."""
    deleted = {a for a, c in changes.items() if c.action is Action.DELETE}
    for address in list(deleted):
        change = changes[address]
        parent = None
        if address.kind is Kind.SECURITY_GROUP_RULE:
            group = change.before.attrs.get("security_group")
            parent = group.address if isinstance(group, Ref) else None
        elif address.kind is Kind.MEMBERSHIP:
            parent = next((d for d in change.before.depends_on if d.kind is Kind.PROJECT), None)
        if parent is not None and parent in deleted:
            del changes[address]


def _refs(value) -> set[Address]:
    if isinstance(value, Ref):
        return {value.address}
    if isinstance(value, (list, tuple)):
        return {v.address for v in value if isinstance(v, Ref)}
    return set()


def plan_destroy(observed: ObservedState) -> Plan:
    """Everything the tenant owns, deleted in reverse dependency order."""
    empty = DesiredState(tenant=observed.tenant, resources={})
    result = plan(empty, observed)
    changes = tuple(Change(Action.DELETE, c.address, c.before, None, reason="destroy") for c in result.changes)
    return Plan(tenant=observed.tenant, changes=changes, observed_fingerprint=result.observed_fingerprint, destroy=True,
                observed=observed, warnings=_data_loss_warnings(changes))


def quota_preflight(desired: DesiredState, flavors: Mapping[str, Mapping[str, int]],
                    ceilings: Mapping[str, int]) -> list[str]:
    """Problems (with numbers) if the desired servers and floating IPs exceed the tenant's quota
    or the agency's ceilings. `flavors`: name -> {vcpus, ramMiB}."""
    servers = [r for r in desired.resources.values() if r.address.kind is Kind.SERVER]
    need = {
        "instances": len(servers),
        "cores": sum(flavors.get(s.attrs["flavor"], {}).get("vcpus", 0) for s in servers),
        "ram": sum(flavors.get(s.attrs["flavor"], {}).get("ramMiB", 0) for s in servers),
        "floatingip": sum(1 for r in desired.resources.values() if r.address.kind is Kind.FLOATING_IP),
    }
    volumes = [r for r in desired.resources.values() if r.address.kind is Kind.VOLUME]
    if volumes:
        need["volumes"] = len(volumes)
        need["gigabytes"] = sum(v.attrs["size"] for v in volumes)
    quota: dict[str, int] = {}
    for res in desired.resources.values():
        if res.address.kind is Kind.QUOTA:
            quota.update(res.attrs)
    problems = []
    names = {"instances": "instances", "cores": "cores", "ram": "ramMiB", "floatingip": "floatingIPs",
             "volumes": "volumes", "gigabytes": "volumeGiB"}
    for key, needed in need.items():
        limit = quota.get(key)
        if limit is not None and needed > limit:
            problems.append(f"quota {names[key]}: the request needs {needed} but its quota is {limit}")
        ceiling = ceilings.get(names[key])
        if ceiling is not None and limit is not None and limit > ceiling:
            problems.append(f"quota {names[key]}: {limit} exceeds the agency ceiling {ceiling}")
    return problems


def changed_addresses(changes: Iterable[Change]) -> list[str]:
    return [str(c.address) for c in changes]
