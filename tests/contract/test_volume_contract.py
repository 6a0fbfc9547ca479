"""The driver contract for volumes (gcloudctl.drivers.base), against the in-memory cloud with
Cinder and against devcloud once it runs Cinder: create returns an id and a second create of
the same volume is found, not duplicated; observe sees it as ours (metadata set in the create
call); extend grows it in place and is idempotent; delete treats a volume already gone as
deleted and takes the volume's snapshots with it."""

from __future__ import annotations

import copy
import secrets

import pytest

from gcloudctl import pipeline
from gcloudctl.drivers.base import IdMap
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.ownership import Owner
from gcloudctl.resources import Address, Kind, Resource
from gcloudctl.naming import volume_metadata
from tests.fixtures.core import request_from


@pytest.fixture(params=["fake", pytest.param("devcloud", marks=[pytest.mark.devcloud, pytest.mark.slow])])
def driver(request):
    if request.param == "fake":
        yield FakeCloud(FakeApi(block_storage=True))
        return
    devcloud = request.getfixturevalue("devcloud")
    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    api = SdkApi(devcloud.cloud_name)
    if not api.has_service("block-storage"):
        pytest.skip("devcloud runs without Cinder (started with --no-cinder, or before issue 15 part 1)")
    yield OpenStackDriver(api, create_missing_users=True)


@pytest.fixture
def tenant(driver):
    name = f"vol-b-ct-{secrets.token_hex(3)}"
    yield name
    pipeline.apply_plan(pipeline.plan_destroy(Owner(name, "BYT", "BYT"), driver), driver)


def _project_only(doc: dict, name: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    doc["spec"].update(networks=[], router=None, servers=[], keypairs=[], securityGroups=[], quotas=None)
    return doc


def _volume(tenant: str, name: str = "db-1.data", size: int = 1) -> Resource:
    return Resource(Address(Kind.VOLUME, name), {
        "name": name.replace(".", "-"), "size": size, "type": "standard",
        "metadata": volume_metadata(tenant, f"volume.{name}", None)}, (Address(Kind.PROJECT, tenant),))


def test_volume_create_find_extend_delete(driver, tenant, config, example_doc):
    request = request_from(_project_only(example_doc, tenant), config)
    assert pipeline.apply_plan(pipeline.plan_request(request, driver, config), driver).ok
    owner = Owner(tenant, "BYT", "BYT")
    observed = driver.observe(owner)
    pid = observed.project_id
    if driver.api.has_service("block-storage"):  # the region's quota: room for the volume below
        driver.api.request("block-storage", "PUT", f"/os-quota-sets/{pid}",
                           json={"quota_set": {"volumes": 2, "gigabytes": 4, "snapshots": 1}})
    ids = IdMap.from_observed(observed)
    volume = _volume(tenant)
    volume_id = driver.create(volume, ids)
    ids[volume.address] = volume_id
    driver.wait_created(volume, ids)
    assert driver.find(volume, ids) == volume_id, "a retried create finds the volume, it does not make another"

    seen = driver.observe(owner).resources[volume.address]
    assert (seen.id, seen.attrs["size"], seen.attrs["type"], seen.status, seen.managed) == (
        volume_id, 1, "standard", "ACTIVE", True)

    bigger = _volume(tenant, size=2)
    driver.update(seen, bigger, ("size",), ids)
    driver.update(seen, bigger, ("size",), ids)  # already that size: nothing to do
    assert driver.observe(owner).resources[volume.address].attrs["size"] == 2

    driver.api.request("block-storage", "POST", "/snapshots", project_id=pid,
                       json={"snapshot": {"volume_id": volume_id, "name": "by-hand"}})
    gone = driver.observe(owner).resources[volume.address]
    driver.delete(gone, ids)
    driver.wait_deleted(gone, ids)
    driver.delete(gone, ids)  # already gone: success
    assert volume.address not in driver.observe(owner).resources
    left = driver.api.request("block-storage", "GET", "/snapshots/detail", params={"all_tenants": "1", "project_id": pid})
    assert left["snapshots"] == []
