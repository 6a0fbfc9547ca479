"""Use case: harden and verify servers over console-verified SSH, one pipeline per server.

Stage: pipeline (use case). Callers: `usecases.apply` (after apply), `gcloudctl harden`, the
controller's engine (`controller.engine.PipelineEngine.harden`). Per server, in parallel and each
as soon as it can: read its console until cloud-init printed the SSH host key fingerprints,
trust exactly those keys, wait until SSH answers with them, run the level's playbooks for that
server alone, then run the audit checks (`hardening.audit.run_checks`) and report the controls
that fail. Every step gets what is left of one `Deadline`.

Effects go through `HostOps` (default `DriverHostOps`: `drivers.ssh`, `drivers.ansible`); tests
pass their own. It must not read the environment, decide *which* servers the controller hardens
(its reconciler does), or trust a host key that the server's console did not print.
"""

from __future__ import annotations

import contextvars
import enum
import fnmatch
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from gcloudctl.errors import GcloudctlError, InvalidInput, Problem, Refused, TimeoutExpired, Unreachable
from gcloudctl.i18n import N_, gettext as _
from gcloudctl.usecases import Deadline

DEFAULT_STEP_TIMEOUT = 600.0  # seconds a step may take when the caller set no deadline


class HardeningKeyMissing(InvalidInput):
    """Hardening was asked for but the automation user's private key is not there: said before
    anything is written or sent."""


@dataclass(frozen=True)
class Access:
    """How the caller reaches servers: its own configuration (the CLI's --key/--proxy-command,
    the controller's --ssh-key), never something from a request or the store."""

    key_file: str | None
    proxy_command: str | None = None
    automation_user: str = "gcadmin"
    known_hosts: Path | None = None  # default: drivers.ssh.known_hosts_path(tenant)


def check_access(access: Access | None) -> None:
    """Raise HardeningKeyMissing unless the private key is a readable file. The problem is
    located at the caller's option (`--key` on the command line), not in a request file."""
    key = access.key_file if access else None
    where = {"path": "--key", "file": _("command line")}
    if not key:
        raise HardeningKeyMissing([Problem(**where, message=_("hardening needs the automation user's private key and "
                                                               "none was given"),
                                           hint=_("pass --key FILE (or $GCLOUDCTL_SSH_KEY), or --no-harden"))])
    path = Path(key)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise HardeningKeyMissing([Problem(**where, message=_("{key}: the automation user's private key is not a "
                                                               "readable file", key=key),
                                           hint=_("pass --key FILE with a key this user can read, or --no-harden"))])


class HostStatus(enum.StrEnum):
    HARDENED = "hardened"  # playbooks ran and every audit check passed (or was not applicable)
    UNVERIFIED = "unverified"  # playbooks ran; verification was not asked for
    CHECKED = "checked"  # check mode: nothing changed, drift reported
    VERIFY_FAILED = "verify-failed"  # playbooks ran, some audit checks fail
    FAILED = "failed"  # a playbook task failed
    UNREACHABLE = "unreachable"  # no SSH with the console-verified key (or the key was refused)
    TIMEOUT = "timeout"  # the deadline passed


# What a status is called in messages people read (the JSON keeps `HostStatus` values).
STATUS_WORDS = {
    HostStatus.HARDENED: N_("hardened"), HostStatus.UNVERIFIED: N_("hardened, not verified"),
    HostStatus.CHECKED: N_("checked"), HostStatus.VERIFY_FAILED: N_("verification failed"),
    HostStatus.FAILED: N_("failed"), HostStatus.UNREACHABLE: N_("unreachable"), HostStatus.TIMEOUT: N_("timed out")}

OK_STATUSES = frozenset({HostStatus.HARDENED, HostStatus.UNVERIFIED, HostStatus.CHECKED})


class Step(enum.StrEnum):
    """What a progress event is about (the apply use case adds its own steps)."""

    REACH = "reach"  # console keys trusted, SSH answers
    TASK = "task"  # one playbook task finished on a host
    HARDEN = "harden"
    VERIFY = "verify"
    HOST_DONE = "host-done"


@dataclass(frozen=True)
class Event:
    step: str
    message: str
    host: str | None = None
    status: str | None = None
    data: Any = None


ProgressFn = Callable[[Event], None]


