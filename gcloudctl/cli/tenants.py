"""CLI: plan, apply, destroy, get tenants, describe, completion. Thin: parse, call pipeline, render."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from gcloudctl import pipeline
from gcloudctl.cli.context import OUTPUT_FORMATS, AppContext
from gcloudctl.cli.render import dump, emit, progress_printer, table
from gcloudctl.errors import ExitCode, InvalidInput, NotFound, Refused, TimeoutExpired
from gcloudctl.executor import build_graph
from gcloudctl.i18n import N_, gettext  # not `_`: this file uses `_` for values it drops
from gcloudctl.plan import PLAN_FORMAT, Plan, render_text
from gcloudctl.stacks import expiry_preflight


# What apply and destroy say, by verb (the verb itself is a command name, never shown alone).
VERB_TEXT = {
    "apply": {
        "start": N_("apply {tenant}: {total} step(s), up to {parallelism} at once"),
        "complete": N_("apply complete: {done} done, {failed} failed, {skipped} skipped in {seconds}s."),
        "incomplete": N_("apply incomplete: {done} done, {failed} failed, {skipped} skipped in {seconds}s."),
        "timeout": N_("apply did not finish within {seconds}s"),
        "refusing": N_("refusing to apply without confirmation: stdin is not a terminal"),
        "confirm": N_("Do you want to apply these changes to {tenant}?"),
    },
    "destroy": {
        "start": N_("destroy {tenant}: {total} step(s), up to {parallelism} at once"),
        "complete": N_("destroy complete: {done} done, {failed} failed, {skipped} skipped in {seconds}s."),
        "incomplete": N_("destroy incomplete: {done} done, {failed} failed, {skipped} skipped in {seconds}s."),
        "timeout": N_("destroy did not finish within {seconds}s"),
        "refusing": N_("refusing to destroy without confirmation: stdin is not a terminal"),
        "confirm": N_("Do you want to destroy these changes to {tenant}?"),
    },
}


def _request(app: AppContext, path: str):
    """The request in `path`, loaded and validated, for plan and apply: an expired CI stack is
    refused here (exit 4), before anything is observed or written. Not used by destroy."""
    config = app.config()
    request = pipeline.load_request(Path(path), config, filename=path)
    expiry_preflight(request, app.now())
    return config, request


def _plan_for(app: AppContext, source: str):
    """A fresh plan for FILE, or for a saved plan (refused when stale)."""
    saved = None
    if source.endswith(".json"):
        try:
            saved = json.loads(Path(source).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(gettext("{file}: not a readable saved plan ({error})", file=source, error=exc)) from None
        if not isinstance(saved, dict) or saved.get("format") != PLAN_FORMAT or "request_file" not in saved:
            raise InvalidInput(gettext("{file}: not a gcloudctl plan (expected format {format})", file=source,
                                       format=PLAN_FORMAT))
        source = saved["request_file"]
    config, request = _request(app, source)
    driver = app.driver(config, request.spec.region)
    plan = pipeline.plan_request(request, driver, config)
    if saved is not None:
        if saved["request_digest"] != plan.request_digest:
            raise Refused(gettext("stale plan: {file} changed since the plan was saved", file=source),
                          hint=gettext("run `gcloudctl plan` again"))
        if saved["observed_fingerprint"] != plan.observed_fingerprint:
            raise Refused(gettext("stale plan: the cloud changed since the plan was saved"),
                          hint=gettext("run `gcloudctl plan` again"))
    return request, driver, plan, source


@click.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Save the plan (JSON, no secrets) for `apply`.")
@click.option("-o", "--output", "fmt", metavar="[table|json|yaml]",
              help="Output format (overrides the global one). Formerly `-o FILE` saved the plan: a value that is "
                   "not a format still does, with a warning; use --out FILE.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there is nothing to do, 3 when the plan has changes.")
@click.pass_obj
def plan_cmd(app: AppContext, file: str, out: str | None, fmt: str | None, detailed_exitcode: bool) -> int:
    """Show what apply would change for the tenant in FILE (create / update / replace / delete)."""
    if fmt is not None and fmt not in OUTPUT_FORMATS:  # the old `-o FILE`: kept one release, with a warning
        click.echo(gettext("warning: `plan -o {file}` saves the plan; this is deprecated, use --out {file} "
                     "(-o is the output format: table, json or yaml)", file=fmt), err=True)
        out, fmt = out or fmt, None
    _, _, plan, source = _plan_for(app, file)
    data = plan.to_dict() | {"request_file": str(Path(source).resolve())}
    if out:
        Path(out).write_text(json.dumps(data, indent=2))
    saved_line = "\n" + gettext("Saved to {file}; apply it with: gcloudctl apply {file}", file=out) if out else ""
    emit(fmt or app.output, data, lambda: render_text(plan) + saved_line)
    return ExitCode.CHANGES if detailed_exitcode and not plan.is_empty() else ExitCode.OK


def _confirm(plan: Plan, yes: bool, verb: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(gettext(VERB_TEXT[verb]["refusing"]), hint=gettext("pass --yes"))
    if not click.confirm(gettext(VERB_TEXT[verb]["confirm"], tenant=plan.tenant), default=False, err=True):
        raise click.exceptions.Abort()


def _emit_outcome(app: AppContext, fmt: str | None, data: dict, human, *, timed_out: bool, timeout: float | None,
                  verb: str) -> int | None:
    """Print the command's result. On a timeout: under -o json/yaml one document carrying what
    was done plus `error`, `exit_code`, `hint` (a CI job parses one document), and exit 5;
    otherwise the result, then the error (TimeoutExpired, exit 5). None: not timed out."""
    if not timed_out:
        emit(fmt or app.output, data, human)
        return None
    error = TimeoutExpired(gettext(VERB_TEXT[verb]["timeout"], seconds=round(timeout)),
                           hint=gettext("re-run the same command: it picks up where this one stopped"))
    if (fmt or app.output) not in ("json", "yaml"):
        emit(fmt or app.output, data, human)
        raise error
    emit(fmt or app.output, data | {"error": error.message, "exit_code": int(error.exit_code), "hint": error.hint},
         human)
    click.echo(gettext("error: {message}", message=error.message), err=True)
    return error.exit_code


def _run(app: AppContext, plan: Plan, driver, parallelism: int, timeout: float | None, fmt: str | None, verb: str) -> int:
    total = len(build_graph(plan))
    click.echo(gettext(VERB_TEXT[verb]["start"], tenant=plan.tenant, total=total, parallelism=parallelism), err=True)
    result = pipeline.apply_plan(plan, driver, parallelism=parallelism, progress=progress_printer(total), timeout=timeout)
    counts = result.counts()
    human = lambda: _result_line(verb, result)  # noqa: E731
    code = _emit_outcome(app, fmt, {"tenant": plan.tenant, **result.to_dict()}, human,
                         timed_out=result.timed_out, timeout=timeout, verb=verb)
    if code is not None:
        return code
    if not result.ok:
        click.echo(gettext("Re-run the same command to retry: finished steps are not repeated."), err=True)
        return ExitCode.ERROR
    return ExitCode.OK


def _result_line(verb: str, result) -> str:
    """`apply complete: 3 done, 0 failed, 0 skipped in 1.2s.` in the chosen language."""
    counts = result.counts()
    key = "complete" if result.ok else "incomplete"
    return gettext(VERB_TEXT[verb][key], done=counts["done"], failed=counts["failed"], skipped=counts["skipped"],
                   seconds=round(result.seconds, 1))


def _apply_progress(app: AppContext):
    """Progress of the apply use case on stderr: each change, waits, each host's steps."""
    printer = {"changes": None}
    verbose = app.verbose > 0

    def report(event) -> None:
        from gcloudctl.usecases.apply import Stage
        from gcloudctl.usecases.harden import Step

        if event.step == Stage.APPLY:
            printer["changes"] = progress_printer(event.data["total"])
            click.echo(event.message, err=True)
        elif event.step == Stage.CHANGE:
            if printer["changes"] is not None:
                printer["changes"](*event.data)
        elif event.step == Step.TASK:
            if verbose or event.status in ("failed", "unreachable"):
                detail = f": {event.data.message}" if event.data.message else ""
                click.echo(f"  {event.host:<16} {event.status:<11} {event.message}{detail}", err=True)
        elif event.step in (Step.REACH, Step.HARDEN) and not verbose:
            return
        else:
            click.echo(("  " if event.host else "") + event.message, err=True)

    return report


