"""HA campaign on devcloud (issue 13, campaign (c)): two controller replicas on one PostgreSQL,
the cloud behind the fault injector, several tenants submitted and approved through the request
service; one replica is killed with SIGKILL at a seeded random time (the first moment after it that
the replica is applying a tenant, so that the kill lands mid-apply) and restarted. Checks:
every tenant converges (ready at its generation, and a plan made as admin past the proxies is
empty), its deletion converges with nothing left, no tenant is ever applied by both replicas
at once, every apply was made under the applying replica's lease (holder and fencing token),
and the audit chain verifies.

    python bench/ha_campaign.py --tenants 6 --rate 0.05 --seed 1 [--db postgresql+psycopg://postgres@127.0.0.1:5432/gcloudctl_ha_d]

Stage: benchmark (outside the pipeline). Callers: a person, and tests/controller/test_ha_faults.py
(a short campaign). A replica is `python bench/ha_campaign.py worker URL LABEL CLOUDS LEASE`:
the real Runner, Reconciler, Store and PipelineEngine over the OpenStack driver, its engine
wrapped to log every apply (start, end, lease holder and token read at the start) in the
campaign's database (`ha_applies`). It must not touch tenants other than its own (`ha-d-…`);
they are destroyed at the end even when a check fails, and the database is dropped when the
campaign created it.

Tenants: small (one network, router, one group, one g1.small server, no floating IP; quotas of
one instance), of agencies BYT and BTC in turn, so that the agency totals others' tests see
move by at most a few instances.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl import pipeline  # noqa: E402
from gcloudctl.model.identity import Caller, GcloudRole  # noqa: E402

EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"
PREFIX = "ha-d"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/gcloudctl_ha_d"
APPLIES_DDL = ("CREATE TABLE IF NOT EXISTS ha_applies (id serial PRIMARY KEY, tenant text, label text, holder text, "
               "lease_holder text, token integer, started timestamptz, ended timestamptz)")

R, A, O = GcloudRole.REQUESTER, GcloudRole.APPROVER, GcloudRole.OPERATOR


def _person(user_id: str, name: str, agency: str | None, *roles: GcloudRole) -> Caller:
    return Caller(user_id=user_id, user_name=name, domain_id=f"d-{agency or 'default'}".lower(),
                  domain_name=agency or "Default", roles=frozenset(roles), agency=agency, authenticated=True)


# who submits and approves per agency (the requester is the request's metadata.requester)
PEOPLE = {
    "BYT": (_person("u-byt-req", "nguyen.van.a", "BYT", R),
            (_person("u-byt-app1", "tran.thi.b", "BYT", A), _person("u-byt-app2", "le.van.c", "BYT", A))),
    "BTC": (_person("u-btc-req", "hoang.van.e", "BTC", R),
            (_person("u-btc-app1", "btc.approver.1", "BTC", A), _person("u-btc-app2", "btc.approver.2", "BTC", A))),
}
OPERATOR = _person("u-op", "gc.operator", None, O)


def tenant_doc(name: str, agency: str, servers: bool = True) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    requester = PEOPLE[agency][0].user_name
    doc["metadata"].update(name=name, agency=agency, requester=requester)
    spec = doc["spec"]
    spec["members"] = [{"user": requester, "roles": ["member"]}]
    spec["quotas"] = {"instances": 1, "cores": 1, "ramMiB": 2048, "floatingIPs": 0, "volumes": 1, "volumeGiB": 10}
    spec["networks"] = [{"name": "app", "zone": "app", "prefixLength": 26}]
    spec["securityGroups"] = [{"name": "web", "rules": [{"direction": "ingress", "protocol": "tcp", "ports": "22",
                                                         "remoteGroup": "web"}]}]
    spec["servers"] = [{"name": "web", "count": 1, "flavor": "g1.small", "image": "debian-12-hardened",
                        "networks": ["app"], "securityGroups": ["web"], "keypair": "ops"}] if servers else []
    return doc


# --- the replica ----------------------------------------------------------------------------------

class LoggedEngine:
    """The real engine; every apply is logged with its lease holder and token (read at its start)."""

    def __init__(self, inner, db, label: str, holder: str):
        self.inner, self.db, self.label, self.holder = inner, db, label, holder

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def apply(self, plan, request, fence=None):
        from sqlalchemy import text

        with self.db.begin() as conn:
            apply_id = conn.execute(text(
                "INSERT INTO ha_applies (tenant, label, holder, lease_holder, token, started) "
                "SELECT :t, :l, :h, (SELECT holder FROM leases WHERE tenant = :t), "
                "(SELECT token FROM leases WHERE tenant = :t), clock_timestamp() RETURNING id"),
                {"t": request.metadata.name, "l": self.label, "h": self.holder}).scalar()
        try:
            return self.inner.apply(plan, request, fence=fence) if fence is not None else self.inner.apply(plan, request)
        finally:
            with self.db.begin() as conn:
                conn.execute(text("UPDATE ha_applies SET ended = clock_timestamp() WHERE id = :i"), {"i": apply_id})


def worker(url: str, label: str, clouds: str, lease: float, interval: float = 5.0, workers: int = 2) -> None:
    from sqlalchemy import create_engine

    from gcloudctl.controller.engine import PipelineEngine
    from gcloudctl.controller.reconciler import Reconciler
    from gcloudctl.controller.runner import Runner, holder_id
    from gcloudctl.controller.service import utcnow
    from gcloudctl.controller.store import open_store
    from gcloudctl.devcloud import faults
    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    config = pipeline.Config.load()
    store = open_store(url)
    holder = f"{label}/{holder_id()}"
    engine = LoggedEngine(PipelineEngine(config, lambda region: OpenStackDriver(
        SdkApi(faults.FAULT_CLOUD, config_files=[clouds]), create_missing_users=True)), create_engine(url), label, holder)
    reconciler = Reconciler(store, engine, holder=holder, interval=interval, clock=utcnow)
    runner = Runner(store, reconciler, clock=utcnow, workers=workers, lease_seconds=lease, claim_poll=0.3)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    runner.run(stop)


# --- the campaign ---------------------------------------------------------------------------------

@dataclass
class Report:
    tenants: int = 0
    rate: float = 0.0
    seed: int = 0
    lease: float = 0.0
    interval: float = 0.0
    kill_at: float = 0.0
    inflight_at_kill: list = field(default_factory=list)
    converged: int = 0
    deleted: int = 0
    delete_checked: bool = True
    plan_not_empty: list = field(default_factory=list)
    leftovers: dict = field(default_factory=dict)
    overlaps: list = field(default_factory=list)
    unfenced: list = field(default_factory=list)
    applies: dict = field(default_factory=dict)
    taken_over: list = field(default_factory=list)
    audit_ok: bool = False
    audit_records: int = 0
    requests: int = 0
    faults: dict = field(default_factory=dict)
    converge_s: float = 0.0
    delete_s: float = 0.0
    wall_s: float = 0.0
    errors: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.converged == self.tenants and (self.deleted == self.tenants or not self.delete_checked) and not self.plan_not_empty and not self.leftovers
                and not self.overlaps and not self.unfenced and self.audit_ok)


def _start(url: str, label: str, clouds: Path, lease: float, interval: float, logs: Path, env: dict,
           workers: int = 2) -> subprocess.Popen:
    """Start a replica (its own process group); `_ready` waits for it."""
    err = open(logs / f"replica-{label}.log", "w")  # a file, not a pipe: a full pipe would block it
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "worker", url, label, str(clouds), str(lease),
                             str(interval), str(workers)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env=env, start_new_session=True)


def _ready(proc: subprocess.Popen, label: str, logs: Path) -> None:
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"replica {label} did not start: see {logs / f'replica-{label}.log'}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait(predicate, timeout: float, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    return None


def create_database(url: str) -> bool:
    """Create the campaign's database when missing; True when created here (dropped at the end)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()
    return not exists


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    admin.dispose()


