"""Decides whether a service is ready from probe results gathered elsewhere.

Stage: pure (called by lifecycle's wait loops and by `status`). Inputs are plain values: an
HTTP status (or None when the connection failed), whether the pid lives, the Nova service
list and the process start time. Must not probe, sleep or read the clock itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping


class State(enum.Enum):
    UP = "up"
    STARTING = "starting"
    DOWN = "down"  # no live process
    FAILED = "failed"  # the process died while we waited for it
    OFF = "off"  # an optional service switched off (`devcloud up --no-cinder`)


@dataclass(frozen=True)
class Probe:
    alive: bool  # the pid from the pid file lives and its command line still matches
    http_status: int | None = None  # None: no HTTP answer (or not an HTTP service)
    heartbeat_ok: bool | None = None  # None: not a heartbeat service


def http_answered(status: int | None) -> bool:
    """Any answer below 500 comes from the application itself (versions doc, 401, 300)."""
    return status is not None and status < 500


def judge(probe: Probe, *, was_started: bool) -> State:
    if not probe.alive:
        return State.FAILED if was_started else State.DOWN
    if probe.http_status is not None or probe.heartbeat_ok is None:
        return State.UP if http_answered(probe.http_status) else State.STARTING
    return State.UP if probe.heartbeat_ok else State.STARTING


def parse_nova_time(value: str | None) -> datetime | None:
    """Nova's updated_at is naive UTC ('2026-11-23T20:55:01.000000')."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def heartbeat_since(services: Iterable[Mapping], binary: str, host: str, started_at: float) -> bool:
    """True when the service row of binary@host was updated after the process started.

    After a restart the old row stays "up" for service_down_time; only a newer heartbeat
    proves the new process reached the database through the conductor.
    """
    for row in services:
        if row.get("binary") != binary or row.get("host") != host:
            continue
        updated = parse_nova_time(row.get("updated_at"))
        if updated is not None and updated.timestamp() >= started_at - 1.0:
            return True
    return False
