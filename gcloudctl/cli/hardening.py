"""CLI for hardened VMs: `inventory`, `harden`, `audit-hosts` (thin: parse, call, render).

Hosts come from the cloud (`pipeline.observe_hosts`) or, without a cloud, from `--hosts FILE`
(observed host dicts) or `--inventory FILE` (an inventory this command generated).
`harden` calls the same per-server use case as `apply` and the controller
(`usecases.harden.harden_inventory`: console-verified keys, the playbooks per server, then the
audit checks). Exit codes: 0 ok; 1 a task or an audit check failed; 3 `--check` found drift;
5 `--timeout` passed; 6 a host was unreachable or refused its host key; 2 bad input.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import yaml

from gcloudctl.cli.render import emit, table
from gcloudctl.errors import ExitCode, GcloudctlError, InvalidInput
from gcloudctl.i18n import gettext


def _hosts_options(fn):
    options = [
        click.option("--inventory", "inventory_file", type=click.Path(exists=True, dir_okay=False),
                     help="Use this inventory (YAML/JSON as `gcloudctl inventory` writes) instead of the cloud."),
        click.option("--hosts", "hosts_file", type=click.Path(exists=True, dir_okay=False),
                     help="Observed hosts as YAML/JSON: a list, or {level, hosts, bastion}; no cloud needed."),
        click.option("--level", type=click.IntRange(1, 4), help="Classification level / hardening profile L1..L4."),
        click.option("--user", "automation_user", default="gcadmin", show_default=True, help="Automation user."),
        # absolute: ansible-runner runs ssh from its own private directory
        click.option("--key", "key_file", type=click.Path(dir_okay=False, resolve_path=True),
                     envvar="GCLOUDCTL_SSH_KEY", help="Automation user's private key."),
        click.option("--proxy-command", envvar="GCLOUDCTL_SSH_PROXY_COMMAND",
                     help="How the controller reaches a first hop (ProxyCommand with %h %p; "
                          "devcloud guests: `gcloudctl devcloud proxy-command`)."),
        click.option("--region", help="Platform region (default: the catalog's first)."),
        click.option("--agency", help="Agency of TENANT, when several agencies have a tenant of that name."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _load_structured(path: str):
    text = Path(path).read_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(gettext("{file}: not YAML/JSON: {error}", file=path, error=exc)) from exc


def _inventory(app, tenant: str, opts: dict) -> tuple[dict, int, list[tuple[str, str]]]:
    """(inventory dict, level, hosts left out) from --inventory, --hosts or the cloud."""
    from gcloudctl.hardening.inventory import Bastion, build_inventory, select_hosts

    if opts.get("inventory_file"):
        from gcloudctl.hardening.inventory import load_inventory

        try:  # the YAML `gcloudctl inventory` writes marks cloud-side values `!unsafe`
            inv = load_inventory(Path(opts["inventory_file"]).read_text())
        except yaml.YAMLError as exc:
            raise InvalidInput(gettext("{file}: not YAML/JSON: {error}", file=opts["inventory_file"], error=exc)) from None
        if not isinstance(inv, dict) or "all" not in inv:
            raise InvalidInput(gettext("{file}: expected an inventory with an `all` group", file=opts["inventory_file"]))
        levels = {v.get("gcloudctl_level") for v in inv["all"].get("hosts", {}).values()}
        return inv, opts.get("level") or max((lv for lv in levels if lv), default=1), []
    bastion = None
    if opts.get("hosts_file"):
        data = _load_structured(opts["hosts_file"])
        hosts = data.get("hosts", []) if isinstance(data, dict) else data
        level = opts.get("level") or (data.get("level") if isinstance(data, dict) else None)
        if isinstance(data, dict) and data.get("bastion"):
            bastion = Bastion(**data["bastion"])
    else:
        from gcloudctl import pipeline

        config = app.config()
        driver = app.driver(config, opts.get("region"))
        hosts, tagged = pipeline.observe_hosts_and_level(_owner(app, driver, tenant, opts), driver)
        # the project's gc-level tag says the tenant's classification; profiles stop at L4
        level = opts.get("level") or (min(tagged, 4) if tagged else None)
    if not level:
        raise InvalidInput(gettext("the classification level is unknown: pass --level 1..4"),
                           hint=gettext("it selects the hardening profile L1..L4"))
    if not isinstance(hosts, list):
        raise InvalidInput(gettext("hosts must be a list of {fields}",
                                   fields="{name, role, zones, fixed_ips, floating_ip, image, status}"))
    _, left_out = select_hosts(hosts)
    from gcloudctl.usecases.apply import firewall_settings

    # the host firewall's admin sources and the central log host are the platform catalog's, as
    # `apply` and the controller use them; a --hosts file may carry its own
    platform = firewall_settings(None, app.config())
    if opts.get("hosts_file") and isinstance(data, dict):  # a hosts file may name its own
        platform.update({key: data[key] for key in ("admin_sources", "log_target") if key in data})
    inv = build_inventory(tenant, int(level), hosts, automation_user=opts["automation_user"], bastion=bastion,
                          proxy_command=opts.get("proxy_command"), key_file=opts.get("key_file"),
                          known_hosts=str(_known_hosts(tenant, opts)), **platform)
    return inv, int(level), left_out


def _owner(app, driver, tenant: str, opts: dict):
    """The proven owner of TENANT: given (apply knows it from the request) or found by name
    (`--agency` when several agencies have a tenant of that name). Observe refuses the rest."""
    from gcloudctl import pipeline
    from gcloudctl.errors import NotFound

    owner = opts.get("owner") or pipeline.find_owner(tenant, driver, app.config(), agency=opts.get("agency"))
    if owner is None:
        raise NotFound(gettext("tenant {tenant!r} not found", tenant=tenant),
                       hint=gettext("list tenants with: gcloudctl get tenants"))
    return owner


def _known_hosts(tenant: str, opts: dict) -> Path:
    from gcloudctl.drivers.ssh import known_hosts_path

    return Path(opts["known_hosts"]) if opts.get("known_hosts") else known_hosts_path(tenant)


def _console(app, tenant: str, opts: dict):
    """Where host keys are verified from: --console-dir, else the cloud's console log (none for
    --inventory/--hosts without --console-dir: the known_hosts must already hold the keys)."""
    from gcloudctl.hardening.access import console_from_dir

    if opts.get("console_dir"):
        return console_from_dir(Path(opts["console_dir"]))
    if opts.get("inventory_file") or opts.get("hosts_file"):
        return None
    config = app.config()
    driver = app.driver(config, opts.get("region"))
    return driver.console_for(_owner(app, driver, tenant, opts)) if hasattr(driver, "console_for") else None


def _trust(app, tenant: str, inv: dict, opts: dict) -> Path:
    """Write console-verified host keys into the tenant's known_hosts (from --console-dir or the cloud)."""
    from gcloudctl.hardening.access import ssh_targets, trust_consoles

    known_hosts = _known_hosts(tenant, opts)
    console = _console(app, tenant, opts)
    if console is not None:
        trust_consoles(ssh_targets(inv, key_file=opts.get("key_file")), known_hosts, console)
    return known_hosts


