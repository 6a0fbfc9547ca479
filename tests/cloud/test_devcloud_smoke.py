"""Smoke test of devcloud, the way a tenant uses it: a non-admin member of a fresh project
builds network, subnet, router (external gateway + interface), security group with rules,
keypair, a server to ACTIVE and a floating IP; the independent `openstack` CLI sees them;
then everything is deleted and nothing of the project is left (its default SG included)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import openstack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture
def member_project(os_conn, devcloud):
    suffix = uuid.uuid4().hex[:8]
    project = os_conn.identity.create_project(name=f"smoke-{suffix}", domain_id="default")
    password = uuid.uuid4().hex
    user = os_conn.identity.create_user(name=f"smoke-{suffix}", password=password, domain_id="default",
                                        default_project_id=project.id)
    member = os_conn.identity.find_role("member")
    os_conn.identity.assign_project_role_to_user(project, user, member)
    auth = {"auth_url": "http://127.0.0.1:5000/v3", "username": user.name, "password": password,
            "project_id": project.id, "user_domain_name": "Default"}
    # explicit credentials: never let clouds.yaml override them (see devcloud notes)
    conn = openstack.connect(auth=auth, region_name="RegionOne", load_yaml_config=False, load_envvars=False)
    yield conn, project, user
    conn.close()
    os_conn.identity.delete_user(user, ignore_missing=True)
    os_conn.identity.delete_project(project, ignore_missing=True)


def _project_security_groups(os_conn, project_id: str) -> list:
    """Filtered client-side: listing with a project filter makes Neutron (re)create that
    project's default security group, which would hide what we want to check."""
    return [g for g in os_conn.network.security_groups() if g.project_id == project_id]


def _leftovers(os_conn, project_id: str) -> dict[str, list[str]]:
    net = os_conn.network
    return {
        "servers": [s.id for s in os_conn.compute.servers(all_projects=True, project_id=project_id)],
        "networks": [n.id for n in net.networks(project_id=project_id)],
        "subnets": [s.id for s in net.subnets(project_id=project_id)],
        "ports": [p.id for p in net.ports(project_id=project_id)],
        "routers": [r.id for r in net.routers(project_id=project_id)],
        "floating_ips": [f.id for f in net.ips(project_id=project_id)],
        "security_groups": [g.id for g in _project_security_groups(os_conn, project_id)],
    }


def test_member_builds_and_tears_down_a_tenant(os_conn, devcloud, member_project):
    conn, project, user = member_project
    started = time.monotonic()
    name = project.name
    public = conn.network.find_network("public")
    assert public is not None and public.is_router_external

    net = conn.network.create_network(name=f"{name}-net")
    subnet = conn.network.create_subnet(name=f"{name}-subnet", network_id=net.id, ip_version=4,
                                        cidr="10.20.0.0/24")
    router = conn.network.create_router(name=f"{name}-router", external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet=subnet.id)
    sg = conn.network.create_security_group(name=f"{name}-sg", description="smoke")
    for port in (22, 443):
        conn.network.create_security_group_rule(security_group_id=sg.id, direction="ingress", protocol="tcp",
                                                port_range_min=port, port_range_max=port,
                                                remote_ip_prefix="10.0.0.0/8")
    keypair = conn.compute.create_keypair(name=f"{name}-key", public_key=_public_key())
    image = conn.image.find_image("debian-12-hardened")
    flavor = conn.compute.find_flavor("g1.small")
    server = conn.compute.create_server(name=f"{name}-vm", image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": net.id}], security_groups=[{"name": sg.name}],
                                        key_name=keypair.name)
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)
    boot_seconds = time.monotonic() - started
    port = next(conn.network.ports(device_id=server.id))
    bound = os_conn.network.get_port(port.id)  # binding attributes are admin-only
    assert (bound.binding_vif_type, bound.status) == ("ovs", "ACTIVE")
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=port.id)
    fip = conn.network.get_ip(fip.id)
    assert fip.port_id == port.id and fip.floating_ip_address.startswith("172.24.4.")

    # the independent openstack CLI (admin entry of clouds.yaml) sees all of it
    cli_started = time.monotonic()
    cli = {
        "server list": devcloud.openstack_json("server", "list", "--all-projects", "--project", project.id),
        "network list": devcloud.openstack_json("network", "list", "--project", project.id),
        "subnet list": devcloud.openstack_json("subnet", "list", "--project", project.id),
        "router list": devcloud.openstack_json("router", "list", "--project", project.id),
        "security group list": devcloud.openstack_json("security", "group", "list", "--project", project.id),
        "floating ip list": devcloud.openstack_json("floating", "ip", "list", "--project", project.id),
        "keypair list": devcloud.openstack_json("keypair", "list", "--user", user.id),
    }
    names = lambda rows, key="Name": {row.get(key) for row in rows}  # noqa: E731
    assert names(cli["server list"]) == {server.name}
    assert cli["server list"][0]["Status"] == "ACTIVE"
    assert names(cli["network list"]) == {net.name}
    assert names(cli["subnet list"]) == {subnet.name}
    assert names(cli["router list"]) == {router.name}
    assert {sg.name, "default"} <= names(cli["security group list"])
    assert names(cli["floating ip list"], "Floating IP Address") == {fip.floating_ip_address}
    assert names(cli["keypair list"]) == {keypair.name}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "devcloud_smoke_cli.json").write_text(json.dumps(cli, indent=2))

    cli_seconds = time.monotonic() - cli_started

    # tear down, newest first
    conn.network.delete_ip(fip)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=1, wait=120)
    conn.compute.delete_keypair(keypair)
    conn.network.remove_interface_from_router(router, subnet=subnet.id)
    conn.network.delete_router(router)
    conn.network.delete_security_group(sg)
    conn.network.delete_subnet(subnet)
    conn.network.delete_network(net)
    for group in _project_security_groups(os_conn, project.id):
        os_conn.network.delete_security_group(group)  # a project's default SG is admin-only to delete
    total_seconds = time.monotonic() - started
    tenant_seconds = total_seconds - cli_seconds  # the tenant's own work, without the CLI cross-check

    assert _leftovers(os_conn, project.id) == {k: [] for k in
                                               ("servers", "networks", "subnets", "ports", "routers",
                                                "floating_ips", "security_groups")}
    assert list(conn.compute.keypairs()) == []
    (RESULTS / "devcloud_smoke.json").write_text(json.dumps(
        {"boot_to_active_s": round(boot_seconds, 1), "smoke_sdk_s": round(tenant_seconds, 1),
         "cli_crosscheck_s": round(cli_seconds, 1), "smoke_total_s": round(total_seconds, 1),
         "devcloud_up_s": devcloud.up_seconds, "reused": devcloud.reused}, indent=2))
    assert tenant_seconds < 60, f"smoke took {tenant_seconds:.0f}s without the CLI cross-check (target < 60s)"
