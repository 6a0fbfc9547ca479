"""The service table: every process devcloud runs, its phase, port, command and probe.

Stage: pure data + pure functions (called by lifecycle and supervisor). Must not start,
signal or probe anything: it only says *what* to run and *how* it would be checked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gcloudctl.devcloud.layout import CINDER_BACKEND, COMPUTE_HOST, HOST, Layout


class Kind(enum.Enum):
    WSGI = "wsgi"  # an API served by pyuwsgi, probed over HTTP
    DAEMON = "daemon"  # an RPC service, probed by its heartbeat in its API's service list


class Phase(enum.IntEnum):
    IDENTITY = 0  # keystone first: everything else authenticates against it
    CONTROL = 1  # the other APIs, conductor and scheduler, in parallel
    COMPUTE = 2  # nova-compute once the conductor listens


@dataclass(frozen=True)
class Catalog:
    service_type: str
    name: str
    path: str  # appended to http://HOST:port


@dataclass(frozen=True)
class Service:
    name: str
    kind: Kind
    phase: Phase
    package: str  # distribution whose version `status` reports
    project: str  # config dir under etc/
    port: int | None = None
    wsgi_module: str | None = None
    threads: int = 2
    processes: int = 1  # uWSGI workers: a Python process uses one core at most (the GIL)
    console_script: str | None = None
    config_files: tuple[str, ...] = ()  # files it reads under etc/<project> (daemons: --config-file)
    env: dict[str, str] = field(default_factory=dict)  # config-location variables (relative to etc/<project>)
    probe_path: str = "/"
    binary: str | None = None  # binary name for heartbeat checks
    catalog: Catalog | None = None
    extra_catalog: tuple[Catalog, ...] = ()  # more catalog types at the same URL (aliases)
    heartbeat_api: str = "compute"  # service type whose /os-services lists the heartbeat row
    heartbeat_host: str = COMPUTE_HOST  # host column of that row
    optional: str | None = None  # a feature that can be switched off (`up --no-cinder`)

    @property
    def url(self) -> str | None:
        return f"http://{HOST}:{self.port}" if self.port else None


SERVICES: tuple[Service, ...] = (
    Service("keystone", Kind.WSGI, Phase.IDENTITY, "keystone", "keystone", port=5000,
            wsgi_module="keystone.wsgi.api:application", threads=4,
            config_files=("keystone.conf",), env={"OS_KEYSTONE_CONFIG_DIR": "."}, probe_path="/v3",
            catalog=Catalog("identity", "keystone", "/v3")),
    Service("placement", Kind.WSGI, Phase.CONTROL, "openstack-placement", "placement", port=8778,
            wsgi_module="placement.wsgi.api:application",
            config_files=("placement.conf",), env={"OS_PLACEMENT_CONFIG_DIR": "."}, catalog=Catalog("placement", "placement", "")),
    Service("glance", Kind.WSGI, Phase.CONTROL, "glance", "glance", port=9292,
            wsgi_module="glance.wsgi.api:application",
            config_files=("glance-api.conf",), env={"OS_GLANCE_CONFIG_DIR": "."}, probe_path="/versions",
            catalog=Catalog("image", "glance", "")),
    Service("neutron", Kind.WSGI, Phase.CONTROL, "neutron", "neutron", port=9696,
            wsgi_module="gcloudctl_devcloud_plugins.neutron_api:application", threads=4, processes=2,
            config_files=("neutron.conf", "ml2_conf.ini"),
            env={"OS_NEUTRON_CONFIG_DIR": ".", "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini"},
            catalog=Catalog("network", "neutron", "")),
    Service("nova-api", Kind.WSGI, Phase.CONTROL, "nova", "nova", port=8774,
            wsgi_module="nova.wsgi.osapi_compute:application", threads=4,
            config_files=("nova.conf",), env={"OS_NOVA_CONFIG_DIR": ".", "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"},
            catalog=Catalog("compute", "nova", "/v2.1")),
    Service("nova-conductor", Kind.DAEMON, Phase.CONTROL, "nova", "nova",
            console_script="nova-conductor", config_files=("nova.conf",), binary="nova-conductor"),
    Service("nova-scheduler", Kind.DAEMON, Phase.CONTROL, "nova", "nova",
            console_script="nova-scheduler", config_files=("nova.conf",), binary="nova-scheduler"),
    Service("nova-compute", Kind.DAEMON, Phase.COMPUTE, "nova", "nova",
            console_script="nova-compute", config_files=("nova-compute.conf",), binary="nova-compute"),
    # Cinder (issue 15): `block-storage` at /v3 (project id from the token, so domain-scoped
    # catalogs keep it too) and the legacy `volumev3` alias Nova and older clients look up.
    Service("cinder-api", Kind.WSGI, Phase.CONTROL, "cinder", "cinder", port=8776,
            wsgi_module="gcloudctl_devcloud_plugins.cinder_api:application", threads=4,
            config_files=("cinder.conf",), env={"OS_CINDER_CONFIG_DIR": "."}, probe_path="/",
            catalog=Catalog("block-storage", "cinder", "/v3"),
            extra_catalog=(Catalog("volumev3", "cinderv3", "/v3"),), optional="cinder"),
    Service("cinder-scheduler", Kind.DAEMON, Phase.CONTROL, "cinder", "cinder",
            console_script="cinder-scheduler", config_files=("cinder.conf",), binary="cinder-scheduler",
            heartbeat_api="block-storage", optional="cinder"),
    Service("cinder-volume", Kind.DAEMON, Phase.CONTROL, "cinder", "cinder",
            console_script="cinder-volume", config_files=("cinder.conf",), binary="cinder-volume",
            heartbeat_api="block-storage", heartbeat_host=f"{COMPUTE_HOST}@{CINDER_BACKEND}", optional="cinder"),
    Service("cinder-backup", Kind.DAEMON, Phase.CONTROL, "cinder", "cinder",
            console_script="cinder-backup", config_files=("cinder.conf",), binary="cinder-backup",
            heartbeat_api="block-storage", optional="cinder"),
)

BY_NAME = {s.name: s for s in SERVICES}


def selected(features: frozenset[str] | set[str] = frozenset({"cinder"})) -> list[Service]:
    """The services to run when these optional features are on (default: all of them)."""
    return [s for s in SERVICES if s.optional is None or s.optional in features]


def in_phase(phase: Phase, features: frozenset[str] | set[str] = frozenset({"cinder"})) -> list[Service]:
    return [s for s in selected(features) if s.phase == phase]


# Which services load which module of the plugins package (installed into the services venv).
PLUGIN_USERS = {"ml2": ("neutron",), "neutron_api": ("neutron",), "virt": ("nova-compute",),
                "cinder_api": ("cinder-api",), "cinder_file": ("cinder-volume", "cinder-backup")}


def affected_by_install(moved_pins: set[str], changed_plugins: set[str]) -> list[str]:
    """Services to restart after the venv was updated.

    `moved_pins`: distributions that were installed before with another version (or are gone):
    any of them may be imported by any service, so all restart. Distributions that are only
    *added* restart nothing (running processes never imported them). `changed_plugins`: plugin
    modules (file stems) whose source changed; an unknown one restarts everything.
    """
    if moved_pins or any(name not in PLUGIN_USERS for name in changed_plugins):
        return [s.name for s in SERVICES]
    hit = {user for name in changed_plugins for user in PLUGIN_USERS[name]}
    return [s.name for s in SERVICES if s.name in hit]


def affected_by(changed_config_files: set[str]) -> list[str]:
    """Services to restart when these files (relative to etc/) changed."""
    hit = []
    for service in SERVICES:
        own = {f"{service.project}/{name}" for name in service.config_files}
        if service.kind is Kind.WSGI:
            own.add(f"uwsgi/{service.name}.ini")
        if own & changed_config_files:
            hit.append(service.name)
    return hit


def uwsgi_ini_path(layout: Layout, service: Service) -> str:
    return str(layout.etc / "uwsgi" / f"{service.name}.ini")


def command(layout: Layout, service: Service) -> list[str]:
    """argv of the service's main process (the uWSGI master for APIs)."""
    if service.kind is Kind.WSGI:
        return [str(layout.venv_bin / "uwsgi"), "--ini", uwsgi_ini_path(layout, service)]
    argv = [str(layout.venv_bin / service.console_script)]
    for name in service.config_files:
        argv += ["--config-file", str(layout.config_dir(service.project) / name)]
    return argv


