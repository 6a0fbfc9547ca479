"""Store hardening (issue 10, item 5).

- A SQLite database is private to its OS user: file (and -wal/-shm) 0600, directory 0700;
  looser modes found on start are tightened and logged; a shared directory is left alone.
- Audit rows are append-only in the database: a trigger refuses UPDATE and DELETE (and
  TRUNCATE on PostgreSQL) for everyone, the table's owner included; `audit_head` still moves.
- PostgreSQL: migration 0003 creates NOLOGIN roles `gcloudctl_api` and `gcloudctl_controller`
  with exactly the grants their processes need, and neither (nor PUBLIC) may UPDATE or DELETE
  audit rows — proven with `has_table_privilege` and by running the request service and the
  controller as login users that are members of those roles.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid

import pytest
from sqlalchemy import text

from gcloudctl.controller.store import open_store

from .conftest import BYT_APPROVER1, BYT_REQUESTER, load_model, request_text, submit_approved

CLOSED = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --------------------------------------------------------------------------- SQLite file modes

def _fresh(base):
    return base / "new" / "deeper"


def _loose(base):
    folder = base / "loose"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    open_store(f"sqlite:///{folder / 'controller.db'}").dispose()  # made by an older release
    for name, perm in (("controller.db", 0o644), ("controller.db-wal", 0o666), ("controller.db-shm", 0o644)):
        (folder / name).touch()
        os.chmod(folder / name, perm)
    return folder


def _shared(base):
    folder = base / "shared"
    folder.mkdir()
    os.chmod(folder, 0o1777)  # like /tmp
    return folder


# (id, set-up returning the database's directory, umask, expected dir mode, log fragment or None, reason)
FILE_MODES = [
    ("fresh", _fresh, 0o022, 0o700, None, "created private: directory 0700, file 0600"),
    ("fresh-umask-0", _fresh, 0o000, 0o700, None, "a permissive umask changes nothing"),
    ("existing-loose", _loose, 0o022, 0o700, "tightened the database", "an older, world-readable store is fixed, and said so"),
    ("shared-directory", _shared, 0o022, 0o1777, "is shared", "never chmod a shared directory like /tmp; the file is 0600"),
]


@pytest.mark.parametrize("case_id,setup,umask,dir_mode,logged,reason", FILE_MODES, ids=[c[0] for c in FILE_MODES])
def test_sqlite_database_is_private(tmp_path, caplog, case_id, setup, umask, dir_mode, logged, reason, clock):
    folder = setup(tmp_path)
    database = folder / "controller.db"
    caplog.clear()
    previous = os.umask(umask)
    try:
        with caplog.at_level(logging.INFO, logger="gcloudctl.controller.store"):
            store = open_store(f"sqlite:///{database}")
            with store.tx() as tx:  # a write: the WAL and shared-memory files exist while the store is open
                tx.append_audit(clock(), "t", "x", None, {})
            assert mode(folder) == dir_mode, reason
            for name in ("controller.db", "controller.db-wal", "controller.db-shm"):
                assert (folder / name).exists(), name
                assert mode(folder / name) == 0o600, (name, oct(mode(folder / name)), reason)
            store.dispose()
    finally:
        os.umask(previous)
    messages = " ".join(r.getMessage() for r in caplog.records)
    if logged:
        assert logged in messages, (reason, messages)
    else:
        assert "tightened" not in messages and "shared" not in messages, messages


def test_private_store_still_readable_by_its_owner(tmp_path, clock):
    """Tightening does not break the store: reopen and read what was written."""
    url = f"sqlite:///{_loose(tmp_path) / 'controller.db'}"
    store = open_store(url)
    with store.tx() as tx:
        tx.append_audit(clock(), "t", "x", None, {"k": 1})
    store.dispose()
    store = open_store(url)
    with store.tx() as tx:
        assert [r.data for r in tx.audit_records()] == [{"k": 1}]
    store.dispose()


# --------------------------------------------------------------------------- PostgreSQL

API, CONTROLLER = "gcloudctl_api", "gcloudctl_controller"


@pytest.fixture
def pg_store(postgres_url):
    store = open_store(postgres_url)
    yield store
    store.dispose()


def _fill(store, clock, n=3):
    with store.tx() as tx:
        for i in range(n):
            clock.advance(1)
            tx.append_audit(clock(), "ctl", "tenant.apply", "t", {"i": i})


# (id, statement, reason)
AUDIT_EDITS = [
    ("update", "UPDATE audit SET actor = 'mallory' WHERE seq = 2", "an edit of a record"),
    ("update-all", "UPDATE audit SET data = '{}'", "a mass edit"),
    ("delete", "DELETE FROM audit WHERE seq = 3", "removing the last record"),
    ("delete-all", "DELETE FROM audit", "emptying the table"),
    ("truncate", "TRUNCATE audit", "TRUNCATE bypasses row triggers: a statement trigger refuses it"),
]


@pytest.mark.postgres
@pytest.mark.parametrize("case_id,statement,reason", AUDIT_EDITS, ids=[c[0] for c in AUDIT_EDITS])
def test_audit_rows_refused_on_postgres_even_for_the_owner(pg_store, clock, case_id, statement, reason):
    from sqlalchemy.exc import DBAPIError

    from gcloudctl.controller.audit import verify

    _fill(pg_store, clock)
    with pg_store.engine.connect() as conn:
        assert conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar(), \
            "the test connects as the owner (a superuser): no privilege stops it, the trigger must"
    with pytest.raises(DBAPIError, match="audit records are append-only"):
        with pg_store.engine.begin() as conn:
            conn.execute(text(statement))
    _fill(pg_store, clock, 1)  # audit_head is still updated by every append
    with pg_store.tx() as tx:
        records, head = list(tx.audit_records()), tx.audit_head()
    assert len(records) == 4 and head[0] == 4 and verify(records, head) == [], reason


# (id, role, table or table.column, privilege, granted?, reason)
GRANTS = [
    ("api-inserts-requests", API, "requests", "INSERT", True, "submit stores a version"),
    ("api-updates-request-state", API, "requests.state", "UPDATE", True, "approve/reject/supersede move the state"),
    ("api-updates-request-audit-seq", API, "requests.audit_seq", "UPDATE", True, "the submit record's seq"),
    ("api-no-request-text-update", API, "requests.raw_yaml", "UPDATE", False, "a stored text is never rewritten"),
    ("api-no-request-digest-update", API, "requests.digest", "UPDATE", False, "nor its digest"),
    ("api-no-request-table-update", API, "requests", "UPDATE", False, "only those columns, not the whole row"),
    ("api-updates-decision-audit-seq", API, "decisions.audit_seq", "UPDATE", True, "the approval record's seq"),
    ("api-no-decision-binding-update", API, "decisions.digest", "UPDATE", False, "an approval's binding is fixed"),
    ("api-inserts-decisions", API, "decisions", "INSERT", True, "approve/reject"),
    ("api-inserts-audit", API, "audit", "INSERT", True, "every use case appends"),
    ("api-updates-head", API, "audit_head", "UPDATE", True, "every append moves the head"),
    ("api-inserts-events", API, "events", "INSERT", True, "Submitted, Approved ... events"),
    ("api-tenants", API, "tenants", "UPDATE", True, "submit/approve move the phase"),
    ("api-no-lease-update", API, "leases", "UPDATE", False, "the API never reconciles"),
    ("api-no-delete", API, "requests", "DELETE", False, "nothing is deleted"),
    ("api-no-ddl", API, "requests", "TRUNCATE", False, "no schema or bulk changes"),
    ("controller-updates-tenants", CONTROLLER, "tenants", "UPDATE", True, "status is the controller's"),
    ("controller-updates-leases", CONTROLLER, "leases", "UPDATE", True, "claims, renewals, releases"),
    ("controller-inserts-events", CONTROLLER, "events", "INSERT", True, "reconcile events"),
    ("controller-inserts-audit", CONTROLLER, "audit", "INSERT", True, "apply/destroy records"),
    ("controller-updates-head", CONTROLLER, "audit_head", "UPDATE", True, "every append moves the head"),
    ("controller-reads-requests", CONTROLLER, "requests", "SELECT", True, "it applies approved versions"),
    ("controller-no-request-insert", CONTROLLER, "requests", "INSERT", False, "only the API takes requests"),
    ("controller-no-request-update", CONTROLLER, "requests", "UPDATE", False, "nor changes them"),
    ("controller-no-decisions", CONTROLLER, "decisions", "INSERT", False, "nor approves"),
    *[(f"{who}-no-audit-{priv.lower()}", role, "audit", priv, False, "nobody edits the audit chain")
      for who, role in (("api", API), ("controller", CONTROLLER), ("public", "public"))
      for priv in ("UPDATE", "DELETE", "TRUNCATE")],
]


@pytest.mark.postgres
@pytest.mark.parametrize("case_id,role,table,privilege,granted,reason", GRANTS, ids=[c[0] for c in GRANTS])
def test_roles_have_exactly_the_grants_claimed(pg_store, case_id, role, table, privilege, granted, reason):
    with pg_store.engine.connect() as conn:
        if role != "public":
            assert conn.execute(text("SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar(), \
                f"{role} exists and is a NOLOGIN group role"
        table, _, column = table.partition(".")
        query = ("SELECT has_column_privilege(:r, :t, :c, :p)" if column
                 else "SELECT has_table_privilege(:r, :t, :p)")
        assert conn.execute(text(query), {"r": role, "t": table, "c": column, "p": privilege}).scalar() is granted, \
            reason


@pytest.fixture
def login_as(postgres_url, pg_store):
    """Make LOGIN users that are members of a group role; a store URL for each; dropped after."""
    from sqlalchemy.engine import make_url

    made, stores = [], []

    def make(group: str):
        user, password = f"t_{group}_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        with pg_store.engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {group}"))
        made.append(user)
        store = open_store(make_url(postgres_url).set(username=user, password=password)
                           .render_as_string(hide_password=False))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.dispose()
    with pg_store.engine.begin() as conn:
        for user in made:
            conn.execute(text(f"DROP ROLE IF EXISTS {user}"))


@pytest.mark.postgres
def test_the_roles_suffice_for_their_process_and_no_more(login_as, agencies, rules, clock, sealer):
    """The request service runs as a member of gcloudctl_api, the controller as a member of
    gcloudctl_controller (each opening the store runs the migration check too); each is refused
    what belongs to the other, and both are refused editing audit rows by privilege."""
    from sqlalchemy.exc import ProgrammingError

    from gcloudctl.controller.reconciler import Reconciler
    from gcloudctl.controller.runner import Runner
    from gcloudctl.controller.service import RequestService

    from .fakes import FakeWorld

    api_store, controller_store = login_as(API), login_as(CONTROLLER)
    service = RequestService(api_store, agencies, rules, load_model, clock, sealer=sealer)
    version = submit_approved(service, request_text("pg-roles", **CLOSED), BYT_REQUESTER, (BYT_APPROVER1,))
    assert version["state"] == "approved"
    world = FakeWorld()
    runner = Runner(controller_store, Reconciler(controller_store, world, holder="pg-roles", interval=60,
                                                 clock=clock, unseal=sealer.unseal), clock=clock)
    assert runner.run_once().counts() == {"applied": 1}
    assert world.writes["pg-roles"] > 0

    refused = [
        (api_store, "UPDATE leases SET holder = 'api'", "the API does not take leases"),
        (api_store, "DELETE FROM requests", "the API deletes nothing"),
        (controller_store, "INSERT INTO requests (tenant, generation, agency, requester, submitted_by, digest, "
                           "raw_yaml, state, approvals_required, approval_reasons, submitted_at) VALUES "
                           "('x', 1, 'BYT', 'x', 'x', 'x', 'x', 'approved', 1, '[]', now())",
         "the controller takes no requests"),
        (controller_store, "UPDATE requests SET state = 'approved'", "nor approves them"),
        (api_store, "UPDATE requests SET raw_yaml = raw_yaml || '# edited'", "the API never rewrites a stored text"),
        *[(s, sql, "nobody edits the audit chain") for s in (api_store, controller_store)
          for sql in ("UPDATE audit SET actor = 'mallory'", "DELETE FROM audit", "DROP TRIGGER audit_append_only ON audit")],
    ]
    for store, sql, reason in refused:
        with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
            with store.engine.begin() as conn:
                conn.execute(text(sql))


@pytest.mark.postgres
def test_migration_by_an_owner_without_createrole(postgres_server, pg_store, clock):
    """A database owner without CREATEROLE can migrate: the trigger guards audit, and the roles
    (already in the cluster, made by a privileged migration) get their grants."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    owner, password, db = f"t_owner_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, f"gcloudctl_t_{uuid.uuid4().hex[:8]}"
    admin = pg_store.engine
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE ROLE {owner} LOGIN PASSWORD '{password}' NOCREATEROLE"))
        conn.execute(text(f'CREATE DATABASE "{db}" OWNER {owner}'))
    url = make_url(str(pg_store.engine.url)).set(database=db, username=owner, password=password)
    store = open_store(url.render_as_string(hide_password=False))
    try:
        _fill(store, clock)
        with pytest.raises(DBAPIError, match="audit records are append-only"):
            with store.engine.begin() as conn:
                conn.execute(text("DELETE FROM audit"))
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT has_table_privilege('gcloudctl_api', 'requests', 'INSERT')")).scalar()
            assert not conn.execute(text("SELECT has_table_privilege('gcloudctl_api', 'audit', 'UPDATE')")).scalar()
    finally:
        store.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))
