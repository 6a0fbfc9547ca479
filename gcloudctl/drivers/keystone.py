"""Stage: driver (identity). Keystone tokens: validate one for the request API, get one for the CLI.

Two callers, two directions:
- the request API (`gcloudctl.api`) validates every caller's `X-Auth-Token` against the real
  Keystone with the *server's own* service credentials (a clouds.yaml entry):
  `GET /v3/auth/tokens` with `X-Subject-Token` (`?nocatalog`). Keystone answers 200 with the
  token's user, scope and roles, or 404/401 for an expired, revoked or forged token.
  `KeystoneValidator.validate` returns a neutral `ValidatedToken` or raises `Unauthenticated`
  (Keystone refused the token) or `Unreachable` (Keystone did not answer; the API says 503).
  No caching here: `gcloudctl.api.auth.CachingValidator` bounds that at the edge.
- the CLI's API mode (`gcloudctl.cli.controller`) takes the caller's token from the caller's own
  clouds.yaml entry (`user_token_source`).

Idempotence: both calls only read (validating a token changes nothing in Keystone; issuing a
token for the caller's own credentials is the caller's ordinary login). Only this module and
the other drivers import keystoneauth1/openstacksdk (import-linter holds it). Never logs a token.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from gcloudctl.errors import InvalidInput, Unauthenticated, Unreachable

log = logging.getLogger("gcloudctl.drivers.keystone")

DEFAULT_SERVICE_CLOUD = "devcloud-gcloudctl"
_IDENTITY = {"service_type": "identity", "interface": "public"}


@dataclass(frozen=True)
class ValidatedToken:
    """What Keystone says about a token it accepted (plain data; no secret)."""

    user_id: str
    user_name: str
    user_domain_id: str | None
    user_domain_name: str | None
    roles: frozenset[str]
    expires_at: datetime
    scope_domain_name: str | None = None  # the domain the token is scoped to, or its project's domain
    scope_project_name: str | None = None
    system_scope: bool = False


def parse_token(body: dict[str, Any]) -> ValidatedToken:
    """The `token` document of Keystone's answer as a `ValidatedToken` (pure)."""
    token = body["token"]
    user = token["user"]
    project, domain = token.get("project") or {}, token.get("domain") or {}
    scope_domain = domain.get("name") or (project.get("domain") or {}).get("name")
    return ValidatedToken(
        user_id=user["id"], user_name=user.get("name") or user["id"],
        user_domain_id=(user.get("domain") or {}).get("id"), user_domain_name=(user.get("domain") or {}).get("name"),
        roles=frozenset(r["name"] for r in token.get("roles") or [] if r.get("name")),
        expires_at=_parse_time(token["expires_at"]), scope_domain_name=scope_domain,
        scope_project_name=project.get("name"), system_scope=bool(token.get("system")))


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _cloud_config(cloud: str, clouds_yaml: str | None = None):
    import openstack.config
    from openstack import exceptions as os_exc

    try:  # the entry is named: $OS_CLIENT_CONFIG_FILE is honoured, OS_* auth variables build no cloud of theirs
        config = openstack.config.OpenStackConfig(config_files=[clouds_yaml], load_envvars=False) if clouds_yaml \
            else openstack.config.OpenStackConfig()
        return config.get_one(cloud)
    except os_exc.ConfigException as exc:
        raise InvalidInput(f"clouds.yaml entry {cloud!r}: {exc}",
                           hint="check the entry's name and ~/.config/openstack/clouds.yaml "
                                "(or $OS_CLIENT_CONFIG_FILE)") from None


@dataclass
class KeystoneValidator:
    """Validates tokens against Keystone with the server's service session.

    `calls` counts the validations sent to Keystone (the benchmark prints it per request)."""

    session: Any  # keystoneauth1.session.Session authenticated as the service user
    timeout: float = 5.0
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_cloud(cls, cloud: str = DEFAULT_SERVICE_CLOUD, *, clouds_yaml: str | None = None,
                   timeout: float = 5.0) -> "KeystoneValidator":
        return cls(session=_cloud_config(cloud, clouds_yaml).get_session(), timeout=timeout)

    def validate(self, token: str) -> ValidatedToken:
        from keystoneauth1 import exceptions as ksa_exc

        with self._lock:
            self.calls += 1
        try:
            response = self.session.get("/auth/tokens?nocatalog", endpoint_filter=_IDENTITY,
                                        headers={"X-Subject-Token": token}, raise_exc=False, timeout=self.timeout)
        except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout, ksa_exc.DiscoveryFailure,
                ksa_exc.RequestTimeout, ksa_exc.SSLError, ksa_exc.EndpointNotFound) as exc:
            raise Unreachable(f"Keystone did not answer: {type(exc).__name__}",
                              hint="try again shortly; platform ops: check Keystone") from None
        except ksa_exc.Unauthorized:  # the service's own credentials were refused
            log.error("Keystone refused the API's service credentials")
            raise Unreachable("the API cannot authenticate to Keystone", hint="platform ops: check the service "
                              "user's clouds.yaml entry (--os-cloud)") from None
        if response.status_code in (401, 404):
            raise Unauthenticated("the token is not valid (expired, revoked or unknown)",
                                  hint="get a new token: `openstack --os-cloud YOUR-ENTRY token issue`")
        if response.status_code != 200:
            raise Unreachable(f"Keystone answered {response.status_code} to a token validation",
                              hint="try again shortly; platform ops: check Keystone")
        try:
            return parse_token(response.json())
        except (ValueError, KeyError, TypeError):
            raise Unreachable("Keystone's token validation answer could not be read") from None


def user_token_source(cloud: str, *, clouds_yaml: str | None = None) -> Callable[[], str]:
    """A callable returning the caller's token from their clouds.yaml entry (keystoneauth reuses it
    until it nears expiry). Raises Unauthenticated when Keystone refuses the credentials."""
    session = _cloud_config(cloud, clouds_yaml).get_session()

    def token() -> str:
        from keystoneauth1 import exceptions as ksa_exc

        try:
            value = session.get_token()
        except ksa_exc.Unauthorized:
            raise Unauthenticated(f"Keystone refused the credentials of clouds.yaml entry {cloud!r}",
                                  hint="check the password / application credential in that entry") from None
        except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout, ksa_exc.DiscoveryFailure) as exc:
            raise Unreachable(f"Keystone did not answer ({type(exc).__name__})") from None
        if not value:
            raise Unauthenticated(f"clouds.yaml entry {cloud!r} yields no token")
        return value

    return token
