"""Capacity check: N g1.small servers (default 40) in one soft-anti-affinity group on devcloud.

Run: .venv/bin/python bench/devcloud_capacity.py [--count 40]
Creates a throw-away project, network and group, boots the servers in one request, waits for
ACTIVE, deletes everything and writes bench/results/devcloud_capacity.json. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

import openstack
from openstack.config import loader

from gcloudctl.devcloud.layout import Layout, default_dir

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=40)
    args = parser.parse_args()
    layout = Layout(default_dir(Path.home()))
    admin = openstack.connection.Connection(config=loader.OpenStackConfig(
        config_files=[str(layout.clouds_yaml)], load_envvars=False).get_one("devcloud"))
    suffix = uuid.uuid4().hex[:8]
    project = admin.identity.create_project(name=f"capacity-{suffix}", domain_id="default")
    password = uuid.uuid4().hex
    user = admin.identity.create_user(name=f"capacity-{suffix}", password=password, domain_id="default")
    admin.identity.assign_project_role_to_user(project, user, admin.identity.find_role("member"))
    conn = openstack.connect(auth={"auth_url": "http://127.0.0.1:5000/v3", "username": user.name,
                                   "password": password, "project_id": project.id,
                                   "user_domain_name": "Default"},
                             load_yaml_config=False, load_envvars=False)
    result: dict = {"count": args.count}
    try:
        net = conn.network.create_network(name=f"capacity-{suffix}")
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.77.0.0/22")
        group = conn.compute.create_server_group(name=f"capacity-{suffix}", policy="soft-anti-affinity")
        image = conn.image.find_image("debian-12-hardened")
        flavor = conn.compute.find_flavor("g1.small")
        t0 = time.monotonic()
        conn.compute.create_server(name=f"capacity-{suffix}", image_id=image.id, flavor_id=flavor.id,
                                   networks=[{"uuid": net.id}], scheduler_hints={"group": group.id},
                                   min_count=args.count, max_count=args.count)
        deadline = t0 + 600
        while time.monotonic() < deadline:
            statuses = [s.status for s in conn.compute.servers(name=f"capacity-{suffix}")]
            if len(statuses) == args.count and all(s in ("ACTIVE", "ERROR") for s in statuses):
                break
            time.sleep(2)
        result["all_active_s"] = round(time.monotonic() - t0, 1)
        result["statuses"] = {s: statuses.count(s) for s in set(statuses)}
        result["hosts"] = sorted({s.compute_host for s in admin.compute.servers(all_projects=True,
                                                                                 project_id=project.id)})
        result["group_members"] = len(conn.compute.get_server_group(group.id).member_ids)
    finally:
        servers = list(conn.compute.servers())
        for server in servers:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            conn.compute.wait_for_delete(server, interval=2, wait=300)
        for group in conn.compute.server_groups():
            conn.compute.delete_server_group(group)
        for port in conn.network.ports():
            conn.network.delete_port(port)
        for network in conn.network.networks(project_id=project.id):
            conn.network.delete_network(network)
        for sg in [g for g in admin.network.security_groups() if g.project_id == project.id]:
            admin.network.delete_security_group(sg)
        admin.identity.delete_user(user)
        admin.identity.delete_project(project)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "devcloud_capacity.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