def _harden_lines(result) -> list[str]:
    """What the hardening step says on stderr: one summary line, then what failed or was left out."""
    from gcloudctl.usecases.harden import STATUS_WORDS

    hosts = ", ".join(gettext("{name} changed={changed} failed={failed} unreachable={unreachable} {status}",
                              name=name, changed=h.changed, failed=0 if h.ok else 1,
                              unreachable=int(h.status.value == "unreachable"), status=gettext(STATUS_WORDS[h.status]))
                      for name, h in sorted(result.hosts.items()))
    lines = [(gettext("harden complete: {hosts}") if result.ok else gettext("harden FAILED: {hosts}")).format(
        hosts=hosts)]
    for name, host in sorted(result.hosts.items()):
        if host.status.value in ("hardened", "verify-failed"):
            lines.append("  " + gettext("verify {name}: {passed} passed, {failed} failed, {na} not applicable here",
                                        name=name, passed=host.passed, failed=len(host.failed_controls),
                                        na=host.not_applicable))
        if host.message:
            lines.append(f"  {name}: {host.message}")
    lines += ["  " + gettext("not hardened: {name}: {reason}", name=name, reason=reason)
              for name, reason in result.left_out]
    return lines


@click.command("apply")
@click.argument("source", metavar="FILE|PLAN.json", type=click.Path(dir_okay=False))
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 64), help="Changes run at once.")
@click.option("-y", "--yes", "--auto-approve", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until servers are ACTIVE.")
@click.option("--timeout", type=click.FloatRange(1), help="Give up after this many seconds (exit 5).")
@click.option("--harden/--no-harden", default=None,
              help="Harden the servers after apply (default: when a server sets `hardening`).")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, resolve_path=True), envvar="GCLOUDCTL_SSH_KEY",
              help="Private key of the automation user, for hardening.")
