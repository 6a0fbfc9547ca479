"""Stage: web edge (view values). What the console's pages show, composed from the request
service's own read use cases (the same dicts the API returns as JSON) and the pure stages.

- `order_requests`: an agency's versions, pending ones first (oldest waiting first), then the rest
  newest first;
- `tenants_of`: the tenants behind the versions a caller may see (the service has no tenant list
  use case; a caller sees exactly the tenants of the versions it may see);
- `preview`: what a version will create, change and delete, compared with the last approved
  generation: both are expanded (`gcloudctl.expand`, pure) and their desired resources compared
  with the planner's own `diff` — the cloud is not asked (the controller's plan against the
  observed cloud also repairs drift; that shows on the tenant's page);
- `verdicts`: every rule of the rulebook in force at the request's level, passed or not
  (`gcloudctl.policy.evaluate`), beside the approval rules' reasons the service recorded;
- `text_diff`: the stored YAML (secret vars masked by the service) against the last approved
  generation's, line by line;
- `planned_servers`: the servers, their networks (CIDRs) and floating IPs an approved generation
  asks for (observed addresses are not in the service's status: see docs/web.md).

Called by `gcloudctl.web.routes`. Pure: no I/O, no clock; decides nothing about who may see or
do what (the service did, when it returned the values).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from gcloudctl import planner, policy
from gcloudctl.expand import expand
from gcloudctl.model import TenantRequest
from gcloudctl.resources import KIND_RANK, DesiredState, Kind

PENDING = "pending-approval"


@dataclass(frozen=True)
class Policy:
    """The server's documents the previews are judged in (never the caller's)."""

    catalog: Any
    agencies: Any
    rulebook: Any


def order_requests(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pending = sorted((v for v in versions if v["state"] == PENDING), key=lambda v: v["id"])
    rest = sorted((v for v in versions if v["state"] != PENDING), key=lambda v: -v["id"])
    return pending + rest


def tenants_of(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per tenant: its agency, latest generation and that version's state."""
    latest: dict[str, dict[str, Any]] = {}
    for version in versions:
        seen = latest.get(version["tenant"])
        if seen is None or version["generation"] > seen["generation"]:
            latest[version["tenant"]] = version
    return [{"tenant": v["tenant"], "agency": v["agency"], "generation": v["generation"], "state": v["state"],
             "kind": v["kind"]} for _, v in sorted(latest.items())]


def last_approved_before(versions: list[dict[str, Any]], generation: int) -> dict[str, Any] | None:
    """The newest approved change version of a tenant older than `generation`."""
    older = [v for v in versions if v["state"] == "approved" and v["kind"] == "change" and v["generation"] < generation]
    return max(older, key=lambda v: v["generation"]) if older else None


def parse(text: str | None) -> TenantRequest | None:
    """A stored version's YAML as a request (None for a deletion or an unreadable text)."""
    if not text:
        return None
    try:
        return TenantRequest.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError, ValueError, TypeError):
        return None


def desired(request: TenantRequest | None, rules: Policy) -> DesiredState | None:
    if request is None:
        return None
    agency = rules.agencies.get(request.metadata.agency)
    if agency is None:
        return None
    try:
        return expand(request, rules.catalog, agency, domain=rules.agencies.domain_of(request.metadata.agency))
    except (KeyError, ValueError):  # the catalog moved since the version was stored
        return None


def _row(resource: Any, fields: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"kind": resource.address.kind.value, "name": resource.address.name, "fields": list(fields)}


def _order(resource: Any) -> tuple:
    return KIND_RANK[resource.address.kind], resource.address.name


def preview(new: DesiredState | None, old: DesiredState | None, *, deletion: bool = False) -> dict[str, Any]:
    """{"create": [...], "change": [...], "delete": [...], "available": bool} — each row a
    resource's kind, name and (for a change) the fields that differ."""
    if deletion:
        gone = sorted(old.resources.values(), key=_order) if old else []
        return {"available": old is not None, "create": [], "change": [], "delete": [_row(r) for r in gone]}
    if new is None:
        return {"available": False, "create": [], "change": [], "delete": []}
    before = old.resources if old else {}
    create, change = [], []
    for address, want in sorted(new.resources.items(), key=lambda item: _order(item[1])):
        have = before.get(address)
        if have is None:
            create.append(_row(want))
        else:
            fields = planner.diff(want, have)
            if fields:
                change.append(_row(want, fields))
    delete = [_row(r) for r in sorted(before.values(), key=_order) if r.address not in new.resources]
    return {"available": True, "create": create, "change": change, "delete": delete}


def verdicts(request: TenantRequest | None, rules: Policy) -> list[dict[str, Any]]:
    """Each rule in force at the request's level: id, message, passed, and what violates it."""
    if request is None or rules.rulebook is None:
        return []
    found: dict[str, list[str]] = {}
    for problem in policy.evaluate(request, rules.rulebook, rules.catalog, rules.agencies):
        found.setdefault(problem.rule or "", []).append(f"{problem.path}: {problem.message}")
    return [{"rule": rule.id, "message": policy._message(rule), "fromLevel": rule.fromLevel,  # noqa: SLF001
             "passed": rule.id not in found, "violations": found.get(rule.id, [])}
            for rule in rules.rulebook.rules_for(request.spec.classification)]


def text_diff(old: str | None, new: str, *, old_label: str, new_label: str) -> list[dict[str, str]]:
    """Unified diff lines, each {"kind": add|del|hunk|head|same, "text": line}; everything
    added when there is no approved generation yet."""
    lines = difflib.unified_diff((old or "").splitlines(), new.splitlines(), fromfile=old_label,
                                 tofile=new_label, lineterm="", n=3)
    rows = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        rows.append({"kind": kind, "text": line})
    return rows


def planned_servers(state: DesiredState | None) -> list[dict[str, Any]]:
    """Servers of a desired state with their networks' CIDRs and whether a floating IP is asked."""
    if state is None:
        return []
    cidrs = {a.name: r.attrs.get("cidr") for a, r in state.resources.items() if a.kind is Kind.SUBNET}
    floating = {a.name for a in state.resources if a.kind is Kind.FLOATING_IP}
    servers = []
    for address, server in sorted(state.resources.items(), key=lambda item: item[0].name):
        if address.kind is not Kind.SERVER:
            continue
        prefix = f"{address.name}."  # ports are named SERVER.NETWORK
        networks = [ref.address.name.removeprefix(prefix) for ref in server.extra.get("nics", ())]
        servers.append({"name": server.attrs["name"], "flavor": server.attrs.get("flavor"),
                        "image": server.attrs.get("image"),
                        "networks": [{"name": n, "cidr": cidrs.get(n)} for n in networks],
                        "floatingIP": address.name in floating})
    return servers


def drift_of(status: dict[str, Any]) -> dict[str, Any]:
    """The tenant's drift as its status says it: the Drifted condition and the drift events."""
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Drifted"), None)
    events = [e for e in status.get("events") or [] if e.get("reason", "").startswith("Drift")]
    return {"policy": status.get("driftPolicy"), "condition": condition, "events": events[-10:]}