def campaign(url: str, *, tenants: int = 6, rate: float = 0.05, seed: int = 1, lease: float = 5.0,
             kill_window: tuple[float, float] = (3.0, 30.0), servers: bool = True, timeout: float = 600.0,
             interval: float = 5.0, mid_apply_wait: float = 20.0, workers: int = 2, delete: bool = True,
             agencies: tuple[str, ...] = ("BYT", "BTC"),
             admin_cloud: str = "devcloud", layout=None, progress=print) -> Report:
    """Run one campaign on the database at `url` (its schema is created here; the database must
    exist). Returns the figures; the tenants are destroyed whatever happens."""
    from sqlalchemy import create_engine, text

    from bench.fault_campaign import leftovers
    from gcloudctl import naming
    from gcloudctl.controller import approvals
    from gcloudctl.controller.service import RequestService
    from gcloudctl.controller.store import open_store
    from gcloudctl.devcloud import faults
    from gcloudctl.devcloud.layout import Layout, default_dir
    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    rng = random.Random(seed)
    report = Report(tenants=tenants, rate=rate, seed=seed, lease=lease, interval=interval, delete_checked=delete)
    layout = layout or Layout(default_dir(Path.home()))
    config = pipeline.Config.load()
    store = open_store(url)
    db = create_engine(url)
    with db.begin() as conn:
        others = conn.execute(text("SELECT count(*) FROM tenants")).scalar()
        if others:  # the replicas would reconcile them too (and bring back what the cleanup destroys)
            raise RuntimeError(f"the campaign needs an empty database: {url} holds {others} tenant(s)")
        conn.execute(text(APPLIES_DDL))
    service = RequestService(store, config.agencies, approvals.parse_rules(approvals.default_rules_text()),
                             lambda raw, name: pipeline.load_request(raw, config, filename=name))
    admin = SdkApi(admin_cloud)
    direct = OpenStackDriver(admin, create_missing_users=True)
    names = {f"{PREFIX}-{secrets.token_hex(3)}": agencies[i % len(agencies)] for i in range(tenants)}
    requests = {n: tenant_doc(n, agency, servers) for n, agency in names.items()}
    project_ids: dict[str, str | None] = {}
    t0 = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    procs: dict[str, subprocess.Popen | None] = {"A": None, "B": None}
    with tempfile.TemporaryDirectory(prefix="ha-d-") as tmp, \
            faults.running(faults.FaultPlan(rate=rate, seed=seed)) as proxies:
        logs = Path(tmp)
        clouds = proxies.write_clouds_yaml(logs / "clouds.yaml", layout.clouds_yaml, admin_cloud)
        try:
            for name, doc in requests.items():
                requester, approvers = PEOPLE[doc["metadata"]["agency"]]
                version = service.submit(yaml.safe_dump(doc, sort_keys=False), caller=requester)
                for approver in approvers[: version["approvalsRequired"]]:
                    service.approve(version["id"], caller=approver, reason="ha campaign")
            with db.begin() as conn:  # hold the work until both replicas are up, so that they overlap
                conn.execute(text("UPDATE tenants SET next_reconcile_at = NULL WHERE name = ANY(:n)"), {"n": list(names)})
            procs["A"] = _start(url, "A", clouds, lease, interval, logs, env, workers)
            procs["B"] = _start(url, "B", clouds, lease, interval, logs, env, workers)
            _ready(procs["A"], "A", logs), _ready(procs["B"], "B", logs)
            with db.begin() as conn:
                conn.execute(text("UPDATE tenants SET next_reconcile_at = updated_at WHERE name = ANY(:n)"),
                             {"n": list(names)})
            started = time.monotonic()
            time.sleep(max(0.0, started + rng.uniform(*kill_window) - time.monotonic()))

            def a_applying() -> list[str]:
                with db.connect() as conn:
                    return sorted(r[0] for r in conn.execute(text(
                        "SELECT tenant FROM ha_applies WHERE label = 'A' AND ended IS NULL")))

            # from the seeded instant on, the first moment A is applying (at most `mid_apply_wait` s more)
            report.inflight_at_kill = _wait(a_applying, mid_apply_wait, poll=0.1) or []
            os.killpg(procs["A"].pid, signal.SIGKILL)
            report.kill_at = round(time.monotonic() - started, 2)
            procs["A"].wait()
            with db.connect() as conn:
                killed_at = conn.execute(text("SELECT clock_timestamp()")).scalar()
            progress(f"replica A killed at {report.kill_at}s with applies in flight: {report.inflight_at_kill}")
            procs["A"] = _start(url, "A2", clouds, lease, interval, logs, env, workers)
            _ready(procs["A"], "A2", logs)

            def phases(want: set[str], generation: int | None = None):
                rows = {n: service.status(n, caller=OPERATOR) for n in names}
                return [(n, s["phase"], s["observedGeneration"], (s.get("lastError") or "")[:200]) for n, s in rows.items()
                        if s["phase"] not in want or (generation is not None and s["observedGeneration"] != generation)]

            done = _wait(lambda: not phases({"ready"}, 1), timeout)
            report.converge_s = round(time.monotonic() - started, 1)
            not_ready = phases({"ready"}, 1)
            report.converged = tenants - len(not_ready)
            if not_ready:
                report.errors.append(f"not ready after {timeout}s: {not_ready}")
            progress(f"{report.converged}/{tenants} ready after {report.converge_s}s")
            for name in names:  # the cloud's truth, as admin past the proxies
                request = pipeline.load_request(yaml.safe_dump(requests[name]), config, filename=name)
                found = admin.request("identity", "GET", "/projects", params={"name": naming.project_name(name)})["projects"]
                project_ids[name] = found[0]["id"] if found else None
                try:
                    plan = pipeline.plan_request(request, direct, config)
                    if not plan.is_empty():
                        report.plan_not_empty.append(
                            f"{name}: {[(c.action.value, str(c.address), c.reason) for c in plan.changes]}")
                except Exception as exc:  # noqa: BLE001 - reported, the campaign goes on to the deletion
                    report.plan_not_empty.append(f"{name}: plan failed: {exc}")
            if delete:  # through the same replicas
                t_delete = time.monotonic()
                for name, doc in requests.items():
                    requester, approvers = PEOPLE[doc["metadata"]["agency"]]
                    version = service.delete(name, caller=requester, reason="ha campaign done")
                    for approver in approvers[: version["approvalsRequired"]]:
                        service.approve(version["id"], caller=approver, reason="ha campaign done")
                _wait(lambda: not phases({"deleted"}), timeout)
                report.delete_s = round(time.monotonic() - t_delete, 1)
                not_deleted = phases({"deleted"})
                report.deleted = tenants - len(not_deleted)
                if not_deleted:
                    report.errors.append(f"not deleted after {timeout}s: {not_deleted}")
        finally:
            for label in ("A", "B"):
                _stop(procs[label])
            injected = proxies.injected.snapshot()
            report.requests, report.faults = sum(injected["requests"].values()), dict(injected["faults"])
            for name, doc in requests.items():  # whatever is left, destroyed directly (no faults)
                request = pipeline.load_request(yaml.safe_dump(doc), config, filename=name)
                owner = pipeline.owner_of(request, config)
                for _ in range(3):
                    try:
                        plan = pipeline.plan_destroy(owner, direct)
                        if plan.is_empty():
                            break
                        pipeline.apply_plan(plan, direct)
                    except Exception as exc:  # noqa: BLE001 - keep cleaning the others
                        report.errors.append(f"cleanup {name}: {exc}")
                left = leftovers(admin, name, doc["metadata"]["agency"], project_ids.get(name))
                if left:
                    report.leftovers[name] = left
    # the evidence: applies per replica, overlaps, leases, audit chain
    with db.connect() as conn:
        report.applies = dict(conn.execute(text("SELECT label, count(*) FROM ha_applies GROUP BY label")).all())
        report.overlaps = [tuple(r) for r in conn.execute(text(
            "SELECT x.tenant, x.label, y.label FROM ha_applies x JOIN ha_applies y "
            "ON x.tenant = y.tenant AND x.label <> y.label AND x.id < y.id "
            "AND x.started < coalesce(y.ended, :k) AND y.started < coalesce(x.ended, :k)"), {"k": killed_at}).all()]
        report.unfenced = [tuple(r) for r in conn.execute(text(
            "SELECT tenant, label, lease_holder, token FROM ha_applies WHERE lease_holder IS DISTINCT FROM holder"))]
        report.taken_over = sorted(r[0] for r in conn.execute(text(
            "SELECT DISTINCT a.tenant FROM ha_applies a JOIN ha_applies b ON a.tenant = b.tenant "
            "AND a.label = 'A' AND b.label <> 'A' AND b.started > a.started")))
        tokens = conn.execute(text(
            "SELECT tenant, array_agg(token ORDER BY started) FROM ha_applies GROUP BY tenant")).all()
        for tenant, seq in tokens:
            if list(seq) != sorted(seq):
                report.unfenced.append((tenant, "tokens out of order", list(seq)))
    verified = service.audit_verify(caller=OPERATOR)
    report.audit_ok, report.audit_records = verified["ok"], verified["records"]
    if not verified["ok"]:
        report.errors.append(f"audit: {verified['breaks'][:3]}")
    report.wall_s = round(time.monotonic() - t0, 1)
    store.dispose()
    db.dispose()
    return report


