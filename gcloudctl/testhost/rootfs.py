"""Test-host root filesystem: a Debian 12 (bookworm) tree built with debootstrap, cached as a tarball.

Stage: test infrastructure (not part of the tenant pipeline). Called by `TestHost` users (tests,
benchmarks, later a Nova virt driver). It needs root and the Debian mirror at build time only;
the booted hosts never reach a network beyond their own namespaces.

The cache key is a hash of everything that shapes the tree (suite, mirror, package lists, the
provisioning script), so changing a list builds a new tarball and an unchanged list reuses it.
Packages that the hardening playbooks install are *downloaded only* (with Recommends, as the
apt module installs them), so a fresh host is really unhardened yet the playbooks run offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# Installed in the image: what a cloud image ships plus the auditor (lynis).
BASE_PACKAGES = (
    "openssh-server", "python3", "python3-apt", "sudo", "systemd", "systemd-sysv", "dbus",
    "iproute2", "procps", "cloud-init", "lynis", "chrony", "cron", "logrotate", "ca-certificates", "less",
)
# Downloaded only: the hardening roles install these (apt installs Recommends by default).
OFFLINE_PACKAGES = (
    "nftables", "auditd", "unattended-upgrades", "apt-listchanges", "libpam-pwquality",
    "rsyslog",
)

# Units that cannot work in a namespace container or would fight over the console pty.
MASKED_UNITS = (
    "console-getty.service", "serial-getty@.service", "getty@.service", "systemd-udevd.service",
    "systemd-networkd-wait-online.service", "e2scrub_reap.service", "apt-daily.timer",
    "apt-daily-upgrade.timer",
)

CLOUD_CFG = """\
# gcloudctl test host: first boot reads the NoCloud seed written per host.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
"""

PROVISION_VERSION = "3"  # bump when _provision_script changes in a way the key does not see


def default_cache_dir() -> Path:
    base = os.environ.get("GCLOUDCTL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gcloudctl")
    return Path(base) / "testhost"


@dataclass(frozen=True)
class RootfsSpec:
    suite: str = SUITE
    mirror: str = DEFAULT_MIRROR
    packages: tuple[str, ...] = BASE_PACKAGES
    offline_packages: tuple[str, ...] = OFFLINE_PACKAGES
    masked_units: tuple[str, ...] = MASKED_UNITS
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        data = {
            "suite": self.suite, "mirror": self.mirror, "packages": sorted(self.packages),
            "offline": sorted(self.offline_packages), "masked": sorted(self.masked_units),
            "cloud_cfg": CLOUD_CFG, "version": PROVISION_VERSION, "extra": self.extra,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _run(cmd: list[str], **kw) -> None:
    log.info("+ %s", " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def _provision_script(spec: RootfsSpec) -> str:
    """Shell run inside the chroot (private mount+pid namespaces, daemons blocked)."""
    pkgs = " ".join(spec.packages)
    offline = " ".join(spec.offline_packages)
    masks = " ".join(spec.masked_units)
    return f"""set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
mount -t proc proc /proc
mount -t tmpfs tmpfs /run
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
cat > /etc/apt/sources.list <<EOF
deb {spec.mirror} {spec.suite} main
deb {spec.mirror} {spec.suite}-updates main
deb {SECURITY_MIRROR} {spec.suite}-security main
EOF
apt-get update -q
apt-get install -y -q --no-install-recommends {pkgs}
apt-get install -y -q --download-only {offline}
for u in {masks}; do ln -sf /dev/null /etc/systemd/system/$u; done
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
echo testhost > /etc/hostname
rm -f /usr/sbin/policy-rc.d
umount /run
umount /proc
"""


def build_rootfs(spec: RootfsSpec | None = None, cache_dir: Path | None = None,
                 force: bool = False) -> Path:
    """Return the cached tarball for *spec*, building it first if needed (idempotent, locked)."""
    spec = spec or RootfsSpec()
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"rootfs-{spec.suite}-{spec.key()}.tar"
    with open(cache_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists() and not force:
            return tarball
        _build_into(spec, tarball)
    return tarball


def _ensure_debootstrap() -> None:
    """Install debootstrap from Debian if it is missing (fresh CI machines); root only."""
    if shutil.which("debootstrap"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], env=env,
                      stdout=subprocess.DEVNULL).returncode != 0:
        _run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        _run(["apt-get", "install", "-y", "-q", "debootstrap"], env=env, stdout=subprocess.DEVNULL)


def _build_into(spec: RootfsSpec, tarball: Path) -> None:
    _ensure_debootstrap()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    root = work / "root"
    try:
        _run(["debootstrap", "--variant=minbase", spec.suite, str(root), spec.mirror],
             stdout=subprocess.DEVNULL)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        (root / "etc/cloud/cloud.cfg.d").mkdir(parents=True, exist_ok=True)
        script = root / "tmp/provision.sh"
        script.write_text(_provision_script(spec))
        _run(["unshare", "--mount", "--pid", "--fork", "--kill-child",
              "chroot", str(root), "/bin/sh", "/tmp/provision.sh"], stdout=subprocess.DEVNULL)
        script.unlink()
        (root / "etc/cloud/cloud.cfg.d/90-gcloudctl-testhost.cfg").write_text(CLOUD_CFG)
        (root / "etc/resolv.conf").write_text("")
        partial = tarball.with_suffix(".partial")
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(partial), "."])
        partial.rename(tarball)
        (tarball.with_suffix(".json")).write_text(json.dumps(
            {"key": spec.key(), "packages": list(spec.packages),
             "offline_packages": list(spec.offline_packages)}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def unpack_rootfs(tarball: Path, dest: Path) -> None:
    """Extract a cached tarball into *dest* (a fresh per-host copy)."""
    dest.mkdir(parents=True, exist_ok=False)
    _run(["tar", "--numeric-owner", "--xattrs", "-C", str(dest), "-xf", str(tarball)])


if __name__ == "__main__":  # python -m gcloudctl.testhost.rootfs  -> build/print the cache
    logging.basicConfig(level=logging.INFO)
    print(build_rootfs())
