"""Stage: driver (identity). A person's Keystone login and logout, for the web console.

`KeystoneLogin.login(user, password, domain)` asks Keystone for a token with the person's own
password (`POST /v3/auth/tokens`, password method, scoped to the user's domain so the agency
roles come with it; a user with no role on its domain gets an unscoped token, which carries no
roles: such a person sees nothing in the console). It returns the
token only: what it means (user, roles, expiry) is read back through the same validation the
request API uses (`gcloudctl.drivers.keystone.KeystoneValidator`). `revoke(token)` ends it
(`DELETE /v3/auth/tokens`, the token revoking itself), so a logged-out token is refused by
Keystone everywhere, not only by this server.

Called by `gcloudctl.web` (the console's login and logout routes); built next to the request
API's validator from the same service session (only the identity endpoint is looked up with it;
a person's requests carry no service credentials). Idempotence: login issues a new token each
time (an ordinary login); revoking a revoked or unknown token is not an error. Never logs a
password or a token. Only drivers import keystoneauth1 (import-linter holds it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gcloudctl.errors import Unauthenticated, Unreachable

log = logging.getLogger("gcloudctl.drivers.keystone")

_IDENTITY = {"service_type": "identity", "interface": "public"}


def password_body(user: str, password: str, domain: str, *, scoped: bool = True) -> dict[str, Any]:
    """The `POST /v3/auth/tokens` body for a user of `domain` (pure)."""
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": domain}, "password": password}}}}
    if scoped:
        auth["scope"] = {"domain": {"name": domain}}
    return {"auth": auth}


@dataclass
class KeystoneLogin:
    session: Any  # keystoneauth1 Session (the server's service session: used to find the identity endpoint)
    timeout: float = 5.0

    def _call(self, method: str, path: str, **kwargs: Any):
        from keystoneauth1 import exceptions as ksa_exc

        try:
            return self.session.request(path, method, endpoint_filter=_IDENTITY, authenticated=False,
                                        raise_exc=False, timeout=self.timeout, **kwargs)
        except (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout, ksa_exc.DiscoveryFailure,
                ksa_exc.RequestTimeout, ksa_exc.SSLError, ksa_exc.EndpointNotFound) as exc:
            raise Unreachable(f"Keystone did not answer: {type(exc).__name__}",
                              hint="try again shortly; platform ops: check Keystone") from None
        except ksa_exc.Unauthorized:
            raise Unreachable("the server cannot find Keystone with its service credentials",
                              hint="platform ops: check the service user's clouds.yaml entry") from None

    def login(self, user: str, password: str, domain: str) -> str:
        """A new token for the person (domain-scoped when the user has a role on its domain)."""
        response = self._call("POST", "/auth/tokens?nocatalog", json=password_body(user, password, domain))
        if response.status_code == 401:  # a wrong password, or no role on the domain: ask once unscoped
            response = self._call("POST", "/auth/tokens?nocatalog",
                                  json=password_body(user, password, domain, scoped=False))
        if response.status_code in (400, 401, 403, 404):
            raise Unauthenticated("the user name, password or domain is not right")
        if response.status_code != 201 or not response.headers.get("X-Subject-Token"):
            raise Unreachable(f"Keystone answered {response.status_code} to a login")
        return response.headers["X-Subject-Token"]

    def revoke(self, token: str) -> bool:
        """Revoke the token (it revokes itself). True when Keystone revoked it now."""
        response = self._call("DELETE", "/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
        if response.status_code not in (204, 401, 404):
            log.warning("Keystone answered %s to a token revocation", response.status_code)
        return response.status_code == 204


def login_beside(validator: Any) -> KeystoneLogin | None:
    """A login driver on the session of the request API's Keystone validator (unwrapping its
    cache); None when the validator has no Keystone session (a test double)."""
    inner = getattr(validator, "inner", validator)
    session = getattr(inner, "session", None)
    return KeystoneLogin(session=session, timeout=getattr(inner, "timeout", 5.0)) if session is not None else None
