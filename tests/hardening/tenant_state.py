"""Build an `ObservedState` of a tenant by hand, in the shape `drivers.openstack_state` observes
(project with its gc-level tag, security groups and rules, subnets, ports with their fixed IPs and
groups, servers with their ports, addresses and gc-role/gc-zone metadata). Used by the firewall
unit tests and the test-host fixtures, so both go through `hosts_from_observed` like the cloud path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gcloudctl import naming
from gcloudctl.ownership import Owner
from gcloudctl.resources import Address, Kind, ObservedState, Ref, Resource


@dataclass
class Server:
    name: str
    ip: str
    groups: list[str]
    role: str = "app"
    zone: str = "app"
    network: str = "app"
    floating_ip: str | None = None
    status: str = "ACTIVE"


@dataclass
class Tenant:
    name: str = "moh-test"
    level: int = 3
    # group name -> [(direction, protocol|None, port_min, port_max, remote_ip_prefix|None, remote_group|None)]
    groups: dict[str, list[tuple]] = field(default_factory=dict)
    subnets: dict[str, str] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    ethertype: str = "IPv4"

    @property
    def owner(self) -> Owner:
        return Owner(self.name, "MOH", "MOH")

    def observed(self) -> ObservedState:
        res: dict[Address, Resource] = {}

        def add(kind, name, attrs, **kw):
            res[Address(kind, name)] = Resource(Address(kind, name), attrs, **kw)

        add(Kind.PROJECT, self.name, {"name": self.name, "tags": [naming.LEVEL_TAG_PREFIX + str(self.level)]},
            id="p1")
        for net, cidr in self.subnets.items():
            add(Kind.SUBNET, net, {"name": net, "cidr": cidr}, id=f"sub-{net}")
        for group, rules in self.groups.items():
            add(Kind.SECURITY_GROUP, group, {"name": group}, id=f"sg-{group}")
            for i, rule in enumerate(rules):
                direction, proto, low, high, prefix, remote_group = (tuple(rule) + (None,) * 6)[:6]
                ethertype = "IPv6" if prefix and ":" in prefix else self.ethertype
                add(Kind.SECURITY_GROUP_RULE, f"{group}/{i}", {
                    "security_group": Ref(Address(Kind.SECURITY_GROUP, group)), "direction": direction,
                    "ethertype": ethertype, "protocol": proto, "port_min": low, "port_max": high,
                    "remote_ip_prefix": prefix,
                    "remote_group": Ref(Address(Kind.SECURITY_GROUP, remote_group)) if remote_group else None})
        for s in self.servers:
            port = f"{s.name}.{s.network}"
            add(Kind.PORT, port, {"name": port, "security_groups": [Ref(Address(Kind.SECURITY_GROUP, g)) for g in s.groups]},
                id=f"port-{s.name}", extra={"fixed_ips": [s.ip]})
            add(Kind.SERVER, s.name, {
                "name": s.name, "image": "debian-12", "ports": [Ref(Address(Kind.PORT, port))],
                "metadata": {naming.META_ROLE: s.role, naming.META_ZONE: s.zone}},
                id=f"srv-{s.name}", status=s.status,
                extra={"addresses": {s.network: [{"addr": s.ip, "OS-EXT-IPS:type": "fixed"}]}})
            if s.floating_ip:
                add(Kind.FLOATING_IP, s.name, {"port": Ref(Address(Kind.PORT, port))}, id=f"fip-{s.name}",
                    extra={"floating_ip_address": s.floating_ip})
        return ObservedState(tenant=self.name, resources=res, project_id="p1")