@click.option("--proxy-command", envvar="GCLOUDCTL_SSH_PROXY_COMMAND",
              help="How to reach the servers for hardening (ssh ProxyCommand, %h %p; "
                   "devcloud guests: `gcloudctl devcloud proxy-command`).")
@click.option("--allow-data-loss", is_flag=True, help="Allow deleting volumes that hold data.")
@click.option("--output", "fmt", type=click.Choice(["table", "json", "yaml"]))
@click.pass_obj
def apply_cmd(app: AppContext, source: str, parallelism: int, yes: bool, wait: bool, timeout: float | None,
              harden: bool | None, key_file: str | None, proxy_command: str | None, allow_data_loss: bool,
              fmt: str | None) -> int:
    """Make the cloud match FILE (or a saved plan, refused if the world moved since), then
    harden and verify its servers when they ask for it."""
    from gcloudctl.drivers.base import deadline_scope
    from gcloudctl.usecases import Deadline

    deadline = Deadline.within(timeout)  # the whole command: apply, waits, SSH, playbooks, checks
    with deadline_scope(deadline.at):  # logins, plan, waits: every call of the driver sees it
        return _apply_within(app, deadline, source, yes, timeout, fmt, parallelism, wait, harden, key_file,
                             proxy_command, allow_data_loss)


