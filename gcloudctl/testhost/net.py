"""Network namespaces for test hosts: one controller namespace with a bridge, one namespace per host.

Stage: test infrastructure. Every link and address is created *inside* namespaces this module
creates (`ip -n NS ...`, veth peers born in their target namespace); the machine's own network
namespace is never given an interface, address or route. There is no route out of the bridge.

Reaching a host from the machine: clients connect through `proxy_command` (OpenSSH/paramiko
ProxyCommand), a tiny relay started inside the controller namespace. The same mechanism serves
paramiko, the `ssh` binary that ansible uses, and bastion chains (the bastion is reached via the
relay, the target via the bastion).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
RELAY = Path(__file__).with_name("relay.py")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


@dataclass(frozen=True)
class Network:
    """A bridge inside the controller namespace `<prefix>-ctl`; hosts get `<prefix>-h-<name>`."""

    prefix: str = "gct"
    cidr: str = "10.231.0.0/24"

    @property
    def controller_ns(self) -> str:
        return f"{self.prefix}-ctl"

    @property
    def bridge(self) -> str:
        return "br0"

    @property
    def gateway(self) -> str:
        net = ipaddress.ip_network(self.cidr)
        return str(net.network_address + 1)

    def host_ns(self, host: str) -> str:
        return f"{self.prefix}-h-{host}"

    def check_address(self, ip: str) -> None:
        """Only addresses inside this private bridge may be targets."""
        net = ipaddress.ip_network(self.cidr)
        addr = ipaddress.ip_address(ip)
        if addr not in net or addr in (net.network_address, net.broadcast_address) or str(addr) == self.gateway:
            raise ValueError(f"{ip} is not a usable host address in {self.cidr}")

    def ensure(self) -> None:
        """Create the controller namespace and its bridge (idempotent)."""
        ns = self.controller_ns
        if not netns_exists(ns):
            _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        if _ip("-n", ns, "link", "show", self.bridge, check=False).returncode != 0:
            _ip("-n", ns, "link", "add", self.bridge, "type", "bridge")
        prefix = ipaddress.ip_network(self.cidr).prefixlen
        addrs = _ip("-n", ns, "-o", "addr", "show", "dev", self.bridge).stdout
        if f" {self.gateway}/{prefix} " not in addrs:
            _ip("-n", ns, "addr", "add", f"{self.gateway}/{prefix}", "dev", self.bridge)
        _ip("-n", ns, "link", "set", self.bridge, "up")

    def attach(self, host: str, ip: str) -> str:
        """Create the host's namespace and a veth (eth0 inside, port on the bridge); returns ns name."""
        self.check_address(ip)
        self.ensure()
        ns = self.host_ns(host)
        port = "v" + hashlib.sha1(f"{self.prefix}/{host}".encode()).hexdigest()[:10]
        if not netns_exists(ns):
            _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        if _ip("-n", ns, "link", "show", "eth0", check=False).returncode != 0:
            _ip("-n", self.controller_ns, "link", "del", port, check=False)
            _ip("-n", self.controller_ns, "link", "add", port, "type", "veth",
                "peer", "name", "eth0", "netns", ns)
        prefix = ipaddress.ip_network(self.cidr).prefixlen
        _ip("-n", ns, "addr", "flush", "dev", "eth0")
        _ip("-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", self.controller_ns, "link", "set", port, "master", self.bridge)
        _ip("-n", self.controller_ns, "link", "set", port, "up")
        return ns

    def detach(self, host: str) -> None:
        """Delete the host's namespace (its veth goes with it). Idempotent."""
        ns = self.host_ns(host)
        if netns_exists(ns):
            _ip("netns", "del", ns, check=False)

    def destroy(self) -> None:
        """Delete the controller namespace (call after every host is detached)."""
        if netns_exists(self.controller_ns):
            _ip("netns", "del", self.controller_ns, check=False)

    def proxy_command(self, python: str | None = None) -> str:
        """A ProxyCommand (with %h %p) that opens a TCP stream from inside the controller namespace."""
        python = python or sys.executable
        return " ".join([
            "nsenter", f"--net={NETNS_DIR / self.controller_ns}",
            shlex.quote(python), "-I", shlex.quote(str(RELAY)), "%h", "%p",
        ])

    def controller_exec(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a command inside the controller namespace (e.g. a probe)."""
        return subprocess.run(["nsenter", f"--net={NETNS_DIR / self.controller_ns}", *argv], **kw)


def is_root() -> bool:
    return os.geteuid() == 0
