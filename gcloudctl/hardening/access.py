"""How to reach the hosts of an inventory over SSH, and which host keys to trust.

Stage: glue between the pure inventory and the SSH driver; called by `harden` and `audit-hosts`.
It reads console logs (files or a callable) but never decides trust itself: that is
`drivers.ssh.trust_console`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable

from gcloudctl.drivers.ssh import SshTarget, trust_console


def _proxy_from_common_args(args: str | None) -> str | None:
    if not args:
        return None
    words = shlex.split(args)
    for i, word in enumerate(words):
        if word == "-o" and i + 1 < len(words) and words[i + 1].startswith("ProxyCommand="):
            return words[i + 1].split("=", 1)[1]
        if word.startswith("-oProxyCommand="):
            return word.split("=", 1)[1]
    return None


def ssh_targets(inventory: dict, *, key_file: str | None = None) -> dict[str, SshTarget]:
    """One SshTarget per inventory host; hosts behind a bastion hop through it (direct-tcpip)."""
    hosts = inventory["all"]["hosts"]
    direct: dict[str, SshTarget] = {}
    for name, v in hosts.items():
        direct[name] = SshTarget(
            host=v["ansible_host"], user=v.get("ansible_user", "gcadmin"), port=int(v.get("ansible_port", 22)),
            key_file=key_file or v.get("ansible_ssh_private_key_file"),
            proxy_command=None if v.get("gcloudctl_bastion") else _proxy_from_common_args(v.get("ansible_ssh_common_args")),
            name=name)
    targets = {}
    for name, v in hosts.items():
        bastion = v.get("gcloudctl_bastion")
        if bastion:
            hop = direct.get(bastion) or next((t for t in direct.values() if t.host == bastion), None)
            if hop is None:
                raise ValueError(f"{name}: bastion {bastion} is not in the inventory")
            targets[name] = direct[name].via(hop)
        else:
            targets[name] = direct[name]
    return targets


def console_from_dir(directory: Path) -> Callable[[str], str | None]:
    """Console logs saved as DIR/<host>.log or DIR/<host>/console.log (test hosts' layout)."""
    def read(name: str) -> str | None:
        for path in (directory / f"{name}.log", directory / name / "console.log"):
            if path.exists():
                return path.read_bytes().decode("utf-8", "replace")
        return None
    return read


def trust_consoles(targets: dict[str, SshTarget], known_hosts: Path,
                   console: Callable[[str], str | None]) -> list[str]:
    """Write console-verified keys for every host whose console is available; returns those hosts."""
    done = []
    for name, target in sorted(targets.items()):
        text = console(name)
        if text:
            trust_console(known_hosts, target.host, text, target.port)
            done.append(name)
    return done
