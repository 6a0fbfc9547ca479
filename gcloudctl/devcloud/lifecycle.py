"""devcloud's use cases: up, status, down, logs — the facade for the CLI and the pytest fixture.

Stage: composition of effects (calls system, install, supervisor, bootstrap; decisions come
from services/readiness/config/catalog). Must not print: progress goes through the callback,
results come back as values for the caller to render.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets as pysecrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from gcloudctl.devcloud import bootstrap, guests, install, readiness, supervisor, system
from gcloudctl.devcloud import catalog as cat
from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.config import Backends, Secrets, render_all
from gcloudctl.devcloud.layout import COMPUTE_HOST, HOST, Layout
from gcloudctl.devcloud.rest import Session, http_status
from gcloudctl.errors import CloudError, GcloudctlError, NotFound, TimeoutExpired

Progress = Callable[[str], None]
SERVICE_DOWN_TIME = 60.0  # nova's service_down_time: an older heartbeat means "down"
START_TIMEOUT = {svc.Phase.IDENTITY: 120.0, svc.Phase.CONTROL: 180.0, svc.Phase.COMPUTE: 180.0}


class PortInUse(GcloudctlError):
    pass


class ServiceFailed(GcloudctlError):
    pass


@dataclass
class UpReport:
    elapsed: float
    installed: bool
    initialised: bool
    started: list[str] = field(default_factory=list)
    clouds_yaml: str = ""
    steps: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str
    url: str | None
    version: str | None
    pid: int | None
    rss_mib: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def user_clouds_yaml(environ: dict[str, str]) -> Path:
    return Path(environ.get("HOME", str(Path.home()))) / ".config" / "openstack" / "clouds.yaml"


# --- secrets, configs, clouds.yaml ---------------------------------------------------------

def load_or_create_secrets(layout: Layout) -> Secrets:
    if layout.secrets_file.exists():
        stored = Secrets(**json.loads(layout.secrets_file.read_text()))
        added = {}
        if not stored.people_password:  # a devcloud made before agency people existed
            added["people_password"] = pysecrets.token_urlsafe(18)
        if not stored.volume_key:  # a devcloud made before Cinder (issue 15)
            added["volume_key"] = pysecrets.token_hex(32)
        if added:
            stored = Secrets(**(stored.to_dict() | added))
            _write_secrets(layout, stored)
        return stored
    fresh = Secrets(**{name: pysecrets.token_urlsafe(18) for name in
                       ("admin_password", "service_password", "gcloudctl_password", "db_password",
                        "people_password")}, volume_key=pysecrets.token_hex(32))
    _write_secrets(layout, fresh)
    return fresh


def _write_secrets(layout: Layout, secrets: Secrets) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.secrets_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(secrets.to_dict(), indent=2))
    tmp.chmod(0o600)
    tmp.replace(layout.secrets_file)


def write_configs(layout: Layout, secrets: Secrets) -> set[str]:
    """Write rendered configs; return the paths (relative to etc/) whose content changed."""
    changed = set()
    # guests.with_mode: nova-compute's driver is the plain fake one or the guests one (issue 6)
    for rel, text in guests.with_mode(layout, render_all(layout, secrets, Backends())).items():
        path = layout.etc / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            path.chmod(0o600)
            changed.add(rel)
    # nova's WSGI app takes its paste pipeline from the first file of OS_NOVA_CONFIG_FILES
    shipped = layout.venv / "etc" / "nova" / "api-paste.ini"
    if shipped.exists():
        shutil.copyfile(shipped, layout.config_dir("nova") / "api-paste.ini")
    for project in ("glance", "nova", "neutron", "placement", "keystone", "cinder"):
        (layout.data / project / "lock").mkdir(parents=True, exist_ok=True)
    for path in (layout.volumes, layout.backups):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
    return changed


# --- optional features (Cinder) ------------------------------------------------------------

def cinder_mode_file(layout: Layout) -> Path:
    return layout.root / "cinder.json"


def cinder_enabled(layout: Layout) -> bool:
    """Cinder runs unless `up --no-cinder` switched it off (remembered in the dir)."""
    try:
        return bool(json.loads(cinder_mode_file(layout).read_text())["enabled"])
    except (OSError, ValueError, KeyError, TypeError):
        return True


def set_cinder(layout: Layout, enabled: bool) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = cinder_mode_file(layout).with_suffix(".tmp")
    tmp.write_text(json.dumps({"enabled": enabled}) + "\n")
    tmp.replace(cinder_mode_file(layout))


def features(layout: Layout) -> frozenset[str]:
    return frozenset({"cinder"}) if cinder_enabled(layout) else frozenset()


def _write_yaml(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".devcloud-tmp")
    tmp.write_text(yaml.safe_dump(content, sort_keys=False, default_flow_style=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def write_clouds_yaml(layout: Layout, secrets: Secrets, environ: dict[str, str]) -> Path:
    """Copy in the devcloud dir, and merged into the user's clouds.yaml (other clouds kept)."""
    entries = cat.cloud_entries(secrets)
    _write_yaml(layout.clouds_yaml, {"clouds": entries})
    user_file = user_clouds_yaml(environ)
    existing = yaml.safe_load(user_file.read_text()) if user_file.exists() else None
    merged = cat.merge_clouds(existing if isinstance(existing, dict) else None, entries)
    if merged != existing:
        _write_yaml(user_file, merged)
    return user_file


