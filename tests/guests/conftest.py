"""Fixture: the session's devcloud switched to guests mode for this package, back to plain after.

Switching restarts nova-compute (≈20 s each way). Afterwards the mode is plain again and no
guest, namespace, mount or guest process is left, whatever the tests did (checked here too).
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from gcloudctl.devcloud import guests, guests_runtime, lifecycle
from tests.fixtures.devcloud import DevcloudHandle, _layout


def _say(msg: str) -> None:
    print(f"devcloud guests: {msg}", file=sys.stderr)


def guest_leftovers(layout) -> dict[str, list]:
    """Guests, devcloud namespaces, mounts and guest processes that exist right now."""
    run = guests.runtime(layout)
    found = {
        "guests": run.uuids(),
        "netns": [ns for ns in guests_runtime._namespaces()
                  if ns.startswith(guests_runtime.NET_PREFIX) or ns == guests_runtime.PUBLIC_NS],
        "mounts": [m for m in guests_runtime.mounts_under(run.root) if "/images/" not in m],
        "processes": guests_runtime.guest_processes(run),
    }
    return {k: v for k, v in found.items() if v}


def wait_no_leftovers(layout, timeout: float = 30.0) -> dict[str, list]:
    deadline = time.monotonic() + timeout
    while True:
        left = guest_leftovers(layout)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@pytest.fixture(scope="package")
def guests_devcloud(devcloud: DevcloudHandle):
    layout = _layout()
    started = time.monotonic()
    guests.set_mode(layout, True, _say)
    lifecycle.up(layout, progress=_say, environ=dict(os.environ))
    devcloud.guests_switch_seconds = round(time.monotonic() - started, 1)
    yield devcloud
    guests.set_mode(layout, False, _say)  # plain again for the rest of the session; deletes any guest left
    lifecycle.up(layout, progress=_say, environ=dict(os.environ))
    assert not guests.load_mode(layout).enabled
    assert "GuestDriver" not in (layout.etc / "nova" / "nova-compute.conf").read_text()
