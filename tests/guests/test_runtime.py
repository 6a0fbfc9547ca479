"""The guest runtime on its own (what the Nova driver calls), without Nova: first boot from user
data, power off keeps the disk, power on boots from it, delete leaves no namespace, mount,
cgroup or process. Uses its own state root and network, so it never touches devcloud's guests."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from gcloudctl.devcloud import guests
from gcloudctl.devcloud import guests_runtime as rt
from gcloudctl.testhost import host as th_host
from tests.fixtures.devcloud import _layout

pytestmark = [pytest.mark.testhost]


@pytest.fixture
def runtime(tmp_path):
    base = guests.runtime(_layout()).base_for("debian-12")  # the cached base, unpacked once
    root = tmp_path / "guests"
    (root / "images").mkdir(parents=True)
    os.symlink(base, root / "images" / base.name)
    run = rt.Runtime(root)
    yield run
    for u in run.uuids():
        run.delete(u)


def spec(name: str = "rt-1") -> rt.GuestSpec:
    return rt.GuestSpec(uuid=str(uuid.uuid4()), hostname=name, image_name="debian-12-hardened",
                        network_id=str(uuid.uuid4()), ip="10.233.5.10", cidr="10.233.5.0/24", gateway="10.233.5.1",
                        user_data="#cloud-config\nfinal_message: runtime test booted\n",
                        meta_data={"uuid": "x", "hostname": name})


def wait_console(run: rt.Runtime, u: str, marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while marker not in run.console(u):
        assert time.monotonic() < deadline, run.console(u)[-2000:]
        time.sleep(0.5)


def test_power_cycle_keeps_the_disk_and_delete_leaves_nothing(runtime):
    s = spec()
    runtime.create(s)
    host = runtime.host(s.uuid)
    ns = s.network.host_ns(s.name)
    assert runtime.running(s.uuid) and rt.netns_exists(ns)
    wait_console(runtime, s.uuid, "runtime test booted")  # cloud-init ran the user data
    assert host.exec(["hostname"]).stdout.strip() == "rt-1"
    assert host.exec(["ip", "-4", "-o", "addr", "show", "eth0"]).stdout.split()[3] == "10.233.5.10/24"
    assert "default via 10.233.5.1" in host.exec(["ip", "route"]).stdout
    host.exec(["sh", "-c", "echo kept > /root/mark"])

    runtime.stop(s.uuid)  # power off
    assert not runtime.running(s.uuid)
    assert not rt.netns_exists(ns) and not rt.netns_exists(s.network.controller_ns)
    assert rt.mounts_under(runtime.state_dir(s.uuid)) == []
    assert (runtime.state_dir(s.uuid) / "upper" / "root" / "mark").read_text() == "kept\n"

    runtime.start(s.uuid)  # power on: same disk
    assert runtime.running(s.uuid)
    assert runtime.host(s.uuid).exec(["cat", "/root/mark"]).stdout == "kept\n"

    runtime.delete(s.uuid)
    assert runtime.uuids() == [] and not runtime.state_dir(s.uuid).exists()
    assert not rt.netns_exists(ns) and not rt.netns_exists(s.network.controller_ns)
    assert rt.mounts_under(runtime.root / rt.guest_name(s.uuid)) == []
    assert not (th_host.CGROUP_BASE / s.name).exists()


def test_a_guest_that_cannot_boot_fails_clearly_and_leaves_nothing(runtime):
    s = rt.GuestSpec(**{**spec("rt-2").to_dict(), "image_name": "windows-2022"})
    with pytest.raises(rt.GuestError, match="no root filesystem for image 'windows-2022'"):
        runtime.create(s)
    runtime.delete(s.uuid)
    assert runtime.uuids() == [] and not rt.netns_exists(s.network.controller_ns)


def test_floating_ips_are_wired_only_for_running_guests_and_unwired_when_gone(runtime):
    s = spec("rt-3")
    runtime.create(s)
    try:
        applied = runtime.sync_floating_ips({"172.24.4.77": (s.uuid, s.ip), "8.8.8.8": (s.uuid, s.ip)})
        assert applied == {s.network.prefix: {"172.24.4.77": s.ip}}  # never an address outside `public`
        ctl = s.network.controller_ns
        addrs = rt._ip("-n", ctl, "-o", "-4", "addr", "show", "dev", "qg").stdout
        assert "172.24.4.77/32" in addrs and "8.8.8.8" not in addrs
        assert "dnat to 10.233.5.10" in rt._run(["ip", "netns", "exec", ctl, "nft", "list", "table", "ip", "gcd_fip"]).stdout
        runtime.sync_floating_ips({})
        assert rt._ip("-n", ctl, "link", "show", "qg", check=False).returncode != 0
    finally:
        runtime.delete(s.uuid)
        runtime.sync_floating_ips({})


def test_devcloud_down_cleanup_removes_every_guest(tmp_path):
    """`devcloud down` and `--no-guests` call guests.cleanup: every guest of the devcloud dir is
    stopped and deleted with its namespaces and mounts (here on a throw-away devcloud dir)."""
    from gcloudctl.devcloud.layout import Layout

    layout = Layout(tmp_path / "devcloud")
    run = guests.runtime(layout)
    base = guests.runtime(_layout()).base_for("debian-12")
    (run.root / "images").mkdir(parents=True)
    os.symlink(base, run.root / "images" / base.name)
    first, second = spec("rt-4"), rt.GuestSpec(**{**spec("rt-5").to_dict(), "ip": "10.233.5.11"})
    second = rt.GuestSpec(**{**second.to_dict(), "network_id": first.network_id})
    run.create(first)
    run.create(second)
    assert len(run.uuids()) == 2 and all(run.running(u) for u in run.uuids())
    said = []
    gone = guests.cleanup(layout, said.append)
    assert sorted(gone) == sorted([first.uuid, second.uuid]) and said == ["deleted 2 devcloud guest(s)"]
    assert run.uuids() == [] and rt.mounts_under(run.root / rt.guest_name(first.uuid)) == []
    assert not rt.netns_exists(first.network.controller_ns)
    assert not any((th_host.CGROUP_BASE / rt.guest_name(u)).exists() for u in (first.uuid, second.uuid))