@dataclass(frozen=True)
class HostOutcome:
    name: str
    level: int
    status: HostStatus
    message: str = ""
    changed: int = 0
    passed: int = 0
    not_applicable: int = 0
    failed_controls: tuple[str, ...] = ()
    seconds: float = 0.0
    run: Any = None  # drivers.ansible.RunResult of this host's playbook run, when it ran

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def to_dict(self) -> dict:
        data = {"host": self.name, "level": self.level, "status": self.status.value, "ok": self.ok,
                "changed": self.changed, "seconds": round(self.seconds, 1)}
        if self.status in (HostStatus.HARDENED, HostStatus.VERIFY_FAILED):
            data["verify"] = {"ok": self.passed, "failed": list(self.failed_controls),
                              "not_applicable": self.not_applicable}
        if self.message:
            data["message"] = self.message
        return data


@dataclass
class HardenResult:
    tenant: str
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (server, why it was not hardened)
    check: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts.values())

    @property
    def unreachable(self) -> bool:
        return any(h.status is HostStatus.UNREACHABLE for h in self.hosts.values())

    @property
    def timed_out(self) -> bool:
        return any(h.status is HostStatus.TIMEOUT for h in self.hosts.values())

    @property
    def drift(self) -> list:
        return [d for h in self.hosts.values() if h.run is not None for d in h.run.drift]

    def to_dict(self) -> dict:
        runs = [h.run for h in self.hosts.values() if h.run is not None]
        return {
            "tenant": self.tenant, "ok": self.ok, "check": self.check, "seconds": round(self.seconds, 1),
            "status": "successful" if self.ok else "failed",
            "hosts": {n: h.to_dict() for n, h in sorted(self.hosts.items())},
            "left_out": [{"host": n, "reason": r} for n, r in self.left_out],
            "drift": [d.__dict__ for d in self.drift],
            "failures": [f.__dict__ for r in runs for f in r.failures],
            "not_applicable": {k: v for r in runs for k, v in r.not_applicable.items()},
        }


class HostOps(Protocol):
    """The effects of hardening one host. `DriverHostOps` is the real one."""

    def reach(self, name: str, target: Any, known_hosts: Path, console: Callable[[str], str | None] | None,
              timeout: float) -> None: ...

    def harden(self, inventory: dict, known_hosts: Path, *, limit: str, check: bool, timeout: float,
               progress: Callable[[Any], None] | None) -> Any: ...

    def verify(self, name: str, target: Any, known_hosts: Path, level: int, timeout: float) -> list: ...


class DriverHostOps:
    """Hardening over the real drivers: paramiko for trust/readiness/checks, ansible-runner."""

    def __init__(self, console_poll: float = 0.5, sleep: Callable[[float], None] = time.sleep):
        self.console_poll, self.sleep = console_poll, sleep
        self._known_hosts_lock = threading.Lock()

    def reach(self, name, target, known_hosts, console, timeout) -> None:
        from gcloudctl.drivers import ssh

        deadline = Deadline.within(timeout)
        if console is not None:
            while True:  # cloud-init prints the fingerprints at the end of first boot
                text = console(name) or ""
                if ssh.FP_END in text:
                    break
                if deadline.remaining() <= self.console_poll:
                    raise TimeoutExpired(_("{name}: its console printed no SSH host key fingerprints within "
                                           "{seconds}s", name=name, seconds=round(timeout)),
                                         hint=_("is cloud-init running on the image?"))
                self.sleep(self.console_poll)
            with self._known_hosts_lock:
                _trust_atomically(known_hosts, target.host, text, target.port)
        ssh.wait_ready(target, known_hosts, timeout=max(1.0, deadline.remaining()))

    def harden(self, inventory, known_hosts, *, limit, check, timeout, progress):
        from gcloudctl.drivers.ansible import run_playbook

        return run_playbook(inventory, known_hosts=known_hosts, check=check, limit=limit, forks=1,
                            progress=progress, timeout=max(1, int(timeout)))

    def verify(self, name, target, known_hosts, level, timeout) -> list:
        from gcloudctl.drivers.ssh import connect
        from gcloudctl.hardening.audit import run_checks

        with connect(target, known_hosts, timeout=min(10.0, max(1.0, timeout))) as session:
            return run_checks(session, level)


