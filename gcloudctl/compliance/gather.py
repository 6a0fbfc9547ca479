"""Stage: compliance (use case). Gather what the dossier needs from the parts given, then build it.

Called by `gcloudctl.cli.compliance` (its composition root passes the driver, the controller's
read use cases and the evidence already read). It talks to the cloud only through the driver it
is handed (`observe`, `find_tenant` via `pipeline.find_owner`, never a write) and to the
controller only through the request service's read use cases (`status`, `list_versions`,
`show`, `audit_verify`, `audit_export`) — never the store's tables. It writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from gcloudctl.compliance.dossier import ControllerView, HostEvidence, Inputs, build
from gcloudctl.compliance.model import Dossier, Note, note
from gcloudctl.errors import NotFound
from gcloudctl.model.request import TenantRequest


@dataclass(frozen=True)
class Controller:
    """The controller's read use cases (a `RequestService` or the API client) and the caller."""

    backend: Any
    caller: Any
    where: str  # "controller database" / "request API" (translated in the HTML)


def controller_view(tenant: str, controller: Controller) -> tuple[ControllerView | None, TenantRequest | None, Note]:
    """(what the controller knows, the approved request when it parses, a note). A tenant the
    store does not know (or the caller may not see) is `None`: not managed."""
    from gcloudctl.controller.service import parse_stored

    backend, caller = controller.backend, controller.caller
    try:
        status = backend.status(tenant, caller=caller)
    except NotFound:
        return None, None, note("not managed by the controller ({where} has no tenant {tenant})",
                                where=controller.where, tenant=tenant)
    versions = [backend.show(v["id"], caller=caller) for v in backend.list_versions(caller=caller, tenant=tenant)]
    request = None
    approved = next((v for v in versions if v.get("generation") == status.get("generation")
                     and v.get("kind") == "change"), None)
    if approved is not None and approved.get("yaml"):
        request = parse_stored(approved["yaml"])
    view = ControllerView(status=status, versions=[{k: v for k, v in ver.items() if k != "yaml"} for ver in versions],
                          audit_verify=backend.audit_verify(caller=caller),
                          tenant_records=backend.audit_export(caller=caller, tenant=tenant))
    return view, request, note("{where}; approved generation {generation}", where=controller.where,
                               generation=status.get("generation"))


def observe(tenant: str, driver: Any, config: Any, *, agency: str | None, request: TenantRequest | None):
    """(observed state, hosts, level from the project's tag, owner) — or NotFound."""
    from gcloudctl import pipeline
    from gcloudctl.hardening.hosts import hosts_from_observed

    owner = (pipeline.owner_of(request, config) if request is not None
             else pipeline.find_owner(tenant, driver, config, agency=agency))
    if owner is None:
        raise NotFound(f"tenant {tenant!r} not found in the cloud",
                       hint="pass --no-cloud to build the dossier from the request and the evidence only")
    observed = driver.observe(owner)
    hosts, level = hosts_from_observed(observed, owner)
    return observed, hosts, level, owner


def dossier(tenant: str, *, config: Any, generated_at: str, version: str, controls,
            request: TenantRequest | None = None, request_source: Note | None = None,
            driver: Any = None, cloud_name: str | None = None, hosts: list[Mapping] | None = None,
            hosts_source: Note | None = None, level: int | None = None, agency: str | None = None,
            controller: Controller | None = None, evidence: Mapping[str, HostEvidence] | None = None,
            evidence_source: Note | None = None, notes: list[Note] | None = None) -> Dossier:
    """The dossier from whichever parts are given (request file, controller, cloud, hosts file, evidence)."""
    view, said = None, note("not asked (no controller database or request API configured)")
    if controller is not None:
        view, stored_request, said = controller_view(tenant, controller)
        if request is None and stored_request is not None:
            request, request_source = stored_request, said
    observed, tagged_level = None, None
    observed_source = hosts_source
    if driver is not None:
        observed, hosts, tagged_level, owner = observe(tenant, driver, config, agency=agency, request=request)
        observed_source = note("observed now in region {region} (project of agency {agency})",
                               region=cloud_name or "?", agency=owner.agency)
        agency = agency or owner.agency
    built = build(Inputs(
        tenant=tenant, generated_at=generated_at, gcloudctl_version=version, rulebook=config.rulebook,
        controls=tuple(controls), agency=agency, level=level or tagged_level, catalog=config.catalog,
        agencies=config.agencies, request=request, request_source=request_source, observed=observed,
        hosts=hosts, observed_source=observed_source, evidence=dict(evidence or {}),
        evidence_source=evidence_source, controller=view, controller_note=said))
    if notes:
        built = built.model_copy(update={"notes": list(notes) + list(built.notes)})
    return built
