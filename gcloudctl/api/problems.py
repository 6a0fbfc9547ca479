"""Stage: API edge (rendering errors). `gcloudctl.errors` -> RFC 9457 problem+json.

One table maps each error class to an HTTP status and a problem type; the body carries the
message (`detail`), the hint, and for bad input the same FILE:LINE:COL problems `gcloudctl
validate` prints (`problems[].text`, plus their fields). `client` reads these bodies back into
the same error classes, so the CLI's exit codes do not depend on the transport.
Pure: builds values; `app` sends them.
"""

from __future__ import annotations

from typing import Any

from gcloudctl.errors import (
    CloudError, Forbidden, GcloudctlError, InvalidInput, NotFound, RateLimited, Refused, Unauthenticated,
    Unreachable,
)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://gcloud.gov.vn/problems/"

# (error class, HTTP status, problem type slug, title); first match wins (subclasses first)
STATUS_TABLE: tuple[tuple[type[GcloudctlError], int, str, str], ...] = (
    (InvalidInput, 422, "invalid-request", "The request is not valid"),
    (Unauthenticated, 401, "unauthenticated", "Authentication required"),
    (Forbidden, 403, "forbidden", "Not allowed"),
    (RateLimited, 429, "rate-limited", "Too many requests"),
    (Refused, 409, "refused", "Refused"),
    (NotFound, 404, "not-found", "Not found"),
    (Unreachable, 503, "unavailable", "A service the API needs did not answer"),
    (CloudError, 502, "cloud-error", "The cloud answered with an error"),
)

# problems the HTTP layer raises itself (before any use case): status -> (slug, title)
HTTP_TYPES = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    500: ("internal-error", "Internal error"),
}


def problem(status: int, slug: str, title: str, detail: str, *, hint: str | None = None,
            instance: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if hint:
        body["hint"] = hint
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def from_error(exc: GcloudctlError, instance: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, problem body, extra headers) for a use-case error."""
    status, slug, title = next(((s, slug, t) for cls, s, slug, t in STATUS_TABLE if isinstance(exc, cls)),
                               (500, "internal-error", "Internal error"))
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["problems"] = [p.to_dict() | {"text": p.format()} for p in exc.problems]
        detail = f"{len(exc.problems)} problem(s); nothing was stored"
    else:
        detail = exc.message
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(int(exc.retry_after))
        extra["retryAfter"] = int(exc.retry_after)
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Keystone realm="gcloudctl"'
    if status == 500:
        detail = "the server failed; the error was logged"
    return status, problem(status, slug, title, detail, hint=exc.hint, instance=instance, **extra), headers


def for_status(status: int, detail: str, *, hint: str | None = None, instance: str | None = None,
               **extra: Any) -> dict[str, Any]:
    slug, title = HTTP_TYPES.get(status, ("http-error", "HTTP error"))
    return problem(status, slug, title, detail, hint=hint, instance=instance, **extra)
