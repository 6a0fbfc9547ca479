"""TestHost: a Debian 12 guest with systemd as PID 1 in its own namespaces, reachable over SSH.

Stage: test infrastructure; used by tests, benchmarks and (later) a Nova virt driver that turns
each server into such a guest. Lifecycle:

    host = TestHost.start("web1", ip="10.231.0.11", user_data=text)   # boots, returns at once
    host.wait_for_console("SSH HOST KEY FINGERPRINTS", timeout=120)     # cloud-init finished keys
    host.console_log()      # what a VM's serial console shows (cloud-init fingerprint block)
    host.proxy_command      # ProxyCommand for ssh/paramiko/ansible (%h %p)
    host.stop()             # kills everything, deletes cgroup, namespace, per-host rootfs

Isolation (see docs/hardening.md): own net/mount/pid/uts/ipc/cgroup namespaces, /proc/sys
read-only except /proc/sys/net, /sys read-only, private /dev with its own devpts, and a bounding
set without SYS_MODULE, SYS_TIME, SYS_RAWIO, MKNOD, AUDIT_CONTROL, AUDIT_READ, SYSLOG, ... so a
hardening run can never change the machine's kernel settings, clock or audit rules.
First boot is real cloud-init (NoCloud seed): it creates the user, generates host keys and prints
the fingerprint block to the console, exactly what the SSH driver later verifies against.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gcloudctl.testhost import rootfs as rootfs_mod
from gcloudctl.testhost.net import Network

CGROUP_BASE = Path("/sys/fs/cgroup/unified/gcloudctl-testhost")
DEFAULT_STATE_DIR = Path("/var/tmp/gcloudctl-testhost")
SUPERVISOR = Path(__file__).with_name("supervisor.py")

DROPPED_CAPS = (
    "sys_module", "sys_time", "sys_rawio", "mknod", "audit_control", "audit_read", "syslog",
    "wake_alarm", "block_suspend", "mac_admin", "mac_override", "sys_pacct",
)

BOOT_SH = r"""set -eu
R="$ROOT"
mount --make-rprivate /
mount --bind "$R" "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,ro "$R/proc/sys"
for f in sysrq-trigger kcore; do [ ! -e "$R/proc/$f" ] || mount --bind -o ro /dev/null "$R/proc/$f"; done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=755,nosuid,size=16m tmpfs "$R/dev"
for d in null zero full random urandom tty; do
  : > "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
