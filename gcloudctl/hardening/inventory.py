"""Ansible inventory from observed hosts: groups by tenant, role, zone and level; bastion hops.

Stage: pure (values in, text out; no I/O, no clock). Called by `gcloudctl inventory`,
`gcloudctl harden` and `audit-hosts` with the hosts the core's observe layer returns
(`gcloudctl.pipeline.observe_hosts`) or that a test host fixture describes.

Input host shape (plain dicts, as observed; `hardening.hosts.hosts_from_observed`):
    {"name", "role", "zones": [...], "fixed_ips": {net: ip}, "floating_ip": ip | None,
     "image", "status", "firewall": {"security_groups", "ingress", "egress", "tenant_subnets"}?}
Rules:
- only ACTIVE hosts with a valid IP address are listed (`select_hosts` says which were left out
  and why);
- **values from the cloud are Ansible-unsafe**: server names, roles and zones (`gc-role`/`gc-zone`
  metadata that project members can edit), images, group names are wrapped as
  `{"__ansible_unsafe": text}` (JSON; `render_inventory` writes `!unsafe` in YAML and refuses
  template syntax in INI, which cannot mark it), so `{{ lookup('pipe', ...) }}` in a server name
  is never templated on the control node. The inventory host name is the server name when it is
  a plain DNS-like label, else a sanitised label with a digest suffix (`host_key`). Addresses
  and firewall CIDRs are parsed by `ipaddress` and rendered canonically, so they need no mark;
- host firewall (level >= 3, `gc_firewall`): `gcloudctl_ingress` / `gcloudctl_egress` from the
  server's own security groups (`hardening.firewall`), SSH only from `gcloudctl_ssh_sources`
  (the catalog's admin sources, plus the bastion's fixed IPs for hosts behind it), the central
  log host `gcloudctl_log_target` (catalog `spec.logging`) admitted outbound;
- `ansible_host` is the floating IP, else the first fixed IP by network name;
- a host without a floating IP goes through the bastion (explicit, or the tenant's ACTIVE host
  with role `bastion` and a floating IP) with `ssh -W` as ProxyCommand;
- `proxy_command` (with %h %p) says how the controller reaches a first hop when it is not
  directly routable (e.g. test hosts inside network namespaces);
- every gcloudctl_* variable is a *host* variable, so it outranks the playbook's group_vars/all.
Output is deterministic (sorted), so golden files can pin it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass

import yaml

from gcloudctl.errors import InvalidInput
from gcloudctl.hardening.firewall import log_egress, ssh_sources

FORMATS = ("yaml", "ini", "json")
UNSAFE_KEY = "__ansible_unsafe"
_TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")
_PLAIN_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def unsafe(value) -> dict:
    """Mark a cloud-side string as never to be templated by Ansible (JSON inventory form)."""
    return {UNSAFE_KEY: str(value)}


def plain(value):
    """The text behind an unsafe mark (values without a mark pass through)."""
    if isinstance(value, dict) and set(value) == {UNSAFE_KEY}:
        return value[UNSAFE_KEY]
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def host_key(name: str) -> str:
    """The inventory host name for a server: its name when that is a plain label (letters,
    digits, `.`, `_`, `-`), else a sanitised label plus a digest of the real name, so a renamed
    server (`../../x`, `{{ ... }}`, `web[1:3]`) can neither template, expand nor traverse."""
    name = str(name)
    if _PLAIN_HOST.fullmatch(name) and ".." not in name:
        return name
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:40] or "server"
    return f"{label}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _is_ip(value) -> bool:
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return False


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
        elif not _is_ip(host_address(h)):
            left.append((h["name"], "address is not an IP address"))
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
        if h.get("role") == "bastion" and h.get("floating_ip") and _is_ip(h["floating_ip"]):
            return Bastion(host=h["floating_ip"], user=user, name=host_key(h["name"]))
    return None


def _rules(rules, peer_key: str) -> list[dict]:
    """Firewall rules re-validated for the template (CIDRs canonical, ports numeric, known protocols)."""
    out = []
    for r in rules or []:
        proto = str(r.get("proto", "tcp"))
        if proto not in ("tcp", "udp", "icmp", "ipv6-icmp", "any"):
            raise InvalidInput(f"firewall rule protocol {proto!r} is not tcp, udp, icmp, ipv6-icmp or any")
        peers = r.get(peer_key, r.get("sources", ["0.0.0.0/0"]))
        rule: dict = {"proto": proto}
        ports = r.get("ports", r.get("port"))
        if ports is not None and proto in ("tcp", "udp"):
            if not re.fullmatch(r"\d{1,5}(-\d{1,5})?", str(ports)):
                raise InvalidInput(f"firewall rule ports {ports!r}: expected 443 or 8000-8080")
            rule["ports"] = str(ports)
        try:
            rule[peer_key] = [str(ipaddress.ip_network(str(p), strict=False)) for p in peers]
        except ValueError as exc:
            raise InvalidInput(f"firewall rule {peer_key}: {exc}") from exc
        out.append(rule)
    return out


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
                    admin_sources: list[str] | None = None, log_target: dict | None = None) -> dict:
    """The inventory as a dict in Ansible's YAML inventory structure (JSON-able; cloud-side
    strings carry the unsafe mark, see the module docstring).

    `allowed_ports` ({role: [{proto, ports, sources}]}) adds ingress rules by role to what each
    host's `firewall` facts say (hosts described by hand, e.g. test hosts); `admin_sources` and
    `log_target` come from the platform catalog (`firewall.inventory_settings(catalog.spec)`).
    """
    active, _ = select_hosts(hosts)
    bastion = bastion or find_bastion(active, automation_user)
    bastion_host = next((h for h in active if bastion is not None and (
        host_key(h["name"]) == bastion.name or h.get("floating_ip") == bastion.host)), None)
    bastion_ips = sorted((bastion_host or {}).get("fixed_ips", {}).values()) if bastion_host else []
    hostvars: dict[str, dict] = {}
    groups: dict[str, list[str]] = {}
    for h in active:
        name = host_key(h["name"])
        is_bastion = bastion is not None and (bastion.name == name or bastion.host == h.get("floating_ip"))
        role = h.get("role") or "none"
        zones = sorted(str(z) for z in h.get("zones") or [])
        firewall = h.get("firewall") or {}
        v: dict = {
            "ansible_host": host_address(h),
            "ansible_user": automation_user,
            "gcloudctl_tenant": unsafe(tenant),
            "gcloudctl_server_name": unsafe(h["name"]),
            "gcloudctl_level": int(level),
            "gcloudctl_role": unsafe(role),
            "gcloudctl_zones": [unsafe(z) for z in zones],
            "gcloudctl_automation_user": automation_user,
        }
        if is_bastion:
            v["gcloudctl_is_bastion"] = True
        if key_file:
            v["ansible_ssh_private_key_file"] = key_file
        if firewall.get("security_groups"):
            v["gcloudctl_security_groups"] = [unsafe(g) for g in firewall["security_groups"]]
        ingress = _rules(firewall.get("ingress"), "sources") + _rules(
            (allowed_ports or {}).get(role, []), "sources")
        if ingress:
            v["gcloudctl_ingress"] = ingress
        egress = _rules(firewall.get("egress"), "destinations") + _rules(log_egress(log_target), "destinations")
        if egress:
            v["gcloudctl_egress"] = egress
        if admin_sources:
            behind = [] if is_bastion or bastion_host is None else bastion_ips
            v["gcloudctl_ssh_sources"] = ssh_sources(admin_sources, behind)
        if is_bastion and firewall.get("tenant_subnets"):
            v["gcloudctl_ssh_destinations"] = ssh_sources(firewall["tenant_subnets"])
        if log_target:
            v["gcloudctl_log_target"] = {"host": str(ipaddress.ip_address(str(log_target["host"]))),
                                         "port": int(log_target.get("port", 514)),
                                         "protocol": "udp" if log_target.get("protocol") == "udp" else "tcp"}
        if not h.get("floating_ip") and bastion is not None and not is_bastion:
            v["ansible_ssh_common_args"] = _common_args(
                _ssh_hop_command(bastion, proxy_command, known_hosts, key_file))
            v["gcloudctl_bastion"] = bastion.name or bastion.host
        elif proxy_command:
            v["ansible_ssh_common_args"] = _common_args(proxy_command)
        hostvars[name] = v
        for g in [group_name("tenant", tenant), group_name("role", role),
                  group_name("level", level), *[group_name("zone", z) for z in zones]]:
            groups.setdefault(g, []).append(name)
    children = {g: {"hosts": {n: None for n in sorted(members)}} for g, members in sorted(groups.items())}
    return {"all": {"hosts": {n: hostvars[n] for n in sorted(hostvars)}, "children": children}}


class _Dumper(yaml.SafeDumper):
    """YAML with `!unsafe` for marked values."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict):
    if set(data) == {UNSAFE_KEY}:
        return dumper.represent_scalar("!unsafe", data[UNSAFE_KEY], style="'")
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items())