def _apply_within(app: AppContext, deadline, source: str, yes: bool, timeout: float | None, fmt: str | None,
                  parallelism: int, wait: bool, harden: bool | None, key_file: str | None,
                  proxy_command: str | None, allow_data_loss: bool = False) -> int:
    from gcloudctl.usecases.apply import ApplyOptions, SavedPlan, apply_request
    from gcloudctl.usecases.harden import Access

    saved = None
    if source.endswith(".json"):
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise InvalidInput(gettext("{file}: not a readable saved plan ({error})", file=source, error=exc)) from None
        saved = SavedPlan.parse(text, source)
        source = saved.request_file
    config, request = _request(app, source)
    driver = app.driver(config, request.spec.region)
    access = Access(key_file=key_file, proxy_command=proxy_command, automation_user=config.catalog.spec.automationUser)

    def confirm(plan: Plan) -> None:
        click.echo(render_text(plan), err=True)
        _confirm(plan, yes, "apply")

    outcome = apply_request(request, driver, config, saved=saved, deadline=deadline, progress=_apply_progress(app),
                            confirm=confirm, options=ApplyOptions(parallelism=parallelism, wait=wait, harden=harden,
                                                                  access=access),
                            allow_data_loss=allow_data_loss)
    result, plan = outcome.applied, outcome.plan
    if result is None:
        human = plan.summary
    else:
        human = lambda: _result_line("apply", result)  # noqa: E731
    if outcome.hardening is not None:
        for line in _harden_lines(outcome.hardening):
            click.echo(line, err=True)
    data = outcome.to_dict()
    if (fmt or app.output) in ("json", "yaml") and not outcome.timed_out:
        from gcloudctl.cli.outputs import outputs_of_request

        # one stable shape for CI: every resource's id, the servers' fixed and floating addresses
        data["outputs"] = outputs_of_request(app, request, driver).model_dump(mode="json")
    code = _emit_outcome(app, fmt, data, human, timed_out=outcome.timed_out, timeout=timeout, verb="apply")
    if code is not None:
        return code
    if result is not None and not result.ok:
        click.echo(gettext("Re-run the same command to retry: finished steps are not repeated."), err=True)
        return ExitCode.ERROR
    if outcome.hardening is not None and not outcome.hardening.ok:
        return ExitCode.UNREACHABLE if outcome.hardening.unreachable else ExitCode.ERROR
    return ExitCode.OK


