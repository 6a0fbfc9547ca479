"""Inventory hosts from an observation of the tenant: what `inventory`, `harden`, `audit-hosts`
and the apply use case hand to the inventory builder.

Stage: pure (reads an `ObservedState`, returns plain dicts). Callers: `gcloudctl.pipeline`.
It must not call a driver: the pipeline observes, this only reads the observation.
"""

from __future__ import annotations

from gcloudctl import naming
from gcloudctl.hardening.firewall import server_firewalls, tenant_subnets
from gcloudctl.ownership import Owner
from gcloudctl.resources import Address, Kind, ObservedState


def hosts_from_observed(observed: ObservedState, owner: Owner) -> tuple[list[dict], int | None]:
    """(hosts, level): the tenant's servers as inventory hosts (name, id, role, zones, fixed and
    floating IPs, image, status, and `firewall`: the server's security groups as host firewall
    facts, see `hardening.firewall.server_firewalls`, plus the tenant's subnets), and the
    classification level from the project's `gc-level=` tag (None when the project or the tag
    is missing). Every string here may come from project members (names, metadata): the
    inventory builder marks them unsafe for Ansible templating."""

    project = observed.resources.get(Address(Kind.PROJECT, owner.tenant))
    level = naming.level_from_tags(project.attrs.get("tags")) if project else None
    fip_by_port = {}
    for res in observed.resources.values():
        if res.address.kind is Kind.FLOATING_IP and res.attrs.get("port") is not None:
            fip_by_port[str(res.attrs["port"])] = res.extra.get("floating_ip_address")
    firewalls = server_firewalls(observed)
    subnets = tenant_subnets(observed)
    hosts = []
    for res in sorted(observed.resources.values(), key=lambda r: r.address.name):
        if res.address.kind is not Kind.SERVER:
            continue
        meta = res.attrs.get("metadata") or {}
        fixed = {net: next((a.get("addr") for a in addrs if a.get("OS-EXT-IPS:type", "fixed") == "fixed"), None)
                 for net, addrs in (res.extra.get("addresses") or {}).items()}
        floating = next((fip_by_port[str(p)] for p in res.attrs.get("ports") or [] if str(p) in fip_by_port), None)
        hosts.append({"name": res.attrs["name"], "id": res.id, "role": meta.get(naming.META_ROLE, res.attrs["name"]),
                      "zones": [meta[naming.META_ZONE]] if meta.get(naming.META_ZONE) else [],
                      "fixed_ips": fixed, "floating_ip": floating, "image": res.attrs.get("image"),
                      "status": res.status,
                      "firewall": {**firewalls.get(res.address, {"security_groups": [], "ingress": [], "egress": []}),
                                   "tenant_subnets": subnets}})
    return hosts, level
