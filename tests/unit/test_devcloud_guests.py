"""Pure parts of devcloud guests mode: the nova-compute config switch, floating-IP NAT rules,
which addresses may ever be targets, and the mode file (no root, no cloud)."""

from __future__ import annotations

import pytest

from gcloudctl.devcloud import guests
from gcloudctl.devcloud import guests_runtime as rt
from gcloudctl.devcloud.layout import Layout

PLAIN = {guests.COMPUTE_CONF: "[DEFAULT]\ncompute_driver = fake.FakeDriverWithoutFakeNodes\nhost = devcloud\n",
         "nova/nova.conf": "[DEFAULT]\n"}


def test_plain_mode_leaves_the_config_alone():
    assert guests.override(PLAIN, guests.Mode(enabled=False)) == PLAIN


def test_guests_mode_switches_only_the_compute_driver():
    files = guests.override(PLAIN, guests.Mode(enabled=True))
    compute = files[guests.COMPUTE_CONF]
    assert "compute_driver = gcloudctl_guests.GuestDriver\n" in compute
    assert "FakeDriverWithoutFakeNodes" not in compute and "host = devcloud\n" in compute
    assert f"guest runtime sources {guests.runtime_digest()}" in compute  # code change -> restart
    assert files["nova/nova.conf"] == PLAIN["nova/nova.conf"]


def test_a_config_without_the_plain_driver_is_refused():
    with pytest.raises(ValueError, match="compute_driver"):
        guests.override({guests.COMPUTE_CONF: "[DEFAULT]\n"}, guests.Mode(enabled=True))


def test_mode_is_remembered_and_defaults_to_plain(tmp_path):
    layout = Layout(tmp_path)
    assert guests.load_mode(layout) == guests.Mode(enabled=False)
    guests.save_mode(layout, guests.Mode(enabled=True))
    assert guests.load_mode(layout).enabled
    guests.mode_file(layout).write_text("not json")
    assert guests.load_mode(layout) == guests.Mode(enabled=False)


def test_nat_rules_map_each_floating_ip_to_its_fixed_ip_and_replace_the_table():
    table = rt._nft_table({"172.24.4.10": "10.40.1.5", "172.24.4.11": "10.40.1.6"})
    assert table.startswith("table ip gcd_fip {}\ndelete table ip gcd_fip\n")  # atomic rewrite
    assert "ip daddr 172.24.4.10 dnat to 10.40.1.5" in table
    assert 'oifname "qg" ip saddr 10.40.1.6 snat to 172.24.4.11' in table
    assert "dnat" not in rt._nft_table({}).split("table ip gcd_fip {\n", 1)[1]


@pytest.mark.parametrize("address,ok", [("172.24.4.10", True), ("172.24.4.1", False), ("172.24.4.0", False),
                                        ("172.24.4.255", False), ("10.0.0.5", False), ("127.0.0.1", False)])
def test_only_addresses_of_the_devcloud_public_network_become_floating_ips(address, ok):
    assert rt.public_address_ok(address) is ok


def test_guest_network_uses_neutrons_gateway_and_stays_a_usable_bridge():
    net = rt.network_for("0332b721-aaaa-bbbb-cccc-000000000000", "10.40.1.0/24", "10.40.1.1")
    assert net.controller_ns == "gcn0332b721-ctl" and net.gateway == "10.40.1.1"
    net.check_address("10.40.1.50")
    with pytest.raises(ValueError):
        net.check_address("10.40.1.1")  # the gateway is the bridge's own address
    odd = rt.network_for("ffff0000-0000", "10.40.2.0/24", "10.40.2.254")
    assert odd.gateway == "10.40.2.254"


def test_public_proxy_command_enters_the_devcloud_public_namespace():
    cmd = guests.public_proxy_command()
    assert cmd.startswith("nsenter --net=/run/netns/gcd-pub ") and cmd.endswith(" %h %p")


def test_host_limits_are_raised_never_lowered(tmp_path):
    for key, value in (("fs/inotify/max_user_instances", "128"), ("fs/inotify/max_user_watches", "4000000")):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text(value + "\n")
    said = []
    changed = guests.ensure_host_limits(said.append, proc_sys=tmp_path)
    assert changed == {"fs/inotify/max_user_instances": (128, 8192)}
    assert (tmp_path / "fs/inotify/max_user_instances").read_text().strip() == "8192"
    assert (tmp_path / "fs/inotify/max_user_watches").read_text().strip() == "4000000"  # higher: kept
    assert guests.ensure_host_limits(said.append, proc_sys=tmp_path) == {} and len(said) == 1