_Dumper.add_representer(dict, _represent_dict)


class _Loader(yaml.SafeLoader):
    """Reads what `render_inventory` writes: `!unsafe` back into the JSON mark."""


_Loader.add_constructor("!unsafe", lambda loader, node: unsafe(loader.construct_scalar(node)))


def load_inventory(text: str) -> dict:
    """Parse an inventory this module rendered (YAML with `!unsafe`, or JSON) into the dict form."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def render_inventory(inventory: dict, fmt: str = "yaml") -> str:
    if fmt == "yaml":
        return yaml.dump(inventory, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                         allow_unicode=True)
    if fmt == "json":
        return json.dumps(inventory, indent=2) + "\n"
    if fmt == "ini":
        return _render_ini(inventory)
    raise ValueError(f"unknown inventory format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _ini_value(value) -> str:
    if isinstance(value, dict) and set(value) == {UNSAFE_KEY}:
        if _TEMPLATE_SYNTAX.search(value[UNSAFE_KEY]):
            raise InvalidInput(f"inventory value {value[UNSAFE_KEY]!r} holds template syntax that an INI inventory "
                               "cannot mark unsafe", hint="use --format yaml or json")
        value = value[UNSAFE_KEY]
    if isinstance(value, list):
        value = plain(value)
        if any(isinstance(v, str) and _TEMPLATE_SYNTAX.search(v) for v in value):
            raise InvalidInput("an inventory list holds template syntax that an INI inventory cannot mark unsafe",
                               hint="use --format yaml or json")
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
