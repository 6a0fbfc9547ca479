"""Benchmark on devcloud: create / no-op plan / teardown of a tenant, gcloudctl vs a plain
sequential openstacksdk script (the peer) run in the same process, same cloud, same shape.

    python bench/tenant_bench.py --sizes 3,20 [--cloud devcloud] [--no-peer] [--volumes]

Prints, per size: wall time and HTTP requests (login and discovery included) for create,
the executor's critical path, no-op plan requests per service and time, teardown time and
leftovers. Targets (brief): create <= 12 s (<= 45 s for 20 servers), no-op <= 15 requests
and <= 3 s, teardown <= 10 s with zero leftovers. `--volumes`: every server also gets a 1 GiB
data volume (created, attached, detached and deleted; the region is put on block storage with
devcloud's volume types for the run), and leftovers count the project's volumes and snapshots.
"""

from __future__ import annotations

import argparse
import copy
import secrets
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl import pipeline  # noqa: E402
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi  # noqa: E402
from gcloudctl.executor import build_graph  # noqa: E402

EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"


def tenant_doc(name: str, servers: int, volumes: bool = False) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    extra = servers - 3
    if extra > 0:
        doc["spec"]["servers"].append({"name": "app", "count": extra, "flavor": "g1.small", "image": "debian-12-hardened",
                                       "networks": ["app"], "securityGroups": ["web"], "keypair": "ops"})
    doc["spec"]["quotas"].update(instances=max(10, servers), cores=max(32, servers * 2), ramMiB=max(65536, servers * 4096))
    if volumes:
        for server in doc["spec"]["servers"]:
            server["volumes"] = [{"name": "data", "sizeGiB": 1, "type": "standard"}]
        doc["spec"]["quotas"].update(volumes=max(servers, 3), volumeGiB=max(servers, 3), snapshots=0)
    return doc


def block_storage(config: pipeline.Config) -> pipeline.Config:
    """The shipped configuration with every region on block storage and devcloud's volume types."""
    from gcloudctl.model.catalog import PlatformCatalog

    data = config.catalog.model_dump(mode="json")
    for region in data["spec"]["regions"].values():
        region["blockStorage"] = True
    data["spec"]["volumeTypes"] = {"standard": {"encrypted": False, "maxClassification": 2},
                                   "encrypted": {"encrypted": True, "maxClassification": 4}}
    return pipeline.Config(catalog=PlatformCatalog.model_validate(data), agencies=config.agencies,
                           rulebook=config.rulebook)


def critical_path(plan, result) -> float:
    graph = build_graph(plan)
    seconds = {o.node: o.seconds for o in result.outcomes}
    memo: dict = {}

    def finish(node) -> float:
        if node not in memo:
            memo[node] = seconds.get(node, 0.0) + max((finish(w) for w in graph[node]), default=0.0)
        return memo[node]

    return max((finish(n) for n in graph), default=0.0)


def run_gcloudctl(cloud: str, servers: int, tmp: Path, volumes: bool = False) -> dict:
    name = f"{'vol-b-' if volumes else ''}bench-{servers}-{secrets.token_hex(2)}"
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tenant_doc(name, servers, volumes)))
    config = block_storage(pipeline.Config.load()) if volumes else pipeline.Config.load()
    request = pipeline.load_request(path, config, filename=str(path))
    out: dict = {"tenant": name}

    api = SdkApi(cloud)
    driver = OpenStackDriver(api, create_missing_users=True)
    t0 = time.monotonic()
    plan = pipeline.plan_request(request, driver, config)
    result = pipeline.apply_plan(plan, driver)
    out["create_s"] = time.monotonic() - t0
    out["create_ok"] = result.ok
    out["create_requests"] = api.total_requests
    out["critical_path_s"] = critical_path(plan, result)
    out["changes"] = len(plan.changes)

    api = SdkApi(cloud)  # a fresh process would log in again: count it
    t0 = time.monotonic()
    noop = pipeline.plan_request(request, OpenStackDriver(api), config)
    out["noop_s"] = time.monotonic() - t0
    out["noop_empty"] = noop.is_empty()
    out["noop_requests"] = api.total_requests
    out["noop_by_service"] = dict(sorted(api.requests.items()))

    api = SdkApi(cloud)
    driver = OpenStackDriver(api)
    t0 = time.monotonic()
    destroy = pipeline.plan_destroy(pipeline.owner_of(request, config), driver)
    project_id = destroy.observed.project_id
    result = pipeline.apply_plan(destroy, driver)
    out["teardown_s"] = time.monotonic() - t0
    out["teardown_ok"] = result.ok
    out["teardown_requests"] = api.total_requests
    out["leftovers"] = count_leftovers(api.conn, name, project_id)
    return out


