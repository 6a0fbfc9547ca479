"""The controller deletes a volume (and its data) only when the approved request says so
(`spec.allowDataLoss`): the real pipeline over the in-memory cloud with Cinder."""

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService
from tests.unit.volumes_support import block_storage_config, cinder_cloud, with_db_volume

from .conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, request_doc

NAME = "byt-his-staging"


@pytest.fixture
def config():
    return block_storage_config(pipeline.Config.load())


@pytest.fixture
def api_cloud():
    return cinder_cloud()


@pytest.fixture
def service(store, config, rules, clock):
    return RequestService(store=store, agencies=config.agencies, rules=rules, clock=clock,
                          load_request=lambda text, name: pipeline.load_request(text, config, filename=name))


@pytest.fixture
def runner(store, config, api_cloud, clock):
    engine = PipelineEngine(config, lambda region: api_cloud[1])
    return Runner(store, Reconciler(store, engine, holder="ctl", interval=60, clock=clock), clock=clock, workers=1)


def approve(service, doc) -> None:
    version = service.submit(yaml.safe_dump(doc, sort_keys=False), caller=BYT_REQUESTER)
    for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
        service.approve(version["id"], caller=approver, reason="ok")


def volumes(api) -> set[str]:
    return {v["name"] for v in api.volumes.values()}


def test_a_volume_removed_from_the_request_is_kept_until_the_approved_request_allows_data_loss(
        service, runner, api_cloud, clock):
    api, _ = api_cloud
    with_volume = with_db_volume(request_doc(NAME))
    approve(service, with_volume)
    assert runner.run_once().counts() == {"applied": 1}
    assert any(name.endswith("db-1-data") for name in volumes(api))
    created = volumes(api)

    without = request_doc(NAME)
    without["spec"].pop("quotas", None)
    approve(service, without)
    clock.advance(120)
    summary = runner.run_once()
    assert summary.counts() != {"applied": 1}, summary.to_dict()
    assert volumes(api) == created  # refused: nothing deleted
    status = service.status(NAME, caller=BYT_REQUESTER)
    assert "spec.allowDataLoss: true" in str(status)  # the refusal says how, in the controller's terms

    without["spec"]["allowDataLoss"] = True
    approve(service, without)
    clock.advance(120)
    assert runner.run_once().counts() == {"applied": 1}
    assert not any(name.endswith("db-1-data") for name in volumes(api))
