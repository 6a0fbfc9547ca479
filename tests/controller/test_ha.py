"""HA: two controller processes on one PostgreSQL; one is SIGKILLed in the middle of applying.

Every tenant still converges (the survivor takes over the dead one's tenants once their leases
expire) and no tenant is ever written by both controllers at the same time (the write log's
intervals per tenant never overlap across controllers)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store

from .conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR, load_model, request_text
from .fakes import desired
from .ha_worker import WORLD_DDL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 24
LEASE = 3.0


def _start(url, label, workers, logs):
    stderr = open(logs / f"controller-{label}.log", "w")  # a file, not a pipe: a full pipe would block it
    return subprocess.Popen([sys.executable, "-m", "tests.controller.ha_worker", url, label, str(workers)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)


def _ready(process):
    assert process.stdout.readline().strip() == "ready", f"controller did not start: {process.args}"


def _wait(predicate, timeout, what, detail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"; {detail()}" if detail else ""))


def test_two_controllers_one_killed_every_tenant_converges_without_double_apply(postgres_url, agencies, rules,
                                                                             tmp_path):
    store = open_store(postgres_url)
    db = create_engine(postgres_url)
    with db.begin() as conn:
        for ddl in WORLD_DDL:
            conn.execute(text(ddl))
    service = RequestService(store, agencies, rules, load_model)
    requests = {}
    for i in range(TENANTS):
        name = f"ha-tenant-{i:02d}"
        servers = [{"name": "web", "count": 1 + i % 5, "flavor": "g1.small", "image": "debian-12-hardened",
                    "networks": ["app"]}]  # tenants of different sizes: the controllers drift out of step
        requests[name] = load_model(request_text(name, **{"spec.servers": servers}))
        version = service.submit(request_text(name, **{"spec.servers": servers}), caller=BYT_REQUESTER)
        for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
            service.approve(version["id"], caller=approver, reason="ok")

    with db.begin() as conn:  # hold all work until both controllers are up, so they really overlap
        conn.execute(text("UPDATE tenants SET next_reconcile_at = NULL"))
    a, b = _start(postgres_url, "A", 2, tmp_path), _start(postgres_url, "B", 3, tmp_path)
    try:
        _ready(a), _ready(b)
        with db.begin() as conn:
            conn.execute(text("UPDATE tenants SET next_reconcile_at = updated_at"))

        def a_mid_apply():
            """Both have finished 3 applies, and A is applying a tenant with >= 3 writes still to go
            (so that the apply is surely still running when the signal lands)."""
            with db.connect() as conn:
                done = dict(conn.execute(text(
                    "SELECT label, count(*) FROM fake_applies WHERE ended IS NOT NULL GROUP BY label")).all())
                if done.get("A", 0) < 3 or done.get("B", 0) < 3:
                    return False
                running = conn.execute(text(
                    "SELECT a.tenant, (SELECT count(*) FROM fake_writes w WHERE w.tenant = a.tenant) "
                    "FROM fake_applies a WHERE a.label = 'A' AND a.ended IS NULL")).all()
            return any(len(desired(requests[tenant])) - writes >= 3 for tenant, writes in running)

        _wait(a_mid_apply, 30, "both controllers to have finished 3 applies, and A to be in the middle of another")
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        with db.connect() as conn:
            killed_at = conn.execute(text("SELECT clock_timestamp()")).scalar()
            orphaned = {r[0] for r in conn.execute(text(
                "SELECT tenant FROM fake_applies WHERE label = 'A' AND ended IS NULL"))}
        assert orphaned, "A was killed with an apply in flight"

        def not_ready():
            statuses = [service.status(name, caller=OPERATOR) for name in requests]
            return [(s["tenant"], s["phase"], s["observedGeneration"], s["lastError"]) for s in statuses
                    if not (s["phase"] == "ready" and s["observedGeneration"] == 1)]

        _wait(lambda: not not_ready(), 90, "every tenant to be ready", detail=lambda: f"not ready: {not_ready()}")
    finally:
        b.send_signal(signal.SIGTERM)
        try:
            b.wait(30)
        except subprocess.TimeoutExpired:
            b.kill()
        for process in (a, b):
            if process.poll() is None:
                process.kill()

    with db.connect() as conn:
        world = {}
        for tenant, address in conn.execute(text("SELECT tenant, address FROM fake_resources")):
            world.setdefault(tenant, set()).add(address)
        overlaps = conn.execute(text(
            "SELECT x.tenant, x.label, y.label FROM fake_applies x JOIN fake_applies y "
            "ON x.tenant = y.tenant AND x.label < y.label "
            "AND x.started < coalesce(y.ended, :k) AND y.started < coalesce(x.ended, :k)"), {"k": killed_at}).all()
        by_label = dict(conn.execute(text("SELECT label, count(*) FROM fake_writes GROUP BY label")).all())
        b_took = {r[0] for r in conn.execute(text("SELECT DISTINCT tenant FROM fake_writes WHERE label = 'B'"))}
        takeover = conn.execute(text(
            "SELECT extract(epoch FROM min(started) - :k) FROM fake_writes "
            "WHERE label = 'B' AND tenant = ANY(:t) AND started > :k"), {"k": killed_at, "t": sorted(orphaned)}).scalar()
    for name, request in requests.items():
        assert world.get(name) == desired(request), f"{name} did not converge"
    assert overlaps == [], f"tenants written by both controllers at once: {overlaps}"
    assert orphaned <= b_took, "the survivor finished what the dead controller had in flight"
    assert by_label.get("A", 0) > 0 and by_label.get("B", 0) > 0
    assert float(takeover) <= LEASE + 1.5, f"takeover took {takeover}s, lease is {LEASE}s"
    print(f"writes per controller: {by_label}; orphaned tenants {sorted(orphaned)}; takeover after {float(takeover):.2f}s")
    store.dispose()
