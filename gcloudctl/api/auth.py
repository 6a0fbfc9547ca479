"""Stage: API edge (authentication). From a Keystone token to a `Caller`, with a bounded cache.

- `caller_from_token` (pure): user id/name/domain from the token; agency = the registry agency
  whose Keystone domain is the user's domain; roles = the token's roles when its scope is that
  agency's domain (or a project in it), plus `gcloud-operator`/`admin` from any scope.
- `CachingValidator` wraps a validator (`gcloudctl.drivers.keystone.KeystoneValidator`, or a
  test double in the fast app tests) and keeps a validation no longer than the token lives and no
  longer than `ttl_seconds`: that window bounds how long a revoked token keeps working.
  Refusals are never cached (a later valid call must reach Keystone). Keys are sha256 digests,
  never the token itself.

Called by `gcloudctl.api.app` (per request) and `gcloudctl.api.server` (composition). Decides
nothing about what the caller may do: the request service does.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

from gcloudctl.model.identity import Caller, GcloudRole

DEFAULT_CACHE_SECONDS = 30.0
CACHE_MAX_ENTRIES = 10_000


class TokenValidator(Protocol):
    def validate(self, token: str) -> Any:  # -> gcloudctl.drivers.keystone.ValidatedToken
        ...


PLATFORM_ROLES = frozenset({GcloudRole.OPERATOR.value, GcloudRole.ADMIN.value})


def caller_from_token(token: Any, agencies: Any) -> Caller:
    """The `Caller` a validated token stands for (`agencies` has `agency_of_domain`)."""
    agency = agencies.agency_of_domain(token.user_domain_name)
    agency_scope = agency is not None and token.scope_domain_name == token.user_domain_name
    roles = set(token.roles & PLATFORM_ROLES)
    if agency_scope:
        roles |= token.roles
    return Caller(user_id=token.user_id, user_name=token.user_name, domain_id=token.user_domain_id,
                  domain_name=token.user_domain_name, roles=frozenset(roles), agency=agency, authenticated=True)


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class CachingValidator:
    """Validation results kept for min(ttl_seconds, the token's remaining life)."""

    inner: TokenValidator
    ttl_seconds: float = DEFAULT_CACHE_SECONDS
    clock: Callable[[], datetime] = utcnow
    max_entries: int = CACHE_MAX_ENTRIES
    _entries: dict[str, tuple[datetime, Any]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def validate(self, token: str) -> Any:
        key, now = token_key(token), self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry[0]:
                return entry[1]
            self._entries.pop(key, None)
        validated = self.inner.validate(token)  # raises for refused tokens: nothing cached
        until = min(now + timedelta(seconds=self.ttl_seconds), validated.expires_at)
        if self.ttl_seconds > 0 and until > now:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._evict(now)
                self._entries[key] = (until, validated)
        return validated

    def _evict(self, now: datetime) -> None:
        for key in [k for k, (until, _) in self._entries.items() if until <= now]:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
