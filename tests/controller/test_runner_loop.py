"""The long-running loop with real time: picks up approvals, repairs drift on the next poll,
and stops cleanly, releasing its leases."""

import threading
import time
from datetime import datetime, timezone

from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService

from .conftest import BYT_APPROVER1, BYT_REQUESTER, OPERATOR, load_model, request_text
from .fakes import FakeWorld

CLOSED = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}


def utc():
    return datetime.now(timezone.utc)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_loop_provisions_repairs_and_stops(store, agencies, rules):
    world = FakeWorld()
    service = RequestService(store, agencies, rules, load_model, utc)
    runner = Runner(store, Reconciler(store, world, holder="loop", interval=0.5, clock=utc), clock=utc,
                    workers=3, lease_seconds=5, claim_poll=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        for i in range(5):
            version = service.submit(request_text(f"loop-{i}", **CLOSED), caller=BYT_REQUESTER)
            service.approve(version["id"], caller=BYT_APPROVER1, reason="ok")
        assert wait_for(lambda: all(service.status(f"loop-{i}", caller=OPERATOR)["phase"] == "ready"
                                    for i in range(5)))
        world.resources["loop-3"].add("rule/web/ingress/tcp/22/0.0.0.0/0")
        started = time.monotonic()
        assert wait_for(lambda: "rule/web/ingress/tcp/22/0.0.0.0/0" not in world.resources["loop-3"])
        assert time.monotonic() - started < 2.0, "repaired on the next poll (interval 0.5 s)"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with store.tx() as tx:
        assert all(tx.lease(f"loop-{i}").holder is None for i in range(5)), "leases released on stop"
