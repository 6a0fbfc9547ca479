"""The store on PostgreSQL: migrations, disjoint lease claims under concurrency, the audit chain."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from gcloudctl.controller.audit import verify
from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store

from .conftest import BYT_APPROVER1, BYT_REQUESTER, load_model, request_text

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def pg_store(postgres_url):
    store = open_store(postgres_url)
    yield store
    store.dispose()


def test_migrations_are_idempotent_and_match_models(postgres_url, pg_store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gcloudctl.controller.store import Base, create_db_engine, migrate

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "gcloudctl.controller:migrations")
    assert migrate(create_db_engine(postgres_url)) == ScriptDirectory.from_config(cfg).get_current_head()
    with pg_store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_concurrent_claims_are_disjoint(pg_store, agencies, rules, clock):
    service = RequestService(pg_store, agencies, rules, load_model, clock)
    closed = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}
    for i in range(30):
        version = service.submit(request_text(f"tenant-{i:02d}", **closed), caller=BYT_REQUESTER)
        service.approve(version["id"], caller=BYT_APPROVER1, reason="ok")

    def claim(holder):
        got = []
        for _ in range(10):
            with pg_store.tx() as tx:
                got += [c.tenant for c in tx.claim_due(holder, clock(), 2, 30)]
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(claim, ["a", "b", "c", "d"]))
    claimed = [t for r in results for t in r]
    assert len(claimed) == len(set(claimed)) == 30, "every tenant claimed exactly once"


def test_audit_chain_under_concurrent_appends(pg_store):
    def append(i):
        with pg_store.tx() as tx:
            tx.append_audit(NOW, f"w{i % 4}", "x", None, {"i": i})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, range(100)))
    with pg_store.tx() as tx:
        records, head = list(tx.audit_records()), tx.audit_head()
    assert len(records) == 100 and verify(records, head) == []


@pytest.mark.parametrize("sql,expected", [
    ("UPDATE audit SET actor = 'mallory' WHERE seq = 2", "hash mismatch"),
    ("DELETE FROM audit WHERE seq = 2", "sequence gap"),
    ("DELETE FROM audit WHERE seq = 3", "head mismatch"),
])
def test_tampering_detected_on_postgres(pg_store, sql, expected):
    from sqlalchemy import text

    from .tamper import drop_audit_guard

    with pg_store.tx() as tx:
        for i in range(3):
            tx.append_audit(NOW, "ctl", "tenant.apply", "t", {"i": i})
    drop_audit_guard(pg_store)  # an attacker with DDL rights (test_store_hardening: refused otherwise)
    with pg_store.engine.begin() as conn:
        conn.execute(text(sql))
    with pg_store.tx() as tx:
        breaks = verify(list(tx.audit_records()), tx.audit_head())
    assert any(expected in b.message for b in breaks), breaks


def test_sealed_versions_on_postgres(pg_store, agencies, rules, clock, sealer):
    """The seal binding and check hold on PostgreSQL too: applied when intact, nothing applied
    after the approved text is changed in place."""
    from sqlalchemy import text

    from gcloudctl.controller.reconciler import Reconciler
    from gcloudctl.controller.runner import Runner

    from .conftest import OPERATOR, submit_approved
    from .fakes import FakeWorld

    service = RequestService(pg_store, agencies, rules, load_model, clock, sealer=sealer)
    world = FakeWorld()
    runner = Runner(pg_store, Reconciler(pg_store, world, holder="pg", interval=60, clock=clock,
                                         unseal=sealer.unseal), clock=clock)
    closed = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}
    good = submit_approved(service, request_text("pg-sealed-good", **closed))
    bad = submit_approved(service, request_text("pg-sealed-bad", **closed))
    with pg_store.engine.begin() as conn:
        conn.execute(text("UPDATE requests SET raw_yaml = raw_yaml || '# edited' WHERE id = :id"), {"id": bad["id"]})
    summary = runner.run_once()
    results = {o.tenant: o.result.value for o in summary.outcomes}
    assert results["pg-sealed-good"] == "applied" and results["pg-sealed-bad"] == "tampered"
    assert world.writes["pg-sealed-bad"] == 0 and world.writes["pg-sealed-good"] > 0
    assert good["rulesVersion"] == service.show(good["id"], caller=OPERATOR)["decisions"][0]["rulesVersion"]
