"""Ansible inventory from observed hosts: groups by tenant, role, zone and level; bastion hops.

Stage: pure (values in, text out; no I/O, no clock). Called by `gcloudctl inventory`,
`gcloudctl harden` and `audit-hosts` with the hosts the core's observe layer returns
(`gcloudctl.pipeline.observe_hosts`) or that a test host fixture describes.

Input host shape (plain dicts, as observed):
    {"name", "role", "zones": [...], "fixed_ips": {net: ip}, "floating_ip": ip | None,
     "image", "status"}
Rules:
- only ACTIVE hosts are listed (`select_hosts` says which were left out and why);
- `ansible_host` is the floating IP, else the first fixed IP by network name;
- a host without a floating IP goes through the bastion (explicit, or the tenant's ACTIVE host
  with role `bastion` and a floating IP) with `ssh -W` as ProxyCommand;
- `proxy_command` (with %h %p) says how the controller reaches a first hop when it is not
  directly routable (e.g. test hosts inside network namespaces);
- every gcloudctl_* variable is a *host* variable, so it outranks the playbook's group_vars/all.
Output is deterministic (sorted), so golden files can pin it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

import yaml

FORMATS = ("yaml", "ini", "json")


@dataclass(frozen=True)
class Bastion:
    host: str
    user: str
    port: int = 22
    name: str | None = None


def group_name(prefix: str, value: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', str(value))}"


def select_hosts(hosts: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """(ACTIVE hosts sorted by name, [(name, reason) left out])."""
    kept, left = [], []
    for h in sorted(hosts, key=lambda h: h["name"]):
        status = str(h.get("status", "")).upper()
        if status != "ACTIVE":
            left.append((h["name"], f"status {status or 'unknown'}"))
        elif not h.get("floating_ip") and not h.get("fixed_ips"):
            left.append((h["name"], "no address"))
        else:
            kept.append(h)
    return kept, left


def host_address(host: dict) -> str:
    if host.get("floating_ip"):
        return host["floating_ip"]
    nets = host.get("fixed_ips") or {}
    return nets[sorted(nets)[0]]


def find_bastion(hosts: list[dict], user: str) -> Bastion | None:
    for h in hosts:
        if h.get("role") == "bastion" and h.get("floating_ip"):
            return Bastion(host=h["floating_ip"], user=user, name=h["name"])
    return None


def _ssh_hop_command(bastion: Bastion, proxy_command: str | None, known_hosts: str | None,
                     key_file: str | None) -> str:
    """ProxyCommand reaching a target through the bastion (`ssh -W %h:%p`)."""
    args = ["ssh", "-W", "%h:%p", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if known_hosts:
        args += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if key_file:
        args += ["-i", key_file]
    if bastion.port != 22:
        args += ["-p", str(bastion.port)]
    if proxy_command:
        # the outer ssh expands %h/%p, so the bastion's own hop names it explicitly
        inner = proxy_command.replace("%h", bastion.host).replace("%p", str(bastion.port))
        args += ["-o", f"ProxyCommand={inner}"]
    args.append(f"{bastion.user}@{bastion.host}")
    return " ".join(_quote(a) for a in args)


def _quote(word: str) -> str:
    """Shell-quote only when needed (keeps %h:%p and ~/paths readable; ~ still expands)."""
    return word if re.fullmatch(r"[\w@%+=:,./~-]+", word) else shlex.quote(word)


def _common_args(command: str) -> str:
    return f"-o ProxyCommand={_quote(command)}"


def build_inventory(tenant: str, level: int, hosts: list[dict], *, automation_user: str = "gcadmin",
                    bastion: Bastion | None = None, proxy_command: str | None = None,
                    key_file: str | None = None, known_hosts: str | None = None,
                    allowed_ports: dict[str, list[dict]] | None = None,
                    admin_sources: list[str] | None = None) -> dict:
    """The inventory as a dict in Ansible's YAML inventory structure."""
    active, _ = select_hosts(hosts)
    bastion = bastion or find_bastion(active, automation_user)
    hostvars: dict[str, dict] = {}
    groups: dict[str, list[str]] = {}
    for h in active:
        name = h["name"]
        is_bastion = bastion is not None and (bastion.name == name or bastion.host == h.get("floating_ip"))
        v: dict = {
            "ansible_host": host_address(h),
            "ansible_user": automation_user,
            "gcloudctl_tenant": tenant,
            "gcloudctl_level": int(level),
            "gcloudctl_role": h.get("role") or "none",
            "gcloudctl_zones": sorted(h.get("zones") or []),
            "gcloudctl_automation_user": automation_user,
        }
        if is_bastion:
            v["gcloudctl_is_bastion"] = True
        if key_file:
            v["ansible_ssh_private_key_file"] = key_file
        ports = (allowed_ports or {}).get(h.get("role") or "", [])
        if ports:
            v["gcloudctl_allowed_ports"] = ports
        if admin_sources:
            v["gcloudctl_admin_sources"] = list(admin_sources)
        if not h.get("floating_ip") and bastion is not None and not is_bastion:
            v["ansible_ssh_common_args"] = _common_args(
                _ssh_hop_command(bastion, proxy_command, known_hosts, key_file))
            v["gcloudctl_bastion"] = bastion.name or bastion.host
        elif proxy_command:
            v["ansible_ssh_common_args"] = _common_args(proxy_command)
        hostvars[name] = v
        for g in [group_name("tenant", tenant), group_name("role", v["gcloudctl_role"]),
                  group_name("level", level), *[group_name("zone", z) for z in v["gcloudctl_zones"]]]:
            groups.setdefault(g, []).append(name)
    children = {g: {"hosts": {n: None for n in sorted(members)}} for g, members in sorted(groups.items())}
    return {"all": {"hosts": {n: hostvars[n] for n in sorted(hostvars)}, "children": children}}


def render_inventory(inventory: dict, fmt: str = "yaml") -> str:
    if fmt == "yaml":
        return yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False, width=1000)
    if fmt == "json":
        return json.dumps(inventory, indent=2) + "\n"
    if fmt == "ini":
        return _render_ini(inventory)
    raise ValueError(f"unknown inventory format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _ini_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return shlex.quote(json.dumps(value, separators=(",", ":")))
    text = str(value)
    return shlex.quote(text) if re.search(r"[\s'\"#;=]", text) else text


def _render_ini(inventory: dict) -> str:
    all_ = inventory["all"]
    lines = ["# generated by gcloudctl; do not edit", "[all]"]
    for name, v in all_["hosts"].items():
        lines.append(" ".join([name, *(f"{k}={_ini_value(val)}" for k, val in v.items())]))
    for group, body in all_["children"].items():
        lines += ["", f"[{group}]", *body["hosts"].keys()]
    return "\n".join(lines) + "\n"
