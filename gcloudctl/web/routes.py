"""Stage: web edge (HTTP). The console's pages: parse the form, authenticate, call the request
service's use cases, render a template. No business rules: what a person may see, approve or
reject is the service's decision, exactly as for the request API and the CLI.

Routes (under `/web`, left out of the OpenAPI contract):
  GET  /web/login, POST /web/login     Keystone user, password, domain -> a server-side session
  POST /web/logout                     revokes the token in Keystone, forgets the session
  POST /web/lang                       English or Vietnamese (a cookie; Vietnamese by default)
  GET  /web/requests                   the agency's versions, pending first
  GET  /web/requests/{id}              preview, policy verdicts, diff, approvals; decision form
  POST /web/requests/{id}/approve|reject
  GET  /web/tenants, /web/tenants/{n}  status, conditions, drift, events, servers, audit trail
  GET  /web/tenants/{n}/dossier        its compliance dossier, when one was written to the dossier dir

Every page asks the token's validity through the API's validator (so a token revoked or expired
in Keystone ends the session within the API's cache window) and charges the person's rate
budget; failed logins are charged to the client's address, as refused API tokens are. Every
POST needs the form's CSRF token (`sessions`) and, when the browser sends an Origin, this
server's own. Responses forbid scripts altogether (Content-Security-Policy), are never cached,
and cannot be framed.

Called by `gcloudctl.web.mount_console` (from `gcloudctl.api.app.create_app`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gcloudctl.api import problems
from gcloudctl.api.auth import caller_from_token
from gcloudctl.errors import GcloudctlError, NotFound, Unauthenticated, Unreachable
from gcloudctl.model.identity import Caller
from gcloudctl.web import views
from gcloudctl.web.render import language, message, render
from gcloudctl.web.sessions import (
    CSRF_COOKIE, LANG_COOKIE, SESSION_COOKIE, Session, SessionStore, new_secret, same_secret,
)

PREFIX = "/web"
MAX_FORM = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # (no-referrer would make browsers send "Origin: null" on our own forms)
    "Cache-Control": "no-store",
}


def N_(text: str) -> str:  # noqa: N802 - marks a message for extraction; translated when shown
    return text


class _Redirect(Exception):
    def __init__(self, location: str):
        self.location = location


class _Failed(Exception):
    """A use-case error met before a page could be built (rate limit, Keystone down)."""

    def __init__(self, error: GcloudctlError):
        self.error = error


class _Refused(Exception):
    """A form the console refuses before any use case runs (status, message)."""

    def __init__(self, status: int, text: str):
        self.status, self.text = status, text


@dataclass
class Console:
    service: Any
    validator: Any
    agencies: Any
    limiter: Any
    login_driver: Any  # gcloudctl.drivers.keystone_login.KeystoneLogin (or a double); None: no login
    rules: views.Policy
    sessions: SessionStore
    dossier_dir: Path | None = None  # where `gcloudctl compliance` wrote TENANT.html dossiers

    # --- plumbing ---------------------------------------------------------------------------
    def lang(self, request: Request) -> str:
        return language(request.cookies.get(LANG_COOKIE))

    def page(self, request: Request, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = render(template, self.lang(request), prefix=PREFIX, path=request.url.path, **values)
        return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)

    def secure(self, request: Request) -> bool:
        return request.url.scheme == "https"

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    async def person(self, request: Request) -> tuple[Session, Caller]:
        """The logged-in person behind the request, or a redirect to the login page."""
        session = self.session(request)
        if session is None:
            raise _Redirect(f"{PREFIX}/login?next={quote(request.url.path)}")
        try:
            validated = await run_in_threadpool(self.validator.validate, session.token)
            caller = caller_from_token(validated, self.agencies)
            self.limiter.take(caller.user_id)
        except Unauthenticated:  # revoked or expired in Keystone: the session is over
            self.sessions.close(request.cookies.get(SESSION_COOKIE))
            raise _Redirect(f"{PREFIX}/login?ended=1") from None
        except GcloudctlError as exc:
            raise _Failed(exc) from None
        return session, caller

    async def form(self, request: Request, expected_csrf: str | None) -> dict[str, str]:
        """The posted form's fields, after the CSRF and Origin checks."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != FORM_TYPE:
            raise _Refused(415, N_("This form must be sent by the console's own page."))
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise _Refused(403, N_("The form came from another site; nothing was done."))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise _Refused(413, N_("The form is too large."))
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not same_secret(fields.get("csrf"), expected_csrf):
            raise _Refused(403, N_("The form's security token is missing or wrong (CSRF); nothing was done. "
                                   "Open the page again and retry."))
        return fields

    def anonymous_csrf(self, request: Request) -> str:
        return request.cookies.get(CSRF_COOKIE) or ""

    def set_cookie(self, response: Response, request: Request, name: str, value: str, *,
                   max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="strict",
                            secure=self.secure(request))

    def error_page(self, request: Request, exc: GcloudctlError, caller: Caller | None = None) -> HTMLResponse:
        status, body, _ = problems.from_error(exc, instance=request.url.path)
        return self.page(request, "error.html", code=status, caller=caller, session=self.session(request),
                         status_code=status, detail=body.get("detail", ""), hint=body.get("hint"),
                         items=[p.get("text", "") for p in body.get("problems") or []])

    # --- login / logout / language ----------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        if self.session(request) is not None:
            return RedirectResponse(f"{PREFIX}/requests", status_code=303)
        csrf = self.anonymous_csrf(request) or new_secret()
        response = self.page(request, "login.html", caller=None, session=None, csrf=csrf,
                             next=_safe_next(request.query_params.get("next")),
                             ended=bool(request.query_params.get("ended")), error=None, user="", domain="")
        self.set_cookie(response, request, CSRF_COOKIE, csrf)
        return response

    async def login(self, request: Request) -> Response:
        address = f"address:{request.client.host if request.client else '-'}"
        try:
            self.limiter.check(address)  # an address that spent its budget on failed logins waits
        except GcloudctlError as exc:
            raise _Failed(exc) from None
        fields = await self.form(request, self.anonymous_csrf(request))
        user, password = fields.get("user", "").strip()[:255], fields.get("password", "")[:4096]
        domain, target = fields.get("domain", "").strip()[:64], _safe_next(fields.get("next"))

        def again(status: int, text: str) -> HTMLResponse:
            return self.page(request, "login.html", code=status, caller=None, session=None,
                             csrf=self.anonymous_csrf(request), next=target, ended=False, error=text,
                             user=user, domain=domain)

        if not (user and password and domain):
            return again(400, N_("Enter your user name, password and domain."))
        if self.login_driver is None:
            return again(503, N_("This server has no Keystone login configured."))
        try:
            token = await run_in_threadpool(self.login_driver.login, user, password, domain)
            validated = await run_in_threadpool(self.validator.validate, token)
        except Unauthenticated:
            self.limiter.take(address)
            return again(401, N_("The user name, password or domain is not right."))
        except Unreachable:
            return again(503, N_("Keystone did not answer; try again shortly."))
        session_id, _ = self.sessions.open(token, validated.user_name, validated.expires_at)
        response = RedirectResponse(target, status_code=303)
        self.set_cookie(response, request, SESSION_COOKIE, session_id)
        return response

    async def logout(self, request: Request) -> Response:
        session = self.session(request)
        await self.form(request, session.csrf if session else self.anonymous_csrf(request))
        closed = self.sessions.close(request.cookies.get(SESSION_COOKIE))
        if closed is not None and self.login_driver is not None:
            try:
                await run_in_threadpool(self.login_driver.revoke, closed.token)
            except Unreachable:  # the session is gone here; Keystone ends the token at its expiry
                pass
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict",
                               secure=self.secure(request))
        return response

    async def choose_language(self, request: Request) -> Response:
        session = self.session(request)
        fields = await self.form(request, session.csrf if session else self.anonymous_csrf(request))
        response = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
        self.set_cookie(response, request, LANG_COOKIE, language(fields.get("lang")), max_age=365 * 86400)
        return response

    # --- requests ---------------------------------------------------------------------------
    async def requests(self, request: Request) -> Response:
        session, caller = await self.person(request)
        versions = await run_in_threadpool(lambda: self.service.list_versions(caller=caller))
        return self.page(request, "requests.html", caller=caller, session=session,
                         versions=views.order_requests(versions))

    async def request_page(self, request: Request, request_id: int, *, status: int = 200,
                           error: str | None = None, reason: str = "") -> Response:
        session, caller = await self.person(request)
        try:
            values = await run_in_threadpool(self._request_values, request_id, caller)
        except GcloudctlError as exc:
            return self.error_page(request, exc, caller)
        return self.page(request, "request.html", code=status, caller=caller, session=session, error=error,
                         reason=reason, **values)

    def _request_values(self, request_id: int, caller: Caller) -> dict[str, Any]:
        version = self.service.show(request_id, caller=caller)
        history = self.service.list_versions(caller=caller, tenant=version["tenant"])
        before = views.last_approved_before(history, version["generation"])
        previous = self.service.show(before["id"], caller=caller) if before else None
        deletion = version["kind"] == "delete"
        new_request = None if deletion else views.parse(version.get("yaml"))
        old_request = views.parse(previous["yaml"]) if previous else None
        return {
            "version": version, "previous": previous,
            "preview": views.preview(views.desired(new_request, self.rules), views.desired(old_request, self.rules),
                                     deletion=deletion),
            "verdicts": views.verdicts(new_request, self.rules),
            "diff": views.text_diff(previous["yaml"] if previous else None, version.get("yaml") or "",
                                    old_label=f"generation {previous['generation']}" if previous else "(none)",
                                    new_label=f"generation {version['generation']}"),
            "description": new_request.metadata.description if new_request else "",
            "classification": new_request.spec.classification if new_request else None,
        }

    async def decide(self, request: Request, request_id: int, decision: str) -> Response:
        session, caller = await self.person(request)
        fields = await self.form(request, session.csrf)
        reason = fields.get("reason", "")[:2000]
        try:
            await run_in_threadpool(lambda: getattr(self.service, decision)(request_id, caller=caller, reason=reason))
        except NotFound as exc:
            return self.error_page(request, exc, caller)
        except GcloudctlError as exc:
            status, body, _ = problems.from_error(exc, instance=request.url.path)
            text = body.get("detail", "") + (f" — {body['hint']}" if body.get("hint") else "")
            return await self.request_page(request, request_id, status=status, error=text, reason=reason)
        return RedirectResponse(f"{PREFIX}/requests/{request_id}?done={decision}", status_code=303)

    # --- tenants ----------------------------------------------------------------------------
    async def tenants(self, request: Request) -> Response:
        session, caller = await self.person(request)
        versions = await run_in_threadpool(lambda: self.service.list_versions(caller=caller))
        return self.page(request, "tenants.html", caller=caller, session=session, tenants=views.tenants_of(versions))

    async def tenant_page(self, request: Request, name: str) -> Response:
        session, caller = await self.person(request)
        try:
            values = await run_in_threadpool(self._tenant_values, name, caller)
        except GcloudctlError as exc:
            return self.error_page(request, exc, caller)
        return self.page(request, "tenant.html", caller=caller, session=session, **values)

    def _tenant_values(self, name: str, caller: Caller) -> dict[str, Any]:
        status = self.service.status(name, caller=caller)
        records = self.service.audit_export(caller=caller, tenant=name)
        verified = self.service.audit_verify(caller=caller)
        approved = None
        if status.get("generation"):
            history = self.service.list_versions(caller=caller, tenant=name)
            row = next((v for v in history if v["generation"] == status["generation"]), None)
            approved = self.service.show(row["id"], caller=caller) if row else None
        state = views.desired(views.parse(approved["yaml"]) if approved else None, self.rules)
        return {"status": status, "drift": views.drift_of(status), "servers": views.planned_servers(state),
                "approved": approved, "audit": [_audit_row(r) for r in records][-50:], "verified": verified,
                "dossier": f"{PREFIX}/tenants/{name}/dossier" if self.dossier_file(name) else None}

    def dossier_file(self, name: str) -> Path | None:
        """The tenant's compliance dossier (`gcloudctl compliance --out DIR`), confined to DIR."""
        if self.dossier_dir is None or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            return None
        path = (self.dossier_dir / f"{name}.html").resolve()
        return path if path.parent == self.dossier_dir.resolve() and path.is_file() else None

    async def dossier(self, request: Request, name: str) -> Response:
        """The dossier as `gcloudctl compliance` rendered it (escaped there), for those who may see
        the tenant (the service decides: another agency's tenant is not found)."""
        session, caller = await self.person(request)
        try:
            await run_in_threadpool(lambda: self.service.status(name, caller=caller))
        except GcloudctlError as exc:
            return self.error_page(request, exc, caller)
        path = self.dossier_file(name)
        if path is None:
            return self.error_page(request, NotFound(f"no compliance dossier for {name}",
                                                     hint="platform ops: gcloudctl compliance TENANT --out DIR"), caller)
        return HTMLResponse(path.read_text("utf-8", errors="replace"), headers=SECURITY_HEADERS)


