"""The Keystone driver's boundary: Keystone's token document read into a `ValidatedToken`
(domain, project and system scopes), and each answer of `GET /v3/auth/tokens` classified:
200 -> the token, 401/404 -> Unauthenticated (expired, revoked, forged), anything else or no
answer -> Unreachable (the API's 503). The real Keystone is exercised in test_devcloud.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from keystoneauth1 import exceptions as ksa_exc

from gcloudctl.drivers.keystone import KeystoneValidator, parse_token
from gcloudctl.errors import Unauthenticated, Unreachable

USER = {"id": "u1", "name": "nguyen.van.a", "domain": {"id": "d-byt", "name": "BYT"}}
ROLES = [{"id": "r1", "name": "gcloud-requester"}]
EXPIRES = "2026-12-03T21:04:10.000000Z"

SCOPES = [
    # id, token document, (scope domain, scope project, system), reason
    ("domain", {"domain": {"id": "d-byt", "name": "BYT"}}, ("BYT", None, False), "agency people's tokens"),
    ("project", {"project": {"id": "p", "name": "admin", "domain": {"id": "default", "name": "Default"}}},
     ("Default", "admin", False), "a project's scope is its domain"),
    ("system", {"system": {"all": True}}, (None, None, True), "system scope is no domain"),
    ("unscoped", {}, (None, None, False), "an unscoped token has no roles and no scope"),
]


@pytest.mark.parametrize("case_id,scope,expected,reason", SCOPES, ids=[c[0] for c in SCOPES])
def test_parse_token_scopes(case_id, scope, expected, reason):
    token = parse_token({"token": {"user": USER, "roles": ROLES if scope else [], "expires_at": EXPIRES, **scope}})
    assert (token.scope_domain_name, token.scope_project_name, token.system_scope) == expected, reason
    assert (token.user_id, token.user_name, token.user_domain_name) == ("u1", "nguyen.van.a", "BYT")
    assert token.expires_at == datetime(2026, 12, 3, 21, 4, 10, tzinfo=timezone.utc)


class Answer:
    def __init__(self, status: int, body=None):
        self.status_code, self._body = status, body

    def json(self):
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


class StubSession:
    """A keystoneauth session that answers one way (or raises), recording what was asked."""

    def __init__(self, outcome):
        self.outcome, self.asked = outcome, []

    def get(self, url, **kwargs):
        self.asked.append((url, kwargs["headers"]))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


GOOD = {"token": {"user": USER, "roles": ROLES, "expires_at": EXPIRES, "domain": {"id": "d-byt", "name": "BYT"}}}
ANSWERS = [
    # id, Keystone's answer, expected error (None: a token), reason
    ("valid", Answer(200, GOOD), None, "Keystone accepted the token"),
    ("not-found", Answer(404, {"error": {"message": "Could not recognize Fernet token"}}), Unauthenticated,
     "expired, revoked or forged tokens are 404 in Keystone"),
    ("unauthorized", Answer(401, {}), Unauthenticated, "also a refusal"),
    ("forbidden", Answer(403, {}), Unreachable, "the service user may not validate: the server's problem"),
    ("server-error", Answer(503, {}), Unreachable, "Keystone failing is not the caller's fault"),
    ("garbage", Answer(200, None), Unreachable, "an unreadable answer is not a 500"),
    ("connect-failure", ksa_exc.ConnectFailure("refused"), Unreachable, "Keystone down"),
    ("timeout", ksa_exc.ConnectTimeout("slow"), Unreachable, "Keystone too slow"),
    ("service-creds-refused", ksa_exc.Unauthorized("bad password"), Unreachable,
     "the API's own credentials refused: 503, the caller's token is not judged"),
]


@pytest.mark.parametrize("case_id,answer,error,reason", ANSWERS, ids=[c[0] for c in ANSWERS])
def test_validation_answers_are_classified(case_id, answer, error, reason):
    session = StubSession(answer)
    validator = KeystoneValidator(session=session)
    if error is None:
        assert validator.validate("tok").user_id == "u1", reason
    else:
        with pytest.raises(error):
            validator.validate("tok")
    assert session.asked == [("/auth/tokens?nocatalog", {"X-Subject-Token": "tok"})]
    assert validator.calls == 1
