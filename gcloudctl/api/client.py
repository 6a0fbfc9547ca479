"""Stage: API edge (client). What the CLI calls when `--api URL` / `$GCLOUDCTL_API` is set.

`ApiClient` has the request service's use-case methods (submit, approve, reject, delete,
list_versions, show, status, audit_verify, audit_export) with the same arguments, so the CLI's
commands stay one call whichever backend answers; the `caller` argument is ignored — the server
builds the caller from the token (`token` is a callable from `drivers.keystone.user_token_source`,
the caller's own clouds.yaml entry). Problem+json answers come back as the same
`gcloudctl.errors` classes (401 -> Unauthenticated, 403 -> Forbidden, 409 -> Refused, 404 ->
NotFound, 400/413/415/422 -> InvalidInput with the server's FILE:LINE:COL problems, 429 ->
RateLimited, 5xx and connection failures -> Unreachable), so exit codes match direct mode.
Never logs or prints the token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import httpx

from gcloudctl.errors import (
    Forbidden, GcloudctlError, InvalidInput, NotFound, Problem, RateLimited, Refused, Unauthenticated, Unreachable,
)

_FIELDS = ("path", "message", "file", "line", "column", "hint", "rule")


@dataclass
class ApiClient:
    base_url: str
    token: Callable[[], str]
    verify: bool | str = True  # a CA bundle path for a private certificate authority
    timeout: float = 30.0
    _http: httpx.Client | None = field(default=None, repr=False)

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url.rstrip("/"), verify=self.verify, timeout=self.timeout)
        return self._http

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-Auth-Token": self.token(), "Accept": "application/json", **kwargs.pop("headers", {})}
        try:
            response = self._client().request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise Unreachable(f"the request API at {self.base_url} did not answer ({type(exc).__name__})",
                              hint="check --api / GCLOUDCTL_API and that the server runs") from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, _json(response), response.headers)
        return response.json()

    # --- the request service's use cases ---------------------------------------------------
    def submit(self, text: str, *, caller: Any = None, filename: str = "<request>") -> dict[str, Any]:
        return self.call("POST", "/v1/requests", params={"filename": filename}, content=text.encode("utf-8"),
                         headers={"Content-Type": "application/yaml"})

    def approve(self, request_id: int, *, caller: Any = None, reason: str) -> dict[str, Any]:
        return self.call("POST", f"/v1/requests/{int(request_id)}/approve", json={"reason": reason})

    def reject(self, request_id: int, *, caller: Any = None, reason: str) -> dict[str, Any]:
        return self.call("POST", f"/v1/requests/{int(request_id)}/reject", json={"reason": reason})

    def delete(self, tenant: str, *, caller: Any = None, reason: str = "") -> dict[str, Any]:
        return self.call("DELETE", f"/v1/tenants/{_segment(tenant)}", params={"reason": reason})

    def list_versions(self, *, caller: Any = None, tenant: str | None = None,
                      state: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"tenant": tenant, "state": state}.items() if v is not None}
        return self.call("GET", "/v1/requests", params=params)

    def show(self, request_id: int, *, caller: Any = None) -> dict[str, Any]:
        return self.call("GET", f"/v1/requests/{int(request_id)}")

    def status(self, tenant: str, *, caller: Any = None) -> dict[str, Any]:
        return self.call("GET", f"/v1/tenants/{_segment(tenant)}")

    def audit_verify(self, *, caller: Any = None, expect_head: str | None = None) -> dict[str, Any]:
        return self.call("GET", "/v1/audit/verify", params={"expectHead": expect_head} if expect_head else {})

    def audit_export(self, *, caller: Any = None, since: datetime | None = None,
                     tenant: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"since": since.isoformat() if since else None, "tenant": tenant}.items() if v}
        return self.call("GET", "/v1/audit", params=params)

    def whoami(self) -> dict[str, Any]:
        return self.call("GET", "/v1/whoami")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def _segment(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"detail": response.text[:500] or response.reason_phrase}


def error_from_response(status: int, body: dict[str, Any], headers: Any = None) -> GcloudctlError:
    """The `gcloudctl.errors` instance a problem+json answer stands for."""
    detail, hint = str(body.get("detail") or f"HTTP {status}"), body.get("hint")
    items = body.get("problems")
    if status in (400, 413, 415, 422):
        if items:
            return InvalidInput([Problem(**{k: p[k] for k in _FIELDS if p.get(k) is not None and k in p})
                                 if isinstance(p, dict) and "message" in p else Problem(path="", message=str(p))
                                 for p in items])
        return InvalidInput(detail, hint=hint)
    if status == 401:
        return Unauthenticated(detail, hint=hint or "check your clouds.yaml entry (--cloud / OS_CLOUD)")
    if status == 403:
        return Forbidden(detail, hint=hint)
    if status == 404:
        return NotFound(detail, hint=hint)
    if status == 409:
        return Refused(detail, hint=hint)
    if status == 429:
        retry = (headers or {}).get("Retry-After") or body.get("retryAfter") or 1
        return RateLimited(detail, retry_after=float(retry), hint=hint)
    return Unreachable(f"the request API answered {status}: {detail}", hint=hint)
