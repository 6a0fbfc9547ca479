"""One controller process for the HA test: `python -m tests.controller.ha_worker URL LABEL WORKERS`.

The real Runner, Reconciler and Store on a shared PostgreSQL; the cloud is a world kept in the
same database (`fake_resources`) so that every process sees one cloud, and every write is logged
with its start and end time (`fake_writes`), as is every apply (`fake_applies`), so the test can
prove no tenant was applied by two controllers at once.
"""

from __future__ import annotations

import random
import signal
import sys
import threading
import time

from sqlalchemy import create_engine, text

from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner, holder_id
from gcloudctl.controller.service import utcnow
from gcloudctl.controller.store import open_store

from .conftest import load_model
from .fakes import FakeChange, FakePlan, FakeResult, desired

WORLD_DDL = [
    "CREATE TABLE IF NOT EXISTS fake_resources (tenant text, address text, PRIMARY KEY (tenant, address))",
    "CREATE TABLE IF NOT EXISTS fake_writes (id serial PRIMARY KEY, tenant text, label text, address text, "
    "started timestamptz, ended timestamptz)",
    "CREATE TABLE IF NOT EXISTS fake_applies (id serial PRIMARY KEY, tenant text, label text, "
    "started timestamptz, ended timestamptz)",
]


class SqlWorld:
    def __init__(self, url: str, label: str, write_seconds: float):
        self.db = create_engine(url)
        self.label, self.write_seconds = label, write_seconds

    def load(self, raw: str, filename: str):
        return load_model(raw, filename)

    def _have(self, tenant: str) -> set[str]:
        with self.db.connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT address FROM fake_resources WHERE tenant = :t"), {"t": tenant})}

    def plan(self, request) -> FakePlan:
        have, want = self._have(request.metadata.name), desired(request)
        changes = [FakeChange("create", a) for a in sorted(want - have)]
        changes += [FakeChange("delete", a, "drift") for a in sorted(have - want)]
        return FakePlan(request.metadata.name, tuple(changes))

    def plan_destroy(self, request) -> FakePlan:
        return FakePlan(request.metadata.name, tuple(FakeChange("delete", a) for a in sorted(self._have(request.metadata.name))))

    def apply(self, plan: FakePlan, request, fence=None) -> FakeResult:
        """Log the whole apply (first write to last) and every write, with database times."""
        with self.db.begin() as conn:
            apply_id = conn.execute(text(
                "INSERT INTO fake_applies (tenant, label, started) VALUES (:t, :l, clock_timestamp()) RETURNING id"),
                {"t": plan.tenant, "l": self.label}).scalar()
        outcomes = self._writes(plan, fence)
        with self.db.begin() as conn:
            conn.execute(text("UPDATE fake_applies SET ended = clock_timestamp() WHERE id = :i"), {"i": apply_id})
        return FakeResult(outcomes)

    def _writes(self, plan: FakePlan, fence=None) -> list[dict]:
        """Like the real executor: no write starts once the lease is no longer safely held."""
        outcomes = []
        for change in plan.changes:
            if fence is not None and not fence():
                outcomes.append({"address": change.address, "status": "skipped", "error": "skipped: cancelled"})
                continue
            with self.db.begin() as conn:
                write_id = conn.execute(text(
                    "INSERT INTO fake_writes (tenant, label, address, started) VALUES (:t, :l, :a, clock_timestamp()) "
                    "RETURNING id"), {"t": plan.tenant, "l": self.label, "a": change.address}).scalar()
            time.sleep(self.write_seconds * random.uniform(0.3, 1.7))  # the API call, of varying length
            with self.db.begin() as conn:
                if change.action == "delete":
                    conn.execute(text("DELETE FROM fake_resources WHERE tenant = :t AND address = :a"),
                                 {"t": plan.tenant, "a": change.address})
                else:
                    conn.execute(text("INSERT INTO fake_resources VALUES (:t, :a) ON CONFLICT DO NOTHING"),
                                 {"t": plan.tenant, "a": change.address})
                conn.execute(text("UPDATE fake_writes SET ended = clock_timestamp() WHERE id = :i"), {"i": write_id})
            outcomes.append({"address": change.address, "status": "done"})
        return outcomes

    def api_calls(self) -> dict[str, int]:
        return {}


def main(url: str, label: str, workers: int, lease: float = 3.0, write_seconds: float = 0.05) -> None:
    store = open_store(url)
    world = SqlWorld(url, label, write_seconds)
    reconciler = Reconciler(store, world, holder=f"{label}/{holder_id()}", interval=2.0, clock=utcnow)
    runner = Runner(store, reconciler, clock=utcnow, workers=workers, lease_seconds=lease, claim_poll=0.2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    runner.run(stop)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