def _trust_atomically(known_hosts: Path, host: str, console: str, port: int) -> None:
    """`drivers.ssh.trust_console` on a copy that then replaces the file: SSH clients of other
    hosts reading it meanwhile see the old or the new file, never half of one."""
    from gcloudctl.drivers.ssh import trust_console

    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=known_hosts.parent, prefix=f".{known_hosts.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        if known_hosts.exists():
            shutil.copyfile(known_hosts, tmp)
        trust_console(tmp, host, console, port)
        os.replace(tmp, known_hosts)
    finally:
        tmp.unlink(missing_ok=True)


def select(inventory: dict, limit: str | None) -> list[str]:
    """Inventory hosts matched by `limit` (comma-separated names or glob patterns; all when None)."""
    names = sorted(inventory["all"]["hosts"])
    if not limit:
        return names
    patterns = [p.strip() for p in limit.split(",") if p.strip()]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def harden_inventory(inventory: dict, *, tenant: str, access: Access, known_hosts: Path,
                     console: Callable[[str], str | None] | None = None, deadline: Deadline = Deadline(),
                     progress: ProgressFn | None = None, ops: HostOps | None = None, check: bool = False,
                     verify: bool = True, limit: str | None = None, forks: int = 10) -> HardenResult:
    """Harden (or check) every host of `inventory` matched by `limit`, each host on its own as
    soon as it answers; then verify it. Each host's level is its `gcloudctl_level` host var."""
    from gcloudctl.hardening.access import ssh_targets

    ops = ops or DriverHostOps()
    started = time.monotonic()
    targets = ssh_targets(inventory, key_file=access.key_file)
    names = select(inventory, limit)
    say = progress or (lambda event: None)
    result = HardenResult(tenant=tenant, check=check)
    if not names:
        return result

    def one(name: str) -> HostOutcome:
        return _harden_one(name, inventory, targets[name], known_hosts, console, deadline, ops, say, check, verify)

    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(names))), thread_name_prefix="harden") as pool:
        # each host runs in a copy of this context: the language and the driver's deadline go with it
        futures = [pool.submit(contextvars.copy_context().run, one, name) for name in names]
        for outcome in (future.result() for future in futures):
            result.hosts[outcome.name] = outcome
    result.seconds = time.monotonic() - started
    return result


def _harden_one(name: str, inventory: dict, target: Any, known_hosts: Path, console, deadline: Deadline,
                ops: HostOps, say: ProgressFn, check: bool, verify: bool) -> HostOutcome:
    level = int(inventory["all"]["hosts"][name].get("gcloudctl_level") or 1)
    started = time.monotonic()

    def done(status: HostStatus, message: str = "", **kw) -> HostOutcome:
        outcome = HostOutcome(name, level, status, message, seconds=time.monotonic() - started, **kw)
        text = _(STATUS_WORDS[status]) + (f": {message}" if message else "")
        say(Event(Step.HOST_DONE, f"{name}: {text}", name, status.value, outcome))
        return outcome

    def left() -> float:
        return deadline.remaining(DEFAULT_STEP_TIMEOUT)

    try:
        ops.reach(name, target, known_hosts, console, left())
        say(Event(Step.REACH, _("{name}: SSH answers with the host key its console printed ({seconds}s)",
                                name=name, seconds=round(time.monotonic() - started, 1)), name))
        if deadline.expired():
            return done(HostStatus.TIMEOUT, _("the deadline passed before the playbooks started"))
        run = ops.harden(inventory, known_hosts, limit=name, check=check, timeout=left(),
                         progress=lambda e: say(Event(Step.TASK, e.task, e.host, e.status, e)))
    except TimeoutExpired as exc:
        return done(HostStatus.TIMEOUT, exc.message)
    except (Unreachable, Refused) as exc:  # includes HostKeyMismatch / HostKeyUnknown, auth refused
        return done(HostStatus.UNREACHABLE, exc.message)
    summary = run.hosts.get(name)
    changed = summary.changed if summary else 0
    if run.status == "timeout":
        return done(HostStatus.TIMEOUT, _("the playbooks did not finish before the deadline"), changed=changed,
                    run=run)
    if not run.ok:
        first = next((f for f in run.failures if f.host == name), None)
        why = f"{first.task}: {first.message}" if first else _("playbook {status} (rc {rc})", status=run.status,
                                                                   rc=run.rc)
        unreachable = bool(summary and summary.unreachable) or (first is not None and first.status == "unreachable")
        return done(HostStatus.UNREACHABLE if unreachable else HostStatus.FAILED, why, changed=changed, run=run)
    say(Event(Step.HARDEN, _("{name}: playbooks done, {changed} changed ({seconds}s)", name=name, changed=changed,
                             seconds=round(time.monotonic() - started, 1)), name))
    if check:
        return done(HostStatus.CHECKED, changed=changed, run=run)
    if not verify:
        return done(HostStatus.UNVERIFIED, changed=changed, run=run)
    try:
        checks = ops.verify(name, target, known_hosts, level, left())
    except (GcloudctlError, RuntimeError) as exc:
        return done(HostStatus.UNREACHABLE if isinstance(exc, (Unreachable, Refused)) else HostStatus.FAILED,
                    _("verify: {error}", error=getattr(exc, 'message', exc)), changed=changed, run=run)
    failed = tuple(c.id for c in checks if c.status in ("fail", "error"))
    counts = {"passed": sum(c.status == "pass" for c in checks),
              "not_applicable": sum(c.status == "not applicable" for c in checks)}
    if failed:
        return done(HostStatus.VERIFY_FAILED, _("audit checks failing: {controls}", controls=", ".join(failed)),
                    changed=changed,
                    failed_controls=failed, run=run, **counts)
    return done(HostStatus.HARDENED, changed=changed, run=run, **counts)


