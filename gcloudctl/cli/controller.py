"""CLI for the controller area: request intake, status, the controller loop, the audit trail.

Thin: parse options, build the controller's parts (this file is their composition root, on
top of `AppContext`), call one use case, render. Errors are raised as `gcloudctl.errors`
classes; `cli.main` maps them to exit codes.

`request ...`, `status` and `audit ...` call one use case of `_backend(app, db)`: with `--api URL`
/ `$GCLOUDCTL_API` that is the request API's client (`gcloudctl.api.client`; the token comes from
the caller's own clouds.yaml entry, `--cloud` / `$OS_CLOUD`); in direct mode (no API) that is
the `RequestService` on the database itself, acting for the operating-system user as an
*unauthenticated* platform operator (`_break_glass_caller`, recorded as `os:NAME` with
`authenticated: false`) — break-glass for platform operators, see docs/controller.md.
Approval rules and the secrets key are the server's configuration (`controller.compose`).
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from gcloudctl.cli.context import AppContext
from gcloudctl.cli.render import emit, table
from gcloudctl.errors import ExitCode, InvalidInput
from gcloudctl.i18n import gettext as _

DB_HELP = "Controller database URL (default: $GCLOUDCTL_DB, else a SQLite file under ~/.local/share/gcloudctl)."
db_option = click.option("--db", "db", metavar="URL", help=DB_HELP)


def _set_api(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_object(AppContext).api_url = value


api_option = click.option("--api", metavar="URL", expose_value=False, callback=_set_api,
                          help="Request API URL (also $GCLOUDCTL_API): act with your own Keystone token "
                               "(clouds.yaml entry from --cloud / $OS_CLOUD) instead of the database.")

log = logging.getLogger("gcloudctl.controller")


# --- composition -------------------------------------------------------------------------------

def _store(app: AppContext, db: str | None):
    from gcloudctl.controller.store import default_url, open_store

    return open_store(db or default_url(app.environ))


def _service(app: AppContext, db: str | None):
    """The request service on the database (rules and secrets key from the server's config)."""
    from gcloudctl.controller import compose

    return compose.request_service(app.config(), db_url=db, environ=app.environ, store=_store(app, db))


def _break_glass_caller():
    """Direct database access: the operating-system user, as an unauthenticated operator."""
    import getpass

    from gcloudctl.model.identity import Caller, GcloudRole

    user = getpass.getuser()
    return Caller(user_id=f"os:{user}", user_name=user, roles=frozenset({GcloudRole.OPERATOR}),
                  agency=None, authenticated=False)


def _backend(app: AppContext, db: str | None):
    """(what answers the request use cases, the caller to pass). With --api / $GCLOUDCTL_API: the
    request API's client (the server builds the caller from the token of the caller's own
    clouds.yaml entry). Direct mode: the service and the break-glass caller."""
    if app.api_url:
        if db:
            raise InvalidInput(_("--db and --api exclude each other"), hint=_("drop --db to use the request API"))
        from gcloudctl.api.client import ApiClient
        from gcloudctl.drivers.keystone import user_token_source

        if not app.cloud:
            raise InvalidInput(_("the request API needs your Keystone identity: no clouds.yaml entry given"),
                               hint=_("pass --cloud ENTRY or set OS_CLOUD (your own entry in clouds.yaml)"))
        return ApiClient(app.api_url, user_token_source(app.cloud), verify=app.api_ca or True), None
    return _service(app, db), _break_glass_caller()


def _controller_access(app: AppContext, ssh_key: str | None, proxy_command: str | None):
    """The controller's own SSH access for hardening (its configuration, never a request's):
    None when no key is configured (servers then show Hardened=False, reason NoKey)."""
    from gcloudctl.usecases.harden import Access

    if not ssh_key:
        return None
    return Access(key_file=ssh_key, proxy_command=proxy_command, automation_user=app.config().catalog.spec.automationUser)


def _runner(app: AppContext, db: str | None, *, workers: int, interval: float, lease: float, parallelism: int,
            access=None, harden_timeout: float = 900.0, observe: str = "fleet", quota_every: int = 10):
    from gcloudctl.controller.engine import PipelineEngine
    from gcloudctl.drivers.openstack_fleet import fleet_observer
    from gcloudctl.controller.metrics import Metrics
    from gcloudctl.controller.reconciler import Reconciler
    from gcloudctl.controller.runner import Runner, holder_id
    from gcloudctl.controller.service import utcnow

    config = app.config()
    # fleet: one bulk listing per resource kind per cycle for every tenant (drivers that serve them)
    fleet = None if observe == "per-tenant" else (
        lambda driver: fleet_observer(driver, quota_every=quota_every, max_age=min(30.0, interval / 2)))
    engine = PipelineEngine(config, lambda region: app.driver(config, region), parallelism=parallelism,
                            access=access, harden_timeout=harden_timeout, fleet=fleet)
    metrics = Metrics(api_calls=engine.api_calls)
    store = _store(app, db)
    from gcloudctl.controller.compose import var_sealer
    from gcloudctl.controller.store import default_url

    unseal = var_sealer(db or default_url(app.environ), app.environ).unseal
    reconciler = Reconciler(store, engine, holder=holder_id(), interval=interval, clock=utcnow, metrics=metrics,
                            unseal=unseal)
    return Runner(store, reconciler, clock=utcnow, workers=workers, lease_seconds=lease, on_cycle=engine.begin_cycle)


def _emit(app: AppContext, data: Any, human) -> None:
    emit(app.output, data, human)


# --- request ------------------------------------------------------------------------------------

@click.group("request")
def request_group() -> None:
    """Submit tenant requests and approve, reject or delete them.

    Without a request API these commands open the controller database directly: break-glass for
    platform operators, recorded as the operating-system user with `authenticated: false`."""


@request_group.command("submit")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@db_option
@api_option
@click.pass_obj
def submit_cmd(app: AppContext, file: str, db: str | None) -> int:
    """Store FILE as a new generation of its tenant's request, pending approval."""
    try:
        text = Path(file).read_text("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(_("{file}: not UTF-8 text", file=file), hint=_("save the request as UTF-8")) from None
    backend, caller = _backend(app, db)
    version = backend.submit(text, caller=caller, filename=file)
    _emit(app, version, lambda: _version_text(version))
    return ExitCode.OK


@request_group.command("list")
@click.option("--tenant", help="Only this tenant's versions.")
@click.option("--state", type=click.Choice(["pending-approval", "approved", "rejected", "superseded"]))
@db_option
@api_option
@click.pass_obj
def list_cmd(app: AppContext, tenant: str | None, state: str | None, db: str | None) -> int:
    """List request versions (newest generation last)."""
    backend, caller = _backend(app, db)
    rows = backend.list_versions(caller=caller, tenant=tenant, state=state)
    _emit(app, rows, lambda: table(
        ["ID", _("TENANT"), _("GEN"), _("KIND"), _("STATE"), _("APPROVALS"), _("AGENCY"), _("SUBMITTED BY"),
         _("SUBMITTED")],
        [[r["id"], r["tenant"], r["generation"], r["kind"], r["state"], f"{r['approvals']}/{r['approvalsRequired']}",
          r["agency"], r["submittedBy"], r["submittedAt"]] for r in rows]))
    return ExitCode.OK


@request_group.command("show")
@click.argument("request_id", type=int)
@db_option
@api_option
@click.pass_obj
def show_cmd(app: AppContext, request_id: int, db: str | None) -> int:
    """Show one request version with its decisions and YAML."""
    backend, caller = _backend(app, db)
    version = backend.show(request_id, caller=caller)
    _emit(app, version, lambda: _version_text(version) + "\n---\n" + version["yaml"])
    return ExitCode.OK


_DECISION_HELP = {"approve": "Approve a pending request version (approvers of its agency; never the submitter).",
                  "reject": "Reject a pending request version (approvers of its agency; never the submitter)."}


def _decide(decision: str):
    @request_group.command(decision, help=_DECISION_HELP[decision])
    @click.argument("request_id", type=int)
    @click.option("--reason", required=True, help="Why (recorded in the audit trail).")
    @db_option
    @api_option
    @click.pass_obj
    def command(app: AppContext, request_id: int, reason: str, db: str | None) -> int:
        backend, caller = _backend(app, db)
        version = getattr(backend, decision)(request_id, caller=caller, reason=reason)
        _emit(app, version, lambda: _version_text(version))
        return ExitCode.OK

    return command


approve_cmd, reject_cmd = _decide("approve"), _decide("reject")


@request_group.command("delete")
@click.argument("tenant")
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@db_option
@api_option
@click.pass_obj
def delete_cmd(app: AppContext, tenant: str, reason: str, db: str | None) -> int:
    """File the deletion of TENANT: a version that needs approval like any change (one approver,
    two from classification level 3); the tenant is destroyed once it is approved."""
    backend, caller = _backend(app, db)
    version = backend.delete(tenant, caller=caller, reason=reason)
    _emit(app, version, lambda: _version_text(version))
    return ExitCode.OK


def _version_text(v: dict) -> str:
    kind = _(" (deletion)") if v.get("kind") == "delete" else ""
    lines = [_("request {id}: {tenant} generation {generation}{kind} — {state}", id=v["id"], tenant=v["tenant"],
               generation=v["generation"], kind=kind, state=v["state"])
             + (_(" (unchanged: identical to the current version)") if v.get("unchanged") else ""),
             "  " + _("agency {agency}, requester {requester}, submitted by {by} at {at}", agency=v["agency"],
                      requester=v["requester"], by=v["submittedBy"], at=v["submittedAt"]),
             "  " + _("approvals {approvals}/{required}", approvals=v["approvals"], required=v["approvalsRequired"])
             + (_(" under rules {rules}", rules=v["rulesVersion"]) if v.get("rulesVersion") else "")
             + (_("; {count} secret var(s) sealed", count=v["sealedVars"]) if v.get("sealedVars") else "")]
    lines += ["    " + _("because {reason}", reason=reason) for reason in v.get("approvalReasons", [])]
    lines += ["  " + _("{decision} by {actor} at {at}: {reason}", decision=d["decision"], actor=d["actor"], at=d["at"],
                       reason=d["reason"]) for d in v.get("decisions", [])]
    return "\n".join(lines)


# --- status -------------------------------------------------------------------------------------

@click.command("status")
@click.argument("tenant")
@db_option
@api_option
@click.pass_obj
def status_cmd(app: AppContext, tenant: str, db: str | None) -> int:
    """Phase, conditions (Ready, Synced, Drifted) and recent events of TENANT."""
    backend, caller = _backend(app, db)
    status = backend.status(tenant, caller=caller)
    _emit(app, status, lambda: _status_text(status))
    return ExitCode.OK


def _status_text(s: dict) -> str:
    lines = [f"{s['tenant']} ({s['agency']}): {s['phase']}",
             "  " + _("generation {generation}, observed {observed}, latest submitted {latest}, driftPolicy {policy}",
                      generation=s["generation"], observed=s["observedGeneration"], latest=s["latestGeneration"],
                      policy=s["driftPolicy"])
             + (_(", expires {when}", when=s["expiresAt"]) if s.get("expiresAt") else "")]
    if s.get("lastError"):
        lines.append("  " + _("last error: {error}", error=s["lastError"]))
    if s.get("conditions"):
        lines.append(table(["  " + _("CONDITION"), _("STATUS"), _("REASON"), _("GEN"), _("SINCE"), _("MESSAGE")],
                           [[f"  {c['type']}", c["status"], c["reason"], c["observedGeneration"],
                             c["lastTransitionTime"], c["message"]] for c in s["conditions"]]))
    if s.get("events"):
        lines.append("  " + _("events:"))
        lines += [f"    {e['at']} {e['type']} {e['reason']}: {e['message']}" for e in s["events"]]
    return "\n".join(lines)


# --- controller -----------------------------------------------------------------------------------

@click.group("controller")
def controller_group() -> None:
    """Run the reconciliation controller, or migrate its database."""


@controller_group.command("migrate")
@db_option
@click.pass_obj
def migrate_cmd(app: AppContext, db: str | None) -> int:
    """Create or upgrade the controller database schema (also done on every start)."""
    from gcloudctl.controller.store import create_db_engine, default_url, migrate

    url = db or default_url(app.environ)
    revision = migrate(create_db_engine(url))
    _emit(app, {"database": _safe_url(url), "revision": revision},
          lambda: f"{_safe_url(url)}: schema at revision {revision}")
    return ExitCode.OK


@controller_group.command("run")
@click.option("--once", is_flag=True, help="Reconcile every tenant once and exit (cron, CI): exit 1 if any failed.")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Tenants reconciled at once.")
@click.option("--interval", type=click.FloatRange(1, 86400), default=60.0, show_default=True,
              help="Seconds between reconciles of a converged tenant.")
@click.option("--lease", "lease", type=click.FloatRange(3, 3600), default=30.0, show_default=True,
              help="Lease period: a dead controller's tenants are taken over after this long.")
@click.option("--parallelism", type=click.IntRange(1, 64), default=10, show_default=True,
              help="Concurrent API writes within one tenant's apply.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /metrics and /healthz on 127.0.0.1:PORT (0 = any free port).")
@click.option("--ssh-key", type=click.Path(dir_okay=False, resolve_path=True), envvar="GCLOUDCTL_CONTROLLER_SSH_KEY",
              help="The controller's private key for the automation user: servers that ask for hardening are "
                   "hardened with it (without one: condition Hardened=False, reason NoKey).")
@click.option("--ssh-proxy-command", envvar="GCLOUDCTL_CONTROLLER_SSH_PROXY_COMMAND",
              help="How the controller reaches servers (ssh ProxyCommand, %h %p; devcloud guests: "
                   "`gcloudctl devcloud proxy-command`).")
@click.option("--harden-timeout", type=click.FloatRange(10), default=900.0, show_default=True,
              help="Seconds one hardening pass of a tenant may take (SSH readiness, playbooks, checks).")
@click.option("--observe", type=click.Choice(["fleet", "per-tenant"]), default="fleet", show_default=True,
              help="fleet: one bulk listing per resource kind per cycle for all tenants; per-tenant: observe "
                   "each tenant on its own, as plan does.")
@click.option("--quota-every", type=click.IntRange(1, 10000), default=10, show_default=True,
              help="Read each tenant's Nova/Cinder quota (no bulk listing exists) once every N cycles; "
                   "cached between.")
@db_option
@click.pass_obj
def run_cmd(app: AppContext, once: bool, workers: int, interval: float, lease: float, parallelism: int,
            metrics_port: int | None, ssh_key: str | None, ssh_proxy_command: str | None, harden_timeout: float,
            observe: str, quota_every: int, db: str | None) -> int:
    """Make the cloud match every approved request: observe, plan, apply, harden and verify new
    servers, write status; repeat."""
    from gcloudctl.controller.metrics import MetricsServer

    access = _controller_access(app, ssh_key, ssh_proxy_command)
    if access is None:
        log.warning("no --ssh-key / GCLOUDCTL_CONTROLLER_SSH_KEY: servers that ask for hardening are reported "
                    "Hardened=False (NoKey), not hardened")
    runner = _runner(app, db, workers=workers, interval=interval, lease=lease, parallelism=parallelism,
                     access=access, harden_timeout=harden_timeout, observe=observe, quota_every=quota_every)
    server = MetricsServer(runner.metrics, metrics_port, stale_after=max(30.0, 3 * lease)).start() \
        if metrics_port is not None else None
    if server:
        log.warning("metrics on http://127.0.0.1:%d/metrics", server.port)
    try:
        if once:
            summary = runner.run_once()
            _emit(app, summary.to_dict(), lambda: _summary_text(summary.to_dict()))
            return ExitCode.OK if summary.ok else ExitCode.ERROR
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        log.warning("controller %s running: %d worker(s), interval %.0fs, lease %.0fs",
                    runner.holder, workers, interval, lease)
        runner.run(stop)
        return ExitCode.OK
    finally:
        if server:
            server.stop()
        runner.store.dispose()


@controller_group.command("harden")
@click.argument("tenant")
@click.option("--server", "servers", multiple=True, help="Only this server (repeatable; default: all).")
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@db_option
@click.pass_obj
def harden_cmd(app: AppContext, tenant: str, servers: tuple[str, ...], reason: str, db: str | None) -> int:
    """Ask the controller to harden TENANT's servers again on its next pass (it otherwise hardens
    only new and replaced servers, and retries failed ones with backoff). Break-glass: direct
    database access as the operating-system user."""
    service = _service(app, db)
    view = service.harden_again(tenant, caller=_break_glass_caller(), reason=reason, servers=list(servers) or None)
    _emit(app, view, lambda: (_("{tenant}: hardening requested; the controller hardens {servers} on its next pass",
                                tenant=tenant, servers=", ".join(servers)) if servers else
                              _("{tenant}: hardening requested; the controller hardens every server that asks for it "
                                "on its next pass", tenant=tenant)))
    return ExitCode.OK


def _summary_text(data: dict) -> str:
    rows = [[t["tenant"], t["result"], t["changes"], t["message"]] for t in data["tenants"]]
    counts = ", ".join(f"{n} {k}" for k, n in sorted(data["counts"].items())) or _("no tenants to reconcile")
    return (table([_("TENANT"), _("RESULT"), _("CHANGES"), _("MESSAGE")], rows) + "\n" if rows else "") + counts


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- audit --------------------------------------------------------------------------------------

@click.group("audit")
def audit_group() -> None:
    """Verify and export the hash-chained audit trail."""


@audit_group.command("verify")
@click.option("--expect-head", metavar="SHA256", help="A head hash kept elsewhere (anchor): it must be in the chain.")
@db_option
@api_option
@click.pass_obj
def verify_cmd(app: AppContext, expect_head: str | None, db: str | None) -> int:
    """Check every record's hash and link; exit 1 if anything was edited, deleted or inserted."""
    backend, caller = _backend(app, db)
    report = backend.audit_verify(caller=caller, expect_head=expect_head)
    _emit(app, report, lambda: _verify_text(report))
    return ExitCode.OK if report["ok"] else ExitCode.ERROR


def _verify_text(r: dict) -> str:
    if r["ok"]:
        head = r["head"] or {"seq": 0, "hash": "-"}
        return _("audit chain OK: {count} record(s), head {seq} {hash}", count=r["records"], seq=head["seq"],
                 hash=head["hash"])
    return "\n".join([_("audit chain BROKEN ({count} problem(s)):", count=len(r["breaks"]))] +
                     ["  " + _("record {seq}: {message}", seq=b["seq"], message=b["message"]) for b in r["breaks"]])


@audit_group.command("export")
@click.option("--since", metavar="TIME", help="ISO 8601 time (e.g. 2026-11-01T00:00:00Z); default: everything.")
@click.option("--tenant", help="Only this tenant's records.")
@db_option
@api_option
@click.pass_obj
def export_cmd(app: AppContext, since: str | None, tenant: str | None, db: str | None) -> int:
    """Print audit records (json/yaml: the full records, hashes included, for offline verification)."""
    moment = _parse_time(since) if since else None
    backend, caller = _backend(app, db)
    records = backend.audit_export(caller=caller, since=moment, tenant=tenant)
    _emit(app, records, lambda: table(["SEQ", "AT", "ACTOR", "ACTION", "TENANT", "HASH"],
                                      [[r["seq"], r["at"], r["actor"], r["action"], r["tenant"], r["hash"][:16]]
                                       for r in records]))
    return ExitCode.OK


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(_("--since {text!r}: not an ISO 8601 time", text=text),
                           hint=_("e.g. {example}", example="2026-11-01T00:00:00Z")) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    for command in (request_group, status_cmd, controller_group, audit_group):
        cli.add_command(command)