def count_leftovers(conn, tenant: str, project_id: str | None) -> int:
    """Resources still tagged for the tenant or owned by its (deleted) project. Security groups
    are listed unfiltered: a project-filtered list makes Neutron re-create the default group."""
    tag = f"gc-tenant={tenant}"
    n = sum(1 for _ in conn.network.networks(tags=tag)) + sum(1 for _ in conn.network.ports(tags=tag))
    n += sum(1 for _ in conn.network.routers(tags=tag))
    n += sum(1 for g in conn.network.security_groups() if g.project_id == project_id or tag in (g.tags or []))
    if project_id:
        n += sum(1 for _ in conn.network.ports(project_id=project_id))
        n += sum(1 for _ in conn.compute.servers(all_projects=True, project_id=project_id))
    n += len(list(conn.identity.projects(name=tenant)))
    n += sum(1 for k in conn.compute.keypairs() if k.name.startswith(f"gc_{tenant}_"))
    if project_id and conn.has_service("block-storage"):
        n += sum(1 for v in conn.block_storage.volumes(details=True, all_projects=True) if v.project_id == project_id)
        n += sum(1 for x in conn.block_storage.snapshots(details=True, all_projects=True) if x.project_id == project_id)
    return n


def run_peer(cloud: str, servers: int) -> dict:
    """What a careful engineer writes with openstacksdk in an afternoon: sequential, waits for
    each server, deletes in reverse. Same shape as the gcloudctl tenant."""
    import openstack

    conn = openstack.connect(cloud=cloud)
    counter = {"n": 0}
    def hook(resp, *a, **k):
        counter["n"] += 1
    conn.session.session.hooks.setdefault("response", []).append(hook)
    name = f"peer-{servers}-{secrets.token_hex(2)}"
    t0 = time.monotonic()
    project = conn.identity.create_project(name=name, domain_id="default")
    member = conn.identity.find_role("member")
    conn.identity.assign_project_role_to_user(project, conn.identity.get_user(conn.current_user_id), member)
    conn.set_compute_quotas(project.id, instances=max(10, servers), cores=max(32, servers * 2), ram=max(65536, servers * 4096))
    conn.set_network_quotas(project.id, floatingip=2)
    pc = conn.connect_as_project({"id": project.id, "domain_id": "default"})
    pc.session.session.hooks.setdefault("response", []).append(hook)
    ext = pc.network.find_network("public")
    nets = {}
    for net_name, cidr in (("app", "10.41.1.0/24"), ("db", "10.41.2.0/24")):
        net = pc.network.create_network(name=net_name)
        nets[net_name] = (net, pc.network.create_subnet(network_id=net.id, cidr=cidr, ip_version=4, name=net_name))
    router = pc.network.create_router(name="main", external_gateway_info={"network_id": ext.id})
    for net, subnet in nets.values():
        pc.network.add_interface_to_router(router, subnet_id=subnet.id)
    web = pc.network.create_security_group(name="web")
    db = pc.network.create_security_group(name="db")
    pc.network.create_security_group_rule(security_group_id=web.id, direction="ingress", protocol="tcp",
                                          port_range_min=443, port_range_max=443, remote_ip_prefix="0.0.0.0/0")
    pc.network.create_security_group_rule(security_group_id=web.id, direction="ingress", protocol="tcp",
                                          port_range_min=22, port_range_max=22, remote_group_id=web.id)
    pc.network.create_security_group_rule(security_group_id=db.id, direction="ingress", protocol="tcp",
                                          port_range_min=5432, port_range_max=5432, remote_group_id=web.id)
    key = yaml.safe_load(EXAMPLE.read_text())["spec"]["keypairs"][0]["publicKey"]
    pc.compute.create_keypair(name=f"{name}-ops", public_key=key)
    flavor = pc.compute.find_flavor("g1.small")
    image = pc.image.find_image("debian-12-hardened")
    created = []
    for i in range(servers):
        net, group = (nets["db"][0], db) if i == servers - 1 else (nets["app"][0], web)
        server = pc.compute.create_server(name=f"s-{i}", flavor_id=flavor.id, image_id=image.id, key_name=f"{name}-ops",
                                          networks=[{"uuid": net.id}], security_groups=[{"name": group.name}])
        created.append(pc.compute.wait_for_server(server, interval=0.5, wait=300))
    for server in created[:2]:
        port = next(pc.network.ports(device_id=server.id))
        pc.network.create_ip(floating_network_id=ext.id, port_id=port.id)
    create_s, create_n = time.monotonic() - t0, counter["n"]

    t0 = time.monotonic()
    for fip in pc.network.ips(project_id=project.id):
        pc.network.delete_ip(fip)
    for server in created:
        pc.compute.delete_server(server)
    for server in created:
        pc.compute.wait_for_delete(server, interval=0.5, wait=300)
    for net, subnet in nets.values():
        pc.network.remove_interface_from_router(router, subnet_id=subnet.id)
    pc.network.delete_router(router)
    for net, subnet in nets.values():
        pc.network.delete_network(net)
    pc.network.delete_security_group(web)
    pc.network.delete_security_group(db)
    pc.compute.delete_keypair(f"{name}-ops")
    conn.identity.delete_project(project)
    teardown_s = time.monotonic() - t0
    left = sum(1 for g in conn.network.security_groups() if g.project_id == project.id)
    return {"create_s": create_s, "create_requests": create_n, "teardown_s": teardown_s, "leftover_default_groups": left}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cloud", default="devcloud")
    parser.add_argument("--sizes", default="3,20")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--volumes", action="store_true", help="a 1 GiB data volume per server")
    args = parser.parse_args()
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="gcbench-"))
    for size in [int(s) for s in args.sizes.split(",")]:
        ours = run_gcloudctl(args.cloud, size, tmp, args.volumes)
        print(f"\n== {size} servers{' with a volume each' if args.volumes else ''} ==")
        print(f"gcloudctl create:   {ours['create_s']:6.1f} s  {ours['create_requests']:4d} requests  "
              f"({ours['changes']} changes, critical path {ours['critical_path_s']:.1f} s, ok={ours['create_ok']})")
        print(f"gcloudctl no-op:    {ours['noop_s']:6.2f} s  {ours['noop_requests']:4d} requests  (empty={ours['noop_empty']})")
        print("   by service:", ", ".join(f"{k}={v}" for k, v in ours["noop_by_service"].items()))
        print(f"gcloudctl teardown: {ours['teardown_s']:6.1f} s  {ours['teardown_requests']:4d} requests  "
              f"leftovers={ours['leftovers']} ok={ours['teardown_ok']}")
        if not args.no_peer:
            peer = run_peer(args.cloud, size)
            print(f"peer sdk create:    {peer['create_s']:6.1f} s  {peer['create_requests']:4d} requests")
            print(f"peer sdk teardown:  {peer['teardown_s']:6.1f} s  leftover default groups={peer['leftover_default_groups']}")
            print(f"ratio create time gcloudctl/peer: {ours['create_s'] / peer['create_s']:.2f}; "
                  f"requests: {ours['create_requests'] / peer['create_requests']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
