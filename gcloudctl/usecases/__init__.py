"""Use cases over a cloud and its hosts that the CLI, the request API and the controller share.

Stage: pipeline (use cases; see `gcloudctl.pipeline` for load/plan/apply/destroy). Modules:
`apply` (stale-plan check, checks before any write, apply, wait, harden, verify) and `harden`
(console-verified SSH, the level's playbooks, the audit checks, per server). Callers: `gcloudctl.cli`
(`apply`, `harden`), the controller's engine. They never read the environment or parse options:
the caller passes what it decided (key file, proxy command, deadline, progress callback).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Deadline:
    """A monotonic deadline passed down to every step of one command (`--timeout`); `at=None`
    means no limit."""

    at: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def within(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> "Deadline":
        return cls(None if seconds is None else clock() + seconds, clock)

    def remaining(self, default: float | None = None) -> float | None:
        """Seconds left (never below 0), or `default` when there is no limit."""
        if self.at is None:
            return default
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.at is not None and self.clock() >= self.at
