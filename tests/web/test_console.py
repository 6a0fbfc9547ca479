"""The web console over the real request service with a token-validator and a login double:
sessions and cookies, CSRF on every form, logout revoking the token, agency scope, decisions
through the same use cases as the API (and the same refusals), escaping, language and dates.
The same flows on the real Keystone in a real browser: test_browser_devcloud.py."""

from __future__ import annotations

import re

import pytest

from gcloudctl.api.limits import RateLimiter

from .conftest import PASSWORD, csrf_of, log_in, submit

SCRIPT = "<script>alert('x')</script>"


def approvals_of(service, request_id: int) -> int:
    from gcloudctl.model.identity import Caller
    operator = Caller("u-op", "op", roles=frozenset({"gcloud-operator"}))
    return service.show(request_id, caller=operator)["approvals"]


# --- login, session cookie, logout ------------------------------------------------------------------

def test_pages_need_a_login(anonymous):
    for path in ("/web/requests", "/web/requests/1", "/web/tenants", "/web/tenants/x"):
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/web/login"), path


def test_login_keeps_the_token_on_the_server_behind_a_strict_httponly_cookie(anonymous, app):
    response = log_in(anonymous, "tran.thi.b")
    assert response.status_code == 303 and response.headers["location"] == "/web/requests"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("gcloudctl_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/web" in cookie and "Secure" not in cookie  # plain HTTP on loopback: Secure only under TLS
    assert "tok-byt-approver1" not in cookie  # the Keystone token never leaves the server
    page = anonymous.get("/web/requests")
    assert page.status_code == 200 and "tran.thi.b@BYT" in page.text and "gcloud-approver" in page.text
    assert len(app.state.console.sessions) == 1


def test_under_tls_the_cookies_are_secure(browse):
    client = browse("tran.thi.b", base_url="https://testserver")
    assert all(c.secure for c in client.cookies.jar if c.name.startswith("gcloudctl_"))


LOGIN_REFUSALS = [
    # id, user, password, domain, status, reason
    ("wrong-password", "tran.thi.b", "nope", "BYT", 401, "Keystone refuses the password"),
    ("wrong-domain", "tran.thi.b", PASSWORD, "BTC", 401, "the user is not in that domain"),
    ("empty", "", "", "", 400, "nothing is sent to Keystone"),
]


@pytest.mark.parametrize("case_id,user,password,domain,status,reason", LOGIN_REFUSALS,
                         ids=[c[0] for c in LOGIN_REFUSALS])
def test_refused_logins_open_no_session(anonymous, app, case_id, user, password, domain, status, reason):
    response = log_in(anonymous, user, password, domain)
    assert response.status_code == status, reason
    assert "gcloudctl_session" not in response.headers.get("set-cookie", ""), reason
    assert len(app.state.console.sessions) == 0
    assert "Tên đăng nhập" in response.text  # the form again, in Vietnamese


def test_failed_logins_spend_the_address_budget(service, validator, config, login):
    from fastapi.testclient import TestClient

    from gcloudctl.api.app import create_app
    app = create_app(service, validator, agencies=config.agencies, limiter=RateLimiter(rate=0.001, burst=3),
                     console={"login": login})
    with TestClient(app, raise_server_exceptions=False) as client:
        statuses = [log_in(client, "tran.thi.b", "guess").status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
    assert login.logins == 3  # once the budget is spent Keystone is not asked


def test_logout_revokes_the_token_and_ends_the_session(browse, login, validator):
    client = browse("tran.thi.b")
    page = client.get("/web/requests")
    response = client.post("/web/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/web/login"
    assert login.revoked == ["tok-byt-approver1"] and "tok-byt-approver1" not in validator.tokens
    assert client.get("/web/requests", follow_redirects=False).status_code == 303


def test_a_token_revoked_elsewhere_ends_the_session(browse, validator):
    client = browse("tran.thi.b")
    del validator.tokens["tok-byt-approver1"]  # revoked in Keystone (another logout, an admin)
    response = client.get("/web/requests", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/web/login?ended=1"


def test_no_open_redirect_after_login(anonymous):
    form = anonymous.get("/web/login?next=https://evil.example/x")
    response = anonymous.post("/web/login", data={"csrf": csrf_of(form.text), "user": "tran.thi.b",
                                                   "password": PASSWORD, "domain": "BYT",
                                                   "next": "https://evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/web/requests"


# --- CSRF -------------------------------------------------------------------------------------------

FORGED = [
    # id, form fields, extra headers, status, reason
    ("no-token", {"reason": "forged"}, {}, 403, "a form without the CSRF token"),
    ("wrong-token", {"reason": "forged", "csrf": "x" * 43}, {}, 403, "a token that is not the session's"),
    ("other-origin", None, {"Origin": "https://evil.example"}, 403, "a post from another site"),
    ("json-body", None, {"Content-Type": "application/json"}, 415, "only the console's own form encoding"),
]


@pytest.mark.parametrize("case_id,fields,headers,status,reason", FORGED, ids=[c[0] for c in FORGED])
def test_forged_decisions_are_refused_and_nothing_is_decided(browse, anonymous, service, case_id, fields,
                                                             headers, status, reason):
    version = submit(anonymous, "byt-csrf")
    client = browse("tran.thi.b")
    page = client.get(f"/web/requests/{version['id']}")
    if fields is None:
        fields = {"reason": "forged", "csrf": csrf_of(page.text)}
    if headers.get("Content-Type") == "application/json":
        response = client.post(f"/web/requests/{version['id']}/approve", json=fields, follow_redirects=False)
    else:
        response = client.post(f"/web/requests/{version['id']}/approve", data=fields, headers=headers,
                               follow_redirects=False)
    assert response.status_code == status, reason
    assert response.headers["content-type"].startswith("text/html")
    assert approvals_of(service, version["id"]) == 0, reason


def test_login_and_logout_forms_need_their_csrf_token(anonymous, browse, login):
    response = anonymous.post("/web/login", data={"user": "tran.thi.b", "password": PASSWORD, "domain": "BYT"})
    assert response.status_code == 403 and login.logins == 0  # login CSRF: never reaches Keystone
    client = browse("tran.thi.b")
    assert client.post("/web/logout", data={"confirm": "1"}).status_code == 403
    assert login.revoked == [] and client.get("/web/requests", follow_redirects=False).status_code == 200


# --- requests: scope, decisions, escaping ----------------------------------------------------------

def test_pending_requests_first_with_preview_verdicts_diff_and_decisions(browse, anonymous, service):
    first = submit(anonymous, "byt-old")
    submit(anonymous, "byt-new")
    client = browse("tran.thi.b")
    listing = client.get("/web/requests").text
    assert listing.index("byt-old") < listing.index("byt-new")  # the oldest waiting first
    assert "2 yêu cầu đang chờ phê duyệt" in listing
    page = client.get(f"/web/requests/{first['id']}").text
    assert 'id="approve"' in page and 'id="reject"' in page
    assert "server web-1" in page and "tạo mới" in page  # preview: what will be created
    assert "admin-sources-restricted" in page and "đạt" in page  # policy verdicts at the request's level
    assert "+  name: byt-old" in page  # the diff: everything is new
    assert "opens-ingress-from-internet" in page  # why two approvals


def test_approve_through_the_form_then_the_change_is_previewed_against_it(browse, anonymous, service):
    version = submit(anonymous, "byt-flow")
    for user in ("tran.thi.b", "le.van.c"):
        client = browse(user)
        page = client.get(f"/web/requests/{version['id']}")
        response = client.post(f"/web/requests/{version['id']}/approve",
                               data={"csrf": csrf_of(page.text), "reason": f"ok {user}"}, follow_redirects=False)
        assert response.status_code == 303
    shown = client.get(f"/web/requests/{version['id']}").text
    assert "đã phê duyệt" in shown and "ok tran.thi.b" in shown and 'id="approve"' not in shown
    second = submit(anonymous, "byt-flow", **{"spec.quotas.instances": 12})
    page = client.get(f"/web/requests/{second['id']}").text
    assert "quota compute" in page and "thay đổi" in page  # changed, compared with generation 1
    assert "-    instances: 10" in page and "+    instances: 12" in page
    tenant = client.get("/web/tenants/byt-flow").text
    assert "web-1" in tenant and "chuỗi toàn vẹn" in tenant and "request.approve" in tenant


REFUSED_DECISIONS = [
    # id, user, decision, reason field, status, reason
    ("own-request", "nguyen.van.a", "approve", "mine", 403, "the submitter never decides (and is no approver)"),
    ("reject-without-reason", "tran.thi.b", "reject", "", 422, "a rejection needs a reason"),
    ("other-agency", "hoang.van.e", "approve", "not mine", 404, "another agency's request does not exist"),
]


@pytest.mark.parametrize("case_id,user,decision,reason_text,status,reason", REFUSED_DECISIONS,
                         ids=[c[0] for c in REFUSED_DECISIONS])
def test_the_service_refuses_what_the_api_refuses(browse, anonymous, service, case_id, user, decision,
                                                   reason_text, status, reason):
    version = submit(anonymous, "byt-refuse")
    client = browse(user)
    own = client.get("/web/requests")  # any page of the session carries its CSRF token
    response = client.post(f"/web/requests/{version['id']}/{decision}",
                           data={"csrf": csrf_of(own.text), "reason": reason_text})
    assert response.status_code == status, reason
    assert 'role="alert"' in response.text
    assert approvals_of(service, version["id"]) == 0


def test_another_agency_sees_nothing(browse, anonymous):
    version = submit(anonymous, "byt-secret")
    client = browse("hoang.van.e")  # BTC
    assert "byt-secret" not in client.get("/web/requests").text
    assert "byt-secret" not in client.get("/web/tenants").text
    assert client.get(f"/web/requests/{version['id']}").status_code == 404
    assert client.get("/web/tenants/byt-secret").status_code == 404


def test_request_supplied_text_is_escaped_and_scripts_are_forbidden(browse, anonymous):
    version = submit(anonymous, "byt-xss", **{"metadata.description": SCRIPT})
    client = browse("tran.thi.b")
    response = client.get(f"/web/requests/{version['id']}")
    assert SCRIPT not in response.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in response.text
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none': no script runs
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
    rejected = client.post(f"/web/requests/{version['id']}/reject",
                           data={"csrf": csrf_of(response.text), "reason": SCRIPT}, follow_redirects=True)
    assert SCRIPT not in rejected.text and "&lt;script&gt;" in rejected.text


# --- language, dates, contract -----------------------------------------------------------------------

def test_vietnamese_by_default_english_by_choice_dates_in_ho_chi_minh(browse, anonymous, service):
    version = submit(anonymous, "byt-lang")
    client = browse("tran.thi.b")
    page = client.get("/web/requests").text
    assert 'lang="vi"' in page and "Yêu cầu của cơ quan bạn" in page
    submitted = service.show(version["id"], caller=_operator())["submittedAt"]
    hour = (int(submitted[11:13]) + 7) % 24
    assert re.search(rf"{hour:02d}:{submitted[14:16]}:\d\d \(UTC\+7\)", page), submitted
    switched = client.post("/web/lang", data={"csrf": csrf_of(page), "lang": "en", "next": "/web/requests"})
    assert 'lang="en"' in switched.text and "Requests of your agency" in switched.text


def _operator():
    from gcloudctl.model.identity import Caller
    return Caller("u-op", "op", roles=frozenset({"gcloud-operator"}))


def test_the_console_is_not_in_the_api_contract(anonymous):
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/web")]


def test_the_compliance_dossier_is_linked_and_served_to_the_agency_only(service, validator, config, login,
                                                                        tmp_path, anonymous):
    from fastapi.testclient import TestClient

    from gcloudctl.api.app import create_app
    dossiers = tmp_path / "dossiers"
    dossiers.mkdir()
    (dossiers / "byt-dossier.html").write_text("<html><body><h1>Hồ sơ tuân thủ byt-dossier</h1></body></html>")
    app = create_app(service, validator, agencies=config.agencies, limiter=RateLimiter(rate=1000, burst=1000),
                     console={"login": login, "dossier_dir": dossiers})
    with TestClient(app, raise_server_exceptions=False) as client:
        submit(client, "byt-dossier")
        submit(client, "byt-none")
        assert log_in(client, "tran.thi.b").status_code == 303
        assert 'href="/web/tenants/byt-dossier/dossier"' in client.get("/web/tenants/byt-dossier").text
        assert 'id="dossier"' not in client.get("/web/tenants/byt-none").text
        served = client.get("/web/tenants/byt-dossier/dossier")
        assert served.status_code == 200 and "Hồ sơ tuân thủ byt-dossier" in served.text
        assert "default-src 'none'" in served.headers["content-security-policy"]
        assert client.get("/web/tenants/byt-none/dossier").status_code == 404
        assert client.get("/web/tenants/..%2Fx/dossier").status_code == 404
    with TestClient(app, raise_server_exceptions=False) as other:
        assert log_in(other, "hoang.van.e").status_code == 303  # BTC
        assert other.get("/web/tenants/byt-dossier/dossier").status_code == 404
