"""The service table: every process devcloud runs, its phase, port, command and probe.

Stage: pure data + pure functions (called by lifecycle and supervisor). Must not start,
signal or probe anything: it only says *what* to run and *how* it would be checked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gcloudctl.devcloud.layout import HOST, Layout


class Kind(enum.Enum):
    WSGI = "wsgi"  # an API served by pyuwsgi, probed over HTTP
    DAEMON = "daemon"  # an RPC service, probed by its heartbeat in the Nova service list


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
    binary: str | None = None  # nova binary name for heartbeat checks
    catalog: Catalog | None = None

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
)

BY_NAME = {s.name: s for s in SERVICES}


def in_phase(phase: Phase) -> list[Service]:
    return [s for s in SERVICES if s.phase == phase]


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