# ---- a tenant's servers, from the cloud ---------------------------------------------------------
def hardening_levels(request: Any) -> dict[str, int]:
    """Server name -> hardening level (1..4) for every server of the request that asks for
    hardening (`servers[].hardening`); the profile it names, else the classification's."""
    from gcloudctl import naming
    from gcloudctl.policy import default_hardening_profile

    levels = {}
    for server in request.spec.servers:
        if server.hardening is None:
            continue
        profile = server.hardening.profile or default_hardening_profile(request.spec.classification)
        for index in range(1, server.count + 1):
            levels[naming.server_name(server.name, index)] = int(profile.removeprefix("L"))
    return levels


def tenant_inventory(tenant: str, hosts: list[dict], levels: dict[str, int], access: Access, known_hosts: Path,
                     **firewall: Any) -> tuple[dict, list[tuple[str, str]]]:
    """(inventory of the hosts named in `levels`, each at its own level; hosts left out and why).
    `firewall` (allowed_ports, admin_sources) goes to `build_inventory` unchanged."""
    from gcloudctl.hardening.inventory import build_inventory, select_hosts

    wanted = [h for h in hosts if h["name"] in levels]
    left_out = select_hosts(wanted)[1]
    missing = sorted(set(levels) - {h["name"] for h in hosts})
    left_out = left_out + [(name, _("no such server in the cloud")) for name in missing]
    inventory = build_inventory(tenant, max(levels.values(), default=1), wanted,
                                automation_user=access.automation_user, proxy_command=access.proxy_command,
                                key_file=access.key_file, known_hosts=str(known_hosts), **firewall)
    for name, hostvars in inventory["all"]["hosts"].items():  # the inventory name is the server's (a plain label)
        hostvars["gcloudctl_level"] = levels.get(name, hostvars.get("gcloudctl_level", 1))
    return inventory, left_out


def known_hosts_for(tenant: str, access: Access) -> Path:
    from gcloudctl.drivers.ssh import known_hosts_path

    return access.known_hosts or known_hosts_path(tenant)


def harden_servers(owner: Any, driver: Any, levels: dict[str, int], access: Access, *,
                   observed_hosts: list[dict] | None = None, deadline: Deadline = Deadline(),
                   progress: ProgressFn | None = None, ops: HostOps | None = None, verify: bool = True,
                   forks: int = 10, firewall: dict | None = None) -> HardenResult:
    """Harden and verify the tenant's servers named in `levels` (name -> level) from the cloud:
    hosts from one observation (or `observed_hosts`), host keys from the compute API's console.
    Raises HardeningKeyMissing before anything when the key is not readable."""
    from gcloudctl import pipeline

    check_access(access)
    hosts = observed_hosts if observed_hosts is not None else pipeline.observe_hosts(owner, driver)
    known_hosts = known_hosts_for(owner.tenant, access)
    inventory, left_out = tenant_inventory(owner.tenant, hosts, levels, access, known_hosts, **(firewall or {}))
    console = driver.console_for(owner) if hasattr(driver, "console_for") else None
    result = harden_inventory(inventory, tenant=owner.tenant, access=access, known_hosts=known_hosts,
                              console=console, deadline=deadline, progress=progress, ops=ops, verify=verify,
                              forks=forks)
    result.left_out = left_out
    return result
