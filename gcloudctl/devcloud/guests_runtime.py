"""Guest runtime for devcloud's guests mode: one namespace test host per Nova server.

Stage: effect (mounts, network namespaces, processes). Called by the Nova virt driver
`gcloudctl_devcloud_plugins.virt.GuestDriver` inside nova-compute (services venv, root) and by
`gcloudctl.devcloud.guests` for `devcloud down` cleanup. It must import only the standard
library, `gcloudctl.testhost` and `gcloudctl.devcloud.supervisor` (both stdlib only): the
services venv has none of gcloudctl's dependencies and sees the repository through a .pth file. Every address it configures lives inside network
namespaces it creates; the machine's own namespace is never given an interface, address or route.

Layout under ROOT (nova's state_path/guests):
  images/<rootfs key>/     the cached Debian 12 tarball unpacked once (read-only lower layer)
  nova-<uuid>/guest.json   what started the guest (ip, cidr, gateway, network, hostname, image)
  nova-<uuid>/upper,work   the server's copy-on-write layer ("its disk"; kept across power off)
  nova-<uuid>/root         overlay mount point while the guest runs
  nova-<uuid>/console.log  the serial console (testhost's supervisor appends to it)

Networks: one bridge namespace per Neutron network (`gcn<net8>-ctl`, holding the subnet's
gateway address), one namespace per guest (`gcn<net8>-h-nova-<uuid>`), the fixed IP on `eth0`.
Floating IPs: the namespace `gcd-pub` is the external network `public`; each bridge namespace
that has floating IPs gets a veth into it, the floating IPs as addresses on that veth and
nftables DNAT/SNAT rules to the fixed IPs (see `sync_floating_ips`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from gcloudctl.devcloud.supervisor import rss_kib_of
from gcloudctl.testhost import host as th_host
from gcloudctl.testhost import rootfs as th_rootfs
from gcloudctl.testhost.net import NETNS_DIR, Network, netns_exists

GUEST_PREFIX = "nova-"
NET_PREFIX = "gcn"
PUBLIC_NS = "gcd-pub"
PUBLIC_CIDR = "172.24.4.0/24"  # catalog.EXTERNAL_NETWORK (kept literal: no gcloudctl deps here)
PUBLIC_GATEWAY = "172.24.4.1"
CONSOLE_LIMIT = 100 * 1024  # like libvirt's console log cap
START_TIMEOUT = 60.0  # seconds until the guest's systemd must be running (40 boots at once on 2 vCPUs)

# Glance image name prefix -> root filesystem spec of the cached base.
IMAGE_BASES = {"debian-12": th_rootfs.RootfsSpec()}

_lock = threading.Lock()  # the base image cache
# Namespaces, bridges, addresses and NAT rules: guests of one network start, stop and get their
# floating IPs concurrently (nova-compute builds servers in parallel); one at a time changes them.
_net_lock = threading.RLock()


class GuestError(RuntimeError):
    """A guest could not be started or stopped; the message is meant for the server's fault."""


@dataclasses.dataclass(frozen=True)
class SubnetNetwork(Network):
    """testhost's bridge network with Neutron's subnet gateway (not always .1)."""

    gateway_ip: str = ""

    @property
    def gateway(self) -> str:
        return self.gateway_ip or super().gateway


@dataclasses.dataclass(frozen=True)
class GuestSpec:
    uuid: str
    hostname: str
    image_name: str
    network_id: str
    ip: str
    cidr: str
    gateway: str
    user_data: str = ""
    meta_data: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return guest_name(self.uuid)

    @property
    def network(self) -> SubnetNetwork:
        return network_for(self.network_id, self.cidr, self.gateway)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def guest_name(uuid: str) -> str:
    return GUEST_PREFIX + uuid


def network_prefix(network_id: str) -> str:
    return NET_PREFIX + network_id.replace("-", "")[:8]


def network_for(network_id: str, cidr: str, gateway: str) -> SubnetNetwork:
    return SubnetNetwork(prefix=network_prefix(network_id), cidr=cidr, gateway_ip=gateway)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GuestError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise GuestError(f"{' '.join(argv[:4])}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below *path* (deepest first), from /proc/self/mountinfo."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: -len(p))


