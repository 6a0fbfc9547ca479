"""CLI: `gcloudctl compliance TENANT` — the tenant's compliance dossier as HTML and/or JSON.

Thin: parse, assemble the parts (this file is their composition root: the cloud driver, the
controller's read use cases, the evidence), call `compliance.gather.dossier`, render, write.
Evidence comes from the latest audit-hosts reports in `--evidence DIR`, or from running the
checks now (`--live`, the audit-hosts machinery: SSH key, proxy command, console-verified host
keys); without either every host control is "not checked". Files are written as
`DIR/<tenant>.html|json` (names confined to DIR); `-o -` prints the document instead.
Exit codes: 0 written; 2 bad input; 6 a host unreachable with --live (the dossier is still
written, those hosts "not checked"); 7 the tenant is unknown everywhere.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import click

from gcloudctl.cli.render import emit
from gcloudctl.errors import ExitCode, GcloudctlError, InvalidInput


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _controller(app, db: str | None, wanted: bool | None):
    """The controller's read side when one is configured (or asked for), else None."""
    from gcloudctl.cli.controller import _backend
    from gcloudctl.compliance.gather import Controller
    from gcloudctl.controller.store import default_url

    if wanted is False:
        return None
    url = db or default_url(app.environ)
    local = url.split("///", 1)[1] if url.startswith("sqlite") and "///" in url else None
    configured = bool(db or app.api_url or app.environ.get("GCLOUDCTL_DB")) or (local and Path(local).exists())
    if not configured and not wanted:
        return None  # never create an empty controller database just to find nothing in it
    backend, caller = _backend(app, db)
    where = "request API" if app.api_url else "controller database"
    return Controller(backend=backend, caller=caller, where=where)


def _request(app, tenant: str, request_file: str | None):
    """(tenant name, request, where it came from) from TENANT.yaml or --request FILE."""
    from gcloudctl import pipeline

    path = request_file or (tenant if tenant.endswith((".yaml", ".yml")) else None)
    if path is None:
        return tenant, None, None
    if not Path(path).is_file():
        raise InvalidInput(f"{path}: no such request file")
    request = pipeline.load_request(Path(path), app.config())
    if request_file and tenant != request.metadata.name:
        raise InvalidInput(f"{request_file}: metadata.name is {request.metadata.name!r}, not {tenant!r}")
    from gcloudctl.compliance.model import note

    return request.metadata.name, request, note("request file {path}", path=path)