def _trust_options(fn):
    fn = click.option("--known-hosts", type=click.Path(dir_okay=False),
                      help="Tenant known_hosts (default: ~/.local/state/gcloudctl/known_hosts/TENANT).")(fn)
    fn = click.option("--console-dir", type=click.Path(exists=True, file_okay=False),
                      help="Console logs (HOST.log or HOST/console.log) to verify host keys from.")(fn)
    return fn


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""

    @cli.command("inventory")
    @click.argument("tenant")
    @click.option("--format", "fmt", type=click.Choice(["yaml", "ini", "json"]),
                  help="Inventory format (default: -o json/yaml when given, else yaml).")
    @click.option("--known-hosts", type=click.Path(dir_okay=False),
                  help="known_hosts the bastion hop should use (default: the tenant's).")
    @_hosts_options
    @click.pass_obj
    def inventory_cmd(app, tenant, fmt, **opts):
        """Print an Ansible inventory of TENANT's servers (groups: tenant, role, zone, level)."""
        from gcloudctl.hardening.inventory import render_inventory

        fmt = fmt or (app.output if app.output in ("json", "yaml") else "yaml")  # -o means the same everywhere
        inv, _, left_out = _inventory(app, tenant, opts)
        for name, reason in left_out:
            click.echo("# " + gettext("left out {name}: {reason}", name=name, reason=reason), err=True)
        click.echo(render_inventory(inv, fmt), nl=False)

    @cli.command("harden")
    @click.argument("tenant")
    @click.option("--check", is_flag=True, help="Report drift only (ansible check mode); exit 3 if any.")
    @click.option("--limit", help="Only these hosts (comma-separated names or glob patterns).")
    @click.option("--forks", default=10, show_default=True, type=click.IntRange(1, 50), help="Hosts at once.")
    @click.option("--verify/--no-verify", default=True, show_default=True,
                  help="After hardening, run the audit checks on each host (exit 1 if one fails).")
    @click.option("--timeout", type=click.FloatRange(1), help="Give up after this many seconds (exit 5).")
    @_hosts_options
    @_trust_options
    @click.pass_obj
    def harden_cmd(app, tenant, check, limit, forks, verify, timeout, **opts):
        """Harden TENANT's servers by its classification level (the project's own roles), each
        as soon as it answers SSH with its console-verified key, then verify them."""
        from gcloudctl.usecases import Deadline
        from gcloudctl.usecases.harden import Access, Step, harden_inventory

        deadline = Deadline.within(timeout)
        inv, level, _ = _inventory(app, tenant, opts)
        known_hosts = _known_hosts(tenant, opts)
        access = Access(key_file=opts.get("key_file"), proxy_command=opts.get("proxy_command"),
                        automation_user=opts["automation_user"], known_hosts=known_hosts)
        verbose = app.verbose > 0

        def progress(event) -> None:
            if event.step == Step.TASK:
                if verbose or event.status in ("changed", "failed", "unreachable"):
                    detail = f": {event.data.message}" if event.data.message and event.status != "changed" else ""
                    click.echo(f"  {event.host:<16} {event.status:<11} {event.message}{detail}", err=True)
            elif verbose or event.step == Step.HOST_DONE:
                click.echo(f"  {event.message}", err=True)

        click.echo((gettext("checking {count} host(s) of {tenant} against profile L{level} (check mode)") if check
                    else gettext("hardening {count} host(s) of {tenant} with profile L{level}")).format(
                        count=len(inv["all"]["hosts"]), tenant=tenant, level=level), err=True)
        result = harden_inventory(inv, tenant=tenant, access=access, known_hosts=known_hosts,
                                  console=_console(app, tenant, opts), deadline=deadline, progress=progress,
                                  check=check, verify=verify and not check, limit=limit, forks=forks)
        emit(app.output, result.to_dict(), lambda: _harden_text(result))
        if result.timed_out:
            return ExitCode.TIMEOUT
        if result.unreachable:
            return ExitCode.UNREACHABLE
        if not result.ok:
            return ExitCode.ERROR
        if check and result.drift:
            return ExitCode.CHANGES
        return ExitCode.OK

    @cli.command("audit-hosts")
    @click.argument("tenant")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Report directory "
                  "(default: ./audit-reports/TENANT); an earlier report there becomes the baseline.")
    @click.option("--lynis/--no-lynis", default=True, show_default=True, help="Also run lynis (≈1 min per host).")
    @_hosts_options
    @_trust_options
    @click.pass_obj
    def audit_cmd(app, tenant, out_dir, lynis, **opts):
        """Check every host of TENANT: own controls + lynis; JSON and HTML report per host."""
        from gcloudctl.drivers.ssh import connect
        from gcloudctl.hardening.access import ssh_targets
        from gcloudctl.hardening.audit import audit_host, write_report
        from gcloudctl.hardening.paths import file_stem

        inv, level, _ = _inventory(app, tenant, opts)
        known_hosts = _trust(app, tenant, inv, opts)
        targets = ssh_targets(inv, key_file=opts.get("key_file"))
        # server names come from the cloud: one that cannot name a file is reported, not audited
        refused = {name: gettext("server name '{name}' cannot be made into a report file name; not audited",
                                 name=name[:80])
                   for name in targets if file_stem(name) is None}
        targets = {name: t for name, t in targets.items() if name not in refused}
        out = Path(out_dir or Path("audit-reports") / (file_stem(tenant) or "_"))
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        def one(item):
            name, target = item
            try:
                with connect(target, known_hosts) as session:
                    return name, write_report(audit_host(session, name, level, lynis=lynis), out, generated_at=now), None
            except GcloudctlError as exc:
                return name, None, exc

        with ThreadPoolExecutor(max_workers=4) as pool:
            # each host in a copy of this context: the language and the deadline go with it
            futures = [pool.submit(contextvars.copy_context().run, one, item) for item in sorted(targets.items())]
            results = [future.result() for future in futures]
        reports = {name: rep for name, rep, _ in results if rep}
        errors = {name: err for name, _, err in results if err}
        emit(app.output, {"reports": reports, "errors": {k: v.message for k, v in errors.items()} | refused},
             lambda: _audit_text(reports, errors, out, refused))
        if errors:
            return ExitCode.UNREACHABLE
        return ExitCode.ERROR if refused else ExitCode.OK