def table(r: Report) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())) or "none"
    rows = [("tenants (submitted and approved through the service)", r.tenants),
            ("replicas / lease / interval", f"2 on PostgreSQL (A killed with SIGKILL, restarted as A2) / {r.lease:g} s / "
                                            f"{r.interval:g} s"),
            ("fault rate / seed", f"{r.rate:.0%} / {r.seed}"),
            ("requests through the proxies / faults injected", f"{r.requests} / {sum(r.faults.values())} ({kinds})"),
            ("A killed after", f"{r.kill_at} s, applies in flight: {len(r.inflight_at_kill)} {r.inflight_at_kill}"),
            ("applies per replica", ", ".join(f"{k} {v}" for k, v in sorted(r.applies.items()))),
            ("tenants A applied, then another replica", len(r.taken_over)),
            ("converged (ready, admin plan empty)", f"{r.converged - len(r.plan_not_empty)}/{r.tenants} in {r.converge_s} s"),
            ("deleted through the replicas", f"{r.deleted}/{r.tenants} in {r.delete_s} s" if r.delete_checked
             else "not asked (destroyed directly)"),
            ("leftovers after deletion", sum(sum(v.values()) for v in r.leftovers.values())),
            ("applies of one tenant by two replicas at once", len(r.overlaps)),
            ("applies not under the applier's lease / tokens out of order", len(r.unfenced)),
            ("audit chain", f"{'verifies' if r.audit_ok else 'BROKEN'} ({r.audit_records} records)"),
            ("wall time", f"{r.wall_s} s")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--kill-window", type=float, nargs=2, default=(3.0, 30.0), metavar=("FROM", "TO"))
    parser.add_argument("--db", default=DEFAULT_DB, help="SQLAlchemy URL of an empty database; created if missing "
                                                         "and then dropped")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds between reconciles of a ready tenant (short: they run while deletions are approved)")
    parser.add_argument("--agency", action="append", choices=sorted(PEOPLE), help="agencies of the tenants, in turn "
                        "(default BYT and BTC)")
    parser.add_argument("--no-servers", action="store_true", help="tenants without servers (no guests booted)")
    args = parser.parse_args()
    created = create_database(args.db)
    try:
        report = campaign(args.db, tenants=args.tenants, rate=args.rate, seed=args.seed, lease=args.lease,
                          kill_window=tuple(args.kill_window), timeout=args.timeout, servers=not args.no_servers,
                          interval=args.interval, agencies=tuple(args.agency or ("BYT", "BTC")),
                          progress=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        if created:
            drop_database(args.db)
    print(table(report))
    for line in report.plan_not_empty[:10]:
        print(f"  plan not empty: {line}")
    for error in report.errors[:10]:
        print(f"  {error}")
    for name, left in report.leftovers.items():
        print(f"  left: {name} {left}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