def _remove_from_clouds_yaml(environ: dict[str, str]) -> None:
    user_file = user_clouds_yaml(environ)
    if not user_file.exists():
        return
    content = yaml.safe_load(user_file.read_text()) or {}
    clouds = content.get("clouds") or {}
    names = (cat.CLOUD_ADMIN, cat.CLOUD_GCLOUDCTL, *(person.cloud for person in cat.PEOPLE))
    if any(name in clouds for name in names):
        for name in names:
            clouds.pop(name, None)
        _write_yaml(user_file, content)


# --- up ------------------------------------------------------------------------------------

@contextlib.contextmanager
def exclusive(layout: Layout, progress: Progress):
    """One `up`/`down` at a time per devcloud dir (pytest sessions of several people share one)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.root / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another devcloud up/down is running on this dir; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def up(layout: Layout, *, progress: Progress, environ: dict[str, str], cinder: bool | None = None) -> UpReport:
    """Start what is missing. `cinder`: True/False switches Cinder on/off (remembered); None keeps
    the dir's choice (default on). Switching off stops the Cinder services; nothing else restarts."""
    with exclusive(layout, progress):
        if cinder is not None:
            set_cinder(layout, cinder)
        return _up(layout, progress=progress, environ=environ)


class _Steps(dict):
    """Wall time per step of `up`, for the report."""

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.monotonic()
        yield
        self[name] = round(time.monotonic() - t0, 2)


def _up(layout: Layout, *, progress: Progress, environ: dict[str, str]) -> UpReport:
    started = time.monotonic()
    steps = _Steps()
    for path in (layout.root, layout.logs, layout.run, layout.data):
        path.mkdir(parents=True, exist_ok=True)
    snapshot = install.snapshot_dir(environ)
    snapshot_secrets = install.snapshot_secrets(snapshot)
    if snapshot_secrets and not layout.secrets_file.exists():
        _write_secrets(layout, snapshot_secrets)  # a fresh dir adopts the snapshot's passwords
    secrets = load_or_create_secrets(layout)
    _check_ports(layout)
    installed, initialised = _install_and_configure(layout, secrets, progress, environ, steps)
    report = UpReport(elapsed=0.0, installed=installed, initialised=initialised, steps=steps)
    report.started, session = _start_all(layout, secrets, progress, environ, steps)
    with steps("bootstrap"):
        if not layout.bootstrap_stamp.exists():
            time.sleep(3)  # let the scheduler's periodic discovery (every 2 s) map the new compute host
        bootstrap.cloud(session, progress)
        layout.bootstrap_stamp.write_text(f"{time.time():.0f}\n")
        if "cinder" in features(layout):
            bootstrap.volumes(session, progress)
            layout.cinder_bootstrap_stamp.write_text(f"{time.time():.0f}\n")
        report.clouds_yaml = str(write_clouds_yaml(layout, secrets, environ))
    report.elapsed = round(time.monotonic() - started, 1)
    progress(f"devcloud is up in {report.elapsed:.0f}s; clouds.yaml entries '{cat.CLOUD_ADMIN}' and "
             f"'{cat.CLOUD_GCLOUDCTL}' in {report.clouds_yaml}")
    return report


