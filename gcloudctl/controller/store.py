"""Stage: controller (store). The tables and the only code that talks to the database.

SQLite file by default (zero set-up), PostgreSQL by URL for several controllers. The schema is
created and upgraded by the Alembic migrations shipped in `gcloudctl/controller/migrations`,
run on every start (`open_store`) and by `gcloudctl controller migrate`. A SQLite database is
private to its OS user: the file (and its -wal/-shm/-journal companions) is 0600 in a 0700
directory, looser modes found on start are tightened and logged (`protect_sqlite_path`). The
audit table is append-only in the database itself (migration 0003: a trigger, and on
PostgreSQL separate roles).

Called by `service` and the `reconciler`/`runner`; every use is one short transaction
(`Store.tx()`), whose `Tx` object holds the queries. It decides nothing: rules live in
`lifecycle`, `approvals`, `audit`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import (
    DateTime, ForeignKey, and_, Integer, String, Text, TypeDecorator, UniqueConstraint, create_engine, event,
    func, or_, select, text, update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from gcloudctl.controller import audit
from gcloudctl.controller.conditions import iso

DEFAULT_DB_PATH = Path("~/.local/share/gcloudctl/controller.db")
MIGRATION_LOCK_ID = 0x6763_6C64  # pg_advisory_lock key: "gcld"
DB_FILE_MODE, DB_DIR_MODE = 0o600, 0o700
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


def default_url(environ: dict[str, str] | None = None) -> str:
    """$GCLOUDCTL_DB, else a SQLite file under the user's data directory."""
    environ = os.environ if environ is None else environ
    if environ.get("GCLOUDCTL_DB"):
        return environ["GCLOUDCTL_DB"]
    data_home = Path(environ.get("XDG_DATA_HOME") or Path(environ.get("HOME", "~")) / ".local/share")
    return f"sqlite:///{(data_home / 'gcloudctl' / 'controller.db').expanduser()}"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    """Every submitted version of every tenant's request."""

    __tablename__ = "requests"
    __table_args__ = (UniqueConstraint("tenant", "generation", name="uq_requests_tenant_generation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    agency: Mapped[str] = mapped_column(String(16))
    requester: Mapped[str] = mapped_column(String(64))  # metadata.requester
    submitted_by: Mapped[str] = mapped_column(String(64))  # Caller.actor of the submitter
    submitted_by_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Keystone user id
    kind: Mapped[str] = mapped_column(String(8), default="change", server_default="change")  # change | delete
    rules_version: Mapped[str | None] = mapped_column(String(128), nullable=True)  # rules that judged it
    sealed_vars: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # secrets sealed in raw_yaml
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the submit audit record
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of raw_yaml (the sealed, stored text)
    raw_yaml: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24))
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    approval_reasons: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DecisionRow(Base):
    """One approval or rejection of a request version."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Keystone user id
    # the binding: what exactly was approved, under which rules, witnessed by which audit record
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rules_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TenantRow(Base):
    """A tenant's status: phase, conditions and the reconcile schedule."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str] = mapped_column(String(24))
    latest_generation: Mapped[int] = mapped_column(Integer)  # latest submitted version
    generation: Mapped[int | None] = mapped_column(Integer, nullable=True)  # latest approved (desired)
    observed_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    drift_policy: Mapped[str] = mapped_column(String(16), default="enforce")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    conditions: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of Condition dicts
    next_reconcile_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)  # terminal error at
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # JSON: {server: {id, state, level, failures, retry_at, message, at}} (migration 0004)
    hardening: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(16))  # Normal | Warning
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    controller: Mapped[str | None] = mapped_column(String(128), nullable=True)


class AuditRow(Base):
    """Append-only, hash-chained. Nothing updates or deletes these rows."""

    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40), index=True)  # ISO text, hashed as stored
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(40))
    tenant: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    data: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The last record of the chain (one row); locked while appending, so appends serialise."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class LeaseRow(Base):
    """Who reconciles a tenant now. `token` grows on every acquisition (a fencing token)."""

    __tablename__ = "leases"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    token: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- engine and migrations ---------------------------------------------------------------------

