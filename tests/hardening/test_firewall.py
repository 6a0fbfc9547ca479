"""The host firewall is derived from the tenant's own security groups (table-driven), carried as
host variables with the catalog's admin sources and log host, and cloud-side strings stay
Ansible-unsafe in the inventory."""

import json

import pytest

from gcloudctl.errors import InvalidInput
from gcloudctl.hardening.firewall import inventory_settings, server_firewalls
from gcloudctl.hardening.hosts import hosts_from_observed
from gcloudctl.hardening.inventory import build_inventory, host_key, load_inventory, plain, render_inventory
from gcloudctl.resources import Address, Kind
from tests.hardening.tenant_state import Server, Tenant

WEB1 = Server("web-1", "10.0.1.11", ["web"], role="web", zone="dmz")
WEB2 = Server("web-2", "10.0.1.12", ["web"], role="web", zone="dmz")
DB1 = Server("db-1", "10.0.3.11", ["db"], role="db", zone="db")

# (id, reason, groups, servers, server to look at, expected ingress, expected egress)
CASES = [
    ("web-443-anywhere", "a published web port is open to everyone",
     {"web": [("ingress", "tcp", 443, 443, "0.0.0.0/0")]}, [WEB1], "web-1",
     [{"proto": "tcp", "ports": "443", "sources": ["0.0.0.0/0"]}], []),
    ("remote-group", "a remote group means the fixed IPs of the ports in that group",
     {"web": [], "db": [("ingress", "tcp", 5432, 5432, None, "web")]}, [WEB1, WEB2, DB1], "db-1",
     [{"proto": "tcp", "ports": "5432", "sources": ["10.0.1.11/32", "10.0.1.12/32"]}], []),
    ("remote-group-empty", "a remote group with no ports opens nothing",
     {"db": [("ingress", "tcp", 5432, 5432, None, "web")], "web": []}, [DB1], "db-1", [], []),
    ("port-range-udp", "ranges stay ranges",
     {"web": [("ingress", "udp", 8000, 8080, "10.1.0.0/16")]}, [WEB1], "web-1",
     [{"proto": "udp", "ports": "8000-8080", "sources": ["10.1.0.0/16"]}], []),
    ("any-protocol", "protocol any, no ports: everything from that source",
     {"web": [("ingress", None, None, None, "10.2.0.0/16")]}, [WEB1], "web-1",
     [{"proto": "any", "sources": ["10.2.0.0/16"]}], []),
    ("ipv6", "IPv6 rules keep their family",
     {"web": [("ingress", "tcp", 443, 443, "::/0")]}, [WEB1], "web-1",
     [{"proto": "tcp", "ports": "443", "sources": ["::/0"]}], []),
    ("icmp", "icmp has no ports",
     {"web": [("ingress", "icmp", None, None, "10.0.0.0/8")]}, [WEB1], "web-1",
     [{"proto": "icmp", "sources": ["10.0.0.0/8"]}], []),
    ("egress-declared", "egress rules become the allowed destinations",
     {"web": [("egress", "tcp", 5432, 5432, "10.0.3.0/24"), ("egress", "udp", 53, 53, "10.0.0.2/32")]},
     [WEB1], "web-1", [],
     [{"proto": "udp", "ports": "53", "destinations": ["10.0.0.2/32"]},
      {"proto": "tcp", "ports": "5432", "destinations": ["10.0.3.0/24"]}]),
    ("merge-two-groups", "same protocol and port from two groups: one rule, both sources",
     {"web": [("ingress", "tcp", 443, 443, "10.9.0.0/16")], "ops": [("ingress", "tcp", 443, 443, "10.8.0.0/16")]},
     [Server("web-1", "10.0.1.11", ["web", "ops"])], "web-1",
     [{"proto": "tcp", "ports": "443", "sources": ["10.8.0.0/16", "10.9.0.0/16"]}], []),
    ("other-servers-groups", "rules of a group the server does not use do not leak onto it",
     {"web": [("ingress", "tcp", 443, 443, "0.0.0.0/0")], "db": [("ingress", "tcp", 5432, 5432, "0.0.0.0/0")]},
     [WEB1, DB1], "db-1", [{"proto": "tcp", "ports": "5432", "sources": ["0.0.0.0/0"]}], []),
    ("no-groups", "a server without groups gets nothing but the platform's own rules",
     {"web": [("ingress", "tcp", 443, 443, "0.0.0.0/0")]}, [Server("lone", "10.0.5.5", [])], "lone", [], []),
    ("other-protocols", "protocols the template cannot express (gre) are not opened",
     {"web": [("ingress", "gre", None, None, "0.0.0.0/0")]}, [WEB1], "web-1", [], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_firewall_from_security_groups(case):
    _id, _reason, groups, servers, look, ingress, egress = case
    facts = server_firewalls(Tenant(groups=groups, servers=servers).observed())
    got = facts[Address(Kind.SERVER, look)]
    assert (got["ingress"], got["egress"]) == (ingress, egress)


def _l3_hosts():
    tenant = Tenant(groups={"web": [("ingress", "tcp", 443, 443, "0.0.0.0/0")], "bastion": [], "app": []},
                    subnets={"app": "10.0.1.0/24", "mgmt": "10.0.0.0/24"},
                    servers=[WEB1, Server("jump", "10.0.0.5", ["bastion"], role="bastion", zone="mgmt",
                                          network="mgmt", floating_ip="203.0.113.5")])
    hosts, level = hosts_from_observed(tenant.observed(), tenant.owner)
    return hosts, level


def test_host_vars_carry_the_firewall_the_admin_sources_and_the_log_host():
    hosts, level = _l3_hosts()
    assert level == 3
    inv = build_inventory("moh-test", level, hosts, admin_sources=["192.0.2.0/28"],
                          log_target={"host": "192.0.2.50", "port": 5514, "protocol": "tcp"})
    web, jump = inv["all"]["hosts"]["web-1"], inv["all"]["hosts"]["jump"]
    assert web["gcloudctl_ingress"] == [{"proto": "tcp", "ports": "443", "sources": ["0.0.0.0/0"]}]
    # SSH: the admin sources, plus the bastion for the host behind it; the bastion only the admin sources
    assert web["gcloudctl_ssh_sources"] == ["10.0.0.5/32", "192.0.2.0/28"]
    assert jump["gcloudctl_ssh_sources"] == ["192.0.2.0/28"]
    # the bastion may open SSH to the tenant's subnets (its ProxyCommand hops)
    assert jump["gcloudctl_ssh_destinations"] == ["10.0.0.0/24", "10.0.1.0/24"]
    assert "gcloudctl_ssh_destinations" not in web
    # the central log host is the one outbound flow besides the groups' egress rules
    assert web["gcloudctl_egress"] == [{"proto": "tcp", "ports": "5514", "destinations": ["192.0.2.50/32"]}]
    assert web["gcloudctl_log_target"] == {"host": "192.0.2.50", "port": 5514, "protocol": "tcp"}
    assert plain(web["gcloudctl_security_groups"]) == ["web"]


def test_without_admin_sources_no_ssh_sources_are_invented():
    hosts, level = _l3_hosts()
    v = build_inventory("moh-test", level, hosts)["all"]["hosts"]["web-1"]
    assert "gcloudctl_ssh_sources" not in v  # the firewall role then refuses to run (lock-out guard)


@pytest.mark.parametrize("rule, reason", [
    ({"proto": "tcp", "ports": "443", "sources": ["0.0.0.0/0; flush ruleset"]}, "a source that is not a CIDR"),
    ({"proto": "tcp", "ports": "443 accept", "sources": ["0.0.0.0/0"]}, "ports that are not numbers"),
    ({"proto": "tcp; flush ruleset", "sources": ["0.0.0.0/0"]}, "an unknown protocol"),
])
def test_firewall_values_that_could_inject_rules_are_refused(rule, reason):
    hosts, level = _l3_hosts()
    with pytest.raises(InvalidInput):
        build_inventory("moh-test", level, hosts, allowed_ports={"web": [rule]}, admin_sources=["192.0.2.0/28"])


def test_inventory_settings_come_from_the_platform_catalog():
    from gcloudctl.pipeline import Config

    settings = inventory_settings(Config.load().catalog.spec)
    assert settings == {"admin_sources": ["172.24.4.1/32"],
                        "log_target": {"host": "172.24.4.1", "port": 5514, "protocol": "tcp"}}


INJECTION = "{{ lookup('pipe', 'touch /tmp/gcloudctl-pwned') }}"


def test_cloud_side_strings_are_marked_unsafe_in_every_form():
    tenant = Tenant(groups={INJECTION: [("ingress", "tcp", 443, 443, "0.0.0.0/0")]},
                    servers=[Server(INJECTION, "10.0.1.11", [INJECTION], role=INJECTION, zone=INJECTION)])
    hosts, level = hosts_from_observed(tenant.observed(), tenant.owner)
    inv = build_inventory("moh-test", level, hosts, admin_sources=["192.0.2.0/28"])
    (name, v), = inv["all"]["hosts"].items()
    assert name == host_key(INJECTION) and "{" not in name and "'" not in name and " " not in name
    for key in ("gcloudctl_server_name", "gcloudctl_role"):
        assert v[key] == {"__ansible_unsafe": INJECTION}
    assert v["gcloudctl_zones"] == [{"__ansible_unsafe": INJECTION}]
    assert v["gcloudctl_security_groups"] == [{"__ansible_unsafe": INJECTION}]
    text = render_inventory(inv, "yaml")
    assert text.count("!unsafe '{{ lookup(''pipe'', ''touch /tmp/gcloudctl-pwned'') }}'") == 4
    assert load_inventory(text) == inv
    assert json.loads(render_inventory(inv, "json")) == inv
    with pytest.raises(InvalidInput):
        render_inventory(inv, "ini")


@pytest.mark.parametrize("name, reason", [
    ("web-1", "a plain label stays as it is"),
    ("../../../../tmp/x", "path traversal"),
    ("web[1:3]", "an Ansible host range pattern"),
    ("a b", "a space"),
    ("..", "dots only"),
])
def test_host_key_is_a_plain_label(name, reason):
    key = host_key(name)
    assert key == name if name == "web-1" else (key != name and "/" not in key and "[" not in key and " " not in key
                                                 and not key.startswith("."))
    assert host_key(name) == key  # deterministic