def _install_and_configure(layout: Layout, secrets: Secrets, progress: Progress, environ: dict[str, str],
                           steps: _Steps) -> tuple[bool, bool]:
    """Backends, venv, configs (restarting what they changed), databases. Returns (installed, initialised)."""
    with steps("backends"):
        backing = system.ensure(layout, progress)
    with steps("venv"):
        # only what the update touches restarts: added distributions (Cinder's) restart nothing
        moved, plugins = install.pending_change(layout) if not install.venv_current(layout) else (set(), set())
        installed = install.ensure_venv(layout, progress, environ)
    changed = write_configs(layout, secrets)
    restart = set(svc.affected_by(changed)) | (set(svc.affected_by_install(moved, plugins)) if installed else set())
    wanted = {s.name for s in svc.selected(features(layout))}
    unwanted = [s.name for s in svc.SERVICES if s.name not in wanted]  # `--no-cinder`: stop Cinder
    stopped = _stop_all(layout, [s.name for s in svc.SERVICES if s.name in restart])
    if stopped:
        progress(f"restarting for new config or packages: {', '.join(stopped)}")
    switched_off = _stop_all(layout, unwanted)
    if switched_off:
        progress(f"stopped (switched off): {', '.join(switched_off)}")
    if layout.db_stamp.exists():
        if not layout.cinder_db_stamp.exists() and wanted & {"cinder-api"}:
            with steps("cinder_db_init"):
                system.prepare(backing, secrets.db_password)  # idempotent: adds devcloud_cinder
                install.init_cinder_database(layout, progress, environ)
        return installed, False
    with steps("db_init"):
        progress("creating devcloud's databases and RabbitMQ vhost")
        system.prepare(backing, secrets.db_password)
        _init_or_restore_databases(layout, secrets, backing, progress, environ)
    return installed, True


def _init_or_restore_databases(layout: Layout, secrets: Secrets, backing: system.Backing, progress: Progress,
                               environ: dict[str, str]) -> None:
    """Load the post-init snapshot when it matches these secrets; else migrate and take one."""
    snapshot = install.snapshot_dir(environ)
    if install.snapshot_secrets(snapshot) == secrets:
        t0 = time.monotonic()
        progress(f"loading the database snapshot {snapshot}")
        system.load(backing, snapshot / "dump.sql")
        install.keystone_key_repositories(layout, secrets, environ)
        layout.db_stamp.write_text(f"{time.time():.0f}\n")
        layout.cinder_db_stamp.write_text(f"{time.time():.0f}\n")
        progress(f"databases restored in {time.monotonic() - t0:.0f}s")
        return
    install.init_databases(layout, secrets, progress, environ)
    install.save_snapshot_secrets(snapshot, secrets)
    system.dump(backing, snapshot / "dump.sql")
    progress(f"saved a database snapshot for the next fresh start: {snapshot}")


def _start_all(layout: Layout, secrets: Secrets, progress: Progress, environ: dict[str, str],
               steps: _Steps) -> tuple[list[str], Session]:
    """Start what is not running, phase by phase; identity bootstrap once Keystone answers."""
    started: list[str] = []
    with steps("identity"):
        started += _start_phase(layout, svc.Phase.IDENTITY, progress, environ, None)
        bootstrap.identity(Session.login("admin", secrets.admin_password), secrets, features(layout))
        session = Session.login("admin", secrets.admin_password)  # catalog now lists every service
    with steps("control"):
        started += _start_phase(layout, svc.Phase.CONTROL, progress, environ, session)
    with steps("compute"):
        started += _start_phase(layout, svc.Phase.COMPUTE, progress, environ, session)
    return started, session


