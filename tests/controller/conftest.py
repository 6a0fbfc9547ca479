"""Shared fixtures of the controller tests: a SQLite store, a fake clock, the shipped agency
registry and approval rules, a request loader and request texts built from the example."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import pytest
import yaml

from gcloudctl.controller import approvals
from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store
from gcloudctl.errors import InvalidInput
from gcloudctl.model import AgencyRegistry, TenantRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "byt-his-staging.yaml"


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def load_model(text: str, filename: str = "<test>") -> TenantRequest:
    """Test loader: schema only (the real one is gcloudctl.pipeline.load_request)."""
    try:
        return TenantRequest.model_validate(yaml.safe_load(text))
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"{filename}: {exc}") from None


def request_doc(name: str = "byt-his-staging", **changes) -> dict:
    """The example request as a dict, with dotted-path changes: request_doc(**{"spec.classification": 3})."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"]["name"] = name
    for path, value in changes.items():
        node = doc
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return doc


def request_text(name: str = "byt-his-staging", **changes) -> str:
    return yaml.safe_dump(request_doc(name, **changes), sort_keys=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def agencies() -> AgencyRegistry:
    text = resources.files("gcloudctl").joinpath("data/agencies.yaml").read_text("utf-8")
    return AgencyRegistry.model_validate(yaml.safe_load(text))


@pytest.fixture
def rules() -> approvals.ApprovalRules:
    return approvals.parse_rules(approvals.default_rules_text())


@pytest.fixture
def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'controller.db'}")
    yield store
    store.dispose()


@pytest.fixture
def service(store, agencies, rules, clock) -> RequestService:
    return RequestService(store=store, agencies=agencies, rules=rules, load_request=load_model, clock=clock)
