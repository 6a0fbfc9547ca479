"""Inventory builder: golden output per format, and Ansible itself reads what we write."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcloudctl.hardening.inventory import Bastion, build_inventory, plain, render_inventory, select_hosts

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("GCLOUDCTL_UPDATE_GOLDEN") == "1"

# Servers as the core's observe layer returns them for a level-3 tenant (devcloud shape).
L3_HOSTS = [
    {"name": "moh-web-1", "role": "web", "zones": ["dmz"], "fixed_ips": {"moh-dmz": "10.20.1.11"},
     "floating_ip": "203.0.113.21", "image": "debian-12", "status": "ACTIVE"},
    {"name": "moh-app-1", "role": "app", "zones": ["app"], "fixed_ips": {"moh-app": "10.20.2.11"},
     "floating_ip": None, "image": "debian-12", "status": "ACTIVE"},
    {"name": "moh-app-2", "role": "app", "zones": ["app"], "fixed_ips": {"moh-app": "10.20.2.12"},
     "floating_ip": None, "image": "debian-12", "status": "ACTIVE"},
    {"name": "moh-db-1", "role": "db", "zones": ["db"], "fixed_ips": {"moh-db": "10.20.3.11", "moh-backup": "10.20.9.11"},
     "floating_ip": None, "image": "debian-12", "status": "ACTIVE"},
    {"name": "moh-bastion", "role": "bastion", "zones": ["mgmt"], "fixed_ips": {"moh-mgmt": "10.20.0.5"},
     "floating_ip": "203.0.113.5", "image": "debian-12", "status": "ACTIVE"},
    {"name": "moh-batch-1", "role": "app", "zones": ["app"], "fixed_ips": {}, "floating_ip": None,
     "image": "debian-12", "status": "BUILD"},
]
L1_HOSTS = [
    {"name": "edu-portal", "role": "web", "zones": ["dmz", "app"], "fixed_ips": {"edu-net": "10.30.0.10"},
     "floating_ip": "198.51.100.7", "image": "ubuntu-24.04", "status": "ACTIVE"},
]

CASES = {
    "l3-bastion": dict(tenant="moh", level=3, hosts=L3_HOSTS, kwargs=dict(
        key_file="~/.ssh/moh_gcadmin", known_hosts="~/.local/state/gcloudctl/known_hosts/moh",
        allowed_ports={"web": [{"port": 443, "proto": "tcp", "sources": ["0.0.0.0/0"]}]},
        admin_sources=["10.20.0.0/24"])),
    "l1-direct": dict(tenant="edu", level=1, hosts=L1_HOSTS, kwargs={}),
}


def _build(case):
    c = CASES[case]
    return build_inventory(c["tenant"], c["level"], c["hosts"], **c["kwargs"])


@pytest.mark.parametrize("case, fmt", [("l3-bastion", "yaml"), ("l3-bastion", "ini"), ("l3-bastion", "json"),
                                       ("l1-direct", "yaml"), ("l1-direct", "ini")])
def test_golden(case, fmt):
    text = render_inventory(_build(case), fmt)
    path = GOLDEN / f"inventory-{case}.{fmt}"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"regenerate with GCLOUDCTL_UPDATE_GOLDEN=1 after reviewing {path}"


def test_output_is_independent_of_input_order():
    shuffled = list(reversed(L3_HOSTS))
    assert build_inventory("moh", 3, shuffled) == build_inventory("moh", 3, L3_HOSTS)


def test_non_active_servers_are_left_out_with_a_reason():
    kept, left = select_hosts(L3_HOSTS)
    assert [h["name"] for h in kept] == ["moh-app-1", "moh-app-2", "moh-bastion", "moh-db-1", "moh-web-1"]
    assert left == [("moh-batch-1", "status BUILD")]


def test_private_hosts_hop_through_the_bastion_and_public_ones_do_not():
    hosts = _build("l3-bastion")["all"]["hosts"]
    assert hosts["moh-db-1"]["ansible_host"] == "10.20.9.11"  # first network by name: moh-backup
    assert "ssh -W %h:%p" in hosts["moh-app-1"]["ansible_ssh_common_args"]
    assert "gcadmin@203.0.113.5" in hosts["moh-app-1"]["ansible_ssh_common_args"]
    assert hosts["moh-app-1"]["gcloudctl_bastion"] == "moh-bastion"
    assert "ansible_ssh_common_args" not in hosts["moh-web-1"]
    assert hosts["moh-bastion"]["gcloudctl_is_bastion"] is True
    assert hosts["moh-web-1"]["gcloudctl_ingress"] == [{"proto": "tcp", "ports": "443", "sources": ["0.0.0.0/0"]}]
    # SSH: the admin sources, and for hosts behind the bastion also the bastion's own address
    assert hosts["moh-web-1"]["gcloudctl_ssh_sources"] == ["10.20.0.0/24", "10.20.0.5/32"]
    assert hosts["moh-bastion"]["gcloudctl_ssh_sources"] == ["10.20.0.0/24"]


def test_explicit_bastion_and_first_hop_proxy_compose():
    inv = build_inventory("t", 4, L1_HOSTS[:0] + [dict(L3_HOSTS[1])], bastion=Bastion("192.0.2.9", "ops", name="jump"),
                          proxy_command="nsenter --net=/run/netns/x relay %h %p")
    args = inv["all"]["hosts"]["moh-app-1"]["ansible_ssh_common_args"]
    # the bastion's own hop is spelled out (the outer ssh expands %h/%p), the target's stays %h:%p
    assert "relay 192.0.2.9 22" in args and "-W %h:%p" in args and "ops@192.0.2.9" in args


@pytest.mark.parametrize("fmt", ["yaml", "ini", "json"])
def test_ansible_reads_the_inventory_the_same_in_every_format(tmp_path, fmt):
    path = tmp_path / f"hosts.{ 'yml' if fmt == 'yaml' else fmt }"
    path.write_text(render_inventory(_build("l3-bastion"), fmt))
    tool = Path(sys.executable).with_name("ansible-inventory")
    out = subprocess.run([str(tool), "-i", str(path), "--list"], capture_output=True, text=True, check=True,
                         env={**os.environ, "ANSIBLE_INVENTORY_ENABLED": "yaml,ini"})
    data = json.loads(out.stdout)
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["moh-app-1"]["ansible_host"] == "10.20.2.11"
    assert hostvars["moh-app-1"]["gcloudctl_level"] == 3
    assert plain(hostvars["moh-web-1"]["gcloudctl_zones"]) == ["dmz"]
    # Ansible itself read the cloud-side values as unsafe (INI cannot mark them: it refuses template syntax)
    assert hostvars["moh-web-1"]["gcloudctl_role"] == ({"__ansible_unsafe": "web"} if fmt != "ini" else "web")
    assert hostvars["moh-web-1"]["gcloudctl_ingress"] == [{"proto": "tcp", "ports": "443", "sources": ["0.0.0.0/0"]}]
    assert sorted(data["role_app"]["hosts"]) == ["moh-app-1", "moh-app-2"]
    assert sorted(data["level_3"]["hosts"]) == sorted(["moh-app-1", "moh-app-2", "moh-bastion", "moh-db-1", "moh-web-1"])
    assert data["zone_mgmt"]["hosts"] == ["moh-bastion"]
    assert "moh-batch-1" not in hostvars


def test_cli_inventory_from_a_hosts_file_matches_golden(tmp_path, capsys):
    from gcloudctl.cli.main import main

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(json.dumps({"level": 1, "hosts": L1_HOSTS}))
    code = main(["inventory", "edu", "--hosts", str(hosts), "--format", "ini",
                 "--known-hosts", "/dev/null"])
    assert code == 0
    # as the direct golden, plus the platform catalog's admin sources and central log host
    assert capsys.readouterr().out == (GOLDEN / "inventory-l1-cli.ini").read_text()


def test_cli_inventory_from_a_hosts_file_takes_the_catalogs_admin_sources_unless_it_names_its_own(tmp_path, capsys):
    """`harden --hosts FILE` at level 3 had no admin sources, so the lock-out guard stopped it."""
    from gcloudctl.cli.main import main

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(json.dumps({"level": 3, "hosts": L1_HOSTS}))
    assert main(["inventory", "edu", "--hosts", str(hosts), "--format", "json", "--known-hosts", "/dev/null"]) == 0
    hostvars = json.loads(capsys.readouterr().out)["all"]["hosts"]
    assert {tuple(v["gcloudctl_ssh_sources"]) for v in hostvars.values()} == {("172.24.4.1/32",)}
    hosts.write_text(json.dumps({"level": 3, "hosts": L1_HOSTS, "admin_sources": ["10.9.0.0/24"]}))
    assert main(["inventory", "edu", "--hosts", str(hosts), "--format", "json", "--known-hosts", "/dev/null"]) == 0
    hostvars = json.loads(capsys.readouterr().out)["all"]["hosts"]
    assert {tuple(v["gcloudctl_ssh_sources"]) for v in hostvars.values()} == {("10.9.0.0/24",)}


def test_cli_reads_back_the_yaml_inventory_it_wrote(tmp_path, capsys):
    """The YAML inventory marks cloud-side values `!unsafe`: `--inventory FILE` must read it."""
    from gcloudctl.cli.main import main

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(json.dumps({"level": 1, "hosts": L1_HOSTS}))
    assert main(["inventory", "edu", "--hosts", str(hosts), "--known-hosts", "/dev/null"]) == 0
    written = capsys.readouterr().out
    assert "!unsafe" in written
    (tmp_path / "inv.yml").write_text(written)
    assert main(["inventory", "edu", "--inventory", str(tmp_path / "inv.yml")]) == 0
    assert capsys.readouterr().out == written


def test_cli_inventory_without_a_level_is_invalid_input(tmp_path, capsys):
    from gcloudctl.cli.main import main

    hosts = tmp_path / "hosts.yml"
    hosts.write_text(json.dumps(L1_HOSTS))
    assert main(["inventory", "edu", "--hosts", str(hosts)]) == 2
    assert "--level" in capsys.readouterr().err
