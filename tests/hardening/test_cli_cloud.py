"""`gcloudctl inventory` against the cloud path (pipeline.observe_hosts) on the fake driver."""

import pytest
import yaml

from gcloudctl.hardening.inventory import load_inventory, plain
from tests.fixtures.core import EXAMPLE


@pytest.fixture
def run(cli_on_fake):
    return cli_on_fake


def test_inventory_of_an_applied_tenant(run, capsys):
    tenant = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    assert run("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert run("inventory", tenant, "--level", "3") == 0
    inv = load_inventory(capsys.readouterr().out)
    hosts = inv["all"]["hosts"]
    assert hosts, "the applied servers appear in the inventory"
    assert all(v["gcloudctl_level"] == 3 and plain(v["gcloudctl_tenant"]) == tenant for v in hosts.values())
    assert sorted(inv["all"]["children"][f"tenant_{tenant.replace('-', '_')}"]["hosts"]) == sorted(hosts)
    assert any(g.startswith("role_") for g in inv["all"]["children"])


def test_inventory_from_the_cloud_needs_a_level(run, capsys):
    # a tenant of BYT whose project carries no gc-level tag (ownership needs no level)
    run.api.add_project("no-level", "BYT", ["gcloudctl", "gc-tenant=no-level", "gc-agency=BYT"])
    assert run("inventory", "no-level") == 2
    assert "--level" in capsys.readouterr().err


def test_inventory_of_an_unknown_tenant_is_not_found(run, capsys):
    assert run("inventory", "no-such-tenant", "--level", "2") == 7
    assert "not found" in capsys.readouterr().err


def test_level_comes_from_the_project_tag_and_the_key_path_is_made_absolute(run, capsys, tmp_path, monkeypatch):
    tenant = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    assert run("apply", str(EXAMPLE), "--yes") == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gcadmin").write_text("not a real key\n")
    capsys.readouterr()
    assert run("inventory", tenant, "--key", "gcadmin") == 0  # no --level: the project's gc-level=2 tag
    hosts = load_inventory(capsys.readouterr().out)["all"]["hosts"]
    assert {v["gcloudctl_level"] for v in hosts.values()} == {2}
    # ansible-runner runs ssh from its own directory: a relative key path would not be found there
    assert {v["ansible_ssh_private_key_file"] for v in hosts.values()} == {str(tmp_path / "gcadmin")}
