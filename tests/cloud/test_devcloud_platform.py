"""What the rest of gcloudctl relies on devcloud to provide, checked against the running cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import openstack
import pytest

from gcloudctl.devcloud import catalog, lifecycle
from gcloudctl.devcloud.layout import Layout

pytestmark = pytest.mark.devcloud


def test_up_again_is_a_fast_no_op(devcloud):
    report = lifecycle.up(Layout(devcloud.dir), progress=lambda _m: None, environ=dict(os.environ))
    assert report.started == [] and not report.installed and not report.initialised
    assert report.elapsed < 20


def test_status_json_reports_every_service_up(devcloud):
    gcloudctl = os.path.join(os.path.dirname(sys.executable), "gcloudctl")
    proc = subprocess.run([gcloudctl, "-o", "json", "devcloud", "status", "--dir", str(devcloud.dir)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["services"]
    assert {r["name"] for r in rows} >= {"keystone", "placement", "glance", "neutron", "nova-api",
                                         "nova-conductor", "nova-scheduler", "nova-compute"}
    assert all(r["state"] == "up" and r["pid"] for r in rows)


def test_token_carries_the_whole_catalog(os_conn):
    catalog_types = {entry["type"] for entry in os_conn.session.auth.get_access(os_conn.session).service_catalog.catalog}
    assert {"identity", "compute", "network", "image", "placement"} <= catalog_types


def test_bootstrap_objects_exist(os_conn):
    flavors = {f.name: (f.vcpus, f.ram, f.disk) for f in os_conn.compute.flavors()}
    for f in catalog.FLAVORS:
        assert flavors[f.name] == (f.vcpus, f.ram_mib, f.disk_gib)
    for image in catalog.IMAGES:
        found = os_conn.image.find_image(image.name)
        assert found is not None and found.status == "active" and found.visibility == "public"
    public = os_conn.network.find_network("public")
    assert public.is_router_external
    assert [s.cidr for s in os_conn.network.subnets(network_id=public.id)] == ["172.24.4.0/24"]
    assert {r.name for r in os_conn.identity.roles()} >= {"admin", "member", "reader"}


@pytest.mark.parametrize("person", catalog.PEOPLE, ids=[p.cloud for p in catalog.PEOPLE])
def test_agency_people_log_in_from_their_own_entry_with_their_roles(devcloud, person):
    """Each agency person's clouds.yaml entry gives a token whose user lives in the agency's
    domain and whose scope (the agency's domain; the admin project for the operator) carries
    exactly the gcloud roles the catalog promises."""
    conn = devcloud.connect(person.cloud)
    access = conn.session.auth.get_access(conn.session)
    assert access.username == person.name
    assert access.user_domain_name == person.domain
    if person.domain == "Default":
        assert access.project_name == "admin" and access.domain_id is None
    else:
        assert access.project_id is None and access.domain_name == person.domain  # domain-scoped
    gcloud_roles = {r for r in access.role_names if r.startswith("gcloud-")}
    assert gcloud_roles == set(person.roles)


def test_agency_domains_exist_and_hold_only_their_people(os_conn):
    domains = {d.name: d.id for d in os_conn.identity.domains()}
    for code in catalog.AGENCY_DOMAINS:
        assert code in domains
        names = {u.name for u in os_conn.identity.users(domain_id=domains[code])}
        assert names == {p.name for p in catalog.PEOPLE if p.domain == code}


def test_service_user_can_create_projects(devcloud):
    conn = devcloud.connect(catalog.CLOUD_GCLOUDCTL)
    project = conn.identity.create_project(name=f"svcuser-{uuid.uuid4().hex[:8]}", domain_id="default")
    try:
        assert conn.identity.get_project(project.id).name == project.name
    finally:
        conn.identity.delete_project(project)


def test_capacity_for_forty_small_servers(os_conn):
    providers = list(os_conn.placement.resource_providers())
    assert len(providers) == 1
    inventories = {i.resource_class: i for i in os_conn.placement.resource_provider_inventories(providers[0])}
    usable = lambda rc: (inventories[rc].total - inventories[rc].reserved) * inventories[rc].allocation_ratio  # noqa: E731
    assert usable("VCPU") >= 40 and usable("MEMORY_MB") >= 40 * 2048 and usable("DISK_GB") >= 40 * 10
    defaults = os_conn.compute.get_quota_set_defaults(os_conn.current_project_id)
    assert defaults.instances >= 40 and defaults.cores >= 40 and defaults.ram >= 40 * 2048


def test_admin_sets_per_project_quotas(os_conn):
    project = os_conn.identity.create_project(name=f"quota-{uuid.uuid4().hex[:8]}", domain_id="default")
    try:
        os_conn.compute.update_quota_set(project.id, instances=3, cores=6)
        os_conn.network.update_quota(project.id, floating_ips=2, networks=4)
        assert os_conn.compute.get_quota_set(project.id).instances == 3
        quota = os_conn.network.get_quota(project.id)
        assert (quota.floating_ips, quota.networks) == (2, 4)
    finally:
        os_conn.compute.revert_quota_set(project.id)
        os_conn.network.delete_quota(project.id)
        os_conn.identity.delete_project(project)


def test_tags_on_create_for_ports_and_right_after_create_for_networks(os_conn):
    """Neutron 29 accepts `tags` in the POST body of ports only (tag_ports_during_bulk_creation);
    other resources are tagged with one PUT right after create (as gcloudctl's driver does)."""
    net = os_conn.network.create_network(name=f"tagged-{uuid.uuid4().hex[:8]}")
    try:
        os_conn.network.set_tags(net, ["gcloudctl", "owner=t1"])
        assert sorted(os_conn.network.get_network(net.id).tags) == ["gcloudctl", "owner=t1"]
        assert [n.id for n in os_conn.network.networks(tags="owner=t1")] == [net.id]
        port = os_conn.network.create_port(network_id=net.id, tags=["gcloudctl", "owner=t1"])
        assert sorted(os_conn.network.get_port(port.id).tags) == ["gcloudctl", "owner=t1"]
        with pytest.raises(openstack.exceptions.BadRequestException, match="tags"):
            os_conn.network.create_network(name=f"tagged-{uuid.uuid4().hex[:8]}", tags=["x"])
    finally:
        for port in os_conn.network.ports(network_id=net.id):
            os_conn.network.delete_port(port)
        os_conn.network.delete_network(net)


def test_soft_anti_affinity_group_places_servers_on_the_single_host(os_conn):
    suffix = uuid.uuid4().hex[:8]
    group = os_conn.compute.create_server_group(name=f"saa-{suffix}", policy="soft-anti-affinity")
    net = os_conn.network.create_network(name=f"saa-{suffix}")
    os_conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.99.0.0/24")
    image = os_conn.image.find_image("debian-12-hardened")
    flavor = os_conn.compute.find_flavor("g1.small")
    servers = []
    try:
        for i in range(2):
            servers.append(os_conn.compute.create_server(
                name=f"saa-{suffix}-{i}", image_id=image.id, flavor_id=flavor.id,
                networks=[{"uuid": net.id}], scheduler_hints={"group": group.id}))
        servers = [os_conn.compute.wait_for_server(s, status="ACTIVE", wait=120, interval=1) for s in servers]
        assert len({s.compute_host for s in servers}) == 1
        assert set(os_conn.compute.get_server_group(group.id).member_ids) == {s.id for s in servers}
    finally:
        for server in servers:
            os_conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            os_conn.compute.wait_for_delete(server, interval=1, wait=120)
        os_conn.compute.delete_server_group(group, ignore_missing=True)
        deadline = time.monotonic() + 30
        while list(os_conn.network.ports(network_id=net.id, device_owner="compute:nova")) and time.monotonic() < deadline:
            time.sleep(0.5)
        os_conn.network.delete_network(net)


def test_explicit_credentials_are_not_overridden_by_clouds_yaml(devcloud, os_conn):
    """The clouds.yaml pitfall: explicit creds must authenticate as that user, not as admin."""
    name = f"explicit-{uuid.uuid4().hex[:8]}"
    project = os_conn.identity.create_project(name=name, domain_id="default")
    user = os_conn.identity.create_user(name=name, password="pw-" + name, domain_id="default")
    os_conn.identity.assign_project_role_to_user(project, user, os_conn.identity.find_role("member"))
    try:
        conn = openstack.connect(auth={"auth_url": "http://127.0.0.1:5000/v3", "username": name,
                                       "password": "pw-" + name, "project_id": project.id,
                                       "user_domain_name": "Default"},
                                 load_yaml_config=False, load_envvars=False)
        assert conn.current_user_id == user.id
        conn.close()
    finally:
        os_conn.identity.delete_user(user)
        os_conn.identity.delete_project(project)


def test_up_refuses_a_taken_port_with_a_clear_error(devcloud, tmp_path):
    """A second devcloud dir while the first runs: keystone's port is taken -> exit 1, no side effects."""
    gcloudctl = os.path.join(os.path.dirname(sys.executable), "gcloudctl")
    other = tmp_path / "other-devcloud"
    proc = subprocess.run([gcloudctl, "devcloud", "up", "--dir", str(other)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert "port 127.0.0.1:5000 needed by keystone is taken" in proc.stderr
    assert "hint:" in proc.stderr
    assert not (other / "venv").exists()


def test_logs_command_shows_a_service_log(devcloud):
    gcloudctl = os.path.join(os.path.dirname(sys.executable), "gcloudctl")
    proc = subprocess.run([gcloudctl, "devcloud", "logs", "--dir", str(devcloud.dir), "-n", "5", "keystone"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and str(devcloud.dir / "logs" / "keystone.log") in proc.stderr
    unknown = subprocess.run([gcloudctl, "devcloud", "logs", "--dir", str(devcloud.dir), "nope"],
                             capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 7 and "no devcloud service named 'nope'" in unknown.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("GCLOUDCTL_DEVCLOUD_DISRUPTIVE"),
                    reason="restarts neutron-server under everyone using this devcloud; "
                           "set GCLOUDCTL_DEVCLOUD_DISRUPTIVE=1 to run")
def test_neutron_lists_are_right_from_the_first_concurrent_requests_after_a_restart(devcloud, os_conn):
    """Regression: Neutron's policy enforcer used to be half-initialised while the first
    request ran, and concurrent admin list calls then returned empty lists."""
    from concurrent.futures import ThreadPoolExecutor

    from gcloudctl.devcloud import services as svc
    from gcloudctl.devcloud import supervisor
    from gcloudctl.devcloud.rest import Session, http_status

    layout = Layout(devcloud.dir)
    session = Session.login("admin", lifecycle.load_or_create_secrets(layout).admin_password)
    neutron = svc.BY_NAME["neutron"]
    supervisor.stop(layout.pid_file("neutron"))
    supervisor.start(svc.command(layout, neutron), env=svc.environment(layout, neutron, dict(os.environ)),
                     log_file=layout.log_file("neutron"), pid_file=layout.pid_file("neutron"), cwd=layout.root)
    deadline = time.monotonic() + 120
    while (http_status(neutron.url + "/") or 500) >= 500 and time.monotonic() < deadline:
        time.sleep(0.2)
    with ThreadPoolExecutor(max_workers=6) as pool:
        counts = list(pool.map(lambda _: len(session.get("network", "/v2.0/networks?name=public")["networks"]),
                               range(6)))
    assert counts == [1] * 6
