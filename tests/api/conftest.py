"""Shared parts of the fast request-API tests: the real request service (real loader, shipped
catalog, agency registry and approval rules) on a temporary SQLite database, a token-validator
double (tokens -> what Keystone would say; the identity proof against the real Keystone is in
test_devcloud.py), and a TestClient over `create_app`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml
from fastapi.testclient import TestClient

from gcloudctl.api.app import create_app
from gcloudctl.api.limits import RateLimiter
from gcloudctl.controller import compose
from gcloudctl.drivers.keystone import ValidatedToken
from gcloudctl.errors import Unauthenticated, Unreachable
from gcloudctl.pipeline import Config
from tests.controller.conftest import request_doc

FAR = datetime(2099, 1, 1, tzinfo=timezone.utc)


def token(user_id: str, name: str, domain: str | None, *roles: str, scope: str | None = "self",
          project: str | None = None, expires_at: datetime = FAR) -> ValidatedToken:
    """What Keystone says about a token; scope "self" = domain-scoped to the user's own domain."""
    return ValidatedToken(user_id=user_id, user_name=name, user_domain_id=f"id-{domain}", user_domain_name=domain,
                          roles=frozenset(roles), expires_at=expires_at,
                          scope_domain_name=domain if scope == "self" else scope, scope_project_name=project)


TOKENS = {
    "tok-byt-requester": token("u-byt-req", "nguyen.van.a", "BYT", "gcloud-requester"),
    "tok-byt-approver1": token("u-byt-app1", "tran.thi.b", "BYT", "gcloud-approver"),
    "tok-byt-approver2": token("u-byt-app2", "le.van.c", "BYT", "gcloud-approver"),
    "tok-btc-user": token("u-btc", "hoang.van.e", "BTC", "gcloud-requester", "gcloud-approver"),
    "tok-operator": token("u-op", "gc.operator", "Default", "gcloud-operator", scope="Default", project="admin"),
}


class FakeValidator:
    """Token validation as Keystone answers it: known tokens validate, others are refused;
    `down` makes every call fail as an unreachable Keystone. Counts its calls."""

    def __init__(self, tokens=None):
        self.tokens = dict(TOKENS if tokens is None else tokens)
        self.calls = 0
        self.down = False

    def validate(self, raw: str) -> ValidatedToken:
        self.calls += 1
        if self.down:
            raise Unreachable("Keystone did not answer: ConnectFailure")
        if raw not in self.tokens:
            raise Unauthenticated("the token is not valid (expired, revoked or unknown)")
        return self.tokens[raw]


def auth(name: str) -> dict[str, str]:
    return {"X-Auth-Token": f"tok-{name}"}


YAML = {"Content-Type": "application/yaml"}


def request_text(name: str = "byt-api-test", **changes) -> str:
    """The example request with dotted-path changes (the controller tests' `request_doc`)."""
    return yaml.safe_dump(request_doc(name, **changes), sort_keys=False, allow_unicode=True)


@pytest.fixture(scope="session")
def config() -> Config:
    return Config.load()


@pytest.fixture
def service(config, tmp_path):
    environ = {"GCLOUDCTL_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"), "HOME": str(tmp_path)}
    service = compose.request_service(config, db_url=f"sqlite:///{tmp_path / 'api.db'}", environ=environ)
    yield service
    service.store.dispose()


@pytest.fixture
def validator() -> FakeValidator:
    return FakeValidator()


@pytest.fixture
def limiter() -> RateLimiter:
    return RateLimiter(rate=1000, burst=1000)


@pytest.fixture
def app(service, validator, config, limiter):
    return create_app(service, validator, agencies=config.agencies, limiter=limiter)


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def stored(service) -> tuple[int, int]:
    """(request versions, audit records) in the database: what a refused call must not change."""
    with service.store.tx() as tx:
        return len(tx.versions()), len(list(tx.audit_records()))
