"""Starts, inspects and stops devcloud's processes by pid file and process group.

Stage: effect (processes, pid files, logs). Called by lifecycle. Each service runs in its own
session (process group = its pid); the pid file records the argv so a recycled pid is never
signalled. Must not decide readiness (readiness does) or signal anything it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Record:
    pid: int
    argv: tuple[str, ...]
    started_at: float


def read_record(pid_file: Path) -> Record | None:
    try:
        raw = json.loads(pid_file.read_text())
        return Record(pid=int(raw["pid"]), argv=tuple(raw["argv"]), started_at=float(raw["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def matches(record: Record) -> bool:
    """The pid lives and still runs our argv.

    A console script shows its interpreter in front of the argv, and oslo.service retitles
    its master as "nova-conductor: master process [argv]": the argv, joined, must appear.
    """
    cmd = _cmdline(record.pid)
    if not cmd or _is_zombie(record.pid):
        return False
    n = len(record.argv)
    return cmd[-n:] == record.argv or " ".join(record.argv) in " ".join(cmd)


def running(pid_file: Path) -> Record | None:
    record = read_record(pid_file)
    return record if record is not None and matches(record) else None


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def start(argv: list[str], *, env: dict[str, str], log_file: Path, pid_file: Path, cwd: Path) -> Record:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n==== devcloud start {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(cwd), start_new_session=True)
    record = Record(pid=proc.pid, argv=tuple(argv), started_at=time.time())
    _wait_exec(proc, record)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "argv": list(record.argv), "started_at": record.started_at}))
    tmp.replace(pid_file)
    return record


def _wait_exec(proc: subprocess.Popen, record: Record, timeout: float = 5.0) -> None:
    """Until exec() completes /proc shows the parent's argv; wait so `matches` is meaningful."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not matches(record):
        time.sleep(0.02)


def stop(pid_file: Path, *, timeout: float = 20.0) -> bool:
    """TERM the service's process group and wait until it is gone (KILL after timeout).

    Returns True when something was stopped. A pid whose command line no longer matches
    the record is left alone and the stale pid file removed.
    """
    record = running(pid_file)
    if record is None:
        pid_file.unlink(missing_ok=True)
        return False
    pgid = record.pid  # start_new_session: the leader's pid is the group id
    try:
        if os.getpgid(record.pid) == pgid:
            os.killpg(pgid, signal.SIGTERM)
        else:
            os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_members(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while group_members(pgid) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
    _reap(record.pid)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str:
    """Best-effort description of who listens on a port (for error messages)."""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown process"
    return out.strip().split("users:")[-1] if "users:" in out else (out.strip() or "unknown process")


def rss_kib(pgid: int) -> int:
    return rss_kib_of(group_members(pgid))


def rss_kib_of(pids) -> int:
    """Sum of VmRSS of these processes (those gone meanwhile count 0). Stdlib only: the guest
    runtime uses it inside nova-compute."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
