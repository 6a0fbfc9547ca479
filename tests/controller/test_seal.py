"""Sealed requests: the controller applies a generation only when its stored text hashes to the
digest its approvals (rows AND audit records) were given for and the audit chain verifies;
otherwise nothing at all is applied and the tenant says TamperedRequest. Secret userData.vars are
sealed at rest and opened only by the controller."""

import hashlib
import json
import os
import stat

import pytest
from sqlalchemy import text

from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.seal import ChainWitness

from .conftest import (
    BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR, approve_all, request_text, submit_approved,
)
from .fakes import FakeWorld
from .tamper import drop_audit_guard

NAME = "byt-his-staging"
SMALL = {"spec.securityGroups": [{"name": "web", "rules": [
    {"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"}]},
    {"name": "db", "rules": []}]}
LEVEL3 = {"spec.classification": 3, **SMALL}
SECRET = "hunter2-S3cret-value"
SECRET_VARS = {"spec.servers": [{"name": "web", "flavor": "g1.small", "image": "debian-12-hardened",
                                 "networks": ["app"], "userData": {"template": "default.yaml.j2", "vars": {
                                     "db_password": SECRET, "api_token": "tok-" + SECRET, "timezone": "UTC",
                                     "nested": {"service_secret": "nested-" + SECRET}}}}]}


@pytest.fixture
def world():
    return FakeWorld()


@pytest.fixture
def witness():
    return ChainWitness()


@pytest.fixture
def runner(store, world, clock, sealer, witness):
    reconciler = Reconciler(store, world, holder="ctl", interval=60, clock=clock, unseal=sealer.unseal,
                            witness=witness)
    return Runner(store, reconciler, clock=clock, workers=2, lease_seconds=30)


def sql(store, statement, **params):
    with store.engine.begin() as connection:
        return connection.execute(text(statement), params)


def ready(service, name=NAME):
    return {c["type"]: c for c in service.status(name, caller=OPERATOR)["conditions"]}["Ready"]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def activate_by_sql(store, request_id, tenant=NAME):
    """What an attacker with the database would do to make a pending version the desired one."""
    sql(store, "UPDATE requests SET state = 'approved' WHERE id = :id", id=request_id)
    sql(store, "UPDATE tenants SET phase = 'approved', generation = 1, next_reconcile_at = '2026-01-01 00:00:00' "
               "WHERE name = :name", name=tenant)


def forge_approval(store, version, audit_seq=None, actor_id="u-byt-app2"):
    sql(store, "INSERT INTO decisions (request_id, actor, decision, reason, at, actor_id, tenant, generation, digest, "
               "rules_version, audit_seq) VALUES (:rid, 'le.van.c@BYT', 'approve', 'forged', '2026-11-23 12:00:00', "
               ":actor_id, :tenant, :gen, :digest, :rules, :seq)",
        rid=version["id"], actor_id=actor_id, tenant=NAME, gen=version["generation"], digest=version["digest"],
        rules=version["rulesVersion"], seq=audit_seq)


def submit_seq(store, request_id):
    return sql(store, "SELECT audit_seq FROM requests WHERE id = :id", id=request_id).scalar()


# (id, how the database is tampered with after submit(+approval), reason)
TAMPERING = [
    ("text-only", lambda store, v: sql(store, "UPDATE requests SET raw_yaml = replace(raw_yaml, 'db', 'admin') "
                                              "WHERE id = :id", id=v["id"]),
     "the stored text no longer hashes to its digest"),
    ("text-and-digest", lambda store, v: (
        sql(store, "UPDATE requests SET raw_yaml = replace(raw_yaml, 'db', 'admin') WHERE id = :id", id=v["id"]),
        sql(store, "UPDATE requests SET digest = :d WHERE id = :id", id=v["id"],
            d=sha(sql(store, "SELECT raw_yaml FROM requests WHERE id = :id", id=v["id"]).scalar()))),
     "text and digest column rewritten together: the approvals and the audit records name the old digest"),
    ("forged-approval-row", lambda store, v: (forge_approval(store, v), activate_by_sql(store, v["id"])),
     "a level-3 version with one real approval and one approval row inserted by SQL, no audit record"),
    ("forged-row-points-at-submit-record", lambda store, v: (
        forge_approval(store, v, audit_seq=submit_seq(store, v["id"])), activate_by_sql(store, v["id"])),
     "an approval row pointing at an audit record that is not its approval"),
    ("fewer-approvals-needed", lambda store, v: (
        sql(store, "UPDATE requests SET approvals_required = 1 WHERE id = :id", id=v["id"]),
        activate_by_sql(store, v["id"])),
     "the row says one approval is enough; the submit audit record says two"),
    ("audit-record-edited", lambda store, v: (drop_audit_guard(store),  # an attacker with DDL rights
                                              sql(store, "UPDATE audit SET actor = 'someone.else' WHERE seq = 1")),
     "the audit chain no longer verifies"),
]


