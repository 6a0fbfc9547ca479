"""What an attacker with DDL rights on the controller's database does before editing audit rows:
drop the append-only triggers of migration 0003. Tests that prove `audit verify` (or the seal
check) detects edited or deleted audit rows call this first, explicitly; `test_audit` proves that
without it the same SQL is refused."""

from __future__ import annotations

GUARD = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_no_update", "DROP TRIGGER IF EXISTS audit_no_delete"],
    "postgresql": ["DROP TRIGGER IF EXISTS audit_append_only ON audit",
                   "DROP TRIGGER IF EXISTS audit_no_truncate ON audit"],
}


def drop_audit_guard(store) -> None:
    """Drop the triggers through the store's engine (SQLite or PostgreSQL)."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        for statement in GUARD[store.dialect]:
            conn.execute(text(statement))


def drop_audit_guard_sqlite(connection) -> None:
    """The same on a plain `sqlite3` connection."""
    for statement in GUARD["sqlite"]:
        connection.execute(statement)