def _audit_row(record: dict[str, Any]) -> dict[str, Any]:
    details = record.get("details") or record.get("data") or {}
    return {"seq": record.get("seq"), "at": record.get("at"), "actor": record.get("actor"),
            "action": record.get("action"), "reason": details.get("reason") if isinstance(details, dict) else None,
            "generation": details.get("generation") if isinstance(details, dict) else None,
            "hash": (record.get("hash") or "")[:16]}


def _safe_next(target: str | None) -> str:
    """Only a path of this console (no open redirect to another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target \
            and "://" not in target:
        return target
    return f"{PREFIX}/requests"


def console_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    @router.get("/", response_class=HTMLResponse)
    async def home() -> Response:
        return RedirectResponse(f"{PREFIX}/requests", status_code=303)

    router.add_api_route("/login", console.login_form, methods=["GET"])
    router.add_api_route("/login", console.login, methods=["POST"])
    router.add_api_route("/logout", console.logout, methods=["POST"])
    router.add_api_route("/lang", console.choose_language, methods=["POST"])
    router.add_api_route("/requests", console.requests, methods=["GET"])
    router.add_api_route("/tenants", console.tenants, methods=["GET"])

    @router.get("/requests/{request_id}")
    async def request_page(request: Request, request_id: int) -> Response:
        return await console.request_page(request, request_id)

    @router.post("/requests/{request_id}/approve")
    async def approve(request: Request, request_id: int) -> Response:
        return await console.decide(request, request_id, "approve")

    @router.post("/requests/{request_id}/reject")
    async def reject(request: Request, request_id: int) -> Response:
        return await console.decide(request, request_id, "reject")

    @router.get("/tenants/{name}")
    async def tenant_page(request: Request, name: str) -> Response:
        return await console.tenant_page(request, name[:64])

    @router.get("/tenants/{name}/dossier")
    async def dossier(request: Request, name: str) -> Response:
        return await console.dossier(request, name[:64])

    return router


def install_handlers(app: Any, console: Console) -> None:
    """The console's own refusals render as pages; its redirects as 303s."""

    @app.exception_handler(_Redirect)
    async def _redirect(request: Request, exc: _Redirect) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(_Failed)
    async def _failed(request: Request, exc: _Failed) -> Response:
        response = console.error_page(request, exc.error)
        if getattr(exc.error, "retry_after", None):
            response.headers["Retry-After"] = str(int(exc.error.retry_after))
        return response

    @app.exception_handler(_Refused)
    async def _refused(request: Request, exc: _Refused) -> Response:
        lang = console.lang(request)
        return console.page(request, "error.html", code=exc.status, caller=None, session=None,
                            status_code=exc.status, detail=message(exc.text, lang), hint=None, items=[])
