"""Issue 15 on the real devcloud with Cinder: a server with a database volume is created and the
volume attached (as the independent `openstack` CLI sees it), the tenant re-plans empty, a
larger size is planned as an extend and applied in place, a smaller one is refused, a volume
detached out of band is attached again, and destroy leaves no volume, snapshot (one made by an
operator as admin included) or attachment (checked as admin).

Boots one guest: run under `flock /tmp/gcloudctl-guests.lock`. The catalog used is the shipped
one with hn1 on block storage and devcloud's volume types (`standard`, `encrypted`)."""

from __future__ import annotations

import copy
import secrets

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi
from gcloudctl.errors import Refused
from gcloudctl.plan import Action
from gcloudctl.resources import Kind
from gcloudctl.usecases.apply import ApplyOptions, apply_request, check_destroy
from tests.cloud.helpers import EXAMPLE, openstack
from tests.unit.volumes_support import block_storage_config, request_text

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]


def _doc(name: str, size: int) -> dict:
    """One db server (count 1) with a `data` volume; no floating IP, quotas derived."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    doc["spec"].pop("quotas", None)
    doc["spec"]["networks"] = [{"name": "db", "zone": "db"}]
    doc["spec"]["router"] = None
    doc["spec"]["securityGroups"] = [g for g in doc["spec"]["securityGroups"] if g["name"] == "db"]
    doc["spec"]["securityGroups"][0]["rules"] = [{"direction": "ingress", "protocol": "tcp", "ports": "5432",
                                                  "remote": "10.40.0.0/16"}]
    db = next(s for s in doc["spec"]["servers"] if s["name"] == "db")
    db["volumes"] = [{"name": "data", "sizeGiB": size, "type": "standard", "mountPoint": "/var/lib/postgresql"}]
    doc["spec"]["servers"] = [db]
    return doc


@pytest.fixture(scope="module")
def setup(devcloud):
    api = SdkApi(devcloud.cloud_name)
    if not api.has_service("block-storage"):
        pytest.skip("devcloud runs without Cinder (devcloud up --no-cinder)")
    config = block_storage_config(pipeline.Config.load())
    name = f"vol-b-{secrets.token_hex(3)}"
    state = {"name": name, "config": config, "devcloud": devcloud}
    yield state
    driver = OpenStackDriver(SdkApi(devcloud.cloud_name), create_missing_users=True)
    request = pipeline.load_request(request_text(_doc(name, 1)), config, filename="vol.yaml")
    pipeline.apply_plan(pipeline.plan_destroy(pipeline.owner_of(request, config), driver), driver)


def _request(setup, size: int):
    return pipeline.load_request(request_text(_doc(setup["name"], size)), setup["config"], filename="vol.yaml")


def _driver(setup):
    api = SdkApi(setup["devcloud"].cloud_name)
    return api, OpenStackDriver(api, create_missing_users=True)


def _volume_of(pid: str) -> dict:
    volumes = openstack("volume", "list", "--all-projects", "--project", pid, "--long")
    assert len(volumes) == 1, volumes
    return openstack("volume", "show", volumes[0]["ID"])


def test_1_create_attaches_the_db_volume(setup):
    api, driver = _driver(setup)
    outcome = apply_request(_request(setup, 1), driver, setup["config"], options=ApplyOptions(harden=False))
    assert outcome.ok, outcome.to_dict()
    pid = openstack("project", "show", setup["name"], "--domain", "BYT")["id"]
    setup["pid"] = pid
    volume = _volume_of(pid)
    server = next(s for s in openstack("server", "list", "--all-projects", "--project", pid) if s["Name"] == "db-1")
    assert (volume["name"], volume["size"], volume["type"], volume["status"]) == ("db-1-data", 1, "standard", "in-use")
    attachments = volume["attachments"]
    assert [a["server_id"] for a in attachments] == [server["ID"]], attachments
    assert attachments[0]["device"].startswith("/dev/")  # vdb on libvirt guests, sdb on the fake virt driver
    assert volume["properties"]["gc-addr"] == "volume.db-1.data" and volume["properties"]["gc-tenant"] == setup["name"]
    setup["volume_id"] = volume["id"]


def test_2_replan_is_empty(setup):
    api, driver = _driver(setup)
    plan = pipeline.plan_request(_request(setup, 1), driver, setup["config"])
    assert plan.is_empty(), [c.to_dict() for c in plan.changes]


def test_3_extend_is_planned_and_applied_and_shrink_refused(setup):
    api, driver = _driver(setup)
    plan = pipeline.plan_request(_request(setup, 2), driver, setup["config"])
    volumes = [(c.action, str(c.address), c.changed) for c in plan.changes if c.address.kind is Kind.VOLUME]
    assert volumes == [(Action.UPDATE, "volume.db-1.data", ("size",))], [c.to_dict() for c in plan.changes]
    assert pipeline.apply_plan(plan, driver).ok
    volume = _volume_of(setup["pid"])
    assert (volume["id"], volume["size"], volume["status"]) == (setup["volume_id"], 2, "in-use")
    assert pipeline.plan_request(_request(setup, 2), driver, setup["config"]).is_empty()
    with pytest.raises(Refused, match="cannot shrink"):
        pipeline.plan_request(_request(setup, 1), driver, setup["config"])


def test_4_a_volume_detached_out_of_band_is_attached_again(setup):
    api, driver = _driver(setup)
    conn = setup["devcloud"].connect()
    server = next(s for s in openstack("server", "list", "--all-projects", "--project", setup["pid"])
                  if s["Name"] == "db-1")
    openstack("server", "remove", "volume", server["ID"], setup["volume_id"], parse=False)
    conn.block_storage.wait_for_status(conn.block_storage.get_volume(setup["volume_id"]), "available",
                                       interval=1, wait=120)
    plan = pipeline.plan_request(_request(setup, 2), driver, setup["config"])
    assert [(c.action, str(c.address)) for c in plan.changes] == [(Action.CREATE, "volume_attachment.db-1.data")]
    assert pipeline.apply_plan(plan, driver).ok
    volume = _volume_of(setup["pid"])
    assert volume["status"] == "in-use" and [a["server_id"] for a in volume["attachments"]] == [server["ID"]]


def test_5_destroy_leaves_no_volume_snapshot_or_attachment(setup):
    api, driver = _driver(setup)
    conn = setup["devcloud"].connect()
    conn.block_storage.create_snapshot(volume_id=setup["volume_id"], name="by-hand", force=True)
    owner = pipeline.owner_of(_request(setup, 2), setup["config"])
    plan = pipeline.plan_destroy(owner, driver)
    check_destroy(plan, allow_data_loss=False)  # level 2: destroy may take the volume
    result = pipeline.apply_plan(plan, driver)
    assert result.ok, result.to_dict()
    pid = setup["pid"]
    volumes = [v for v in conn.block_storage.volumes(details=True, all_projects=True) if v.project_id == pid]
    snapshots = [s for s in conn.block_storage.snapshots(details=True, all_projects=True) if s.project_id == pid]
    servers = list(conn.compute.servers(all_projects=True, project_id=pid))
    assert (volumes, snapshots, servers) == ([], [], [])


CHILD = """
import sys
from gcloudctl import pipeline
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi
from tests.unit.volumes_support import block_storage_config
config = block_storage_config(pipeline.Config.load())
request = pipeline.load_request(sys.stdin.read(), config, filename="vol.yaml")
driver = OpenStackDriver(SdkApi(sys.argv[1]), create_missing_users=True)
pipeline.apply_plan(pipeline.plan_request(request, driver, config), driver)
"""


def test_6_kill_during_the_volume_phase_then_converge_without_duplicates(setup):
    """kill -9 of an apply as soon as its volume exists (its create answered or not, its
    attachment not made yet), then one apply: one volume, attached, and an empty plan."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.fixtures.core import ROOT

    name = f"vol-b-kill-{secrets.token_hex(2)}"
    doc = _doc(name, 1)
    config = setup["config"]
    request = pipeline.load_request(request_text(doc), config, filename="vol.yaml")
    api, driver = _driver(setup)
    conn = setup["devcloud"].connect()
    child = subprocess.Popen([sys.executable, "-c", CHILD, setup["devcloud"].cloud_name], stdin=subprocess.PIPE,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    try:
        child.stdin.write(request_text(doc))
        child.stdin.close()
        give_up = time.monotonic() + 180
        seen = []
        while not seen and child.poll() is None and time.monotonic() < give_up:
            seen = [v for v in conn.block_storage.volumes(details=True, all_projects=True) if v.name == "db-1-data"
                    and (v.metadata or {}).get("gc-tenant") == name]
            time.sleep(0.2)
        assert child.poll() is None, "the apply ended before its volume appeared: nothing was interrupted"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        outcome = apply_request(request, driver, config, options=ApplyOptions(harden=False))
        assert outcome.ok, outcome.to_dict()
        project = openstack("project", "show", name, "--domain", "BYT")["id"]
        volumes = openstack("volume", "list", "--all-projects", "--project", project, "--long")
        assert [(v["Name"], v["Status"]) for v in volumes] == [("db-1-data", "in-use")], volumes
        assert pipeline.plan_request(request, driver, config).is_empty()
    finally:
        if child.poll() is None:
            child.kill()
        pipeline.apply_plan(pipeline.plan_destroy(pipeline.owner_of(request, config), driver), driver)