def create_db_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-locking transactions."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        database = Path(path).expanduser() if path and path != ":memory:" and not path.startswith("file:") else None
        if database is not None:
            protect_sqlite_path(database)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_serialisable_writes(engine, database)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def protect_sqlite_path(database: Path) -> None:
    """Make the SQLite database private to this OS user before SQLite opens it: its directory
    0700 (created so, or tightened), the file created 0600 (SQLite gives its -wal/-shm files the
    database's mode), and an existing file or companion with a looser mode tightened. Every
    change to an existing path is logged. A shared directory (sticky bit, like /tmp) or one owned
    by another user is never changed: that is logged as a warning and the file's own 0600 stands."""
    folder = database.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=DB_DIR_MODE, exist_ok=True)
        os.chmod(folder, DB_DIR_MODE)  # mkdir's mode is filtered by the umask
    else:
        _tighten_dir(folder)
    try:  # an empty file is an empty SQLite database
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
        os.chmod(database, DB_FILE_MODE)
    except FileExistsError:
        pass
    for path in (database, *(database.with_name(database.name + suffix) for suffix in SQLITE_COMPANIONS)):
        _tighten_file(path)


def _tighten_dir(folder: Path) -> None:
    info = folder.stat()
    mode = info.st_mode & 0o7777
    if mode & 0o077 == 0:
        return
    if mode & 0o1000 or info.st_uid != os.geteuid():
        log.warning("the database directory %s is shared (mode %o, owner uid %d): left as it is; the database "
                    "file itself is %o. Put the database in a directory of its own (--db / GCLOUDCTL_DB)",
                    folder, mode, info.st_uid, DB_FILE_MODE)
        return
    os.chmod(folder, mode & ~0o077)
    log.warning("tightened the database directory %s from mode %o to %o", folder, mode, mode & ~0o077)


def _tighten_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o600)
        log.warning("tightened the database file %s from mode %o to %o", path, mode, mode & 0o600)


def _sqlite_serialisable_writes(engine: Engine, database: Path | None = None) -> None:
    """Make every transaction BEGIN IMMEDIATE so read-then-write never deadlocks on upgrade."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if database is not None:  # WAL files made by an older release or by hand: same mode as the file
            for suffix in SQLITE_COMPANIONS:
                _tighten_file(database.with_name(database.name + suffix))

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> str:
    """Upgrade the schema to the newest migration; returns the revision. Safe to run from
    several controllers at once (PostgreSQL advisory lock)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up chatter is not our log
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "gcloudctl.controller:migrations")
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
        return current_revision(connection)


def current_revision(connection) -> str:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision() or "none"


def open_store(url: str | None = None, *, run_migrations: bool = True) -> "Store":
    engine = create_db_engine(url or default_url())
    if run_migrations:
        migrate(engine)
    return Store(engine)


def _sealed(row: AuditRow) -> audit.Sealed:
    return audit.Sealed(row.seq, row.at, row.actor, row.action, row.tenant, json.loads(row.data),
                        row.prev_hash, row.hash)


# --- transactions --------------------------------------------------------------------------------

class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite runs one write transaction at a time (every transaction here is BEGIN IMMEDIATE).
        # Threads of one process queue on this lock instead of in SQLite's busy handler, whose
        # back-off sleeps (up to 100 ms a try) made the API's tail latency seconds long under
        # 20 concurrent submitters. Other processes still meet the busy timeout as before.
        self._serial = threading.RLock() if engine.dialect.name == "sqlite" else nullcontext()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def tx(self) -> Iterator["Tx"]:
        with self._serial, self._sessions.begin() as session:
            yield Tx(session)

    def dispose(self) -> None:
        self.engine.dispose()


@dataclass
class Claim:
    tenant: str
    token: int


