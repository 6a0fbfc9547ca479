"""Stage: API edge (HTTP). The request API as a FastAPI app: parse, authenticate, call, render.

`create_app(service, validator, agencies=...)` builds it from injected parts (the composition
root is `gcloudctl.api.server`; tests inject a validator double and a service on a temporary
database). Every route except `/healthz` and `/openapi.json` needs `X-Auth-Token`: the token is
validated (`auth.CachingValidator` over the Keystone driver), turned into a `Caller`
(`auth.caller_from_token`), charged to its identity's rate limit (`limits.RateLimiter`; a refused
token is charged to the client's address instead), and passed to one `RequestService` use
case, which decides. The web console's pages (`gcloudctl.web`, under /web) are mounted on the
same app (`console`: its options). Errors render as RFC 9457 problem+json (`problems`). Bodies over `max_body` bytes are refused with 413 before they are
read whole; a submission must be `application/yaml` (or `text/yaml`, `application/x-yaml`).

No business rules here: what a caller may see or do is the service's decision.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from gcloudctl import __version__
from gcloudctl.api import problems
from gcloudctl.api.auth import CachingValidator, caller_from_token
from gcloudctl.api.limits import RateLimiter
from gcloudctl.errors import GcloudctlError, Unauthenticated
from gcloudctl.model.identity import Caller
from gcloudctl.web import mount_console

log = logging.getLogger("gcloudctl.api")

MAX_BODY = 1024 * 1024  # 1 MiB, as `gcloudctl validate` (gcloudctl.model.load.MAX_BYTES)
YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml")
MAX_TOKEN_LENGTH = 8192
VERSION_STATES = Literal["pending-approval", "approved", "rejected", "superseded"]


# --- documentation models (the OpenAPI contract; the service's dicts are returned as they are) ---

class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProblemItem(_Open):
    path: str = Field(description="dotted field path, e.g. spec.networks[1].cidr")
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    rule: str | None = None
    text: str = Field(description="FILE:LINE:COL: path: message, as `gcloudctl validate` prints it")


class Problem(_Open):
    """RFC 9457 problem details (application/problem+json)."""
    type: str
    title: str
    status: int
    detail: str
    hint: str | None = None
    instance: str | None = None
    problems: list[ProblemItem] | None = None
    retryAfter: int | None = None


class Version(_Open):
    id: int
    tenant: str
    generation: int
    kind: Literal["change", "delete"]
    state: str
    agency: str
    requester: str
    submittedBy: str
    submittedAt: str
    digest: str = Field(description="sha256 of the stored (sealed) text; approvals are bound to it")
    approvals: int
    approvalsRequired: int
    rulesVersion: str | None = None
    sealedVars: int = 0
    unchanged: bool | None = None
    approvalReasons: list[str] | None = None
    decisions: list[dict[str, Any]] | None = None
    yaml: str | None = Field(default=None, description="the stored text, secret vars masked (show only)")


class TenantStatus(_Open):
    tenant: str
    agency: str
    phase: str
    generation: int | None
    observedGeneration: int | None
    latestGeneration: int
    conditions: list[dict[str, Any]]
    events: list[dict[str, Any]] | None = None


class Whoami(BaseModel):
    userId: str
    user: str
    domain: str | None
    domainId: str | None
    agency: str | None
    roles: list[str]
    actor: str
    authenticated: bool


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000, description="why; recorded in the audit trail")


class VerifyReport(_Open):
    ok: bool
    records: int
    head: dict[str, Any] | None
    breaks: list[dict[str, Any]]


def _problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "content": {problems.MEDIA_TYPE: {}}} for code in codes}


AUTH_ERRORS = (401, 429, 503)


# --- the app ----------------------------------------------------------------------------------

def create_app(service: Any, validator: Any, *, agencies: Any, limiter: RateLimiter | None = None,
               max_body: int = MAX_BODY, cache_seconds: float | None = None, console: dict[str, Any] | None = None
               ) -> FastAPI:
    """The ASGI app. `validator` validates raw tokens (`KeystoneValidator` or a double); it is
    wrapped in a `CachingValidator` unless it already is one (`cache_seconds` None: the default)."""
    if not isinstance(validator, CachingValidator):
        validator = CachingValidator(validator) if cache_seconds is None else CachingValidator(validator, cache_seconds)
    limiter = limiter or RateLimiter()
    app = FastAPI(title="gcloudctl request API", version=__version__, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None,
                  description="Submit, approve and follow G-Cloud tenant requests with your own Keystone "
                              "identity. See docs/api.md.")
    app.state.validator, app.state.limiter, app.state.service = validator, limiter, service
    _install_error_handlers(app)
    app.add_middleware(_ContentLengthLimit, max_body=max_body)
    token_header = APIKeyHeader(name="X-Auth-Token", auto_error=False,
                                description="A Keystone token (`openstack token issue`)")

    def authenticated(request: Request, token: str | None = Depends(token_header)) -> Caller:
        address = f"address:{request.client.host if request.client else '-'}"
        limiter.check(address)  # an address whose refusals used up its budget waits before Keystone is asked
        try:
            if not token:
                raise Unauthenticated("no X-Auth-Token header", hint="send a Keystone token in X-Auth-Token")
            if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
                raise Unauthenticated("the token is not valid (expired, revoked or unknown)")
            caller = caller_from_token(validator.validate(token), agencies)
        except Unauthenticated:  # refused calls spend their address's budget: no token guessing at Keystone's cost
            limiter.take(address)
            raise
        limiter.take(caller.user_id)
        return caller

    async def yaml_body(request: Request) -> bytes:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in YAML_TYPES:
            raise HTTPException(415, f"a request is sent as application/yaml, not {media or 'no Content-Type'}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise HTTPException(413, f"the body is larger than {max_body} bytes")
        return bytes(body)

    @app.get("/healthz", tags=["health"], summary="Liveness (no authentication)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/whoami", tags=["identity"], response_model=Whoami, responses=_problem_responses(*AUTH_ERRORS),
             summary="The identity the server sees behind your token")
    def whoami(caller: Caller = Depends(authenticated)) -> dict[str, Any]:
        return {"userId": caller.user_id, "user": caller.user_name, "domain": caller.domain_name,
                "domainId": caller.domain_id, "agency": caller.agency, "roles": sorted(caller.roles),
                "actor": caller.actor, "authenticated": caller.authenticated}

    @app.post("/v1/requests", tags=["requests"], status_code=201, response_model=None,
              summary="Submit a TenantRequest (YAML) as a new version pending approval",
              responses={201: {"model": Version, "description": "stored"},
                         200: {"model": Version, "description": "identical to the open version: nothing stored"},
                         **_problem_responses(*AUTH_ERRORS, 403, 409, 413, 415, 422)},
              openapi_extra={"requestBody": {"required": True, "content": {
                  t: {"schema": {"type": "string", "description": "a TenantRequest document"}}
                  for t in YAML_TYPES[:2]}}})
    def submit(caller: Caller = Depends(authenticated), body: bytes = Depends(yaml_body),
               filename: str = Query("<request>", max_length=255, pattern=r"^[^\x00-\x1f]*$",
                                     description="file name used in problems (FILE:LINE:COL)")) -> JSONResponse:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:  # the loader names the first bad byte as FILE:LINE:COL and raises
            service.load_request(body, filename)
            raise
        version = service.submit(text, caller=caller, filename=filename)
        if version.get("unchanged"):
            return JSONResponse(version, status_code=200)
        return JSONResponse(version, status_code=201, headers={"Location": f"/v1/requests/{version['id']}"})

    @app.get("/v1/requests", tags=["requests"], response_model=None,
             responses={200: {"model": list[Version]}, **_problem_responses(*AUTH_ERRORS)},
             summary="Request versions you may see (your agency's; operators: all)")
    def list_requests(caller: Caller = Depends(authenticated), tenant: str | None = Query(None, max_length=64),
                      state: VERSION_STATES | None = None) -> list[dict[str, Any]]:
        return service.list_versions(caller=caller, tenant=tenant, state=state)

    @app.get("/v1/requests/{request_id}", tags=["requests"], response_model=None,
             responses={200: {"model": Version}, **_problem_responses(*AUTH_ERRORS, 404)},
             summary="One request version with its decisions and YAML (secret vars masked)")
    def show(request_id: int, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
        return service.show(request_id, caller=caller)

    def _decision(name: str):
        def decide(request_id: int, decision: Decision, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
            return getattr(service, name)(request_id, caller=caller, reason=decision.reason)

        app.post(f"/v1/requests/{{request_id}}/{name}", tags=["requests"], response_model=None, name=name,
                 responses={200: {"model": Version}, **_problem_responses(*AUTH_ERRORS, 403, 404, 409, 422)},
                 summary=f"{name.capitalize()} a pending version (an approver of its agency, never its submitter)",
                 )(decide)

    _decision("approve")
    _decision("reject")

    @app.delete("/v1/tenants/{tenant}", tags=["tenants"], status_code=202, response_model=None,
                responses={202: {"model": Version}, **_problem_responses(*AUTH_ERRORS, 403, 404, 409)},
                summary="File the deletion of a tenant: a version that needs approval like any change")
    def delete(tenant: str, caller: Caller = Depends(authenticated),
               reason: str = Query("", max_length=2000)) -> dict[str, Any]:
        return service.delete(tenant, caller=caller, reason=reason)

    @app.get("/v1/tenants/{tenant}", tags=["tenants"], response_model=None,
             responses={200: {"model": TenantStatus}, **_problem_responses(*AUTH_ERRORS, 404)},
             summary="Phase, conditions and events of a tenant")
    def status(tenant: str, caller: Caller = Depends(authenticated)) -> dict[str, Any]:
        return service.status(tenant, caller=caller)

    @app.get("/v1/audit", tags=["audit"], response_model=None,
             responses={200: {"content": {"application/json": {"schema": {"type": "array", "items": {
                 "type": "object"}}}}}, **_problem_responses(*AUTH_ERRORS, 404)},
             summary="Audit records you may see (your agency's tenants; operators: all)")
    def audit_export(caller: Caller = Depends(authenticated), since: datetime | None = None,
                     tenant: str | None = Query(None, max_length=64)) -> list[dict[str, Any]]:
        return service.audit_export(caller=caller, since=since, tenant=tenant)

    @app.get("/v1/audit/verify", tags=["audit"], response_model=None,
             responses={200: {"model": VerifyReport}, **_problem_responses(*AUTH_ERRORS)},
             summary="Verify the whole hash chain (optionally against an anchor head hash)")
    def audit_verify(caller: Caller = Depends(authenticated),
                     expectHead: str | None = Query(None, max_length=128)) -> dict[str, Any]:  # noqa: N803
        return service.audit_verify(caller=caller, expect_head=expectHead)

    # the web console (/web): same process, same validator and limiter, same use cases (docs/web.md)
    mount_console(app, service=service, validator=validator, agencies=agencies, limiter=limiter, **(console or {}))
    return app


# --- errors -----------------------------------------------------------------------------------

def _problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=problems.MEDIA_TYPE)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GcloudctlError)
    async def _use_case_error(request: Request, exc: GcloudctlError) -> JSONResponse:
        status, body, headers = problems.from_error(exc, instance=request.url.path)
        if status >= 500:
            log.warning("%s %s: %s %s", request.method, request.url.path, status, exc.message)
        return _problem_response(status, body, headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _problem_response(exc.status_code, problems.for_status(exc.status_code, str(exc.detail),
                                                                      instance=request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = [{"path": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "invalid"),
                  "text": f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"}
                 for e in exc.errors()]
        return _problem_response(400, problems.for_status(400, f"{len(found)} problem(s) in the call's parameters",
                                                          instance=request.url.path, problems=found))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return _problem_response(500, problems.for_status(500, "the server failed; the error was logged",
                                                          instance=request.url.path))


class _ContentLengthLimit:
    """Pure ASGI middleware: a declared Content-Length over the limit is refused with 413 before
    anything is read (streamed bodies are counted by the routes that read them)."""

    def __init__(self, app: Any, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or ()).get(b"content-length")
            too_big = declared is not None and (not declared.isdigit() or int(declared) > self.max_body)
            if too_big:
                status = 413 if declared.isdigit() else 400
                body = problems.for_status(status, f"the body is larger than {self.max_body} bytes" if status == 413
                                           else "Content-Length is not a number", instance=scope.get("path"))
                await JSONResponse(body, status_code=status, media_type=problems.MEDIA_TYPE,
                                   headers={"Connection": "close"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 contract, without a server (`gcloudctl schema api`)."""
    return create_app(service=None, validator=CachingValidator(None), agencies=None).openapi()