def _harden_text(result) -> str:
    rows = []
    for name, h in sorted(result.hosts.items()):
        s = h.run.hosts.get(name) if h.run is not None else None
        verified = (gettext("{passed} pass, {failed} fail", passed=h.passed, failed=len(h.failed_controls))
                    if h.status.value in ("hardened", "verify-failed") else "–")
        rows.append((name, f"L{h.level}", h.status.value, s.ok if s else "–", h.changed, s.failed if s else "–",
                     s.unreachable if s else "–", verified, f"{h.seconds:.0f}s"))
    text = [table([gettext("HOST"), gettext("PROFILE"), gettext("RESULT"), gettext("OK"), gettext("CHANGED"),
                   gettext("FAILED"), gettext("UNREACHABLE"), gettext("VERIFY"), gettext("TIME")], rows)]
    if result.check:
        drift = result.drift
        text.append(gettext("drift: {count} task(s) would change", count=len(drift)) if drift
                    else gettext("drift: none"))
        text += [f"  {d.host}: {d.task}" for d in drift]
    for name, h in sorted(result.hosts.items()):
        if h.run is not None and h.run.not_applicable.get(name):
            text.append(gettext("not applicable on {name} (container): {controls}", name=name,
                                controls=", ".join(h.run.not_applicable[name])))
        if h.message:
            text.append((gettext("FAILED {name}: {message}") if not h.ok else
                         gettext("NOTE {name}: {message}")).format(name=name, message=h.message))
    text.append((gettext("successful in {seconds}s") if result.ok else gettext("failed in {seconds}s")).format(
        seconds=f"{result.seconds:.0f}"))
    return "\n".join(text)


def _or_dash(value) -> str:
    return "–" if value is None else str(value)


def _audit_text(reports: dict, errors: dict, out: Path, refused: dict | None = None) -> str:
    rows = []
    for name, rep in sorted(reports.items()):
        s, b = rep["score"], rep.get("baseline") or {}
        rows.append((name, rep["profile"], s["passed"], s["failed"], s["not_applicable"],
                     _or_dash(s["lynis_hardening_index"]), _or_dash(b.get("passed")),
                     _or_dash(b.get("lynis_hardening_index"))))
    text = [table([gettext("HOST"), gettext("PROFILE"), gettext("PASS"), gettext("FAIL"), gettext("N/A"),
                   gettext("LYNIS"), gettext("PASS BEFORE"), gettext("LYNIS BEFORE")], rows)]
    text += [gettext("ERROR {name}: {message}", name=name, message=err.message) for name, err in sorted(errors.items())]
    text += [gettext("REFUSED {message}", message=message) for _, message in sorted((refused or {}).items())]
    text.append(gettext("reports in {directory}/", directory=out))
    return "\n".join(text)