class Tx:
    """The queries, inside one transaction."""

    def __init__(self, session: Session):
        self.session = session

    # requests ------------------------------------------------------------------------------
    def add_version(self, row: RequestRow) -> RequestRow:
        self.session.add(row)
        self.session.flush()
        return row

    def version(self, request_id: int, *, lock: bool = False) -> RequestRow | None:
        query = select(RequestRow).where(RequestRow.id == request_id)
        return self.session.scalars(query.with_for_update() if lock else query).first()

    def version_of(self, tenant: str, generation: int) -> RequestRow | None:
        return self.session.scalars(select(RequestRow).where(
            RequestRow.tenant == tenant, RequestRow.generation == generation)).first()

    def versions(self, tenant: str | None = None, state: str | None = None) -> list[RequestRow]:
        query = select(RequestRow).order_by(RequestRow.tenant, RequestRow.generation)
        if tenant:
            query = query.where(RequestRow.tenant == tenant)
        if state:
            query = query.where(RequestRow.state == state)
        return list(self.session.scalars(query))

    def add_decision(self, row: DecisionRow) -> DecisionRow:
        self.session.add(row)
        self.session.flush()
        return row

    def decisions(self, request_id: int) -> list[DecisionRow]:
        return list(self.session.scalars(
            select(DecisionRow).where(DecisionRow.request_id == request_id).order_by(DecisionRow.id)))

    # tenants -------------------------------------------------------------------------------
    def tenant(self, name: str, *, lock: bool = False) -> TenantRow | None:
        query = select(TenantRow).where(TenantRow.name == name)
        return self.session.scalars(query.with_for_update() if lock else query).first()

    def add_tenant(self, row: TenantRow) -> TenantRow:
        self.session.add(row)
        self.session.add(LeaseRow(tenant=row.name, holder=None, token=0))
        self.session.flush()
        return row

    def tenants(self, phases: set[str] | None = None) -> list[TenantRow]:
        query = select(TenantRow).order_by(TenantRow.name)
        if phases:
            query = query.where(TenantRow.phase.in_(sorted(phases)))
        return list(self.session.scalars(query))

    def count_tenants(self) -> int:
        return self.session.scalar(select(func.count()).select_from(TenantRow)) or 0

    # events --------------------------------------------------------------------------------
    def add_event(self, tenant: str, at: datetime, type_: str, reason: str, message: str,
                  data: dict | None = None, controller: str | None = None) -> None:
        self.session.add(EventRow(tenant=tenant, at=at, type=type_, reason=reason, message=message,
                                  data=json.dumps(audit.mask(data or {}), sort_keys=True), controller=controller))

    def events(self, tenant: str, limit: int = 20) -> list[EventRow]:
        rows = self.session.scalars(select(EventRow).where(EventRow.tenant == tenant)
                                    .order_by(EventRow.id.desc()).limit(limit))
        return list(reversed(list(rows)))

    # audit ---------------------------------------------------------------------------------
    def append_audit(self, at: datetime, actor: str, action: str, tenant: str | None,
                     data: dict[str, Any]) -> audit.Sealed:
        """Seal and append one record; the head row lock serialises concurrent appenders."""
        # the migration creates the head row (seq 0), so there is always a row to lock
        head = self.session.scalars(select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()).one()
        previous_seq, previous_hash = head.seq, head.hash
        record = audit.seal(previous_hash, previous_seq + 1, iso(at), actor, action, tenant, data)
        self.session.add(AuditRow(seq=record.seq, at=record.at, actor=record.actor, action=record.action,
                                  tenant=record.tenant, data=audit.canonical(record.data),
                                  prev_hash=record.prev_hash, hash=record.hash))
        head.seq, head.hash = record.seq, record.hash
        self.session.flush()
        return record

    def audit_records(self, since: datetime | None = None, upto: int | None = None) -> Iterator[audit.Sealed]:
        """Records in chain order; `upto`: only those up to that sequence number (the head read
        earlier in this transaction: on PostgreSQL each statement sees what was committed when
        it began, so records appended after the head was read must not count against it)."""
        query = select(AuditRow).order_by(AuditRow.seq)
        if since is not None:
            query = query.where(AuditRow.at >= iso(since))
        if upto is not None:
            query = query.where(AuditRow.seq <= upto)
        for row in self.session.scalars(query.execution_options(yield_per=1000)):
            yield _sealed(row)

    def audit_beyond_head(self) -> int | None:
        """The highest sequence number stored past the chain head, if any: a record nobody
        appended through `append_audit` (which moves the head in the same transaction). The
        records' maximum is read BEFORE the head, so a legitimate append committed in between
        is always covered by the head read after it."""
        top = self.session.scalar(select(func.max(AuditRow.seq)))
        head_seq = self.session.scalar(select(AuditHeadRow.seq).where(AuditHeadRow.id == 1))
        return top if top is not None and head_seq is not None and top > head_seq else None

    def audit_record(self, seq: int) -> audit.Sealed | None:
        row = self.session.get(AuditRow, seq)
        return _sealed(row) if row else None

    def audit_records_after(self, seq: int, upto: int | None = None) -> Iterator[audit.Sealed]:
        query = select(AuditRow).where(AuditRow.seq > seq).order_by(AuditRow.seq)
        if upto is not None:
            query = query.where(AuditRow.seq <= upto)
        for row in self.session.scalars(query.execution_options(yield_per=1000)):
            yield _sealed(row)

    def tenant_audit_records(self, tenant: str, actions: set[str]) -> list[audit.Sealed]:
        query = (select(AuditRow).where(AuditRow.tenant == tenant, AuditRow.action.in_(sorted(actions)))
                 .order_by(AuditRow.seq))
        return [_sealed(row) for row in self.session.scalars(query)]

    def audit_head(self) -> tuple[int, str] | None:
        head = self.session.get(AuditHeadRow, 1)
        return (head.seq, head.hash) if head else None  # None only if someone deleted the row

    # leases --------------------------------------------------------------------------------
    def claim_due(self, holder: str, now: datetime, limit: int, lease_seconds: float,
                  exclude: set[str] = frozenset(), phases: set[str] | None = None) -> list[Claim]:
        """Lease up to `limit` tenants that are due and not leased by anyone alive; with
        `phases`, every tenant in those phases whatever its schedule (`controller run --once`).

        On PostgreSQL the candidate rows are locked with FOR UPDATE SKIP LOCKED, so concurrent
        controllers pick disjoint sets without waiting; the conditional UPDATE re-checks the
        lease so the claim is safe on any database.
        """
        if limit <= 0:
            return []
        free = or_(LeaseRow.holder.is_(None), LeaseRow.expires_at < now)
        due = (TenantRow.phase.in_(sorted(phases)) if phases is not None
               else and_(TenantRow.next_reconcile_at.is_not(None), TenantRow.next_reconcile_at <= now))
        query = (select(LeaseRow.tenant)
                 .join(TenantRow, TenantRow.name == LeaseRow.tenant)
                 .where(due, free)
                 .order_by(TenantRow.next_reconcile_at, TenantRow.name)
                 .limit(limit + len(exclude))
                 .with_for_update(of=LeaseRow, skip_locked=True))
        claims = []
        for tenant in self.session.scalars(query):
            if tenant in exclude or len(claims) >= limit:
                continue
            token = self._take(tenant, holder, now, lease_seconds, free)
            if token is not None:
                claims.append(Claim(tenant, token))
        return claims

    def _take(self, tenant: str, holder: str, now: datetime, lease_seconds: float, free) -> int | None:
        result = self.session.execute(
            update(LeaseRow).where(LeaseRow.tenant == tenant, free)
            .values(holder=holder, token=LeaseRow.token + 1, acquired_at=now,
                    expires_at=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            return None
        return self.session.scalar(select(LeaseRow.token).where(LeaseRow.tenant == tenant))

    def renew(self, holder: str, claims: list[Claim], now: datetime, lease_seconds: float) -> set[str]:
        """Extend the leases still held (same holder and token); returns the tenants still held."""
        held = set()
        for claim in claims:
            result = self.session.execute(
                update(LeaseRow).where(LeaseRow.tenant == claim.tenant, LeaseRow.holder == holder,
                                       LeaseRow.token == claim.token, LeaseRow.expires_at >= now)
                .values(expires_at=now + timedelta(seconds=lease_seconds))
                .execution_options(synchronize_session=False))
            if result.rowcount == 1:
                held.add(claim.tenant)
        return held

    def holds(self, claim: Claim, holder: str, now: datetime) -> bool:
        """True while `holder` still holds the lease of `claim` (locks the lease row)."""
        row = self.session.scalars(select(LeaseRow).where(LeaseRow.tenant == claim.tenant).with_for_update()).first()
        return bool(row and row.holder == holder and row.token == claim.token
                    and row.expires_at is not None and row.expires_at >= now)

    def release(self, claim: Claim, holder: str) -> None:
        self.session.execute(
            update(LeaseRow).where(LeaseRow.tenant == claim.tenant, LeaseRow.holder == holder,
                                   LeaseRow.token == claim.token)
            .values(holder=None, expires_at=None)
            .execution_options(synchronize_session=False))

    def lease(self, tenant: str) -> LeaseRow | None:
        return self.session.get(LeaseRow, tenant)
