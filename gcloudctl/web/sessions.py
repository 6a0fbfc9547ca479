"""Stage: web edge (sessions and CSRF). Where a logged-in person's Keystone token is kept.

The token stays on the server: the browser holds only a random session id in an HttpOnly,
SameSite=Strict cookie (Secure under TLS), scoped to the console's path. A session ends at the
first of: logout (the token is revoked in Keystone), the token's own expiry, `idle_seconds`
without a page, or the server's restart (sessions live in memory: a restart is a logout).

CSRF: every form carries a token that must equal the one the server holds for the browser —
the session's own once logged in, before that (the login and language forms) a random value in
its own HttpOnly, SameSite=Strict cookie (double submit). Compared in constant time. The
SameSite=Strict cookies already keep other sites' forms from carrying the session; the token is
the second lock.

Called by `gcloudctl.web.routes`. Pure apart from the in-memory table (clock injected); never
logs a token or a session id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

SESSION_COOKIE = "gcloudctl_session"
CSRF_COOKIE = "gcloudctl_csrf"
LANG_COOKIE = "gcloudctl_lang"
IDLE_SECONDS = 30 * 60
MAX_SESSIONS = 10_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty or missing value never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


@dataclass
class Session:
    token: str
    csrf: str
    user: str
    expires_at: datetime  # the token's own expiry
    seen_at: datetime


@dataclass
class SessionStore:
    """Sessions by the sha256 of their id (the id itself is only in the browser's cookie)."""

    idle_seconds: float = IDLE_SECONDS
    clock: Callable[[], datetime] = utcnow
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()

    def open(self, token: str, user: str, expires_at: datetime) -> tuple[str, Session]:
        """A new session for a token Keystone just issued: (cookie value, session)."""
        now = self.clock()
        session_id = new_secret()
        session = Session(token=token, csrf=new_secret(), user=user, expires_at=expires_at, seen_at=now)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._evict(now)
            self._sessions[self._key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session behind a cookie value (touching it), or None."""
        if not session_id or len(session_id) > 128:
            return None
        now = self.clock()
        key = self._key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now >= session.expires_at or now - session.seen_at > timedelta(seconds=self.idle_seconds):
                del self._sessions[key]
                return None
            session.seen_at = now
            return session

    def close(self, session_id: str | None) -> Session | None:
        """Forget the session; returns it (its token is to be revoked) or None."""
        if not session_id:
            return None
        with self._lock:
            return self._sessions.pop(self._key(session_id), None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _evict(self, now: datetime) -> None:
        idle = timedelta(seconds=self.idle_seconds)
        for key in [k for k, s in self._sessions.items() if now >= s.expires_at or now - s.seen_at > idle]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