@pytest.mark.parametrize("case_id,tamper,reason", TAMPERING, ids=[c[0] for c in TAMPERING])
def test_tampered_version_is_not_applied(service, runner, world, store, case_id, tamper, reason):
    level3 = case_id in ("forged-approval-row", "forged-row-points-at-submit-record", "fewer-approvals-needed")
    version = service.submit(request_text(NAME, **(LEVEL3 if level3 else SMALL)), caller=BYT_REQUESTER)
    approve_all(service, version, approvers=(BYT_APPROVER1,) if level3 else (BYT_APPROVER1, BYT_APPROVER2))
    tamper(store, version)
    assert runner.run_once().counts() == {"tampered": 1}, reason
    assert sum(world.writes.values()) == 0, "nothing applied"
    condition = ready(service)
    assert (condition["status"], condition["reason"]) == ("False", "TamperedRequest"), reason
    events = [e for e in service.status(NAME, caller=OPERATOR)["events"] if e["reason"] == "TamperedRequest"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    if case_id != "audit-record-edited":  # (the chain is broken there; the record is still appended)
        assert [r["action"] for r in service.audit_export(caller=OPERATOR)].count("tenant.tampered") == 1
    assert runner.run_once().counts() == {"tampered": 1}, "still refused on the next pass"
    assert sum(world.writes.values()) == 0
    assert len([e for e in service.status(NAME, caller=OPERATOR)["events"]
                if e["reason"] == "TamperedRequest"]) == 1, "one event per distinct finding, not per pass"


def test_untampered_version_is_applied(service, runner, world):
    submit_approved(service, request_text(NAME, **SMALL))
    assert runner.run_once().counts() == {"applied": 1}
    assert world.writes[NAME] > 0 and ready(service)["status"] == "True"


def test_tampering_after_provisioning_stops_even_drift_repair(service, runner, world, store):
    version = submit_approved(service, request_text(NAME, **SMALL))
    runner.run_once()
    writes = sum(world.writes.values())
    world.resources[NAME].discard("network/app")  # drift the controller would normally repair
    sql(store, "UPDATE requests SET raw_yaml = replace(raw_yaml, '10.0.0.0/8', '0.0.0.0/0') WHERE id = :id",
        id=version["id"])
    assert runner.run_once().counts() == {"tampered": 1}
    assert sum(world.writes.values()) == writes and "network/app" not in world.resources[NAME]
    status = service.status(NAME, caller=OPERATOR)
    assert status["phase"] == "failed" and "does not hash" in status["lastError"]
    # a new, approved version is applied again
    submit_approved(service, request_text(NAME, **SMALL, **{"metadata.description": "re-approved"}))
    assert runner.run_once(only_due=True).counts() == {"applied": 1}
    assert "network/app" in world.resources[NAME] and ready(service)["status"] == "True"


def test_tampered_deleting_tenant_destroys_nothing(service, runner, world, store):
    version = submit_approved(service, request_text(NAME, **SMALL))
    runner.run_once()
    have = set(world.resources[NAME])
    approve_all(service, service.delete(NAME, caller=BYT_REQUESTER), approvers=(BYT_APPROVER1,))
    sql(store, "UPDATE requests SET raw_yaml = raw_yaml || '# x' WHERE id = :id", id=version["id"])
    assert runner.run_once().counts() == {"tampered": 1}
    assert world.resources[NAME] == have


def test_chain_is_verified_incrementally_not_per_tenant(service, runner, witness):
    for i in range(6):
        submit_approved(service, request_text(f"tenant-{i}", **SMALL))
    with service.store.tx() as tx:
        before = tx.audit_head()[0]
    runner.run_once()
    runner.run_once()
    with service.store.tx() as tx:
        total = tx.audit_head()[0]
    assert witness.full_verifications == 1, "the whole chain is read once per process"
    assert witness.records_verified <= total + 0, (
        f"{witness.records_verified} records verified for a chain of {total} ({before} before the passes)")


# --- secret vars ------------------------------------------------------------------------------------

def test_secret_vars_are_sealed_at_rest_and_opened_by_the_controller(service, runner, world, store, tmp_path):
    opened = []
    load = world.load
    world.load = lambda text_, filename: opened.append(load(text_, filename)) or opened[-1]
    version = submit_approved(service, request_text(NAME, **SMALL, **SECRET_VARS))
    assert version["sealedVars"] == 3
    shown = service.show(version["id"], caller=OPERATOR)
    assert SECRET not in json.dumps(shown) and '"***"' in shown["yaml"]
    assert "gcloudctl-sealed" not in shown["yaml"], "not even the ciphertext is shown"
    assert runner.run_once().counts() == {"applied": 1}
    store.dispose()  # flush the WAL into the file
    for path in tmp_path.glob("controller.db*"):
        assert SECRET.encode() not in path.read_bytes(), f"{path.name} holds a secret var in clear"
    variables = opened[-1].spec.servers[0].userData.vars
    assert (variables["db_password"], variables["api_token"], variables["nested"]["service_secret"]) == (
        SECRET, "tok-" + SECRET, "nested-" + SECRET)
    assert variables["timezone"] == "UTC"
    key = tmp_path / "secrets.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_sealed_text_is_bound_like_any_text(service, runner, world, store):
    version = submit_approved(service, request_text(NAME, **SMALL, **SECRET_VARS))
    stored = sql(store, "SELECT raw_yaml FROM requests WHERE id = :id", id=version["id"]).scalar()
    other = service.submit(request_text("byt-other", **SMALL, **SECRET_VARS), caller=BYT_REQUESTER)
    foreign = sql(store, "SELECT raw_yaml FROM requests WHERE id = :id", id=other["id"]).scalar()
    token = lambda t: t.split("gcloudctl-sealed:v1:")[1].split('"')[0]  # noqa: E731
    sql(store, "UPDATE requests SET raw_yaml = :t WHERE id = :id", id=version["id"],
        t=stored.replace(token(stored), token(foreign)))
    assert runner.run_once().counts() == {"tampered": 1}
    assert sum(world.writes.values()) == 0


def test_resubmitting_the_same_secret_request_is_unchanged(service):
    first = service.submit(request_text(NAME, **SMALL, **SECRET_VARS), caller=BYT_REQUESTER)
    again = service.submit(request_text(NAME, **SMALL, **SECRET_VARS), caller=BYT_REQUESTER)
    assert again["id"] == first["id"] and again.get("unchanged")


def test_reserved_marker_is_refused(service):
    from gcloudctl.errors import InvalidInput

    doc = request_text(NAME, **SMALL, **{"metadata.description": "gcloudctl-sealed:v1:abc"})
    with pytest.raises(InvalidInput, match="reserved marker"):
        service.submit(doc, caller=BYT_REQUESTER)


def test_without_a_key_secret_vars_are_refused_not_stored(store, agencies, rules, clock):
    from gcloudctl.controller.service import RequestService
    from gcloudctl.errors import Refused

    from .conftest import load_model

    keyless = RequestService(store=store, agencies=agencies, rules=rules, load_request=load_model, clock=clock)
    with pytest.raises(Refused, match="no secrets key"):
        keyless.submit(request_text(NAME, **SMALL, **SECRET_VARS), caller=BYT_REQUESTER)
    assert keyless.list_versions(caller=OPERATOR) == []
    assert keyless.submit(request_text(NAME, **SMALL), caller=BYT_REQUESTER)["sealedVars"] == 0


def test_controller_without_the_key_applies_nothing(service, store, world, clock):
    submit_approved(service, request_text(NAME, **SMALL, **SECRET_VARS), approvers=(BYT_APPROVER1, BYT_APPROVER2))
    keyless = Runner(store, Reconciler(store, world, holder="ctl", interval=60, clock=clock), clock=clock)
    assert keyless.run_once().counts() == {"terminal-error": 1}
    assert sum(world.writes.values()) == 0
    assert "secrets key" in service.status(NAME, caller=OPERATOR)["lastError"]


def test_deleting_by_sql_without_an_approved_deletion_destroys_nothing(service, runner, world, store):
    submit_approved(service, request_text(NAME, **SMALL))
    runner.run_once()
    have = set(world.resources[NAME])
    service.delete(NAME, caller=BYT_REQUESTER)  # filed, not approved
    sql(store, "UPDATE tenants SET phase = 'deleting', next_reconcile_at = '2026-01-01 00:00:00' WHERE name = :n",
        n=NAME)
    assert runner.run_once().counts() == {"tampered": 1}
    assert world.resources[NAME] == have
    assert "without an approved deletion" in service.status(NAME, caller=OPERATOR)["lastError"]


def test_deletion_approved_by_forged_row_destroys_nothing(service, runner, world, store):
    submit_approved(service, request_text(NAME, **SMALL))
    runner.run_once()
    have = set(world.resources[NAME])
    deletion = service.delete(NAME, caller=BYT_REQUESTER)
    forge_approval(store, deletion)
    sql(store, "UPDATE requests SET state = 'approved' WHERE id = :id", id=deletion["id"])
    sql(store, "UPDATE tenants SET phase = 'deleting', next_reconcile_at = '2026-01-01 00:00:00' WHERE name = :n",
        n=NAME)
    assert runner.run_once().counts() == {"tampered": 1}
    assert world.resources[NAME] == have


def test_approved_deletion_destroys(service, runner, world):
    submit_approved(service, request_text(NAME, **SMALL))
    runner.run_once()
    approve_all(service, service.delete(NAME, caller=BYT_REQUESTER), approvers=(BYT_APPROVER2,))
    assert runner.run_once().counts() == {"destroyed": 1}
    assert world.resources[NAME] == set()


def rewrite_digests(store, version, new_digest, rehash: bool):
    """Point the version's submit and approve audit records at `new_digest` (optionally
    recomputing each edited record's own hash, but not the chain after it)."""
    from gcloudctl.controller.audit import body, chain_hash

    drop_audit_guard(store)  # an attacker with DDL rights (the triggers refuse UPDATE of audit rows)
    rows = sql(store, "SELECT seq, at, actor, action, tenant, data, prev_hash FROM audit WHERE tenant = :t "
                      "AND action IN ('request.submit', 'request.approve')", t=NAME).all()
    for seq, at, actor, action, tenant, data, prev_hash in rows:
        data = json.loads(data)
        data["digest"] = new_digest
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = chain_hash(prev_hash, body(seq, at, actor, action, tenant, data)) if rehash else None
        sql(store, "UPDATE audit SET data = :d" + (", hash = :h" if rehash else "") + " WHERE seq = :s",
            d=canonical, h=digest, s=seq)


@pytest.mark.parametrize("rehash", [False, True], ids=["records-edited", "records-edited-and-rehashed"])
def test_audit_records_edited_after_the_chain_was_verified_are_caught(service, runner, world, store, witness,
                                                                       rehash):
    """The witness has already passed over these records (its cache would not look again): the
    seal check itself verifies each record it relies on and its link to the next."""
    version = submit_approved(service, request_text(NAME, **SMALL))
    runner.run_once()
    writes = sum(world.writes.values())
    world.resources[NAME].discard("network/app")
    forged = sql(store, "SELECT raw_yaml FROM requests WHERE id = :id", id=version["id"]).scalar().replace(
        "10.0.0.0/8", "0.0.0.0/0")
    sql(store, "UPDATE requests SET raw_yaml = :t, digest = :d WHERE id = :id", t=forged, d=sha(forged),
        id=version["id"])
    sql(store, "UPDATE decisions SET digest = :d WHERE request_id = :id", d=sha(forged), id=version["id"])
    rewrite_digests(store, version, sha(forged), rehash)
    full = witness.full_verifications
    assert runner.run_once().counts() == {"tampered": 1}
    assert sum(world.writes.values()) == writes
    assert "were changed after they were written" in service.status(NAME, caller=OPERATOR)["lastError"]
    if not rehash:  # (a rehashed record may be the witness's own anchor: then it re-reads the chain)
        assert witness.full_verifications == full, "caught without re-reading the whole chain"
