"""Stage: controller (scheduling). When to look at a tenant again after a reconcile.

Called by the reconciler to turn an outcome into the next reconcile time: the poll interval
after success, exponential backoff with jitter after a transient error (never sooner than the
API's Retry-After), never after a terminal error (until a new generation is approved).
Pure: the random source is injected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Backoff:
    base: float = 2.0  # seconds before the first retry (before jitter)
    factor: float = 2.0
    cap: float = 300.0  # never wait longer than this between retries
    jitter: float = 0.5  # the delay is scaled by a factor drawn from [1 - jitter, 1]
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th consecutive transient failure (1-based)."""
        raw = min(self.cap, self.base * self.factor ** max(0, failures - 1))
        jittered = raw * (1 - self.jitter * self.rand())
        return max(jittered, retry_after or 0.0)
