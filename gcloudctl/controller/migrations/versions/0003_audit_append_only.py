"""Audit rows are append-only, enforced by the database; on PostgreSQL, separate roles.

- A trigger on `audit` refuses every UPDATE and DELETE (and, on PostgreSQL, TRUNCATE), on
  SQLite and PostgreSQL — for every user, the table's owner included. `audit_head` stays
  updatable: every append moves it. Removing the guard takes DDL rights (DROP TRIGGER), and
  even then `audit verify` detects the edit (hash chain; an exported head catches a full
  re-hash).
- PostgreSQL: UPDATE, DELETE and TRUNCATE on `audit` are revoked from PUBLIC, and two NOLOGIN
  group roles get exactly what their process needs (login users are made members of them:
  docs/controller.md, "Database roles"):
    gcloudctl_api         the request API and the break-glass CLI (`gcloudctl.controller.service`):
                          SELECT all; INSERT requests, decisions, tenants, leases, events, audit;
                          UPDATE tenants (phase on submit/approve), audit_head, and only the
                          columns requests(state, decided_at, audit_seq) and
                          decisions(audit_seq) — never a stored text, digest or binding.
    gcloudctl_controller  the reconciler (`reconciler`, `runner`): SELECT all; UPDATE tenants
                          (status), leases, audit_head; INSERT events, audit.
  Neither may UPDATE or DELETE `audit`, DELETE anything, or change the schema. Roles are
  created only when the migrating user may (superuser or CREATEROLE); otherwise the grants go
  to the roles that already exist and the rest is logged, with the SQL to run by hand in
  docs/controller.md. Roles are cluster-wide: the downgrade revokes this database's grants and
  leaves the roles.

Note for later migrations: on SQLite, `batch_alter_table("audit")` rebuilds the table and
drops its triggers — re-create them afterwards (`_sqlite_guard`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
import logging

from alembic import op
from sqlalchemy import text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("gcloudctl.controller.store")

API_ROLE, CONTROLLER_ROLE = "gcloudctl_api", "gcloudctl_controller"
TABLES = ("requests", "decisions", "tenants", "events", "audit", "audit_head", "leases", "alembic_version")
# role -> (privilege, table): besides SELECT on every table. Column lists are column privileges.
GRANTS = {
    API_ROLE: (
        *(("INSERT", table) for table in ("requests", "decisions", "tenants", "leases", "events", "audit")),
        ("UPDATE (state, decided_at, audit_seq)", "requests"),
        ("UPDATE (audit_seq)", "decisions"),
        ("UPDATE", "tenants"),
        ("UPDATE", "audit_head"),
    ),
    CONTROLLER_ROLE: (
        ("INSERT", "events"),
        ("INSERT", "audit"),
        ("UPDATE", "tenants"),
        ("UPDATE", "leases"),
        ("UPDATE", "audit_head"),
    ),
}
SERIAL_COLUMNS = (("requests", "id"), ("decisions", "id"), ("events", "id"))
SQLITE_TRIGGERS = {
    "audit_no_update": "UPDATE",
    "audit_no_delete": "DELETE",
}


def _sqlite_guard() -> None:
    for name, operation in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {operation} ON audit "
                   f"BEGIN SELECT RAISE(ABORT, 'audit records are append-only: {operation} refused'); END")


def _postgres_guard() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION gcloudctl_audit_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'the audit chain is never edited; append a new record instead';
        END $$""")
    op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
    op.execute("CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
               "FOR EACH ROW EXECUTE FUNCTION gcloudctl_audit_append_only()")
    op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
    op.execute("CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
               "FOR EACH STATEMENT EXECUTE FUNCTION gcloudctl_audit_append_only()")
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM PUBLIC")


def _role_exists(bind, role: str) -> bool:
    return bool(bind.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar())


def _may_create_roles(bind) -> bool:
    return bool(bind.execute(text(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")).scalar())


def _create_role(role: str) -> None:
    # another database of the same cluster may be migrating at the same moment: roles are shared
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE {role} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$""")


def _grant(bind, role: str) -> None:
    tables = ", ".join(TABLES)
    op.execute(f"REVOKE ALL ON {tables} FROM {role}")
    op.execute(f"GRANT SELECT ON {tables} TO {role}")
    for privilege, table in GRANTS[role]:
        op.execute(f"GRANT {privilege} ON {table} TO {role}")
    inserts = {table for privilege, table in GRANTS[role] if privilege == "INSERT"}
    for table, column in SERIAL_COLUMNS:
        sequence = bind.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column}).scalar()
        if sequence and table in inserts:
            op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {role}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM {role}")


def _postgres_roles(bind) -> None:
    creatable = _may_create_roles(bind)
    for role in GRANTS:
        if not _role_exists(bind, role):
            if not creatable:
                log.warning("role %s does not exist and the migrating user may not create roles "
                            "(needs CREATEROLE): skipped; run the SQL in docs/controller.md, section "
                            "'Database roles', as a user who may", role)
                continue
            _create_role(role)
            log.info("created the NOLOGIN role %s", role)
        _grant(bind, role)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_guard()
    elif bind.dialect.name == "postgresql":
        _postgres_guard()
        _postgres_roles(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
        op.execute("DROP FUNCTION IF EXISTS gcloudctl_audit_append_only()")
        for role in GRANTS:
            if _role_exists(bind, role):
                op.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM {role}")
                for table, column in SERIAL_COLUMNS:
                    sequence = bind.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                            {"t": table, "c": column}).scalar()
                    if sequence:
                        op.execute(f"REVOKE ALL ON SEQUENCE {sequence} FROM {role}")