class Runtime:
    """Start, stop and inspect the guests under one state root (idempotent where stated)."""

    def __init__(self, root: Path, python: str | None = None):
        self.root = Path(root)
        self.python = python or sys.executable

    # -- images -----------------------------------------------------------------------------
    def base_for(self, image_name: str) -> Path:
        """The unpacked read-only base for a Glance image name (unpacked once, then reused)."""
        spec = next((s for prefix, s in IMAGE_BASES.items() if image_name.startswith(prefix)), None)
        if spec is None:
            raise GuestError(f"devcloud guests have no root filesystem for image {image_name!r} "
                             f"(supported: {', '.join(p + '*' for p in IMAGE_BASES)})")
        base = self.root / "images" / spec.key()
        with _lock:
            if (base / ".complete").exists():
                return base
            tarball = th_rootfs.build_rootfs(spec)
            partial = base.with_name(base.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            th_rootfs.unpack_rootfs(tarball, partial)
            (partial / ".complete").write_text(str(tarball) + "\n")
            shutil.rmtree(base, ignore_errors=True)
            partial.rename(base)
        return base

    # -- lifecycle --------------------------------------------------------------------------
    def state_dir(self, uuid: str) -> Path:
        return self.root / guest_name(uuid)

    def host(self, uuid: str, network: Network | None = None) -> th_host.TestHost:
        spec = self.spec(uuid)
        net = network or (spec.network if spec else Network(prefix=NET_PREFIX + "unknown"))
        return th_host.TestHost(name=guest_name(uuid), ip=spec.ip if spec else "", state_dir=self.state_dir(uuid),
                                network=net)

    def spec(self, uuid: str) -> GuestSpec | None:
        try:
            return GuestSpec(**json.loads((self.state_dir(uuid) / "guest.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def create(self, spec: GuestSpec) -> None:
        """First boot: fresh disk, NoCloud seed, then `start`. Refuses a running guest."""
        state = self.state_dir(spec.uuid)
        if self.running(spec.uuid):
            raise GuestError(f"guest {spec.name} is already running")
        self.delete(spec.uuid)
        state.mkdir(parents=True)
        (state / "guest.json").write_text(json.dumps(spec.to_dict(), indent=2))
        self._mount(spec)
        try:
            self._seed(spec)
        finally:
            self._umount(spec.uuid)
        self.start(spec.uuid)

    def start(self, uuid: str) -> None:
        """Boot the guest from its existing disk (power on). Raises GuestError if systemd does not run."""
        spec = self.spec(uuid)
        if spec is None:
            raise GuestError(f"guest {guest_name(uuid)} has no disk (was it created?)")
        if self.running(uuid):
            return
        state = self.state_dir(uuid)
        root = self._mount(spec)
        with _net_lock:
            ns = spec.network.attach(spec.name, spec.ip)
            _ip("-n", ns, "route", "replace", "default", "via", spec.gateway)
        caps = ",".join("-" + c for c in th_host.DROPPED_CAPS)
        (state / "boot.sh").write_text(th_host.BOOT_SH.replace("__CAPS__", caps))
        (state / "host.json").write_text(json.dumps({
            "name": spec.name, "ip": spec.ip, "root": str(root), "netns": ns, "hostname": spec.hostname,
            "cgroup": str(th_host.CGROUP_BASE / spec.name), "prefix": spec.network.prefix,
            "cidr": spec.cidr}, indent=2))
        (state / "supervisor.pid").unlink(missing_ok=True)
        with open(state / "supervisor.log", "ab") as log:
            subprocess.Popen([self.python, "-I", str(th_host.SUPERVISOR), str(state)], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, start_new_session=True, close_fds=True)
        host = self.host(uuid)
        started = time.monotonic()
        problem = f"systemd did not start within {START_TIMEOUT:.0f}s"
        while time.monotonic() - started < START_TIMEOUT:
            # systemd runs once its manager is up and has made init.scope (its banner alone is not
            # enough: it can still exit, e.g. "Failed to allocate manager object")
            if host.init_pid() is not None:
                return
            if time.monotonic() - started > 5 and not host.running():
                problem = "the guest's processes exited during boot"
                break
            time.sleep(0.2)
        tail = (state / "supervisor.log").read_text(errors="replace")[-800:]
        console = self.console(uuid)[-800:]
        self.stop(uuid)
        raise GuestError(f"guest {spec.name}: {problem}; "
                         f"supervisor: {tail.strip() or '-'}; console: {console.strip() or '-'}")

    def stop(self, uuid: str) -> None:
        """Power off: kill every process, delete the guest's cgroup and namespace, unmount its
        root; the disk (upper layer) stays. Idempotent."""
        host = self.host(uuid)
        with _net_lock:
            try:
                host.stop(remove=False)
            except RuntimeError as exc:
                raise GuestError(str(exc)) from exc
            self._umount(uuid)
            spec = self.spec(uuid)
            if spec:
                self._release_network(spec.network)

    def delete(self, uuid: str) -> None:
        """Stop and remove the disk and state. Idempotent."""
        state = self.state_dir(uuid)
        if not state.exists():
            return
        self.stop(uuid)
        if mounts_under(state):
            raise GuestError(f"guest {guest_name(uuid)}: mounts remain under {state}")
        shutil.rmtree(state)

    def running(self, uuid: str) -> bool:
        return self.host(uuid).running()

    def console(self, uuid: str) -> str:
        path = self.state_dir(uuid) / "console.log"
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - CONSOLE_LIMIT))
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def uuids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name[len(GUEST_PREFIX):] for p in self.root.iterdir()
                      if p.name.startswith(GUEST_PREFIX) and (p / "guest.json").exists())

    def delete_all(self) -> list[str]:
        """Every guest, then every namespace of this runtime (devcloud down / --no-guests)."""
        gone = []
        for uuid in self.uuids():
            self.delete(uuid)
            gone.append(uuid)
        for ns in _namespaces():
            if ns.startswith(NET_PREFIX) or ns == PUBLIC_NS:
                _ip("netns", "del", ns, check=False)
        for point in mounts_under(self.root):
            _run(["umount", "-l", point], check=False)
        return gone

    # -- floating IPs -------------------------------------------------------------------------
    def sync_floating_ips(self, wanted: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
        """Make exactly these floating IPs reach their guests: {floating ip: (uuid, fixed ip)}.

        Level-based and idempotent: each network's bridge namespace gets a veth `qg` into the
        public namespace, the floating IPs as /32 addresses on it, and one nftables table
        (DNAT in, SNAT out) rewritten atomically. Returns {network prefix: {fip: fixed}} applied.
        """
        with _net_lock:
            return self._sync_floating_ips(wanted)

    def _sync_floating_ips(self, wanted: dict[str, tuple[str, str]]) -> dict[str, dict[str, str]]:
        per_net: dict[str, dict[str, str]] = {}
        for fip, (uuid, fixed) in sorted(wanted.items()):
            spec = self.spec(uuid)
            if spec is None or not public_address_ok(fip):
                continue
            per_net.setdefault(spec.network.prefix, {})[fip] = fixed
        existing = {ns[: -len("-ctl")] for ns in _namespaces() if ns.startswith(NET_PREFIX) and ns.endswith("-ctl")}
        # only the networks of this runtime's guests (another runtime's are not ours to rewire)
        own = {spec.network.prefix for spec in map(self.spec, self.uuids()) if spec is not None}
        if per_net:
            _ensure_public()
        for prefix in sorted(own & existing):
            _wire_network(prefix, per_net.get(prefix, {}))
        if not per_net and netns_exists(PUBLIC_NS) and not existing:
            _ip("netns", "del", PUBLIC_NS, check=False)  # shared: gone once no guest network is left
        return per_net

    @staticmethod
    def public_proxy_command(python: str | None = None) -> str:
        """ProxyCommand (%h %p) that connects from inside the public namespace (floating IPs)."""
        return Network(prefix="unused").proxy_command(python).replace(
            str(NETNS_DIR / "unused-ctl"), str(NETNS_DIR / PUBLIC_NS))

    # -- internals --------------------------------------------------------------------------
    def _mount(self, spec: GuestSpec) -> Path:
        state = self.state_dir(spec.uuid)
        root = state / "root"
        if mounts_under(root):
            return root
        base = self.base_for(spec.image_name)
        for sub in ("upper", "work", "root"):
            (state / sub).mkdir(exist_ok=True)
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={base},upperdir={state / 'upper'},workdir={state / 'work'}", str(root)])
        return root

    def _umount(self, uuid: str) -> None:
        for point in mounts_under(self.state_dir(uuid)):
            if _run(["umount", point], check=False).returncode != 0:
                _run(["umount", "-l", point], check=False)

    def _seed(self, spec: GuestSpec) -> None:
        root = self.state_dir(spec.uuid) / "root"
        seed = root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True, exist_ok=True)
        meta = {"instance-id": spec.uuid, "local-hostname": spec.hostname, **spec.meta_data}
        (seed / "meta-data").write_text(json.dumps(meta, indent=2) + "\n")  # JSON is YAML
        (seed / "user-data").write_text(spec.user_data or "#cloud-config\n{}\n")
        (root / "etc/hostname").write_text(spec.hostname + "\n")
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{spec.ip} {spec.hostname}\n")

    def _release_network(self, network: Network) -> None:
        """Delete the network's bridge namespace once no guest is attached to it."""
        lead = network.prefix + "-h-"
        if not any(ns.startswith(lead) for ns in _namespaces()):
            network.destroy()


def _ensure_public() -> None:
    """The external network `public`: a bridge holding its gateway address, nothing else."""
    if not netns_exists(PUBLIC_NS):
        _ip("netns", "add", PUBLIC_NS)
    _ip("-n", PUBLIC_NS, "link", "set", "lo", "up")
    if _ip("-n", PUBLIC_NS, "link", "show", "br0", check=False).returncode != 0:
        _ip("-n", PUBLIC_NS, "link", "add", "br0", "type", "bridge")
    prefix = ipaddress.ip_network(PUBLIC_CIDR).prefixlen
    if f" {PUBLIC_GATEWAY}/{prefix} " not in _ip("-n", PUBLIC_NS, "-o", "addr", "show", "dev", "br0").stdout:
        _ip("-n", PUBLIC_NS, "addr", "add", f"{PUBLIC_GATEWAY}/{prefix}", "dev", "br0")
    _ip("-n", PUBLIC_NS, "link", "set", "br0", "up")


def _nft_table(fips: dict[str, str]) -> str:
    pre = "".join(f"    ip daddr {fip} dnat to {fixed}\n" for fip, fixed in sorted(fips.items()))
    post = "".join(f'    oifname "qg" ip saddr {fixed} snat to {fip}\n' for fip, fixed in sorted(fips.items()))
    return ("table ip gcd_fip {}\ndelete table ip gcd_fip\n"
            "table ip gcd_fip {\n"
            "  chain pre {\n    type nat hook prerouting priority -100;\n" + pre + "  }\n"
            "  chain post {\n    type nat hook postrouting priority 100;\n" + post + "  }\n}\n")


def _wire_network(prefix: str, fips: dict[str, str]) -> None:
    """One network's floating IPs: veth into `public`, addresses, NAT rules (idempotent)."""
    ns = f"{prefix}-ctl"
    has_qg = _ip("-n", ns, "link", "show", "qg", check=False).returncode == 0
    if not fips:
        if has_qg:
            _ip("-n", ns, "link", "del", "qg", check=False)
            _run(["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "gcd_fip"], check=False)
        return
    if not has_qg:
        port = "p" + prefix[len(NET_PREFIX):][:10]
        _ip("-n", PUBLIC_NS, "link", "del", port, check=False)
        _ip("-n", PUBLIC_NS, "link", "add", port, "type", "veth", "peer", "name", "qg", "netns", ns)
        _ip("-n", PUBLIC_NS, "link", "set", port, "master", "br0")
        _ip("-n", PUBLIC_NS, "link", "set", port, "up")
        _ip("-n", ns, "link", "set", "qg", "up")
        _run(["ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
    have = set()
    for line in _ip("-n", ns, "-o", "-4", "addr", "show", "dev", "qg").stdout.splitlines():
        have.add(line.split()[3].split("/")[0])
    for fip in sorted(set(fips) - have):
        _ip("-n", ns, "addr", "add", f"{fip}/32", "dev", "qg")
    for fip in sorted(have - set(fips)):
        _ip("-n", ns, "addr", "del", f"{fip}/32", "dev", "qg", check=False)
    _ip("-n", ns, "route", "replace", PUBLIC_CIDR, "dev", "qg")
    _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=_nft_table(fips))


def _namespaces() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def guest_processes(runtime: Runtime) -> list[int]:
    """Every pid in any guest cgroup of this runtime (for leak checks)."""
    pids = []
    for uuid in runtime.uuids():
        pids += th_host._cgroup_procs(th_host.CGROUP_BASE / guest_name(uuid))
    base = th_host.CGROUP_BASE
    if base.exists():
        for cg in base.iterdir():
            if cg.name.startswith(GUEST_PREFIX):
                pids += th_host._cgroup_procs(cg)
    return sorted(set(pids))


def rss_kib(runtime: Runtime, uuid: str) -> int:
    """Resident memory of every process of one guest (supervisor + container)."""
    return rss_kib_of(th_host._cgroup_procs(th_host.CGROUP_BASE / guest_name(uuid)))


def public_address_ok(address: str) -> bool:
    net = ipaddress.ip_network(PUBLIC_CIDR)
    addr = ipaddress.ip_address(address)
    return addr in net and addr not in (net.network_address, net.broadcast_address) and address != PUBLIC_GATEWAY
