"""devcloud's Cinder (issue 15), the way an agency tenant uses it: volume types (the encrypted one
carries its LUKS spec), a member of an agency project creates, extends and deletes volumes, a
volume is attached to a server and the independent `openstack` CLI shows the attachment, and
a backup is listed by the CLI and restores into a volume of the same size with the same bytes.

The backend keeps real data: every volume is a sparse file under the devcloud dir, so the
test writes a marker into the file and reads it back from the restored volume's file.

Does not use the session `devcloud` fixture (it switches guests mode off): the module fixture
brings Cinder up with `lifecycle.up` only when a selected service is not up, and keeps the mode.
Servers may boot real guests (guests mode): run under `flock /tmp/gcloudctl-guests.lock`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
from pathlib import Path

import openstack
import pytest

from gcloudctl.devcloud import catalog, lifecycle
from gcloudctl.devcloud.layout import Layout, default_dir
from tests.fixtures.devcloud import DevcloudHandle

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]

GiB = 1 << 30
MARKER_OFFSET = 5 * (1 << 20) + 123  # inside the first GiB, not on a chunk boundary


def _layout() -> Layout:
    root = os.environ.get("GCLOUDCTL_DEVCLOUD_DIR")
    return Layout(Path(root).resolve() if root else default_dir(Path.home()))


@pytest.fixture(scope="module")
def cloud() -> tuple[Layout, DevcloudHandle]:
    layout = _layout()
    started = time.monotonic()
    rows = lifecycle.status(layout) if layout.secrets_file.exists() else []
    names = {r.name: r.state for r in rows}
    ready = bool(rows) and all(state == "up" for state in names.values()) and layout.clouds_yaml.exists()
    if not ready:  # starts only what is missing (Cinder included); never touches guests mode
        lifecycle.up(layout, progress=lambda msg: print(f"devcloud: {msg}", file=sys.stderr),
                     environ=dict(os.environ), cinder=True)
    handle = DevcloudHandle(cloud_name=catalog.CLOUD_ADMIN, clouds_yaml=layout.clouds_yaml, dir=layout.root,
                            up_seconds=round(time.monotonic() - started, 1), reused=ready)
    return layout, handle


@pytest.fixture(scope="module")
def admin(cloud):
    conn = cloud[1].connect()
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def tenant(admin):
    """A project of agency BYT (its Keystone domain) and a member of it, as the request API makes them."""
    suffix = uuid.uuid4().hex[:8]
    domain = admin.identity.find_domain("BYT")
    project = admin.identity.create_project(name=f"cinder-a-{suffix}", domain_id=domain.id)
    password = uuid.uuid4().hex
    user = admin.identity.create_user(name=f"cinder-a-{suffix}", password=password, domain_id=domain.id)
    admin.identity.assign_project_role_to_user(project, user, admin.identity.find_role("member"))
    auth = {"auth_url": "http://127.0.0.1:5000/v3", "username": user.name, "password": password,
            "project_id": project.id, "user_domain_id": domain.id}
    conn = openstack.connect(auth=auth, region_name="RegionOne", load_yaml_config=False, load_envvars=False)
    yield conn, project
    conn.close()
    _purge(admin, project.id)
    admin.identity.delete_user(user, ignore_missing=True)
    admin.identity.delete_project(project, ignore_missing=True)


def _purge(admin, project_id: str) -> None:
    """Whatever a failed test left in the project: servers, backups, volumes, ports, networks."""
    for server in admin.compute.servers(all_projects=True, project_id=project_id):
        admin.compute.delete_server(server)
        admin.compute.wait_for_delete(server, interval=1, wait=120)
    for backup in admin.block_storage.backups(all_projects=True, project_id=project_id):
        admin.block_storage.delete_backup(backup, force=True)
        admin.block_storage.wait_for_delete(backup, interval=1, wait=120)
    for volume in admin.block_storage.volumes(all_projects=True, project_id=project_id):
        admin.block_storage.delete_volume(volume, force=True)
        admin.block_storage.wait_for_delete(volume, interval=1, wait=120)
    for port in admin.network.ports(project_id=project_id):
        if port.device_owner != "network:dhcp":
            admin.network.delete_port(port)
    for subnet in admin.network.subnets(project_id=project_id):
        admin.network.delete_subnet(subnet)
    for net in admin.network.networks(project_id=project_id):
        admin.network.delete_network(net)
    for group in [g for g in admin.network.security_groups() if g.project_id == project_id]:
        admin.network.delete_security_group(group)


def _volume_file(layout: Layout, volume_id: str) -> Path:
    return layout.volumes / f"volume-{volume_id}"


def _wait_volume(conn, volume, status: str, wait: int = 180):
    return conn.block_storage.wait_for_status(volume, status=status, failures=["error", "error_extending"],
                                              interval=1, wait=wait)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_volume_types_and_the_encryption_spec(cloud):
    _, devcloud = cloud
    types = {row["Name"]: row for row in devcloud.openstack_json("volume", "type", "list", "--long")}
    assert {"standard", "encrypted"} <= set(types)
    encrypted = devcloud.openstack_json("volume", "type", "show", "--encryption-type", "encrypted")
    spec = encrypted["encryption"]
    assert (spec["provider"], spec["cipher"], spec["key_size"], spec["control_location"]) == \
        ("luks", "aes-xts-plain64", 256, "front-end")
    standard = devcloud.openstack_json("volume", "type", "show", "--encryption-type", "standard")
    assert not standard.get("encryption")
    services = {(row["Binary"], row["State"]) for row in devcloud.openstack_json("volume", "service", "list")}
    assert {("cinder-scheduler", "up"), ("cinder-volume", "up"), ("cinder-backup", "up")} <= services


def test_agency_member_creates_extends_and_deletes_volumes(cloud, tenant):
    layout, devcloud = cloud
    conn, project = tenant
    plain = conn.block_storage.create_volume(name=f"{project.name}-data", size=1, volume_type="standard")
    secret = conn.block_storage.create_volume(name=f"{project.name}-secret", size=1, volume_type="encrypted")
    plain = _wait_volume(conn, plain, "available")
    secret = _wait_volume(conn, secret, "available")
    assert _volume_file(layout, plain.id).stat().st_size == 1 * GiB
    assert _volume_file(layout, plain.id).stat().st_blocks == 0  # sparse: nothing written yet

    conn.block_storage.extend_volume(plain, 2)
    deadline = time.monotonic() + 120
    while (plain.size, plain.status) != (2, "available") and time.monotonic() < deadline:
        assert plain.status in ("available", "extending"), plain.status
        time.sleep(1)
        plain = conn.block_storage.get_volume(plain)
    assert (plain.size, plain.status) == (2, "available")
    shown = devcloud.openstack_json("volume", "show", plain.id)
    assert (shown["size"], shown["type"], shown["status"]) == (2, "standard", "available")
    assert _volume_file(layout, plain.id).stat().st_size == 2 * GiB
    shown = devcloud.openstack_json("volume", "show", secret.id)
    assert (shown["type"], shown["encrypted"]) == ("encrypted", True)

    for volume in (plain, secret):
        conn.block_storage.delete_volume(volume)
    for volume in (plain, secret):
        conn.block_storage.wait_for_delete(volume, interval=1, wait=120)
        assert not _volume_file(layout, volume.id).exists()
    assert devcloud.openstack_json("volume", "list", "--project", project.id) == []


def test_attach_to_a_server_and_detach(cloud, tenant):
    """A standard and an encrypted volume (level 3 data needs the encrypted type) on one server."""
    _, devcloud = cloud
    conn, project = tenant
    net = conn.network.create_network(name=f"{project.name}-net")
    conn.network.create_subnet(name=f"{project.name}-subnet", network_id=net.id, ip_version=4,
                               cidr="10.31.0.0/24")
    server = conn.compute.create_server(
        name=f"{project.name}-vm", image_id=conn.image.find_image("debian-12-hardened").id,
        flavor_id=conn.compute.find_flavor("g1.small").id, networks=[{"uuid": net.id}])
    volumes = [conn.block_storage.create_volume(name=f"{project.name}-db", size=1, volume_type="standard"),
               conn.block_storage.create_volume(name=f"{project.name}-secret", size=1, volume_type="encrypted")]
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=240, interval=1)
    volumes = [_wait_volume(conn, volume, "available") for volume in volumes]

    devices = set()
    for volume in volumes:
        devcloud.openstack("server", "add", "volume", server.id, volume.id)
        _wait_volume(conn, volume, "in-use")
        shown = devcloud.openstack_json("volume", "show", volume.id)
        assert shown["status"] == "in-use"
        assert [a["server_id"] for a in shown["attachments"]] == [server.id]
        assert shown["attachments"][0]["device"].startswith("/dev/")
        devices.add(shown["attachments"][0]["device"])
    assert len(devices) == 2
    attached = devcloud.openstack_json("server", "show", server.id)["volumes_attached"]
    assert sorted(v["id"] for v in attached) == sorted(v.id for v in volumes)

    for volume in volumes:
        devcloud.openstack("server", "remove", "volume", server.id, volume.id)
        _wait_volume(conn, volume, "available")
        assert devcloud.openstack_json("volume", "show", volume.id)["attachments"] == []
    assert devcloud.openstack_json("server", "show", server.id)["volumes_attached"] == []

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=1, wait=120)
    for volume in volumes:
        conn.block_storage.delete_volume(volume)
        conn.block_storage.wait_for_delete(volume, interval=1, wait=120)


def test_backup_is_listed_and_restores_the_same_bytes(cloud, tenant):
    layout, devcloud = cloud
    conn, project = tenant
    source = _wait_volume(conn, conn.block_storage.create_volume(name=f"{project.name}-src", size=1), "available")
    marker = f"cinder-a marker {uuid.uuid4().hex}".encode()
    with open(_volume_file(layout, source.id), "r+b") as fh:  # the backend's file is the volume's data
        fh.seek(MARKER_OFFSET)
        fh.write(marker)
    backup = conn.block_storage.create_backup(volume_id=source.id, name=f"{project.name}-bk")
    backup = conn.block_storage.wait_for_status(backup, status="available", failures=["error"], interval=2,
                                                wait=300)
    listed = devcloud.openstack_json("volume", "backup", "list", "--project", project.id)
    assert [(row["ID"], row["Status"], row["Size"]) for row in listed] == [(backup.id, "available", 1)]

    restored_name = f"{project.name}-restored"
    conn.block_storage.restore_backup(backup, name=restored_name)
    restored = conn.block_storage.find_volume(restored_name, ignore_missing=False)
    restored = _wait_volume(conn, restored, "available", wait=300)
    assert restored.size == source.size == 1
    original, copy = _volume_file(layout, source.id), _volume_file(layout, restored.id)
    assert copy.stat().st_size == original.stat().st_size == 1 * GiB
    with open(copy, "rb") as fh:
        fh.seek(MARKER_OFFSET)
        assert fh.read(len(marker)) == marker
    assert _digest(copy) == _digest(original)

    conn.block_storage.delete_backup(backup)
    conn.block_storage.wait_for_delete(backup, interval=1, wait=120)
    for volume in (source, restored):
        conn.block_storage.delete_volume(volume)
        conn.block_storage.wait_for_delete(volume, interval=1, wait=120)
    assert devcloud.openstack_json("volume", "backup", "list", "--project", project.id) == []


def test_an_encrypted_backup_restores_into_a_new_encrypted_volume(cloud, tenant):
    """Cinder refuses to restore an encrypted backup into a volume of another type, and the plain
    restore call makes its new volume with the default type (`standard`): a new encrypted volume
    from a backup is a volume create with `backup_id` and the type (microversion 3.47)."""
    layout, devcloud = cloud
    conn, project = tenant
    source = conn.block_storage.create_volume(name=f"{project.name}-enc", size=1, volume_type="encrypted")
    source = _wait_volume(conn, source, "available")
    marker = f"cinder-a encrypted {uuid.uuid4().hex}".encode()
    with open(_volume_file(layout, source.id), "r+b") as fh:
        fh.seek(MARKER_OFFSET)
        fh.write(marker)
    backup = conn.block_storage.create_backup(volume_id=source.id, name=f"{project.name}-encbk")
    backup = conn.block_storage.wait_for_status(backup, status="available", failures=["error"], interval=2,
                                                wait=300)

    restored = conn.block_storage.create_volume(name=f"{project.name}-encrest", size=1, volume_type="encrypted",
                                                backup_id=backup.id)
    restored = _wait_volume(conn, restored, "available", wait=300)
    shown = devcloud.openstack_json("volume", "show", restored.id)
    assert (shown["type"], shown["encrypted"], shown["size"]) == ("encrypted", True, 1)
    with open(_volume_file(layout, restored.id), "rb") as fh:
        fh.seek(MARKER_OFFSET)
        assert fh.read(len(marker)) == marker
    assert _digest(_volume_file(layout, restored.id)) == _digest(_volume_file(layout, source.id))

    conn.block_storage.delete_backup(backup)
    conn.block_storage.wait_for_delete(backup, interval=1, wait=120)
    for volume in (source, restored):
        conn.block_storage.delete_volume(volume)
        conn.block_storage.wait_for_delete(volume, interval=1, wait=120)


def test_snapshot_clone_and_volume_from_snapshot_copy_the_data_and_keep_holes(cloud, tenant):
    layout, devcloud = cloud
    conn, project = tenant
    source = _wait_volume(conn, conn.block_storage.create_volume(name=f"{project.name}-orig", size=1), "available")
    marker = f"cinder-a snapshot {uuid.uuid4().hex}".encode()
    with open(_volume_file(layout, source.id), "r+b") as fh:
        fh.seek(MARKER_OFFSET)
        fh.write(marker)
    snapshot = conn.block_storage.create_snapshot(volume_id=source.id, name=f"{project.name}-snap")
    snapshot = conn.block_storage.wait_for_status(snapshot, status="available", failures=["error"], interval=1,
                                                  wait=120)
    assert devcloud.openstack_json("volume", "snapshot", "show", snapshot.id)["status"] == "available"
    with open(_volume_file(layout, source.id), "r+b") as fh:  # later writes do not reach the snapshot
        fh.seek(MARKER_OFFSET)
        fh.write(b"X" * len(marker))
    from_snapshot = conn.block_storage.create_volume(name=f"{project.name}-fromsnap", size=2, snapshot_id=snapshot.id)
    clone = conn.block_storage.create_volume(name=f"{project.name}-clone", size=1, source_volume_id=source.id)
    from_snapshot = _wait_volume(conn, from_snapshot, "available")
    clone = _wait_volume(conn, clone, "available")

    def at_marker(volume_id: str) -> bytes:
        with open(_volume_file(layout, volume_id), "rb") as fh:
            fh.seek(MARKER_OFFSET)
            return fh.read(len(marker))

    assert at_marker(from_snapshot.id) == marker
    assert at_marker(clone.id) == b"X" * len(marker)
    copied = _volume_file(layout, from_snapshot.id).stat()
    assert copied.st_size == 2 * GiB and copied.st_blocks * 512 < 64 << 20  # holes stay holes

    for volume in (from_snapshot, clone):
        conn.block_storage.delete_volume(volume)
    conn.block_storage.delete_snapshot(snapshot)
    conn.block_storage.wait_for_delete(snapshot, interval=1, wait=120)
    conn.block_storage.delete_volume(source)
    for volume in (from_snapshot, clone, source):
        conn.block_storage.wait_for_delete(volume, interval=1, wait=120)
        assert not _volume_file(layout, volume.id).exists()
    assert not list(layout.volumes.glob(f"snapshot-{snapshot.id}*"))