def _check_ports(layout: Layout) -> None:
    for service in svc.selected(features(layout)):
        if service.port is None or supervisor.running(layout.pid_file(service.name)):
            continue
        if not supervisor.port_free(HOST, service.port):
            raise PortInUse(f"port {HOST}:{service.port} needed by {service.name} is taken by "
                            f"{supervisor.port_owner(service.port)}",
                            hint="stop that process (or a devcloud started from another --dir) and re-run.")


def _start_phase(layout: Layout, phase: svc.Phase, progress: Progress, environ: dict[str, str],
                 session: Session | None) -> list[str]:
    records: dict[str, supervisor.Record] = {}
    for service in svc.in_phase(phase, features(layout)):
        if supervisor.running(layout.pid_file(service.name)):
            continue
        records[service.name] = supervisor.start(
            svc.command(layout, service), env=svc.environment(layout, service, environ),
            log_file=layout.log_file(service.name), pid_file=layout.pid_file(service.name), cwd=layout.root)
    pending = svc.in_phase(phase, features(layout))
    if records:
        progress(f"starting {', '.join(records)}")
    _wait_ready(layout, pending, records, session, progress, START_TIMEOUT[phase])
    return list(records)


def _service_rows(session: Session | None, apis: set[str]) -> dict[str, list[dict]]:
    """The /os-services rows of these APIs (compute: Nova's daemons; block-storage: Cinder's)."""
    rows: dict[str, list[dict]] = {}
    for api in apis:
        if session is None:
            rows[api] = []
            continue
        try:
            rows[api] = session.get(api, "/os-services")["services"]
        except (CloudError, KeyError):
            rows[api] = []
    return rows


def probe(layout: Layout, service: svc.Service, service_rows: dict[str, list[dict]] | None,
          fresh_within: float | None = None) -> tuple[readiness.Probe, supervisor.Record | None]:
    """Probe one service. Daemons need a heartbeat newer than their start (and, for `status`,
    newer than `fresh_within` seconds ago) in their API's service list."""
    record = supervisor.running(layout.pid_file(service.name))
    if record is None:
        return readiness.Probe(alive=False), None
    if service.kind is svc.Kind.WSGI:
        return readiness.Probe(alive=True, http_status=http_status(service.url + service.probe_path)), record
    if service_rows is None:
        return readiness.Probe(alive=True, heartbeat_ok=None), record
    since = record.started_at if fresh_within is None else max(record.started_at, time.time() - fresh_within)
    beat = readiness.heartbeat_since(service_rows.get(service.heartbeat_api, []), service.binary,
                                     service.heartbeat_host, since)
    return readiness.Probe(alive=True, heartbeat_ok=beat), record


def _wait_ready(layout: Layout, pending: list[svc.Service], records: dict[str, supervisor.Record],
                session: Session | None, progress: Progress, timeout: float) -> None:
    t0 = time.monotonic()
    waiting = list(pending)
    while waiting:
        rows = _service_rows(session, {s.heartbeat_api for s in waiting if s.kind is svc.Kind.DAEMON})
        for service in list(waiting):
            result, _ = probe(layout, service, rows)
            state = readiness.judge(result, was_started=True)
            if state is readiness.State.UP:
                waiting.remove(service)
                if service.name in records:
                    progress(f"{service.name} ready ({time.monotonic() - t0:.1f}s)")
            elif state is readiness.State.FAILED:
                log = layout.log_file(service.name)
                raise ServiceFailed(f"{service.name} exited during start-up; last lines of {log}:\n"
                                    f"{supervisor.tail(log, 25)}",
                                    hint=f"see `gcloudctl devcloud logs {service.name}`; fix and re-run `up`.")
        if waiting and time.monotonic() - t0 > timeout:
            names = ", ".join(s.name for s in waiting)
            log = layout.log_file(waiting[0].name)
            raise TimeoutExpired(f"not ready after {timeout:.0f}s: {names}; last lines of {log}:\n"
                                 f"{supervisor.tail(log, 25)}")
        if waiting:
            time.sleep(0.5)