def environment(layout: Layout, service: Service, base: dict[str, str]) -> dict[str, str]:
    """Process environment: the caller's minus bytecode suppression, plus config locations.

    pyuwsgi ignores `env =` in its ini, so config locations travel in the real environment.
    """
    env = {k: v for k, v in base.items() if k not in ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONPATH")}
    conf_dir = layout.config_dir(service.project)
    for key, value in service.env.items():
        env[key] = str(conf_dir) if value == "." else value
    env["PATH"] = f"{layout.venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def uwsgi_ini(layout: Layout, service: Service) -> str:
    """The pyuwsgi ini of one API: loopback only, die on TERM (not reload)."""
    lines = [
        "[uwsgi]",
        f"http-socket = {HOST}:{service.port}",
        f"module = {service.wsgi_module}",
        "master = true",
        f"processes = {service.processes}",
        f"threads = {service.threads}",
        "enable-threads = true",
        "lazy-apps = true",
        "need-app = true",
        "die-on-term = true",
        "worker-reload-mercy = 5",  # a worker with busy threads is killed after 5 s, not 60
        "skip-atexit = true",
        "single-interpreter = true",
        "buffer-size = 65535",
        # http-socket closes after each response: say so, or pooled clients reuse a dead socket
        "add-header = Connection: close",
        "disable-logging = true",
        "log-4xx = true",
        "log-5xx = true",
        f"chdir = {layout.root}",
        "",
    ]
    return "\n".join(lines)
