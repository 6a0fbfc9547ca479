"""Shared parts of the fast web console tests: the real request service on a temporary SQLite
database and the real API app with the console mounted, a token-validator double (the API
tests' `FakeValidator`) and a Keystone login double (password "pw" logs in the double's users;
revocations are recorded and make the token invalid, as Keystone does). The real Keystone and a
real browser are in test_browser_devcloud.py."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from gcloudctl.api.app import create_app
from gcloudctl.api.limits import RateLimiter
from gcloudctl.controller import compose
from gcloudctl.errors import Unauthenticated
from gcloudctl.pipeline import Config
from tests.api.conftest import TOKENS, FakeValidator, request_text

PASSWORD = "pw"
USERS = {  # user -> (domain, token of the validator double)
    v.user_name: (v.user_domain_name, t) for t, v in TOKENS.items()
}
YAML = {"Content-Type": "application/yaml"}


class FakeLogin:
    """Keystone's password login as it answers: right user/password/domain -> a token the
    validator knows; revoke removes the token from the validator (so it is refused after)."""

    def __init__(self, validator: FakeValidator):
        self.validator, self.revoked, self.logins = validator, [], 0

    def login(self, user: str, password: str, domain: str) -> str:
        self.logins += 1
        known = USERS.get(user)
        if known is None or known[0] != domain or password != PASSWORD:
            raise Unauthenticated("the user name, password or domain is not right")
        return known[1]

    def revoke(self, token: str) -> bool:
        self.revoked.append(token)
        return self.validator.tokens.pop(token, None) is not None


@pytest.fixture(scope="session")
def config() -> Config:
    return Config.load()


@pytest.fixture
def service(config, tmp_path):
    environ = {"GCLOUDCTL_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"), "HOME": str(tmp_path)}
    service = compose.request_service(config, db_url=f"sqlite:///{tmp_path / 'web.db'}", environ=environ)
    yield service
    service.store.dispose()


@pytest.fixture
def validator() -> FakeValidator:
    return FakeValidator()


@pytest.fixture
def login(validator) -> FakeLogin:
    return FakeLogin(validator)


@pytest.fixture
def limiter() -> RateLimiter:
    return RateLimiter(rate=1000, burst=1000)


@pytest.fixture
def app(service, validator, config, limiter, login):
    return create_app(service, validator, agencies=config.agencies, limiter=limiter, cache_seconds=0,
                      console={"login": login})


@pytest.fixture
def anonymous(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def browse(app):
    """browse(user) -> a TestClient logged in as that user through the login form."""
    clients = []

    def open_as(user: str, base_url: str = "http://testserver") -> TestClient:
        client = TestClient(app, raise_server_exceptions=False, base_url=base_url)
        clients.append(client)
        response = log_in(client, user)
        assert response.status_code == 303, response.text
        return client

    yield open_as
    for client in clients:
        client.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, user: str, password: str = PASSWORD, domain: str | None = None):
    form = client.get("/web/login")
    return client.post("/web/login", data={"csrf": csrf_of(form.text), "user": user, "password": password,
                                           "domain": domain or USERS.get(user, ("BYT",))[0]},
                       follow_redirects=False)


def submit(client: TestClient, name: str, token: str = "tok-byt-requester", **changes) -> dict:
    response = client.post("/v1/requests", content=request_text(name, **changes),
                           headers={"X-Auth-Token": token, **YAML})
    assert response.status_code == 201, response.text
    return response.json()
