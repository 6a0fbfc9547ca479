"""The audit chain is judged against the head read in the same transaction: records another
controller or API server appended after that read are not a "truncated tail" (seen in the HA test
on PostgreSQL, where each statement sees what was committed when it began: a tenant was marked
TamperedRequest because 9 records had been appended between reading the head and the records).
A record stored past the head that no append put there is still a break."""

from __future__ import annotations

from gcloudctl.controller import seal

from .conftest import OPERATOR
from .tamper import drop_audit_guard
from .test_audit import fill, raw


class HeadReadEarlier:
    """A transaction in which the head was read before `late` more records were committed:
    what READ COMMITTED gives a reader racing appenders."""

    def __init__(self, tx, late: int):
        self.tx, self.late = tx, late

    def audit_head(self):
        seq, _ = self.tx.audit_head()
        earlier = self.tx.audit_record(seq - self.late)
        return earlier.seq, earlier.hash

    def audit_beyond_head(self):
        return None  # the re-read head covers the late appends: they were legitimate

    def __getattr__(self, name):
        return getattr(self.tx, name)


def test_witness_ignores_records_appended_after_the_head_it_read(store, clock):
    fill(store, clock, n=12)
    witness = seal.ChainWitness()
    with store.tx() as tx:
        assert witness.breaks(HeadReadEarlier(tx, late=4)) == []  # full verification up to seq 8
    with store.tx() as tx:
        assert witness.breaks(HeadReadEarlier(tx, late=2)) == []  # incremental from 8 up to 10
        assert witness.breaks(tx) == []  # and on to the real head


def test_a_record_inserted_past_the_head_is_a_break_for_witness_and_verify(store, clock, service):
    fill(store, clock, n=5)
    drop_audit_guard(store)  # an attacker with DDL rights
    raw(store, "INSERT INTO audit (seq, at, actor, action, tenant, data, prev_hash, hash) "
               "VALUES (6, '2026-11-24T00:00:00Z', 'mallory', 'request.approve', 't', '{}', 'x', 'y')")
    with store.tx() as tx:
        found = seal.ChainWitness().breaks(tx)
    assert any("past the chain head" in b for b in found)
    verdict = service.audit_verify(caller=OPERATOR)
    assert not verdict["ok"] and any("past the chain head" in b["message"] for b in verdict["breaks"])
