"""Stage: API edge (load). A token bucket per identity (Keystone user id).

Each identity gets `burst` calls at once and `rate` more per second; a call over the budget
raises `RateLimited` with the seconds until one call is allowed again (the API answers 429 with
Retry-After). The API also keeps a bucket per client address for *refused* tokens (`check`
before asking Keystone, `take` after a refusal), so guessing tokens cannot flood Keystone. The clock is injected (monotonic seconds). Called by `gcloudctl.api.app`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from gcloudctl.errors import RateLimited

DEFAULT_RATE = 10.0  # calls per second, sustained, per identity
DEFAULT_BURST = 40


@dataclass
class RateLimiter:
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)  # id -> (tokens, at)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, identity: str) -> None:
        """Spend one call of `identity`'s budget, or raise RateLimited."""
        self._charge(identity, spend=True)

    def check(self, identity: str) -> None:
        """Raise RateLimited when `identity` has no call left, without spending one."""
        self._charge(identity, spend=False)

    def _charge(self, identity: str, *, spend: bool) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(identity, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[identity] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise RateLimited(f"too many calls (limit {self.rate:g}/s, burst {self.burst})",
                                  retry_after=wait, hint=f"retry after {wait} s")
            self._buckets[identity] = (tokens - 1.0 if spend else tokens, now)
