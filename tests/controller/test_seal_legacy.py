"""Versions approved before migration 0002 (no audit seq, no user ids in their rows) are still
recognised by their audit records, so upgrading does not stop every live tenant."""

from sqlalchemy import text

from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner

from .conftest import request_text, submit_approved
from .fakes import FakeWorld

SMALL = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}


def as_before_0002(store, request_id):
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE requests SET audit_seq = NULL, submitted_by_id = NULL WHERE id = :id"),
                     {"id": request_id})
        conn.execute(text("UPDATE decisions SET audit_seq = NULL, actor_id = NULL, tenant = NULL, generation = NULL, "
                          "digest = NULL, rules_version = NULL WHERE request_id = :id"), {"id": request_id})


def runner_for(store, clock, sealer):
    return Runner(store, Reconciler(store, FakeWorld(), holder="ctl", interval=60, clock=clock,
                                    unseal=sealer.unseal), clock=clock)


def test_legacy_version_is_applied(service, store, clock, sealer):
    version = submit_approved(service, request_text("legacy-ok", **SMALL))
    as_before_0002(store, version["id"])
    assert runner_for(store, clock, sealer).run_once().counts() == {"applied": 1}


def test_legacy_version_with_edited_text_is_not(service, store, clock, sealer):
    version = submit_approved(service, request_text("legacy-bad", **SMALL))
    as_before_0002(store, version["id"])
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE requests SET raw_yaml = raw_yaml || '# x' WHERE id = :id"), {"id": version["id"]})
    assert runner_for(store, clock, sealer).run_once().counts() == {"tampered": 1}