: > "$R/dev/console"; mount --bind "$CONSOLE" "$R/dev/console"
hostname "$HOSTNAME_"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec /usr/bin/setpriv --bounding-set __CAPS__ -- /lib/systemd/systemd
"""


def _cgroup_procs(path: Path) -> list[int]:
    pids: list[int] = []
    for procs in path.rglob("cgroup.procs") if path.exists() else []:
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except OSError:
            pass
    return pids


def _rm_cgroup_tree(path: Path) -> None:
    if not path.exists():
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


@dataclass
class TestHost:
    """A running (or stopped) guest. Create with `start`, re-attach with `attach`."""

    __test__ = False  # not a pytest test class

    name: str
    ip: str
    state_dir: Path
    network: Network

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def start(cls, name: str, ip: str, user_data: str, *, rootfs: Path | None = None,
              network: Network | None = None, state_dir: Path | None = None,
              meta_data: dict | None = None) -> "TestHost":
        """Copy the cached rootfs, seed first boot, create namespaces, launch systemd.

        Not idempotent for a running host of the same name: it refuses (stop it first).
        """
        if os.geteuid() != 0:
            raise PermissionError("test hosts need root (namespaces, cgroups, mounts)")
        network = network or Network()
        network.check_address(ip)
        state = Path(state_dir or DEFAULT_STATE_DIR) / name
        host = cls(name=name, ip=ip, state_dir=state, network=network)
        if host.running():
            raise RuntimeError(f"test host {name} is already running; stop it first")
        host._cleanup(remove_state=True)
        rootfs = Path(rootfs) if rootfs else rootfs_mod.build_rootfs()
        root = state / "root"
        rootfs_mod.unpack_rootfs(rootfs, root)
        host._seed(root, user_data, meta_data or {})
        ns = network.attach(name, ip)
        (state / "boot.sh").write_text(BOOT_SH.replace("__CAPS__", ",".join("-" + c for c in DROPPED_CAPS)))
        (state / "host.json").write_text(json.dumps({
            "name": name, "ip": ip, "root": str(root), "netns": ns, "hostname": name,
            "cgroup": str(CGROUP_BASE / name), "prefix": network.prefix, "cidr": network.cidr,
        }, indent=2))
        log = open(state / "supervisor.log", "ab")
        subprocess.Popen([sys.executable, "-I", str(SUPERVISOR), str(state)], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True, close_fds=True)
        log.close()
        return host

    @classmethod
    def attach(cls, name: str, state_dir: Path | None = None) -> "TestHost":
        """Re-attach to a host started by another process (reads its host.json)."""
        state = Path(state_dir or DEFAULT_STATE_DIR) / name
        cfg = json.loads((state / "host.json").read_text())
        return cls(name=name, ip=cfg["ip"], state_dir=state,
                   network=Network(prefix=cfg["prefix"], cidr=cfg["cidr"]))

    def stop(self, remove: bool = True, timeout: float = 15.0) -> None:
        """Kill every process of the host, delete its cgroup and namespace (idempotent)."""
        pids = self._supervisor_pids()
        if pids:
            try:
                os.kill(pids[0], signal.SIGTERM)
            except ProcessLookupError:
                pass
        cg = self.cgroup
        kill_file = cg / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while _cgroup_procs(cg) and time.monotonic() < deadline:
            if kill_file.exists():
                try:
                    kill_file.write_text("1")
                except OSError:
                    pass
            else:
                for pid in _cgroup_procs(cg):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.1)
        if _cgroup_procs(cg):
            raise RuntimeError(f"test host {self.name}: processes survive in {cg}")
        self._cleanup(remove_state=remove)

    def _cleanup(self, remove_state: bool) -> None:
        _rm_cgroup_tree(self.cgroup)
        self.network.detach(self.name)
        if remove_state and self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    # -- state ------------------------------------------------------------------------------
    @property
    def cgroup(self) -> Path:
        return CGROUP_BASE / self.name

    @property
    def netns(self) -> str:
        return self.network.host_ns(self.name)

    @property
    def proxy_command(self) -> str:
        return self.network.proxy_command()

    def running(self) -> bool:
        return bool(_cgroup_procs(self.cgroup))

    def _supervisor_pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.state_dir / "supervisor.pid").read_text().split()]
        except (OSError, ValueError):
            return []

    def init_pid(self) -> int | None:
        """PID (machine view) of the guest's systemd."""
        procs = self.cgroup / "payload" / "init.scope" / "cgroup.procs"
        try:
            return int(procs.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    # -- console ----------------------------------------------------------------------------
    def console_log(self) -> str:
        try:
            return (self.state_dir / "console.log").read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for_console(self, marker: str, timeout: float = 120.0) -> str:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            text = self.console_log()
            if marker in text:
                return text
            if time.monotonic() - start > 5 and not self.running():
                break  # the guest died (give the supervisor 5 s to join its cgroup)
            time.sleep(0.25)
        raise TimeoutError(f"test host {self.name}: {marker!r} not on the console after {timeout}s;"
                           f" tail:\n{self.console_log()[-2000:]}")

    # -- operator access (tests, drift injection) -------------------------------------------
    def exec(self, argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the guest (all its namespaces and root), like a console login."""
        pid = self.init_pid()
        if pid is None:
            raise RuntimeError(f"test host {self.name} is not running")
        return subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
                               "--", *argv], check=check, capture_output=True, text=True, **kw)

    # -- first boot seed --------------------------------------------------------------------
    def _seed(self, root: Path, user_data: str, meta_data: dict) -> None:
        seed = root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True, exist_ok=True)
        meta = {"instance-id": f"iid-{self.name}", "local-hostname": self.name, **meta_data}
        (seed / "meta-data").write_text("".join(f"{k}: {v}\n" for k, v in meta.items()))
        (seed / "user-data").write_text(user_data)
        (root / "etc/hostname").write_text(self.name + "\n")
        hosts = (root / "etc/hosts")
        hosts.write_text(f"127.0.0.1 localhost\n{self.ip} {self.name}\n")
