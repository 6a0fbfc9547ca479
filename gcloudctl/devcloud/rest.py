"""A minimal JSON-over-HTTP client for devcloud's own bootstrap and readiness checks.

Stage: effect (network, loopback only). Called by bootstrap and lifecycle. Uses only the
standard library so devcloud never depends on the services venv or on openstacksdk (which
only gcloudctl.drivers may import). Must not retry on its own or talk to non-loopback hosts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from gcloudctl.devcloud import services as svc
from gcloudctl.errors import CloudError


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


@dataclass
class Session:
    """Admin session: one Keystone token, endpoints taken from the token's catalog."""

    token: str
    catalog: dict[str, str] = field(default_factory=dict)
    project_id: str = ""

    @classmethod
    def login(cls, username: str, password: str, project: str = "admin") -> "Session":
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
        url = svc.BY_NAME["keystone"].url + "/v3/auth/tokens"
        status, headers, data = _request("POST", url, body, {})
        if status != 201:
            raise CloudError(f"Keystone login as {username} failed: HTTP {status}", transient=False, status=status)
        catalog = {}
        for entry in data["token"].get("catalog", []):
            for endpoint in entry["endpoints"]:
                if endpoint["interface"] == "public":
                    catalog[entry["type"]] = endpoint["url"].rstrip("/")
        return cls(token=headers["X-Subject-Token"], catalog=catalog, project_id=data["token"]["project"]["id"])

    def url(self, service_type: str, path: str) -> str:
        base = self.catalog.get(service_type)
        if base is None:
            service = next(s for s in svc.SERVICES if s.catalog and s.catalog.service_type == service_type)
            base = service.url + service.catalog.path
        return base + path

    def call(self, method: str, service_type: str, path: str, body=None, *, ok=(200, 201, 202, 204),
             headers: dict | None = None, raw: bytes | None = None) -> dict:
        hdrs = {"X-Auth-Token": self.token, **(headers or {})}
        status, _, data = _request(method, self.url(service_type, path), body, hdrs, raw=raw)
        if status not in ok:
            raise CloudError(f"{method} {service_type}{path}: HTTP {status}: {str(data)[:300]}",
                             transient=status >= 500, status=status)
        return data

    def get(self, service_type: str, path: str, **kw) -> dict:
        return self.call("GET", service_type, path, **kw)

    def post(self, service_type: str, path: str, body, **kw) -> dict:
        return self.call("POST", service_type, path, body, **kw)


def _request(method: str, url: str, body, headers: dict, *, raw: bytes | None = None,
             timeout: float = 60.0) -> tuple[int, dict, dict]:
    data = raw
    headers = {"Accept": "application/json", **headers}
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), _decode(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), _decode(exc.read())
    except OSError as exc:
        raise CloudError(f"{method} {url}: {exc}", transient=True) from exc


def _decode(payload: bytes) -> dict:
    if not payload:
        return {}
    try:
        return json.loads(payload)
    except ValueError:
        return {"text": payload.decode(errors="replace")[:500]}
