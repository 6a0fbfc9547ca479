"""CLI: `gcloudctl reap [--agency A] [--dry-run]` — destroy CI stacks whose `expiresAt` has passed,
without a controller; and the tenant rows `get tenants` shows (with their expiry).

Stage: edge. Thin: list the tenants of each region through the driver, let `gcloudctl.stacks`
(pure) pick the expired ones, and destroy each with the same use cases as `destroy`
(`pipeline.find_owner`, `plan_destroy`, `apply_plan`). Only projects proven an agency's are
touched (ownership is checked again by `plan_destroy`).
"""

from __future__ import annotations

import click

from gcloudctl import pipeline
from gcloudctl.cli.context import AppContext
from gcloudctl.cli.render import emit, progress_printer, table
from gcloudctl.errors import ExitCode, GcloudctlError
from gcloudctl.executor import build_graph
from gcloudctl.i18n import gettext as _
from gcloudctl.stacks import expired_stacks, expiry_of, is_expired, iso_utc

ROW_KEYS = ("tenant", "region", "agency", "domain", "classification", "project_id", "enabled", "description", "owned")


def tenant_rows(app: AppContext, region: str | None) -> list[dict]:
    """Every managed tenant of `region` (or of every region), with `expires_at` (ISO, UTC) and
    `expired`. A driver row without the expiry costs one lookup of the tenant's project tags."""
    config = app.config()
    now = app.now()
    rows = []
    for name in [region] if region else list(config.catalog.spec.regions):
        driver = app.driver(config, name)
        for tenant in pipeline.list_tenants(driver, config):
            row = {key: tenant.get(key) for key in ROW_KEYS} | {"region": name}
            if "expires_at" in tenant or "tags" in tenant:
                expires = expiry_of(tenant)
            else:
                found = [p for p in driver.find_tenant(tenant["tenant"]) if p["project_id"] == tenant["project_id"]]
                expires = expiry_of({"tags": found[0]["tags"]}) if found else None
            row["enabled"] = bool(row["enabled"] if row["enabled"] is not None else True)
            row["description"] = row["description"] or ""
            row["expires_at"] = iso_utc(expires) if expires else None
            row["expired"] = is_expired(expires, now)
            rows.append(row | {"_expires": expires})
    return rows


def public(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


@click.command("reap")
@click.option("--agency", help="Only this agency's stacks.")
@click.option("--region", help="Only this region (default: every region of the catalog).")
@click.option("--dry-run", is_flag=True, help="List the expired stacks; destroy nothing.")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", type=click.FloatRange(1), help="Give up on a stack after this many seconds.")
@click.pass_obj
def reap_cmd(app: AppContext, agency: str | None, region: str | None, dry_run: bool, parallelism: int,
             timeout: float | None) -> int:
    """Destroy every tenant whose expiresAt has passed (CI stacks), as `destroy TENANT --yes` would.
    For CI without a controller: run it on a schedule. Exit 1 if a stack could not be destroyed."""
    config = app.config()
    now = app.now()
    rows = [dict(r, expires_at=r["_expires"]) for r in tenant_rows(app, region)]
    stacks = expired_stacks(rows, now, agency=agency)
    results = []
    for stack in stacks:
        entry = {"tenant": stack.tenant, "region": stack.region, "agency": stack.agency,
                 "expires_at": iso_utc(stack.expires_at), "status": "would-destroy", "error": None}
        results.append(entry)
        if dry_run:
            continue
        try:
            driver = app.driver(config, stack.region)
            owner = pipeline.find_owner(stack.tenant, driver, config, agency=stack.agency)
            plan = pipeline.plan_destroy(owner, driver)
            click.echo(_("reap {tenant} ({region}): expired at {expires}, {count} step(s)", tenant=stack.tenant,
                         region=stack.region, expires=entry["expires_at"], count=len(build_graph(plan))), err=True)
            result = pipeline.apply_plan(plan, driver, parallelism=parallelism, timeout=timeout,
                                         progress=progress_printer(len(build_graph(plan))))
            entry["status"] = "destroyed" if result.ok else "failed"
            if not result.ok:
                entry["error"] = "; ".join(f"{o.node}: {o.error}" for o in result.failed) or _("timed out")
        except GcloudctlError as exc:
            entry["status"], entry["error"] = "failed", exc.message
    data = {"now": iso_utc(now), "dry_run": dry_run, "stacks": results}
    emit(app.output, data, lambda: _human(results, dry_run))
    return ExitCode.ERROR if any(r["status"] == "failed" for r in results) else ExitCode.OK


def _status_text(status: str) -> str:
    return {"would-destroy": _("would destroy"), "destroyed": _("destroyed"), "failed": _("failed")}[status]


def _human(results: list[dict], dry_run: bool) -> str:
    if not results:
        return _("No expired stacks.")
    return table([_("TENANT"), _("REGION"), _("AGENCY"), _("EXPIRED AT"), _("STATUS")],
                 [[r["tenant"], r["region"], r["agency"], r["expires_at"], _status_text(r["status"]) +
                   (f": {r['error']}" if r["error"] else "")] for r in results])


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    cli.add_command(reap_cmd)