# --- status / down / logs ------------------------------------------------------------------

def locked_versions() -> dict[str, str]:
    versions = {}
    for line in install.LOCK_FILE.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip().lower()] = version.strip()
    return versions


def status(layout: Layout) -> list[ServiceStatus]:
    versions = locked_versions()
    session = None
    if layout.secrets_file.exists() and http_status(svc.BY_NAME["keystone"].url + "/v3") == 200:
        try:
            session = Session.login("admin", load_or_create_secrets(layout).admin_password)
        except CloudError:
            session = None
    on = features(layout)
    rows = _service_rows(session, {s.heartbeat_api for s in svc.selected(on) if s.kind is svc.Kind.DAEMON}) \
        if session else None
    out = []
    for service in svc.SERVICES:
        result, record = probe(layout, service, rows, fresh_within=SERVICE_DOWN_TIME)
        state = readiness.judge(result, was_started=False)
        if service.optional and service.optional not in on and state is readiness.State.DOWN:
            state = readiness.State.OFF
        out.append(ServiceStatus(
            name=service.name, state=state.value, url=service.url, version=versions.get(service.package),
            pid=record.pid if record else None,
            rss_mib=round(supervisor.rss_kib(record.pid) / 1024, 1) if record else None))
    return out


def down(layout: Layout, *, purge: bool, progress: Progress, environ: dict[str, str]) -> list[str]:
    if not layout.root.exists():
        return []
    with exclusive(layout, progress):
        return _down(layout, purge=purge, progress=progress, environ=environ)


def _down(layout: Layout, *, purge: bool, progress: Progress, environ: dict[str, str]) -> list[str]:
    stopped = _stop_all(layout, [s.name for s in sorted(svc.SERVICES, key=lambda s: -s.phase)])
    guests.cleanup(layout, progress)  # no guest, netns or mount outlives nova-compute (issue 6)
    system.stop_self_hosted(layout)  # our own MariaDB/RabbitMQ, if this dir runs them
    if stopped:
        progress(f"stopped {', '.join(stopped)}")
    if purge:
        _purge(layout, progress, environ)
    return stopped


def _stop_all(layout: Layout, names: list[str]) -> list[str]:
    """Stop these services concurrently (each waits for its whole process group)."""
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(lambda n: supervisor.stop(layout.pid_file(n)), names))
    return [name for name, ok in zip(names, results) if ok]


def _purge(layout: Layout, progress: Progress, environ: dict[str, str]) -> None:
    if layout.root.exists():
        try:
            backing = system.ensure(layout, progress) if system.tcp_open(HOST, 3306) else None
            if backing is not None:
                system.drop(backing)
                progress("dropped devcloud's databases and RabbitMQ vhost")
        finally:
            system.stop_self_hosted(layout)
        shutil.rmtree(layout.root)
        progress(f"removed {layout.root}")
    _remove_from_clouds_yaml(environ)


def log_path(layout: Layout, service: str) -> Path:
    known = [s.name for s in svc.SERVICES] + ["mariadb", "rabbitmq", "install"] + \
            [f"init-{n}" for n in ("keystone", "placement", "glance", "nova", "neutron", "cinder")]
    if service not in known:
        raise NotFound(f"no devcloud service named {service!r}", hint=f"one of: {', '.join(known)}")
    path = layout.log_file(service)
    if not path.exists():
        raise NotFound(f"no log yet for {service} at {path}", hint="run `gcloudctl devcloud up` first.")
    return path


def total_rss_mib(layout: Layout) -> float:
    total = 0
    for service in svc.SERVICES:
        record = supervisor.running(layout.pid_file(service.name))
        if record:
            total += supervisor.rss_kib(record.pid)
    return round(total / 1024, 1)
