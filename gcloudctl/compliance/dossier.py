"""Stage: compliance (pure builder). Inputs in -> `model.Dossier` out.

Called by `gcloudctl.cli.compliance` (which gathers the inputs: the request, the observation of
the cloud, the controller store's read use cases, audit-hosts evidence) and by the tests. No
I/O, no clock (`generated_at` is given), no cloud: it only reads the values it is handed.

Honest evidence (issue 12 part 5), as rules of this module:
- a host control is `pass`/`fail`/`not_applicable`/`error` only when an audit report of that host
  holds a result for that control id; otherwise it is `not_checked` — a host without a report,
  a report from an older catalogue or a lower profile, a control added since;
- `not_applicable` keeps the reason the check printed on the host (e.g. a kernel-wide setting in
  a namespace container); it is listed apart, never counted as passed;
- a policy rule is `pass`/`fail` only when the request was available to evaluate (against the
  request, which says so in `checkedAgainst`), else `not_checked`;
- the control catalogue is read as given (`controls`), never a hard-coded list of ids.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from gcloudctl.compliance.model import (
    AuditHead, Classification, ControlView, Decision, Dossier, Governance, HostResult, HostView,
    NetworkView, NotApplicable, PolicyRuleView, ReachView, RouterView, RuleView, SecurityGroupView,
    Note, Source, Status, Summary, Topology, VersionView, note,
)
from gcloudctl.hardening.controls import Control
from gcloudctl.model.request import Rule, TenantRequest
from gcloudctl.policy import evaluate
from gcloudctl.policy.checks import default_hardening_profile, server_zones
from gcloudctl.policy.exposure import InternalRanges, exposure, internal_ranges, rule_remotes
from gcloudctl.policy.rulebook import Rulebook
from gcloudctl.resources import Kind, ObservedState, Ref

# worst first: what a control's status is over several hosts
_RANK = {Status.FAIL: 0, Status.ERROR: 1, Status.NOT_CHECKED: 2, Status.PASS: 3, Status.NOT_APPLICABLE: 4}
_REPORT_STATUS = {"pass": Status.PASS, "fail": Status.FAIL, "not applicable": Status.NOT_APPLICABLE,
                  "error": Status.ERROR}
PROFILE_MAX_LEVEL = 4
# why a host control is not checked (constant texts: the HTML translates them)
NO_REPORT = "no audit report for this host"
NO_RESULT = "this host's audit report has no result for this control (older catalogue or lower profile)"


@dataclass(frozen=True)
class HostEvidence:
    """One audit-hosts report of one host (`hardening.audit.report_dict`'s JSON)."""

    host: str
    generated_at: str
    profile: str
    results: Mapping[str, tuple[str, str]]  # control id -> (status as the report says, evidence)
    source: str  # the report file (or "live")

    @classmethod
    def from_report(cls, report: Mapping[str, Any], source: str) -> "HostEvidence":
        results = {c["id"]: (str(c.get("status")), str(c.get("evidence") or ""))
                   for c in report.get("controls") or [] if isinstance(c, Mapping) and "id" in c}
        return cls(host=str(report["host"]), generated_at=str(report.get("generated_at") or ""),
                   profile=str(report.get("profile") or ""), results=results, source=source)


@dataclass(frozen=True)
class ControllerView:
    """What the controller's read use cases answered (`RequestService.status`, `show` of each
    version, `audit_verify`, `audit_export(tenant=...)`); None fields: not asked / not known."""

    status: Mapping[str, Any] | None
    versions: Sequence[Mapping[str, Any]]
    audit_verify: Mapping[str, Any] | None
    tenant_records: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Inputs:
    tenant: str
    generated_at: str
    gcloudctl_version: str
    rulebook: Rulebook
    controls: Sequence[Control]
    agency: str | None = None
    level: int | None = None  # the request's level wins; else the project's gc-level tag, else given
    catalog: Any = None  # PlatformCatalog, for what "internal" means
    agencies: Any = None  # AgencyRegistry
    request: TenantRequest | None = None
    request_source: Note | None = None
    observed: ObservedState | None = None
    hosts: Sequence[Mapping[str, Any]] | None = None  # observed hosts (hardening.hosts) or a hosts file
    observed_source: Note | None = None
    evidence: Mapping[str, HostEvidence] = field(default_factory=dict)
    evidence_source: Note | None = None
    controller: ControllerView | None = None
    controller_note: Note | None = None


# ------------------------------------------------------------------------------------------ build

def build(inputs: Inputs) -> Dossier:
    """The tenant's dossier from what is known; what is not known says so."""
    level = inputs.request.spec.classification if inputs.request is not None else inputs.level
    classification = _classification(inputs.rulebook, level)
    required = _required_controls(inputs.controls, level)
    host_names, notes = _host_names(inputs)
    controls = [_control_view(c, host_names, inputs.evidence) for c in required]
    policy = _policy_rules(inputs, level)
    not_applicable = _not_applicable(controls)
    if level is not None and level > PROFILE_MAX_LEVEL:
        notes.append(note("host profiles stop at L{top}: level {level} is shown with the L{top} controls; its "
                          "further requirements are not covered by host checks", top=PROFILE_MAX_LEVEL, level=level))
    if not host_names:
        notes.append(note("no server of the tenant is known: no host control could be checked"))
    notes.append(note("OpenSCAP: not run (Debian 12 has no SCAP datastream in Debian's content); "
                      "the project's own checks are the evidence"))
    return Dossier(
        tenant=inputs.tenant,
        agency=inputs.agency or (inputs.request.metadata.agency if inputs.request else None),
        generatedAt=inputs.generated_at, gcloudctlVersion=inputs.gcloudctl_version,
        sources=_sources(inputs), classification=classification,
        topology=_topology(inputs), policyRules=policy, controls=controls, notApplicable=not_applicable,
        notes=notes, governance=_governance(inputs),
        summary=_summary(host_names, controls, policy))


def _classification(rulebook: Rulebook, level: int | None) -> Classification:
    if level is None:
        return Classification(level=None, label="unknown", rulebook=rulebook.metadata.name,
                              rulebookVersion=rulebook.metadata.version, hardeningProfile=None,
                              note=note("the classification level is unknown (no request, no gc-level tag)"))
    info = rulebook.spec.levels.get(level)
    return Classification(level=level, label=info.label if info else f"level {level}",
                          rulebook=rulebook.metadata.name, rulebookVersion=rulebook.metadata.version,
                          hardeningProfile=default_hardening_profile(level))


def _required_controls(controls: Sequence[Control], level: int | None) -> list[Control]:
    if level is None:
        return []
    profile = min(level, PROFILE_MAX_LEVEL)
    return sorted((c for c in controls if c.level <= profile), key=lambda c: (c.level, c.id))


def _host_names(inputs: Inputs) -> tuple[list[str], list[Note]]:
    """The tenant's hosts: the observed ones (when observed), else those with evidence."""
    notes: list[Note] = []
    if inputs.hosts is not None:
        names = sorted({str(h["name"]) for h in inputs.hosts})
        for extra in sorted(set(inputs.evidence) - set(names)):
            notes.append(note("an audit report for {host} was left out: no such server in the tenant now", host=extra))
        return names, notes
    if inputs.evidence:
        notes.append(note("the servers were not observed: the hosts are those the audit reports name"))
    return sorted(inputs.evidence), notes


def _host_result(control: Control, host: str, evidence: Mapping[str, HostEvidence]) -> HostResult:
    report = evidence.get(host)
    if report is None:
        return HostResult(host=host, status=Status.NOT_CHECKED, evidence=NO_REPORT,
                          checkedAt=None, source=None)
    found = report.results.get(control.id)
    if found is None:
        return HostResult(host=host, status=Status.NOT_CHECKED, checkedAt=None, source=report.source,
                          evidence=NO_RESULT)
    status, text = found
    return HostResult(host=host, status=_REPORT_STATUS.get(status, Status.ERROR), evidence=text,
                      checkedAt=report.generated_at or None, source=report.source)


def worst(statuses: Iterable[Status]) -> Status:
    """A control's status over its hosts: any fail/error first; all n/a stays n/a; none: not checked."""
    found = list(statuses)
    return min(found, key=_RANK.__getitem__) if found else Status.NOT_CHECKED


def _control_view(control: Control, hosts: list[str], evidence: Mapping[str, HostEvidence]) -> ControlView:
    results = [_host_result(control, host, evidence) for host in hosts]
    return ControlView(id=control.id, title=control.title, level=control.level, cisDebian12=control.cis_debian12,
                       cisUbuntu2404=control.cis_ubuntu2404, auditOnly=control.audit_only,
                       status=worst(r.status for r in results), hosts=results)


def _not_applicable(controls: list[ControlView]) -> list[NotApplicable]:
    out = []
    for control in controls:
        na = [r for r in control.hosts if r.status is Status.NOT_APPLICABLE]
        if na:
            reasons = sorted({r.evidence.strip() or "no reason printed" for r in na})
            out.append(NotApplicable(subject=f"{control.id} {control.title}", hosts=[r.host for r in na],
                                     reason=" / ".join(reasons)))
    return out


def _fill(message: str, params: Mapping[str, Any]) -> str:
    for key, value in params.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        message = message.replace("{" + key + "}", shown)
    return message


def _policy_rules(inputs: Inputs, level: int | None) -> list[PolicyRuleView]:
    if level is None:
        return []
    rules = inputs.rulebook.rules_for(level)
    problems = (evaluate(inputs.request, inputs.rulebook, inputs.catalog, inputs.agencies)
                if inputs.request is not None and inputs.catalog is not None else None)
    views = []
    for rule in rules:
        if problems is None:
            status, found, against = Status.NOT_CHECKED, [], None
        else:
            found = [f"{p.path}: {p.message}" if p.path else p.message for p in problems if p.rule == rule.id]
            status, against = (Status.FAIL if found else Status.PASS), f"request ({inputs.request_source.text if inputs.request_source else '?'})"
        views.append(PolicyRuleView(id=rule.id, fromLevel=rule.fromLevel, message=_fill(rule.message, rule.params),
                                    reference=rule.reference, status=status, evidence=found, checkedAgainst=against))
    return views


# ------------------------------------------------------------------------------------------ topology

def _source_text(rule: Rule) -> str:
    if rule.remoteGroup is not None:
        return f"group {rule.remoteGroup}"
    return str(rule.remote) if rule.remote is not None else "0.0.0.0/0"


def _rule_view(rule: Rule) -> RuleView:
    return RuleView(direction=rule.direction, protocol=rule.protocol,
                    ports=None if rule.ports is None else str(rule.ports), source=_source_text(rule))


def _observed_rule_view(attrs: Mapping[str, Any]) -> RuleView:
    low, high = attrs.get("port_min"), attrs.get("port_max")
    ports = None if low is None else (str(low) if low == high or high is None else f"{low}-{high}")
    remote_group = attrs.get("remote_group")
    if isinstance(remote_group, Ref):
        source = f"group {remote_group.address.name}"
    elif remote_group:
        source = f"group {remote_group}"
    else:
        source = attrs.get("remote_ip_prefix") or ("::/0" if attrs.get("ethertype") == "IPv6" else "0.0.0.0/0")
    return RuleView(direction=str(attrs.get("direction")), protocol=str(attrs.get("protocol") or "any"),
                    ports=ports, source=str(source))


def _of_kind(observed: ObservedState | None, kind: Kind) -> list:
    """Observed resources of a kind, ours and those found without our tags (drift is shown too)."""
    if observed is None:
        return []
    found = [*observed.resources.values(), *observed.unmanaged]
    return sorted((r for r in found if r.address.kind is kind), key=lambda r: (r.address.name, r.id or ""))


def _ref_name(value: Any) -> str | None:
    return value.address.name if isinstance(value, Ref) else (str(value) if value is not None else None)


def _topology(inputs: Inputs) -> Topology:
    request, observed = inputs.request, inputs.observed
    subnets = {r.address.name: r for r in _of_kind(observed, Kind.SUBNET)}
    observed_nets = {r.address.name for r in _of_kind(observed, Kind.NETWORK)}
    networks: list[NetworkView] = []
    for net in (request.spec.networks if request else []):
        sub = subnets.get(net.name)
        networks.append(NetworkView(name=net.name, zone=net.zone, cidr=str(net.cidr) if net.cidr else None,
                                    routed=net.routed, observedCidr=sub.attrs.get("cidr") if sub else None,
                                    observed=net.name in observed_nets))
    known = {n.name for n in networks}
    for name in sorted(observed_nets - known):
        sub = subnets.get(name)
        networks.append(NetworkView(name=name, zone=None, cidr=None, routed=None,
                                    observedCidr=sub.attrs.get("cidr") if sub else None, observed=True))

    interfaces: dict[str, list[str]] = {}
    for itf in _of_kind(observed, Kind.ROUTER_INTERFACE):
        interfaces.setdefault(_ref_name(itf.attrs.get("router")) or "", []).append(_ref_name(itf.attrs.get("subnet")) or "")
    observed_routers = {r.address.name for r in _of_kind(observed, Kind.ROUTER)}
    routers: list[RouterView] = []
    if request is not None and request.spec.router is not None:
        r = request.spec.router
        attached = [n.name for n in request.spec.networks if n.routed]
        routers.append(RouterView(name=r.name, externalNetwork=r.externalNetwork,
                                  networks=sorted(set(attached) | set(interfaces.get(r.name, []))),
                                  observed=r.name in observed_routers))
    for name in sorted(observed_routers - {r.name for r in routers}):
        routers.append(RouterView(name=name, externalNetwork=None, networks=sorted(interfaces.get(name, [])),
                                  observed=True))

    observed_rules: dict[str, list[RuleView]] = {}
    for rule in _of_kind(observed, Kind.SECURITY_GROUP_RULE):
        observed_rules.setdefault(_ref_name(rule.attrs.get("security_group")) or "", []).append(
            _observed_rule_view(rule.attrs))
    observed_groups = {r.address.name for r in _of_kind(observed, Kind.SECURITY_GROUP)}
    groups: list[SecurityGroupView] = []
    for group in (request.spec.securityGroups if request else []):
        groups.append(SecurityGroupView(
            name=group.name, rules=[_rule_view(r) for r in group.rules],
            observedRules=observed_rules.get(group.name, []) if group.name in observed_groups else None))
    for name in sorted(observed_groups - {g.name for g in groups}):
        groups.append(SecurityGroupView(name=name, rules=[], observedRules=observed_rules.get(name, [])))

    hosts = [HostView(name=str(h["name"]), role=h.get("role"), zones=list(h.get("zones") or []),
                      fixedIPs=dict(h.get("fixed_ips") or {}), floatingIP=h.get("floating_ip"), status=h.get("status"))
             for h in sorted(inputs.hosts or [], key=lambda h: str(h["name"]))]
    unmanaged = sorted(f"{r.address.kind.value} {r.name}" for r in (observed.unmanaged if observed else ()))
    reach = _reach(inputs)
    return Topology(networks=networks, routers=routers, securityGroups=groups, reach=reach,
                    observedReach=_observed_reach(inputs, observed_rules, reach) if observed is not None else None,
                    hosts=hosts, unmanaged=unmanaged)


def _reach(inputs: Inputs) -> list[ReachView]:
    """Per server and ingress rule of its groups: who may connect, on what, and whether from the internet."""
    request = inputs.request
    if request is None:
        return []
    internal = (internal_ranges(request, inputs.catalog, inputs.agencies) if inputs.catalog is not None
                else InternalRanges())
    groups = {g.name: g for g in request.spec.securityGroups}
    members: dict[str, list[str]] = {}
    for server in request.spec.servers:
        for name in server.securityGroups:
            members.setdefault(name, []).append(server.name)
    reach = []
    for server in request.spec.servers:
        for name in server.securityGroups:
            for rule in (groups[name].rules if name in groups else []):
                if rule.direction != "ingress":
                    continue
                source = _source_text(rule)
                if rule.remoteGroup is not None:
                    source += f" ({', '.join(members.get(rule.remoteGroup, [])) or 'no server'})"
                reach.append(ReachView(target=server.name, zones=sorted(server_zones(request, server)),
                                       protocol=rule.protocol, ports=None if rule.ports is None else str(rule.ports),
                                       source=source, internet=exposure(rule_remotes(rule), internal).internet_facing,
                                       floatingIP=server.floatingIP))
    return reach


def _internal(inputs: Inputs) -> InternalRanges:
    if inputs.catalog is None:
        return InternalRanges()
    if inputs.request is not None:
        return internal_ranges(inputs.request, inputs.catalog, inputs.agencies)
    agency = inputs.agencies.get(inputs.agency) if inputs.agencies is not None and inputs.agency else None
    return InternalRanges.of(inputs.catalog, agency)


def _from_internet(source: str, internal: InternalRanges) -> bool:
    """Whether an observed rule's source includes internet addresses (IPv6 sources: any non-group is)."""
    if source.startswith("group "):
        return False
    try:
        net = ipaddress.IPv4Network(source, strict=False)
    except ValueError:
        return True  # IPv6 (or unreadable): not proven internal
    return exposure([net], internal).internet_facing


def _observed_reach(inputs: Inputs, rules: Mapping[str, list[RuleView]], requested: list[ReachView]) -> list[ReachView]:
    """Per observed server: the ingress rules of the groups on its ports, as the cloud has them."""
    observed = inputs.observed
    internal = _internal(inputs)
    ports = {r.address.name: r for r in _of_kind(observed, Kind.PORT)}
    public_ports = {_ref_name(f.attrs.get("port")) for f in _of_kind(observed, Kind.FLOATING_IP)}
    asked = {(r.target, r.protocol, r.ports, r.source.split(" (")[0]) for r in requested}
    reach = []
    for server in _of_kind(observed, Kind.SERVER):
        meta = server.attrs.get("metadata") or {}
        role = str(meta.get("gc-role") or server.name)
        zones = [str(meta["gc-zone"])] if meta.get("gc-zone") else []
        port_names = [_ref_name(p) for p in server.attrs.get("ports") or []]
        groups = sorted({_ref_name(g) for p in port_names if p in ports
                         for g in ports[p].attrs.get("security_groups") or []} - {None})
        public = any(p in public_ports for p in port_names)
        for group in groups:
            for rule in rules.get(group, []):
                if rule.direction != "ingress":
                    continue
                reach.append(ReachView(target=server.name, zones=zones, protocol=rule.protocol, ports=rule.ports,
                                       source=rule.source, internet=_from_internet(rule.source, internal),
                                       floatingIP=public,
                                       inRequest=(role, rule.protocol, rule.ports, rule.source) in asked
                                       if inputs.request is not None else None))
    return reach


# ------------------------------------------------------------------------------------------ governance

def _governance(inputs: Inputs) -> Governance:
    view = inputs.controller
    if view is None or view.status is None:
        return Governance(managed=False, phase=None, generation=None, conditions=[], versions=[], audit=None,
                          note=inputs.controller_note or note("not managed by the controller: no approvals or "
                                                              "audit chain are recorded for this tenant"))
    status = view.status
    versions = [VersionView(
        id=int(v["id"]), generation=int(v["generation"]), kind=str(v.get("kind")), state=str(v.get("state")),
        submittedBy=v.get("submittedBy"), submittedAt=v.get("submittedAt"), digest=str(v.get("digest")),
        approvalsRequired=int(v.get("approvalsRequired") or 0), approvals=int(v.get("approvals") or 0),
        decisions=[Decision(actor=str(d.get("actor")), decision=str(d.get("decision")), reason=str(d.get("reason") or ""),
                            at=str(d.get("at")), rulesVersion=d.get("rulesVersion")) for d in v.get("decisions") or []])
        for v in sorted(view.versions, key=lambda v: int(v["generation"]))]
    return Governance(managed=True, phase=status.get("phase"), generation=status.get("generation"),
                      conditions=list(status.get("conditions") or []), versions=versions,
                      audit=_audit_head(view), note=inputs.controller_note)


def _audit_head(view: ControllerView) -> AuditHead | None:
    verify = view.audit_verify
    if verify is None:
        return None
    head = verify.get("head") or {}
    last = max(view.tenant_records, key=lambda r: int(r.get("seq", 0)), default=None)
    return AuditHead(chainOk=bool(verify.get("ok")), records=int(verify.get("records") or 0),
                     headSeq=head.get("seq"), headHash=head.get("hash"),
                     breaks=[str(b.get("reason") or b) if isinstance(b, Mapping) else str(b)
                             for b in verify.get("breaks") or []],
                     tenantLastSeq=last.get("seq") if last else None, tenantLastHash=last.get("hash") if last else None,
                     tenantLastAction=last.get("action") if last else None, tenantLastAt=last.get("at") if last else None,
                     tenantRecords=len(view.tenant_records))


# ------------------------------------------------------------------------------------------ summary

def _sources(inputs: Inputs) -> list[Source]:
    return [
        Source(kind="request", detail=inputs.request_source or note("no request available"),
               available=inputs.request is not None),
        Source(kind="observed", detail=inputs.observed_source or note("the cloud was not observed"),
               available=inputs.hosts is not None or inputs.observed is not None),
        Source(kind="evidence", detail=inputs.evidence_source or note("no audit evidence"),
               available=bool(inputs.evidence)),
        Source(kind="controller", detail=inputs.controller_note or note("not asked"),
               available=inputs.controller is not None and inputs.controller.status is not None),
    ]


def _summary(hosts: list[str], controls: list[ControlView], policy: list[PolicyRuleView]) -> Summary:
    by_status = {s.value: 0 for s in Status}
    for control in controls:
        for result in control.hosts:
            by_status[result.status.value] += 1
    rules = {s.value: 0 for s in Status}
    for rule in policy:
        rules[rule.status.value] += 1
    return Summary(hosts=len(hosts), controls=len(controls), byStatus=by_status, policyRules=rules)