def _live_evidence(app, tenant: str, directory: Path, opts: dict) -> dict[str, str]:
    """Run the audit checks now (as audit-hosts, without lynis) and write their reports into
    `directory`; returns {host: error} for the hosts that could not be audited."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from gcloudctl.cli.hardening import _inventory, _trust
    from gcloudctl.drivers.ssh import connect
    from gcloudctl.hardening.access import ssh_targets
    from gcloudctl.hardening.audit import audit_host, write_report
    from gcloudctl.hardening.paths import file_stem

    inv, level, _ = _inventory(app, tenant, opts)
    known_hosts = _trust(app, tenant, inv, opts)
    targets = ssh_targets(inv, key_file=opts.get("key_file"))
    errors = {name: "server name cannot be a report file name; not audited"
              for name in targets if file_stem(name) is None}
    now = _now()

    def one(item):
        name, target = item
        try:
            with connect(target, known_hosts) as session:
                write_report(audit_host(session, name, level, lynis=False), directory, generated_at=now)
            return name, None
        except GcloudctlError as exc:
            return name, exc.message

    with ThreadPoolExecutor(max_workers=4) as pool:  # each host in a copy of this context (language, deadline)
        futures = [pool.submit(contextvars.copy_context().run, one, item)
                   for item in sorted((n, t) for n, t in targets.items() if n not in errors)]
        for name, error in (future.result() for future in futures):
            if error:
                errors[name] = error
    return errors


def register(cli: click.Group) -> None:
    """Attach this area's command to the root group."""

    @cli.command("compliance")
    @click.argument("tenant")
    @click.option("--format", "fmt", type=click.Choice(["html", "json", "both"]), default="html", show_default=True)
    @click.option("--lang", "lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
                  help="Language of the HTML dossier (Vietnamese with the English terms in brackets, or English).")
    @click.option("--out", "out_dir", default="compliance-reports", show_default=True,
                  help="Directory for TENANT.html / TENANT.json; `-` prints the document on stdout.")
    @click.option("--request", "request_file", type=click.Path(dir_okay=False),
                  help="The tenant's request YAML (default: the approved version in the controller store; "
                       "TENANT may itself be a request file).")
    @click.option("--evidence", "evidence_dir", type=click.Path(file_okay=False),
                  help="Directory of audit-hosts JSON reports (the newest per host is used); with --live the "
                       "new reports are written there.")
    @click.option("--live", is_flag=True, help="Run the control checks on the hosts now (SSH, like audit-hosts).")
    @click.option("--cloud/--no-cloud", "use_cloud", default=True, show_default=True,
                  help="Observe the tenant in the cloud (networks, groups, servers).")
    @click.option("--controller/--no-controller", "use_controller", default=None,
                  help="Read approvals and the audit chain from the controller (default: when a database or "
                       "request API is configured).")
    @click.option("--db", "db", metavar="URL", help="Controller database URL (default: $GCLOUDCTL_DB).")
    @click.option("--hosts", "hosts_file", type=click.Path(exists=True, dir_okay=False),
                  help="Observed hosts as YAML/JSON instead of the cloud (a list, or {level, hosts}).")
    @click.option("--inventory", "inventory_file", type=click.Path(exists=True, dir_okay=False),
                  help="With --live: an inventory `gcloudctl inventory` wrote, instead of the cloud.")
    @click.option("--level", type=click.IntRange(1, 5), help="Classification level when no request says it.")
    @click.option("--agency", help="Agency of TENANT, when several agencies have a tenant of that name.")
    @click.option("--region", help="Platform region (default: the request's, else the catalog's first).")
    @click.option("--user", "automation_user", default="gcadmin", show_default=True, help="With --live: automation user.")
    @click.option("--key", "key_file", type=click.Path(dir_okay=False, resolve_path=True), envvar="GCLOUDCTL_SSH_KEY",
                  help="With --live: the automation user's private key.")
    @click.option("--proxy-command", envvar="GCLOUDCTL_SSH_PROXY_COMMAND", help="With --live: SSH ProxyCommand.")
    @click.option("--known-hosts", type=click.Path(dir_okay=False), help="With --live: the tenant's known_hosts.")
    @click.option("--console-dir", type=click.Path(exists=True, file_okay=False),
                  help="With --live: console logs to verify host keys from.")
    @click.pass_obj
    def compliance_cmd(app, tenant, fmt, lang, out_dir, request_file, evidence_dir, live, use_cloud, use_controller, db,
                       hosts_file, level, agency, region, **ssh_opts):
        """Build TENANT's compliance dossier: level and rulebook, topology, each control required
        at that level per host with its evidence, what is not applicable and why, approvals and
        the audit chain head."""
        import yaml

        from gcloudctl import __version__
        from gcloudctl.compliance.evidence import read_reports
        from gcloudctl.compliance.gather import dossier as gather_dossier
        from gcloudctl.compliance.render import render_html, render_json
        from gcloudctl.hardening.controls import CONTROLS
        from gcloudctl.hardening.paths import file_for

        if out_dir == "-" and fmt == "both":
            raise InvalidInput("-o - prints one document: choose --format html or --format json")
        config = app.config()
        tenant, request, request_source = _request(app, tenant, request_file)
        from gcloudctl.compliance.model import note

        notes = []
        hosts, hosts_source = None, None
        if hosts_file:
            data = yaml.safe_load(Path(hosts_file).read_text())
            hosts = data.get("hosts", []) if isinstance(data, dict) else data
            if not isinstance(hosts, list) or not all(isinstance(h, dict) and "name" in h for h in hosts):
                raise InvalidInput(f"{hosts_file}: expected a list of hosts with a name (or {{level, hosts}})")
            level = level or (data.get("level") if isinstance(data, dict) else None)
            hosts_source, use_cloud = note("hosts file {path}", path=hosts_file), False
        exit_code = ExitCode.OK
        if live:
            directory = Path(evidence_dir or (Path(out_dir if out_dir != "-" else ".") / "evidence"))
            live_level = level or (request.spec.classification if request else None)
            opts = {**ssh_opts, "hosts_file": hosts_file, "level": min(live_level, 4) if live_level else None,
                    "region": region or (request.spec.region if request else None), "agency": agency}
            failed = _live_evidence(app, tenant, directory, opts)
            for host, error in sorted(failed.items()):
                notes.append(note("{host}: not audited now ({error}); its controls are not checked",
                                  host=host, error=error))
            exit_code = ExitCode.UNREACHABLE if failed else ExitCode.OK
            evidence_dir = str(directory)
        evidence, evidence_source = {}, None
        if evidence_dir:
            if not Path(evidence_dir).is_dir():
                raise InvalidInput(f"--evidence {evidence_dir}: no such directory")
            evidence, read_notes = read_reports(Path(evidence_dir))
            notes += read_notes
            evidence_source = note("audit-hosts reports in {path} (run now)" if live else "audit-hosts reports in {path}",
                                   path=evidence_dir)
        driver, cloud_name = None, None
        if use_cloud:
            driver = app.driver(config, region or (request.spec.region if request else None))
            cloud_name = region or (request.spec.region if request else next(iter(config.catalog.spec.regions)))
        result = gather_dossier(
            tenant, config=config, generated_at=_now(), version=__version__, controls=CONTROLS,
            request=request, request_source=request_source, driver=driver, cloud_name=cloud_name, hosts=hosts,
            hosts_source=hosts_source, level=level, agency=agency,
            controller=_controller(app, db, use_controller), evidence=evidence, evidence_source=evidence_source,
            notes=notes)
        documents = {"html": lambda: render_html(result, lang=lang), "json": lambda: render_json(result)}
        wanted = ["html", "json"] if fmt == "both" else [fmt]
        if out_dir == "-":
            for kind in wanted:
                click.echo(documents[kind](), nl=False)
            return exit_code
        directory = Path(out_dir)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for kind in wanted:
            path = file_for(directory, result.tenant, f".{kind}")
            path.write_text(documents[kind](), encoding="utf-8")
            written.append(str(path))
        summary = {"tenant": result.tenant, "level": result.classification.level, "files": written,
                   "controls": result.summary.controls, "hosts": result.summary.hosts,
                   "byStatus": result.summary.byStatus, "policyRules": result.summary.policyRules,
                   "managed": result.governance.managed}
        emit(app.output, summary, lambda: _text(summary))
        return exit_code


def _text(summary: dict) -> str:
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary["byStatus"].items())
    lines = [f"compliance dossier of {summary['tenant']} (level {summary['level']}): {summary['controls']} "
             f"control(s) x {summary['hosts']} host(s): {counts}"]
    lines += [f"  wrote {path}" for path in summary["files"]]
    if not summary["managed"]:
        lines.append("  not managed by the controller: no approvals or audit chain in the dossier")
    return os.linesep.join(lines)
