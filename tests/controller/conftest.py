"""Shared fixtures of the controller tests: a SQLite store, a fake clock, the shipped agency
registry and approval rules, a request loader, request texts built from the example, and the
people who call the use cases (`Caller` values like the devcloud agency people's tokens)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import pytest
import yaml

from gcloudctl.controller import approvals
from gcloudctl.controller.secrets import VarSealer, env_or_file_source
from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store
from gcloudctl.errors import InvalidInput
from gcloudctl.model import AgencyRegistry, TenantRequest
from gcloudctl.model.identity import Caller, GcloudRole

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "byt-his-staging.yaml"


def person(user_id: str, name: str, agency: str | None, *roles: GcloudRole, authenticated: bool = True) -> Caller:
    return Caller(user_id=user_id, user_name=name, domain_id=f"d-{agency or 'default'}".lower(),
                  domain_name=agency or "Default", roles=frozenset(roles), agency=agency,
                  authenticated=authenticated)


R, A, O = GcloudRole.REQUESTER, GcloudRole.APPROVER, GcloudRole.OPERATOR
BYT_REQUESTER = person("u-byt-req", "nguyen.van.a", "BYT", R)
BYT_APPROVER1 = person("u-byt-app1", "tran.thi.b", "BYT", A)
BYT_APPROVER2 = person("u-byt-app2", "le.van.c", "BYT", A)
BYT_APPROVER_REQUESTER = person("u-byt-both", "pham.thi.d", "BYT", R, A)  # may submit and approve (not its own)
BYT_READER = person("u-byt-read", "vo.van.x", "BYT")  # in the agency's domain, no gcloud role
BTC_USER = person("u-btc", "hoang.van.e", "BTC", R, A)
OPERATOR = person("u-op", "gc.operator", None, O)
BREAK_GLASS = Caller(user_id="os:ops", user_name="ops", roles=frozenset({O}), authenticated=False)

PEOPLE = {"byt_requester": BYT_REQUESTER, "byt_approver1": BYT_APPROVER1, "byt_approver2": BYT_APPROVER2,
          "byt_approver_requester": BYT_APPROVER_REQUESTER, "byt_reader": BYT_READER, "btc_user": BTC_USER,
          "operator": OPERATOR, "break_glass": BREAK_GLASS}


@pytest.fixture
def byt_requester() -> Caller:
    return BYT_REQUESTER


@pytest.fixture
def byt_approver1() -> Caller:
    return BYT_APPROVER1


@pytest.fixture
def byt_approver2() -> Caller:
    return BYT_APPROVER2


@pytest.fixture
def btc_user() -> Caller:
    return BTC_USER


@pytest.fixture
def operator() -> Caller:
    return OPERATOR


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
def sealer(tmp_path) -> VarSealer:
    """Seals secret vars with a key file created 0600 next to the test database on first use."""
    return VarSealer(env_or_file_source({}, tmp_path / "secrets.key"))


@pytest.fixture
def service(store, agencies, rules, clock, sealer) -> RequestService:
    return RequestService(store=store, agencies=agencies, rules=rules, load_request=load_model, clock=clock,
                          sealer=sealer)


def approve_all(service, version: dict, approvers=(BYT_APPROVER1, BYT_APPROVER2)) -> dict:
    """Give `version` as many distinct approvals as it needs."""
    for approver in approvers[: version["approvalsRequired"]]:
        version = service.approve(version["id"], caller=approver, reason="ok")
    return version


def submit_approved(service, text: str, submitter=BYT_REQUESTER, approvers=(BYT_APPROVER1, BYT_APPROVER2)) -> dict:
    return approve_all(service, service.submit(text, caller=submitter), approvers)


def delete_approved(service, tenant: str, filer=BYT_REQUESTER, approvers=(BYT_APPROVER1, BYT_APPROVER2),
                    reason: str = "done") -> dict:
    """File the deletion of `tenant` and approve it (the tenant then moves to deleting)."""
    return approve_all(service, service.delete(tenant, caller=filer, reason=reason), approvers)
