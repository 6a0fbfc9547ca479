"""Ansible driver (ansible-runner): run the project's hardening playbook and summarise it.

Stage: driver (effects at the edge). Called by `gcloudctl harden`, the audit's "after" step and
the core's apply step. Contract:

- a fresh private data dir per run (ansible-runner persists cmdline, ssh keys, extravars into
  `env/` and reuses them: one `--check` run would silently turn later runs into check mode);
  `suppress_env_files=True`; the dir is deleted after the run unless `keep_artifacts` is given;
- nothing secret is passed: SSH keys are referenced by path in the inventory, never copied;
- host keys are checked against the tenant's console-verified known_hosts (StrictHostKeyChecking);
- a `progress` callback receives one `HostEvent` per finished task per host (live progress);
- the result carries ok/changed/failed/unreachable per host and, in check mode, the drift
  (tasks that would change, with their diff).

Idempotence: the playbook's own contract (second run changed=0); the driver adds no state.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ansible_runner

log = logging.getLogger(__name__)

def default_playbooks_dir() -> Path:
    """$GCLOUDCTL_PLAYBOOKS_DIR (an operator's own copy), else the playbooks shipped in the package."""
    env = os.environ.get("GCLOUDCTL_PLAYBOOKS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "playbooks"

_TASK_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
                "runner_on_skipped": "skipped"}


@dataclass(frozen=True)
class HostEvent:
    host: str
    task: str
    status: str  # ok | changed | failed | unreachable | skipped
    message: str = ""


@dataclass(frozen=True)
class Drift:
    host: str
    task: str
    diff: str = ""


@dataclass
class HostSummary:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class RunResult:
    status: str  # successful | failed | timeout | canceled
    rc: int
    check: bool
    seconds: float
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    drift: list[Drift] = field(default_factory=list)
    failures: list[HostEvent] = field(default_factory=list)
    not_applicable: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and not any(h.failed or h.unreachable for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    def to_dict(self) -> dict:
        return {
            "status": self.status, "rc": self.rc, "check": self.check, "seconds": round(self.seconds, 1),
            "hosts": {h: s.to_dict() for h, s in sorted(self.hosts.items())},
            "drift": [d.__dict__ for d in self.drift],
            "failures": [f.__dict__ for f in self.failures],
            "not_applicable": self.not_applicable,
        }


def _diff_text(res: dict) -> str:
    diffs = res.get("diff") or []
    if isinstance(diffs, dict):
        diffs = [diffs]
    parts = []
    for d in diffs:
        if "prepared" in d:
            parts.append(str(d["prepared"]))
            continue
        before, after = d.get("before", ""), d.get("after", "")
        if isinstance(before, str) and isinstance(after, str) and before != after:
            parts.append("".join(difflib.unified_diff(
                before.splitlines(True), after.splitlines(True),
                d.get("before_header", "before"), d.get("after_header", "after"))))
        elif before != after:
            parts.append(f"{before!r} -> {after!r}")
    return "\n".join(p for p in parts if p)


def _message(res: dict) -> str:
    for key in ("msg", "stderr", "reason"):
        if res.get(key):
            return str(res[key])[:500]
    return ""


class _Collector:
    """Turns runner events into HostEvents, drift and not-applicable records."""

    def __init__(self, progress: Callable[[HostEvent], None] | None):
        self.progress = progress
        self.drift: list[Drift] = []
        self.failures: list[HostEvent] = []
        self.not_applicable: dict[str, list[str]] = {}
        self.handlers: set[str] = set()

    def __call__(self, event: dict) -> bool:
        data = event.get("event_data") or {}
        if event.get("event") == "playbook_on_task_start" and "RUNNING HANDLER" in event.get("stdout", ""):
            self.handlers.add(data.get("task_uuid", ""))  # runner marks handlers only in the banner
        kind = _TASK_EVENTS.get(event.get("event", ""))
        if kind is None or "host" not in data:
            return True
        res = data.get("res") or {}
        host, task = data["host"], data.get("task", "")
        status = "changed" if kind == "ok" and res.get("changed") else kind
        if status == "changed" and data.get("task_uuid") not in self.handlers:
            # drift is what tasks would change; handlers (reloads) only follow from it
            self.drift.append(Drift(host, task, _diff_text(res)))
        if status in ("failed", "unreachable") and not data.get("ignore_errors"):
            self.failures.append(HostEvent(host, task, status, _message(res)))
        facts = res.get("ansible_facts") or {}
        if "gc_not_applicable" in facts:
            self.not_applicable[host] = list(facts["gc_not_applicable"])
        if self.progress:
            self.progress(HostEvent(host, task, status, _message(res) if status != "ok" else ""))
        return True


def run_playbook(inventory: str | dict, *, playbook: str = "harden.yml", known_hosts: Path,
                 check: bool = False, diff: bool = True, limit: str | None = None, forks: int = 10,
                 progress: Callable[[HostEvent], None] | None = None,
                 playbooks_dir: Path | None = None, keep_artifacts: Path | None = None,
                 timeout: int | None = None, extra_env: dict[str, str] | None = None) -> RunResult:
    """Run *playbook* over *inventory* (YAML/INI text, a dict, or a path) and summarise it."""
    playbooks_dir = Path(playbooks_dir or default_playbooks_dir())
    private = Path(tempfile.mkdtemp(prefix="gcloudctl-ansible-"))
    os.chmod(private, 0o700)
    collector = _Collector(progress)
    started = time.monotonic()
    try:
        envvars = _environment(private, playbooks_dir, known_hosts, extra_env)
        cmdline = " ".join(filter(None, ["--check" if check else "", "--diff" if diff else ""]))
        runner = ansible_runner.run(
            private_data_dir=str(private), project_dir=str(playbooks_dir), playbook=playbook,
            inventory=_inventory_arg(inventory, private), envvars=envvars, cmdline=cmdline or None,
            limit=limit, forks=forks, quiet=True, suppress_env_files=True, event_handler=collector,
            timeout=timeout, json_mode=False,
        )
        stats = runner.stats or {}
        hosts = _host_summaries(stats)
        result = RunResult(status=runner.status, rc=runner.rc, check=check,
                           seconds=time.monotonic() - started, hosts=hosts, drift=collector.drift,
                           failures=collector.failures, not_applicable=collector.not_applicable)
        if keep_artifacts:
            shutil.copytree(private / "artifacts", keep_artifacts, dirs_exist_ok=True)
        return result
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _inventory_arg(inventory: str | dict, private: Path) -> str:
    if isinstance(inventory, dict):
        text = json.dumps(inventory)
        name = "hosts.json"
    elif os.path.exists(str(inventory)) and "\n" not in str(inventory):
        return str(Path(inventory).resolve())
    else:
        text = str(inventory)
        name = "hosts.yml" if text.lstrip().startswith(("all:", "---", "{")) else "hosts"
    path = private / "inventory" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _environment(private: Path, playbooks_dir: Path, known_hosts: Path,
                 extra: dict[str, str] | None) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "ANSIBLE_CONFIG": str(playbooks_dir / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(playbooks_dir / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(private / "cp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": (f"-o ControlMaster=auto -o ControlPersist=20s -o ServerAliveInterval=15 "
                             f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
                             f"-o PasswordAuthentication=no -o BatchMode=yes"),
        "ANSIBLE_NOCOLOR": "1",
    }
    env.update(extra or {})
    return env


def _host_summaries(stats: dict[str, Any]) -> dict[str, HostSummary]:
    keys = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped"}
    hosts: dict[str, HostSummary] = {}
    for stat_key, attr in keys.items():
        for host, count in (stats.get(stat_key) or {}).items():
            setattr(hosts.setdefault(host, HostSummary()), attr, count)
    for host in stats.get("processed") or {}:
        hosts.setdefault(host, HostSummary())
    return hosts
