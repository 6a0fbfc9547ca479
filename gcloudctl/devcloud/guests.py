"""devcloud guests mode: turn it on or off, wire nova-compute to the guest driver, clean up.

Stage: effect (files under the devcloud dir, the services venv's site-packages, guests).
Called by the CLI (`devcloud up --guests/--no-guests`) and by lifecycle (`write_configs`,
`down`). The mode is persisted in `<devcloud>/guests.json`; `with_mode` switches the driver in
the rendered nova-compute.conf, so `up` restarts exactly nova-compute when the mode changes. Must not start or stop OpenStack services itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gcloudctl
from gcloudctl.devcloud import guests_runtime as rt
from gcloudctl.devcloud import supervisor
from gcloudctl.devcloud.config import COMPUTE_DRIVER
from gcloudctl.devcloud.layout import Layout
from gcloudctl.errors import GcloudctlError

Progress = Callable[[str], None]
PLAIN_DRIVER = COMPUTE_DRIVER
# Nova imports drivers only as `nova.virt.<compute_driver>`: a one-line shim module in the services
# venv's nova/virt re-exports the plugin's driver (rewritten on every `up`, so a venv rebuild keeps it).
GUEST_DRIVER = "gcloudctl_guests.GuestDriver"
SHIM_NAME = "gcloudctl_guests.py"
SHIM = ('"""devcloud guests mode (written by gcloudctl.devcloud.guests): re-export the plugin driver."""\n'
        "from gcloudctl_devcloud_plugins.virt import GuestDriver  # noqa: F401\n")
COMPUTE_CONF = "nova/nova-compute.conf"
PTH_NAME = "gcloudctl_devcloud_guests.pth"
REPO_ROOT = Path(gcloudctl.__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mode:
    enabled: bool = False


def mode_file(layout: Layout) -> Path:
    return layout.root / "guests.json"


def runtime_root(layout: Layout) -> Path:
    """Where nova-compute's guest driver keeps guests (its state_path/guests)."""
    return layout.data / "nova" / "guests"


def runtime(layout: Layout) -> rt.Runtime:
    return rt.Runtime(runtime_root(layout))


def load_mode(layout: Layout) -> Mode:
    try:
        return Mode(**json.loads(mode_file(layout).read_text()))
    except (OSError, ValueError, TypeError):
        return Mode()


def save_mode(layout: Layout, mode: Mode) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = mode_file(layout).with_suffix(".tmp")
    tmp.write_text(json.dumps({"enabled": mode.enabled}) + "\n")
    tmp.replace(mode_file(layout))


def override(files: dict[str, str], mode: Mode) -> dict[str, str]:
    """The rendered config files with nova-compute's driver set for *mode* (pure)."""
    if not mode.enabled:
        return files
    compute = files[COMPUTE_CONF]
    line = f"compute_driver = {PLAIN_DRIVER}\n"
    if line not in compute:
        raise ValueError(f"{COMPUTE_CONF} has no line {line.strip()!r} to switch")
    return {**files, COMPUTE_CONF: compute.replace(
        line, f"compute_driver = {GUEST_DRIVER}\nsync_power_state_interval = 10\n"
              f"# guest runtime sources {runtime_digest()} (a change restarts nova-compute)\n")}


def runtime_digest() -> str:
    """Digest of the code nova-compute runs from the repository in guests mode (through the .pth
    file, not the installed plugin), so that `up` restarts it when that code changes."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted([Path(rt.__file__), Path(supervisor.__file__), *Path(rt.th_host.__file__).parent.glob("*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def with_mode(layout: Layout, files: dict[str, str]) -> dict[str, str]:
    """Called by lifecycle.write_configs: the persisted mode applied, and the services venv able
    to import gcloudctl.testhost and guests_runtime (stdlib only) through a .pth file."""
    if layout.site_packages.is_dir():
        _ensure_file(layout.site_packages / PTH_NAME, f"{REPO_ROOT}\n")
        if (layout.site_packages / "nova" / "virt").is_dir():
            _ensure_file(layout.site_packages / "nova" / "virt" / SHIM_NAME, SHIM)
    return override(files, load_mode(layout))


def _ensure_file(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def set_mode(layout: Layout, enabled: bool, progress: Progress) -> bool:
    """Persist the mode. Turning it on prepares the base image (so the first server does not pay
    for it); turning it off deletes every guest. Returns True when the mode changed."""
    before = load_mode(layout)
    save_mode(layout, Mode(enabled=enabled))
    if enabled:
        ensure_host_tools(progress)
        ensure_host_limits(progress)
        progress("guests mode: preparing the Debian 12 base root filesystem (cached)")
        runtime(layout).base_for("debian-12")
    else:
        cleanup(layout, progress)
    return before.enabled != enabled


HOST_TOOLS = {"nft": "nftables"}  # floating IPs are NAT rules inside the devcloud's own namespaces


def ensure_host_tools(progress: Progress) -> None:
    """Install what guests mode needs on the machine (Debian packages) when it is missing."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise GcloudctlError(f"devcloud guests need {', '.join(missing)}",
                             hint=f"as root: apt-get install {' '.join(missing)}")
    progress(f"guests mode: installing {', '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise GcloudctlError(f"apt-get install {' '.join(missing)} failed: {proc.stderr.strip()[-300:]}",
                                 hint="install it by hand, then run `gcloudctl devcloud up --guests` again")


# Every guest's systemd (and its services) holds inotify instances, all counted against root in
# the machine's user namespace: Debian's default of 128 instances stops the ~24th guest with
# "Failed to allocate manager object: Too many open files". Raised (never lowered) on switch-on.
HOST_LIMITS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 1048576}
PROC_SYS = Path("/proc/sys")


def ensure_host_limits(progress: Progress, proc_sys: Path = PROC_SYS) -> dict[str, tuple[int, int]]:
    """Raise the machine's limits that many systemd guests need; returns {key: (old, new)} changed."""
    changed = {}
    for key, wanted in HOST_LIMITS.items():
        path = proc_sys / key
        current = int(path.read_text().split()[0])
        if current >= wanted:
            continue
        try:
            path.write_text(f"{wanted}\n")
        except OSError as exc:
            raise GcloudctlError(f"devcloud guests need {key.replace('/', '.')} >= {wanted} (it is {current}): {exc}",
                                 hint=f"as root: sysctl -w {key.replace('/', '.')}={wanted}") from exc
        changed[key] = (current, wanted)
        progress(f"guests mode: {key.replace('/', '.')} raised from {current} to {wanted}")
    return changed


def cleanup(layout: Layout, progress: Progress) -> list[str]:
    """Delete every guest, its namespaces and mounts (devcloud down, --no-guests). Idempotent."""
    gone = runtime(layout).delete_all()
    if gone:
        progress(f"deleted {len(gone)} devcloud guest(s)")
    return gone


@dataclass(frozen=True)
class GuestInfo:
    uuid: str
    hostname: str
    ip: str
    running: bool
    rss_kib: int


def list_guests(layout: Layout) -> list[GuestInfo]:
    run = runtime(layout)
    out = []
    for uuid in run.uuids():
        spec = run.spec(uuid)
        out.append(GuestInfo(uuid=uuid, hostname=spec.hostname if spec else "?", ip=spec.ip if spec else "?",
                             running=run.running(uuid), rss_kib=rt.rss_kib(run, uuid)))
    return out


def public_proxy_command() -> str:
    """How a client on this machine reaches floating IPs (ProxyCommand, %h %p)."""
    return rt.Runtime.public_proxy_command()
