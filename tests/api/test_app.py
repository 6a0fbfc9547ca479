"""The request API's HTTP edge with a token-validator double: problem+json shapes, 401/403/404/
409/413/415/422/429/503, OpenAPI 3.1, the validation cache window, and the Caller built from a
token. The service behind it is the real one on a temporary SQLite database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gcloudctl.api.app import create_app, openapi_document
from gcloudctl.api.auth import CachingValidator, caller_from_token
from gcloudctl.api.client import ApiClient, error_from_response
from gcloudctl.api.limits import RateLimiter
from gcloudctl.errors import ExitCode, InvalidInput, NotFound, Unauthenticated

from .conftest import YAML, FakeValidator, auth, request_text, stored, token

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"].endswith("/" + slug) and body["title"] and body["detail"]
    return body


# --- authentication -------------------------------------------------------------------------------

AUTH_CASES = [
    # id, headers, validator down?, status, problem slug, reason
    ("missing", {}, False, 401, "unauthenticated", "every /v1 call needs X-Auth-Token"),
    ("empty", {"X-Auth-Token": ""}, False, 401, "unauthenticated", "an empty header is no token"),
    ("forged", {"X-Auth-Token": "gAAAAAforged"}, False, 401, "unauthenticated", "Keystone refuses it"),
    ("oversized", {"X-Auth-Token": "x" * 9000}, False, 401, "unauthenticated", "not even sent to Keystone"),
    ("keystone-down", auth("byt-requester"), True, 503, "unavailable", "Keystone unreachable is 503, never 500"),
]


@pytest.mark.parametrize("case_id,headers,down,status,slug,reason", AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
def test_refused_identity(client, validator, case_id, headers, down, status, slug, reason):
    validator.down = down
    body = assert_problem(client.get("/v1/whoami", headers=headers), status, slug)
    assert body["instance"] == "/v1/whoami", reason
    if status == 401:
        assert "WWW-Authenticate" in client.get("/v1/whoami", headers=headers).headers


def test_health_and_contract_need_no_token(client, validator):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").status_code == 200
    assert validator.calls == 0


def test_whoami_is_the_token_identity(client):
    body = client.get("/v1/whoami", headers=auth("byt-requester")).json()
    assert body == {"userId": "u-byt-req", "user": "nguyen.van.a", "domain": "BYT", "domainId": "id-BYT",
                    "agency": "BYT", "roles": ["gcloud-requester"], "actor": "nguyen.van.a@BYT",
                    "authenticated": True}


CALLER_CASES = [
    # id, token, expected (agency, roles), reason
    ("agency-domain-scope", token("u", "a", "BYT", "gcloud-requester"), ("BYT", {"gcloud-requester"}),
     "roles on the agency's domain count"),
    ("agency-project-scope", token("u", "a", "BYT", "gcloud-approver", project="p1"), ("BYT", {"gcloud-approver"}),
     "a project in the agency's domain is the agency's scope"),
    ("foreign-scope", token("u", "a", "BYT", "gcloud-approver", scope="BTC", project="btc-p"), ("BYT", set()),
     "roles held in another agency's domain give nothing in the user's agency"),
    ("operator-any-scope", token("u", "op", "Default", "gcloud-operator", "member", scope="Default"),
     (None, {"gcloud-operator"}), "operator/admin count from any scope; Default is no agency"),
    ("admin-from-foreign-scope", token("u", "a", "BYT", "admin", "gcloud-requester", scope="Default"),
     ("BYT", {"admin"}), "admin counts anywhere, agency roles only on the agency's scope"),
    ("unknown-domain", token("u", "x", "ZZZ", "gcloud-requester"), (None, set()),
     "a domain no agency owns gives no agency roles"),
]


@pytest.mark.parametrize("case_id,tok,expected,reason", CALLER_CASES, ids=[c[0] for c in CALLER_CASES])
def test_caller_from_token(config, case_id, tok, expected, reason):
    caller = caller_from_token(tok, config.agencies)
    assert (caller.agency, set(caller.roles)) == expected, reason
    assert caller.authenticated and caller.user_id == "u"


# --- the validation cache -------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


CACHE_CASES = [
    # id, ttl, token lifetime (s), seconds later, validations expected, reason
    ("within-ttl", 30, 3600, 29, 1, "a second call inside the window is served from the cache"),
    ("ttl-over", 30, 3600, 31, 2, "after the window Keystone is asked again (a revocation now shows)"),
    ("token-expires-first", 30, 10, 11, 2, "never kept past the token's own expiry"),
    ("ttl-zero", 0, 3600, 0, 2, "0 validates every call"),
]


@pytest.mark.parametrize("case_id,ttl,life,later,calls,reason", CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_cache_window(case_id, ttl, life, later, calls, reason):
    clock = Clock()
    inner = FakeValidator({"t": token("u", "a", "BYT", expires_at=clock.now + timedelta(seconds=life))})
    cache = CachingValidator(inner, ttl_seconds=ttl, clock=clock)
    cache.validate("t")
    clock.now += timedelta(seconds=later)
    try:
        cache.validate("t")
    except Unauthenticated:  # the double's token has expired too: refused, as Keystone would
        pass
    assert inner.calls == calls, reason


def test_refusals_are_not_cached_and_revocation_ends_with_the_window():
    clock, inner = Clock(), FakeValidator({"t": token("u", "a", "BYT")})
    cache = CachingValidator(inner, ttl_seconds=30, clock=clock)
    cache.validate("t")
    del inner.tokens["t"]  # revoked in Keystone
    clock.now += timedelta(seconds=10)
    assert cache.validate("t").user_id == "u"  # still inside the window: the documented bound
    clock.now += timedelta(seconds=21)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            cache.validate("t")
    assert inner.calls == 3, "each refused call asked Keystone again"


# --- submissions: content type, size, bad YAML -----------------------------------------------------

def test_submit_stores_once_and_identical_resubmission_is_unchanged(client, service):
    text = request_text()
    first = client.post("/v1/requests", content=text, headers=YAML | auth("byt-requester"))
    assert first.status_code == 201 and first.headers["location"] == f"/v1/requests/{first.json()['id']}"
    assert first.json()["submittedBy"] == "nguyen.van.a@BYT" and first.json()["state"] == "pending-approval"
    again = client.post("/v1/requests", content=text, headers={"Content-Type": "text/yaml"} | auth("byt-requester"))
    assert again.status_code == 200 and again.json()["unchanged"] is True
    assert stored(service)[0] == 1


MEDIA_CASES = [
    ("json", "application/json", "a JSON body is not the contract"),
    ("text-plain", "text/plain", "plain text is not declared YAML"),
    ("form", "application/x-www-form-urlencoded", "forms are refused"),
    ("none", None, "no Content-Type at all"),
]


@pytest.mark.parametrize("case_id,media,reason", MEDIA_CASES, ids=[c[0] for c in MEDIA_CASES])
def test_wrong_content_type_is_415(client, service, case_id, media, reason):
    headers = auth("byt-requester") | ({"Content-Type": media} if media else {})
    assert_problem(client.post("/v1/requests", content=request_text().encode(), headers=headers), 415,
                   "unsupported-media-type")
    assert stored(service) == (0, 0), reason


def test_body_over_one_mebibyte_is_413_declared_or_streamed(client, service):
    big = b"# " + b"x" * (1024 * 1024) + b"\n"
    assert_problem(client.post("/v1/requests", content=big, headers=YAML | auth("byt-requester")), 413,
                   "body-too-large")

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"#" * 65536 + b"\n"

    assert_problem(client.post("/v1/requests", content=chunks(), headers=YAML | auth("byt-requester")), 413,
                   "body-too-large")
    assert_problem(client.post("/v1/requests/1/approve", content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                               headers={"Content-Type": "application/json"} | auth("byt-approver1")), 413,
                   "body-too-large")
    assert stored(service) == (0, 0)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"

BAD_BODIES = [
    # id, body, expected (line, column) of the first problem, words in it, reason
    ("unknown-field", request_text(**{"spec.colour": "blue"}).encode(), None, "colour",
     "unknown fields are refused, located"),
    ("alias-bomb", BOMB.encode(), (1, 4), "anchor", "billion laughs: aliases refused while composing"),
    ("not-utf8", b"apiVersion: gcloud.gov.vn/v1\nkind: TenantRequest\nmetadata:\n  name: b\xe1d\n", (4, 10),
     "UTF-8", "the first undecodable byte is located"),
    ("yaml-syntax", b"apiVersion: [unclosed\n", (2, 1), "", "a syntax error is located"),
    ("empty", b"", None, "", "an empty body is a problem, not a crash"),
]


@pytest.mark.parametrize("case_id,body,where,words,reason", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies_are_422_with_validate_problems(client, service, case_id, body, where, words, reason):
    response = client.post("/v1/requests?filename=tenant.yaml", content=body, headers=YAML | auth("byt-requester"))
    problem = assert_problem(response, 422, "invalid-request")
    first = problem["problems"][0]
    assert first["text"].startswith("tenant.yaml"), reason
    if where:
        assert (first["line"], first["column"]) == where and first["text"].startswith(f"tenant.yaml:{where[0]}:{where[1]}")
    assert words in " ".join(p["text"] for p in problem["problems"]), reason
    assert stored(service) == (0, 0), "nothing stored"


def test_problems_are_the_ones_validate_prints(client, tmp_path):
    path = tmp_path / "tenant.yaml"
    path.write_text(request_text(**{"spec.colour": "blue", "spec.classification": 9}))
    from gcloudctl.cli.main import cli

    printed = CliRunner().invoke(cli, ["validate", str(path)]).output
    response = client.post(f"/v1/requests?filename={path}", content=path.read_bytes(),
                           headers=YAML | auth("byt-requester"))
    for item in response.json()["problems"]:
        assert item["text"].splitlines()[0] in printed


# --- decisions and visibility: the service decides, the API renders --------------------------------

def test_decision_statuses(client, service):
    version = client.post("/v1/requests", content=request_text(), headers=YAML | auth("byt-requester")).json()
    rid = version["id"]
    assert_problem(client.post(f"/v1/requests/{rid}/approve", json={"reason": "mine"}, headers=auth("byt-requester")),
                   403, "forbidden")
    assert_problem(client.get(f"/v1/requests/{rid}", headers=auth("btc-user")), 404, "not-found")
    assert_problem(client.post(f"/v1/requests/{rid}/approve", json={"reason": "x"}, headers=auth("btc-user")),
                   404, "not-found")
    assert_problem(client.get("/v1/tenants/byt-api-test", headers=auth("btc-user")), 404, "not-found")
    assert_problem(client.delete("/v1/tenants/byt-api-test", headers=auth("btc-user")), 404, "not-found")
    assert client.get("/v1/audit?tenant=byt-api-test", headers=auth("btc-user")).status_code == 404
    assert client.get("/v1/audit", headers=auth("btc-user")).json() == []
    for n, approver in enumerate(("byt-approver1", "byt-approver2")[: version["approvalsRequired"]], 1):
        answer = client.post(f"/v1/requests/{rid}/approve", json={"reason": "ok"}, headers=auth(approver))
        assert answer.status_code == 200 and answer.json()["approvals"] == n
    assert answer.json()["state"] == "approved"
    assert_problem(client.post(f"/v1/requests/{rid}/reject", json={"reason": "late"}, headers=auth("byt-approver1")),
                   409, "refused")
    assert client.get("/v1/tenants/byt-api-test", headers=auth("byt-requester")).json()["phase"] == "approved"
    deletion = client.delete("/v1/tenants/byt-api-test?reason=done", headers=auth("byt-requester"))
    assert deletion.status_code == 202 and deletion.json()["kind"] == "delete"
    assert client.get("/v1/audit/verify", headers=auth("btc-user")).json()["ok"] is True
    assert {r["action"] for r in client.get("/v1/audit", headers=auth("byt-approver1")).json()} >= {"request.submit", "request.approve"}
    assert [v["id"] for v in client.get("/v1/requests", headers=auth("operator")).json()] == [rid, deletion.json()["id"]]


PARAM_CASES = [
    ("id-not-int", "get", "/v1/requests/abc", None, "a path id is an integer"),
    ("state-unknown", "get", "/v1/requests?state=lost", None, "state is one of the four"),
    ("since-not-time", "get", "/v1/audit?since=yesterday", None, "since is ISO 8601"),
    ("reason-unknown-field", "post", "/v1/requests/1/approve", {"reason": "x", "as": "someone"},
     "no caller-supplied identity fields"),
    ("reason-not-json", "post", "/v1/requests/1/approve", "not json", "a decision body is JSON"),
]


@pytest.mark.parametrize("case_id,method,url,body,reason", PARAM_CASES, ids=[c[0] for c in PARAM_CASES])
def test_bad_parameters_are_400_problems(client, case_id, method, url, body, reason):
    kwargs = {"json": body} if isinstance(body, dict) else ({"content": body} if body else {})
    if isinstance(body, str):
        kwargs["headers"] = {"Content-Type": "application/json"}
    response = client.request(method, url, headers=auth("byt-approver1") | kwargs.pop("headers", {}), **kwargs)
    assert_problem(response, 400, "bad-request")


def test_unknown_route_is_a_problem(client):
    assert_problem(client.get("/v2/nothing", headers=auth("byt-requester")), 404, "not-found")


# --- rate limit -----------------------------------------------------------------------------------

def test_rate_limit_per_identity_429_with_retry_after(service, config):
    now = [0.0]
    app = create_app(service, FakeValidator(), agencies=config.agencies,
                     limiter=RateLimiter(rate=0.5, burst=3, clock=lambda: now[0]))
    with TestClient(app) as client:
        codes = [client.get("/v1/whoami", headers=auth("byt-requester")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/v1/whoami", headers=auth("byt-requester"))
        body = assert_problem(limited, 429, "rate-limited")
        assert limited.headers["Retry-After"] == "2" and body["retryAfter"] == 2
        assert client.get("/v1/whoami", headers=auth("byt-approver1")).status_code == 200, "another identity"
        now[0] += 2.0
        assert client.get("/v1/whoami", headers=auth("byt-requester")).status_code == 200, "refilled"


# --- the contract ---------------------------------------------------------------------------------

def test_openapi_31_document(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/requests", "/v1/requests/{request_id}", "/v1/requests/{request_id}/approve",
            "/v1/requests/{request_id}/reject", "/v1/tenants/{tenant}", "/v1/audit", "/v1/audit/verify",
            "/v1/whoami", "/healthz"} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-Auth-Token", "description": "A Keystone token (`openstack token issue`)"}
    submit = doc["paths"]["/v1/requests"]["post"]
    assert "application/yaml" in submit["requestBody"]["content"]
    assert {"201", "401", "413", "415", "422", "429"} <= set(submit["responses"])
    assert "application/problem+json" in submit["responses"]["422"]["content"]
    assert doc == openapi_document()


def test_schema_api_command_prints_the_contract():
    from gcloudctl.cli.main import cli

    result = CliRunner().invoke(cli, ["schema", "api"])
    assert result.exit_code == 0 and json.loads(result.output) == openapi_document()


# --- the CLI's client reads problems back into the same errors ------------------------------------

CLIENT_CASES = [
    # id, status, body, exit code, reason
    ("401", 401, {"detail": "the token is not valid"}, ExitCode.UNREACHABLE, "unauthenticated -> 6"),
    ("403", 403, {"detail": "no"}, ExitCode.REFUSED, "forbidden -> 4"),
    ("409", 409, {"detail": "decided"}, ExitCode.REFUSED, "refused -> 4"),
    ("404", 404, {"detail": "no tenant"}, ExitCode.NOT_FOUND, "not found -> 7"),
    ("422", 422, {"detail": "1 problem(s)", "problems": [{"path": "spec", "message": "bad", "file": "t.yaml",
                                                         "line": 3, "column": 2, "text": "t.yaml:3:2: spec: bad"}]},
     ExitCode.INVALID, "validation -> 2 with problems"),
    ("415", 415, {"detail": "not yaml"}, ExitCode.INVALID, "media type -> 2"),
    ("429", 429, {"detail": "slow down", "retryAfter": 3}, ExitCode.REFUSED, "rate limited -> 4"),
    ("503", 503, {"detail": "Keystone down"}, ExitCode.UNREACHABLE, "server's dependency down -> 6"),
]


@pytest.mark.parametrize("case_id,status,body,code,reason", CLIENT_CASES, ids=[c[0] for c in CLIENT_CASES])
def test_client_error_mapping(case_id, status, body, code, reason):
    error = error_from_response(status, body, {})
    assert error.exit_code == code, reason
    if status == 422:
        assert error.problems[0].format() == "t.yaml:3:2: spec: bad"


def test_client_round_trip(app):
    client = ApiClient("http://testserver", token=lambda: "tok-byt-requester", _http=TestClient(app))
    version = client.submit(request_text(), filename="t.yaml")
    assert client.show(version["id"])["yaml"].startswith("apiVersion")
    assert client.status("byt-api-test")["phase"] == "pending-approval"
    with pytest.raises(InvalidInput) as bad:
        client.submit("kind: [", filename="t.yaml")
    assert bad.value.problems[0].file == "t.yaml" and bad.value.problems[0].line is not None
    other = ApiClient("http://testserver", token=lambda: "tok-btc-user", _http=TestClient(app))
    with pytest.raises(NotFound):
        other.status("byt-api-test")


def test_refused_tokens_spend_the_address_budget(service, config):
    """Guessing tokens costs Keystone a validation each: refusals are limited per client address."""
    validator = FakeValidator()
    app = create_app(service, validator, agencies=config.agencies,
                     limiter=RateLimiter(rate=0.5, burst=3, clock=lambda: 0.0))
    with TestClient(app) as client:
        codes = [client.get("/v1/whoami", headers={"X-Auth-Token": f"guess-{i}"}).status_code for i in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        assert validator.calls == 3, "once the address's budget is spent, Keystone is not asked"
        limited = client.get("/v1/whoami", headers=auth("byt-requester"))
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2", "the address waits, whoever"
