"""The audit chain detects any UPDATE, DELETE or INSERT made behind the controller's back.

The database itself refuses UPDATE and DELETE on audit rows (triggers of migration 0003), so a
tamperer must first drop those triggers — an attacker with DDL rights; the detection tests do
that explicitly (`tamper.drop_audit_guard`), and `test_audit_rows_cannot_be_edited_in_place`
shows the same SQL refused while the triggers stand."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from gcloudctl.controller import audit
from gcloudctl.controller.audit import GENESIS, mask, seal, verify

from .conftest import OPERATOR
from .tamper import drop_audit_guard


def fill(store, clock, n=5):
    with store.tx() as tx:
        for i in range(n):
            clock.advance(60)
            tx.append_audit(clock(), f"user{i}", "request.submit", f"tenant-{i}", {"i": i})


def raw(store, sql, **params):
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


TAMPERING = [
    ("update-data", "UPDATE audit SET data = replace(data, '2', '7') WHERE seq = 3", "hash mismatch"),
    ("update-actor", "UPDATE audit SET actor = 'someone.else' WHERE seq = 2", "hash mismatch"),
    ("update-time", "UPDATE audit SET at = '2020-01-01T00:00:00Z' WHERE seq = 4", "hash mismatch"),
    ("delete-middle", "DELETE FROM audit WHERE seq = 3", "sequence gap"),
    ("delete-first", "DELETE FROM audit WHERE seq = 1", "sequence gap"),
    ("delete-last", "DELETE FROM audit WHERE seq = 5", "head mismatch"),
    ("renumber-after-delete", "DELETE FROM audit WHERE seq = 5; UPDATE audit_head SET seq = 4", "head mismatch"),
    ("insert-forged", "INSERT INTO audit (seq, at, actor, action, tenant, data, prev_hash, hash) "
                      "VALUES (6, '2026-11-24T00:00:00Z', 'mallory', 'request.approve', 't', '{}', 'x', 'y')",
     "past the chain head"),
]


@pytest.mark.parametrize("case_id,sql,expected", TAMPERING, ids=[c[0] for c in TAMPERING])
def test_tampering_is_detected(store, clock, service, case_id, sql, expected):
    fill(store, clock)
    assert service.audit_verify(caller=OPERATOR)["ok"]
    drop_audit_guard(store)  # an attacker with DDL rights
    for statement in sql.split("; "):
        raw(store, statement)
    report = service.audit_verify(caller=OPERATOR)
    assert not report["ok"]
    assert any(expected in b["message"] for b in report["breaks"]), report["breaks"]


EDITS = [c for c in TAMPERING if not c[1].startswith("INSERT")]


@pytest.mark.parametrize("case_id,sql,expected", EDITS, ids=[c[0] for c in EDITS])
def test_audit_rows_cannot_be_edited_in_place(store, clock, service, case_id, sql, expected):
    """Without dropping the triggers, UPDATE and DELETE of audit rows fail (SQLite: RAISE(ABORT));
    the chain stays whole. (An INSERT is an append: only the chain can judge it.)"""
    from sqlalchemy.exc import DatabaseError

    fill(store, clock)
    statement = sql.split("; ")[0]
    with pytest.raises(DatabaseError, match="audit records are append-only"):
        raw(store, statement)
    assert service.audit_verify(caller=OPERATOR)["ok"]
    with store.tx() as tx:
        assert len(list(tx.audit_records())) == 5


def test_rehashed_forgery_is_caught_by_external_anchor(store, clock, service):
    """An attacker who rewrites a record AND every later hash AND the head defeats the chain
    alone; an exported head hash (anchor) kept elsewhere still catches it."""
    fill(store, clock)
    anchor = service.audit_verify(caller=OPERATOR)["head"]["hash"]
    drop_audit_guard(store)  # an attacker with DDL rights
    with store.tx() as tx:
        records = list(tx.audit_records())
    previous = GENESIS
    for r in records:
        data = {"i": 42} if r.seq == 2 else r.data
        forged = seal(previous, r.seq, r.at, r.actor, r.action, r.tenant, data)
        raw(store, "UPDATE audit SET data = :d, prev_hash = :p, hash = :h WHERE seq = :s",
            d=audit.canonical(forged.data), p=forged.prev_hash, h=forged.hash, s=r.seq)
        previous = forged.hash
    raw(store, "UPDATE audit_head SET hash = :h", h=previous)
    assert service.audit_verify(caller=OPERATOR)["ok"], "a full re-hash is consistent by construction"
    assert not service.audit_verify(caller=OPERATOR, expect_head=anchor)["ok"]


def test_export_since(store, clock, service):
    start = clock()
    fill(store, clock, 5)
    since = start + timedelta(seconds=181)  # records at +60, +120, +180, +240, +300
    assert [r["seq"] for r in service.audit_export(caller=OPERATOR, since=since)] == [4, 5]


def test_concurrent_appends_stay_a_chain(tmp_path, clock):
    from concurrent.futures import ThreadPoolExecutor

    from gcloudctl.controller.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")

    def append(i):
        with store.tx() as tx:
            tx.append_audit(clock(), "w", "x", None, {"i": i})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, range(80)))
    with store.tx() as tx:
        records, head = list(tx.audit_records()), tx.audit_head()
    assert len(records) == 80 and verify(records, head) == []


@pytest.mark.parametrize("data,secret", [
    ({"password": "p4ss"}, "p4ss"),
    ({"nested": [{"private_key": "-----BEGIN"}]}, "-----BEGIN"),
    ({"auth": {"token": "gAAAAAsecretsecretsecretsecret"}}, "gAAAAAsecret"),
    ({"message": "login failed password=hunter2"}, "hunter2"),
    ({"OS_PASSWORD": "abc"}, "abc"),
])
def test_mask_removes_secrets(data, secret):
    assert secret not in json.dumps(mask(data))


MASKING = [
    # id, value, masked, reason
    ("secret-string", {"db_password": "x"}, {"db_password": "***"}, "a secret key's value is masked"),
    ("boolean", {"authenticated": False}, {"authenticated": False}, "a boolean is never a secret"),
    ("empty", {"token": ""}, {"token": ""}, "nothing to hide"),
    ("nested", {"caller": {"auth_token": "abc", "authenticated": True}},
     {"caller": {"auth_token": "***", "authenticated": True}}, "structural, at any depth"),
]


@pytest.mark.parametrize("case_id,value,masked,reason", MASKING, ids=[c[0] for c in MASKING])
def test_mask(case_id, value, masked, reason):
    assert mask(value) == masked, reason


def test_verify_from_a_verified_anchor(store, clock):
    fill(store, clock, 5)
    with store.tx() as tx:
        records, head = list(tx.audit_records()), tx.audit_head()
    anchor = (records[2].seq, records[2].hash)
    assert verify(records[3:], head, start=anchor) == []
    assert verify(records[4:], head, start=anchor), "a record missing after the anchor is a gap"
    assert verify(records[3:], head, start=(3, "f" * 64)), "the first record must link to the anchor"
