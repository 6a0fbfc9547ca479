"""CLI: `gcloudctl outputs FILE|TENANT` — a tenant's ids and addresses for CI (like `terraform output`).

Stage: edge. Thin: find the tenant's owner and region, observe it once through the driver, hand
the observation to `gcloudctl.outputs.tenant_outputs` (pure) and render. It must not compute
anything the pure function can.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from gcloudctl import pipeline
from gcloudctl.cli.context import AppContext
from gcloudctl.cli.render import emit, table
from gcloudctl.errors import ExitCode, NotFound
from gcloudctl.i18n import gettext as _
from gcloudctl.outputs import TenantOutputs, tenant_outputs


def locate_tenant(app: AppContext, target: str, region: str | None, agency: str | None):
    """(owner, region, driver) of TARGET — a request file, or a tenant name looked up in `region`
    or, without one, in every region of the catalog. NotFound when no region has it."""
    config = app.config()
    if os.path.isfile(target):
        request = pipeline.load_request(Path(target), config, filename=target)
        return pipeline.owner_of(request, config), request.spec.region, app.driver(config, request.spec.region)
    for name in [region] if region else list(config.catalog.spec.regions):
        driver = app.driver(config, name)
        owner = pipeline.find_owner(target, driver, config, agency=agency)
        if owner is not None:
            return owner, name, driver
    raise NotFound(_("tenant {tenant!r} not found", tenant=target),
                   hint=_("list tenants with: gcloudctl get tenants"))


def read_outputs(app: AppContext, target: str, region: str | None, agency: str | None) -> TenantOutputs:
    owner, region, driver = locate_tenant(app, target, region, agency)
    externals = app.config().catalog.spec.regions[region].externalNetworks
    observed = driver.observe(owner, external_networks=externals)
    if observed.project_id is None:
        raise NotFound(_("tenant {tenant!r} not found", tenant=owner.tenant),
                       hint=_("list tenants with: gcloudctl get tenants"))
    return tenant_outputs(observed, agency=owner.agency, domain=owner.domain, region=region)


def outputs_of_request(app: AppContext, request, driver) -> TenantOutputs:
    """The outputs of the tenant `request` describes, observed now through `driver` (for
    `apply -o json`: one stable shape, the same as `gcloudctl outputs`, after the changes)."""
    config = app.config()
    owner = pipeline.owner_of(request, config)
    region = request.spec.region
    observed = driver.observe(owner, external_networks=config.catalog.spec.regions[region].externalNetworks)
    return tenant_outputs(observed, agency=owner.agency, domain=owner.domain, region=region)


def render_outputs(out: TenantOutputs) -> str:
    head = _("Tenant {tenant} (agency {agency}, region {region}, project {project})",
             tenant=out.tenant, agency=out.agency, region=out.region, project=out.project_id)
    if out.expires_at:
        head += "\n" + _("Expires at {when}", when=out.expires_at)
    servers = table([_("SERVER"), _("STATUS"), _("FIXED IP"), _("FLOATING IP"), "ID"],
                    [[name, s.status, " ".join(a.address for a in s.fixed_ips), s.floating_ip or "", s.id]
                     for name, s in out.servers.items()]) if out.servers else _("No servers.")
    networks = table([_("NETWORK"), "CIDR", "ID"], [[name, n.cidr, n.id] for name, n in out.networks.items()])
    return "\n\n".join(filter(None, [head, servers, networks if out.networks else ""]))


@click.command("outputs")
@click.argument("target", metavar="FILE|TENANT")
@click.option("--region", help="Region of TENANT (default: every region of the catalog is searched).")
@click.option("--agency", help="Agency of TENANT, when several agencies have a tenant of that name.")
@click.pass_obj
def outputs_cmd(app: AppContext, target: str, region: str | None, agency: str | None) -> int:
    """Ids of every managed resource and the servers' fixed and floating addresses, for scripts:
    `gcloudctl outputs stack.yaml -o json | jq -r '.servers["web-1"].floating_ip'`
    (shape: `gcloudctl schema outputs`)."""
    out = read_outputs(app, target, region, agency)
    emit(app.output, out.model_dump(mode="json"), lambda: render_outputs(out))
    return ExitCode.OK


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    cli.add_command(outputs_cmd)