@click.command("destroy")
@click.argument("target", metavar="FILE|TENANT")
@click.option("-y", "--yes", "--auto-approve", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", type=click.FloatRange(1), help="Give up after this many seconds (exit 5).")
@click.option("--region", help="Region of TENANT (default: the catalog's first region).")
@click.option("--agency", help="Agency of TENANT, when several agencies have a tenant of that name.")
@click.option("--allow-data-loss", is_flag=True, help="Allow deleting volumes that hold data.")
@click.option("--output", "fmt", type=click.Choice(["table", "json", "yaml"]))
@click.pass_obj
def destroy_cmd(app: AppContext, target: str, yes: bool, parallelism: int, timeout: float | None, region: str | None,
                agency: str | None, allow_data_loss: bool, fmt: str | None) -> int:
    """Delete everything a tenant owns: floating IPs, servers, router, networks, groups, keypairs, project.
    Only a project proven the tenant's (its agency's domain, all ownership tags) is deleted."""
    import time

    from gcloudctl.drivers.base import deadline_scope

    with deadline_scope(None if timeout is None else time.monotonic() + timeout):
        return _destroy_within(app, target, yes, parallelism, timeout, region, agency, fmt, allow_data_loss)


def _destroy_within(app: AppContext, target: str, yes: bool, parallelism: int, timeout: float | None,
                    region: str | None, agency: str | None, fmt: str | None, allow_data_loss: bool = False) -> int:
    from gcloudctl.usecases.apply import check_destroy

    config = app.config()
    if os.path.isfile(target):
        request = pipeline.load_request(Path(target), config, filename=target)
        tenant, region = request.name, request.spec.region
        driver = app.driver(config, region)
        owner = pipeline.owner_of(request, config)
    else:
        tenant = target
        driver = app.driver(config, region)
        owner = pipeline.find_owner(tenant, driver, config, agency=agency)
    plan = pipeline.plan_destroy(owner, driver)
    if plan.is_empty():
        emit(fmt or app.output, {"tenant": tenant, "ok": True, "changes": 0},
             lambda: gettext("Nothing to destroy: {tenant} does not exist.", tenant=tenant))
        return ExitCode.OK
    check_destroy(plan, allow_data_loss)  # a level >= 3 tenant's volumes hold data: refused unless allowed
    click.echo(render_text(plan), err=True)
    _confirm(plan, yes, "destroy")
    return _run(app, plan, driver, parallelism, timeout, fmt, "destroy")


@click.group("get")
def get_group() -> None:
    """List things."""


@get_group.command("tenants")
@click.option("--region", help="Only this region.")
@click.option("--output", "fmt", type=click.Choice(["table", "json", "yaml"]))
@click.pass_obj
def get_tenants(app: AppContext, region: str | None, fmt: str | None) -> None:
    """Tenants gcloudctl manages, per region, with the expiry of CI stacks (schema: `gcloudctl schema tenants`)."""
    from gcloudctl.cli.stacks import public, tenant_rows

    rows = public(tenant_rows(app, region))
    emit(fmt or app.output, rows, lambda: table(
        [gettext("TENANT"), gettext("REGION"), gettext("AGENCY"), gettext("DOMAIN"), gettext("LEVEL"),
         gettext("EXPIRES"), gettext("PROJECT ID")],
        [[r["tenant"], r["region"], r["agency"],
          r["domain"] if r["owned"] else gettext("{name} (NOT OWNED)", name=r["domain"]), r["classification"],
          (r["expires_at"] + (gettext(" (expired)") if r["expired"] else "")) if r["expires_at"] else "-",
          r["project_id"]] for r in rows]) if rows else gettext("No tenants."))


@click.command("describe")
@click.argument("tenant")
@click.option("--region", help="Region of TENANT (default: the catalog's first region).")
@click.option("--agency", help="Agency of TENANT, when several agencies have a tenant of that name.")
@click.option("--output", "fmt", type=click.Choice(["table", "json", "yaml"]))
@click.pass_obj
def describe_cmd(app: AppContext, tenant: str, region: str | None, agency: str | None, fmt: str | None) -> None:
    """Every resource of TENANT as the cloud reports it, with status, agency and domain."""
    config = app.config()
    regions = config.catalog.spec.regions
    externals = (regions.get(region) or next(iter(regions.values()))).externalNetworks
    driver = app.driver(config, region)
    owner = pipeline.find_owner(tenant, driver, config, agency=agency)
    observed = driver.observe(owner, external_networks=externals) if owner else None
    if observed is None or observed.project_id is None:
        raise NotFound(gettext("tenant {tenant!r} not found", tenant=tenant),
                       hint=gettext("list tenants with: gcloudctl get tenants"))
    resources = sorted(list(observed.resources.values()) + list(observed.unmanaged), key=lambda r: r.address.sort_key)
    data = {"tenant": tenant, "agency": owner.agency, "domain": owner.domain, "project_id": observed.project_id,
            "resources": [{"address": str(r.address), "id": r.id, "status": r.status, "managed": r.managed,
                           "detail": _detail(r)} for r in resources]}
    emit(fmt or app.output, data, lambda: gettext(
        "Tenant {tenant} of agency {agency} (domain {name}, project {project})", tenant=tenant, agency=owner.agency,
        name=owner.domain, project=observed.project_id) + "\n" + table(
        [gettext("ADDRESS"), gettext("STATUS"), gettext("DETAIL"), gettext("OWNER")],
        [[str(r.address), r.status or "", _detail(r), "gcloudctl" if r.managed else gettext("OUT-OF-BAND")]
         for r in resources]))


def _detail(resource) -> str:
    """The one fact a person looks for first, per kind."""
    a, x = resource.attrs, resource.extra
    kind = resource.address.kind.value
    if kind == "subnet":
        return a.get("cidr") or ""
    if kind == "floating_ip":
        return f"{x.get('floating_ip_address')} -> {x.get('fixed_ip_address') or 'unattached'}"
    if kind == "server":
        ips = [i.get("addr") for addrs in (x.get("addresses") or {}).values() for i in addrs]
        return f"{a.get('flavor')} {a.get('image')} {' '.join(filter(None, ips))}".strip()
    if kind == "port":
        return " ".join(x.get("fixed_ips") or [])
    if kind == "quota":
        return ", ".join(f"{k}={v}" for k, v in sorted(a.items()))
    if kind == "router":
        return f"gateway {a.get('external_network')}"
    if kind == "volume":
        where = ", ".join(f"{t.get('device') or '?'}" for t in x.get("attachments") or []) or "detached"
        return f"{a.get('size')} GiB {a.get('type')} {where}"
    if kind == "volume_attachment":
        return x.get("device") or ""
    return ""


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print a shell completion script: eval "$(gcloudctl completion bash)"."""
    from click.shell_completion import get_completion_class

    from gcloudctl.cli.main import cli

    comp = get_completion_class(shell)(cli, {}, "gcloudctl", "_GCLOUDCTL_COMPLETE")
    click.echo(comp.source())


def register(cli: click.Group) -> None:
    for command in (plan_cmd, apply_cmd, destroy_cmd, get_group, describe_cmd, completion_cmd):
        cli.add_command(command)
