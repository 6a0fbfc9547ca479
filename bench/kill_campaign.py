"""Kill campaign on devcloud (issue 13, campaign (b)): `kill -9` of `gcloudctl apply` and
`gcloudctl destroy` subprocesses at seeded random times, each followed by exactly ONE re-run of
the same command, then checks as admin that the one re-run converged with nothing duplicated,
nothing orphaned and the public addresses kept.

    python bench/kill_campaign.py --kills 50 --seed 1 [--parallel 2] [--apply-window 35] [--destroy-window 20]

Stage: benchmark (outside the pipeline; drives the CLI as a user would and reads the cloud as
admin). Callers: a person, and tests/cloud/test_kill_campaign.py (a short campaign with forced
kill times). It must not touch tenants other than its own (`kill-d-…`), and it destroys its
tenants even when a check fails.

A cycle is one tenant (the example request, of agency BTC so that its quotas stay out of the
way of BYT tenants): `apply` killed at `u × apply-window` seconds (u seeded, so the first 3 s
are drawn too), one re-run of `apply` (exit 0), the checks, `plan --detailed-exitcode` (exit 0:
no changes), `destroy` killed the same way, one re-run of `destroy` (exit 0), the orphan check.
The whole process group is killed (the CLI and any child). A run that ends before its kill
time is not a kill (counted as "missed"; its duration moves the window halfway towards it, as
devcloud's speed varies with its load); cycles go on until `--kills` kills have landed.

Checks after a re-run of apply, as admin past any proxy: duplicates = same-named networks,
subnets, routers, security groups (Neutron's `default` included: more than one is a duplicate),
servers, named ports; servers in ERROR; spare ports (named, not bound to a device); floating
IPs beyond those requested; deletes the re-run had to make (a twin the killed run made).
Public addresses: every floating IP present right after the kill is still there after the
re-run, on the same port. After the re-run of destroy: nothing of the tenant is left
(bench.fault_campaign.leftovers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fault_campaign import leftovers  # noqa: E402
from gcloudctl import naming  # noqa: E402
from gcloudctl.drivers.openstack import SdkApi  # noqa: E402

EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"
BIN = Path(sys.executable).parent
PREFIX = "kill-d"


def tenant_doc(name: str) -> dict:
    """The example request (2 networks, router, 2 groups, 3 servers, 2 floating IPs), of agency
    BTC with quotas just large enough (the agency-total pre-flight counts every live tenant)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"].update(name=name, agency="BTC", requester="hoang.van.e")
    doc["spec"]["members"] = [{"user": "hoang.van.e", "roles": ["member"]}]
    for net in doc["spec"]["networks"]:
        net.pop("cidr", None)  # allocated from BTC's pool
    doc["spec"]["quotas"] = {"instances": 3, "cores": 4, "ramMiB": 8192, "floatingIPs": 2, "volumes": 1, "volumeGiB": 10}
    return doc


def expected_counts(doc: dict) -> dict[str, int]:
    spec = doc["spec"]
    servers = [s for s in spec.get("servers", [])]
    return {"floating_ip": sum(s.get("count", 1) for s in servers if s.get("floatingIP")),
            "server": sum(s.get("count", 1) for s in servers)}


@dataclass
class Kill:
    command: str              # apply | destroy
    at: float                 # seconds after the start the kill was due
    killed: bool = False      # False: the run had ended before (not a kill)
    phase: str = ""           # what the killed run had finished last (from its progress lines)
    rerun_rc: int | None = None
    rerun_s: float = 0.0
    plan_rc: int | None = None
    duplicates: dict = field(default_factory=dict)
    orphans: dict = field(default_factory=dict)
    fip_changes: list = field(default_factory=list)
    rerun_deletes: list = field(default_factory=list)
    error: str = ""

    @property
    def converged(self) -> bool:
        ok = self.rerun_rc == 0 and not self.duplicates and not self.fip_changes and not self.rerun_deletes
        return ok and (self.plan_rc == 0 if self.command == "apply" else not self.orphans)


def _env() -> dict:
    return dict(os.environ)


def run_killed(args: list[str], at: float, env: dict, logs: Path) -> tuple[bool, str, str]:
    """Start `gcloudctl ARGS` in its own process group; SIGKILL the group `at` seconds later.
    (killed, phase, seconds it ran)."""
    err_path = logs / f"killed-{secrets.token_hex(3)}.err"
    started = time.monotonic()
    with open(err_path, "w") as err:
        proc = subprocess.Popen([str(BIN / "gcloudctl"), *args], stdout=subprocess.DEVNULL, stderr=err, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=at)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
    text = err_path.read_text()
    return killed, phase_of(text), time.monotonic() - started


def phase_of(stderr: str) -> str:
    """The kind of the last step the run reported done ("[3/31] create network.app ok"), or
    where it was before its first step ended."""
    steps = [line.split("]", 1)[1].split() for line in stderr.splitlines()
             if line.strip().startswith("[") and "/" in line.split("]", 1)[0]]
    steps = [s for s in steps if len(s) >= 2]
    if steps:
        return f"{steps[-1][1].split('.', 1)[0]} {'(all steps done: waiting)' if stderr.count(' ok (') and _all_done(stderr) else 'done'}"
    if " step(s)" in stderr:
        return "first steps in flight"
    return "login / observe / plan"


def _all_done(stderr: str) -> bool:
    last = [line.strip().split("]", 1)[0].lstrip("[") for line in stderr.splitlines() if line.strip().startswith("[")]
    last = [x for x in last if "/" in x]
    return bool(last) and last[-1].split("/")[0] == last[-1].split("/")[1]


def project_id_of(admin: SdkApi, tenant: str) -> str | None:
    found = admin.request("identity", "GET", "/projects", params={"name": naming.project_name(tenant)})["projects"]
    return found[0]["id"] if found else None


def floating_ips(admin: SdkApi, project_id: str | None) -> dict[str, str | None]:
    if not project_id:
        return {}
    fips = admin.request("network", "GET", "/floatingips", params={"project_id": project_id})["floatingips"]
    return {f["floating_ip_address"]: f.get("port_id") for f in fips}


def duplicates(admin: SdkApi, project_id: str, expected: dict[str, int]) -> dict:
    """Every resource of the project as admin: same-named twins per kind (Neutron's `default`
    group included), servers in ERROR, spare ports, floating IPs beyond those requested."""
    found: dict = {}

    def twins(kind: str, names) -> None:
        extra = {n: c - 1 for n, c in Counter(names).items() if c > 1}
        if extra:
            found[kind] = extra

    for kind, path, key in (("network", "/networks", "networks"), ("subnet", "/subnets", "subnets"),
                            ("router", "/routers", "routers")):
        twins(kind, [i.get("name") for i in admin.request("network", "GET", path, params={"project_id": project_id})[key]])
    # unfiltered: a list filtered by project makes Neutron create that project's `default` group
    groups = admin.request("network", "GET", "/security-groups")["security_groups"]
    twins("security_group", [g.get("name") for g in groups if g.get("project_id") == project_id])
    ports = [p for p in admin.request("network", "GET", "/ports", params={"project_id": project_id})["ports"]
             if p.get("name") and not (p.get("device_owner") or "").startswith("network:")]
    twins("port", [p["name"] for p in ports])
    spare = sorted(p["name"] for p in ports if not p.get("device_id"))
    if spare:
        found["spare_port"] = spare
    servers = admin.request("compute", "GET", "/servers/detail", params={"all_tenants": "1", "project_id": project_id},
                            microversion="2.64")["servers"]
    twins("server", [s["name"] for s in servers])
    errors = sorted(s["name"] for s in servers if s.get("status") == "ERROR")
    if errors:
        found["server_error"] = errors
    fips = admin.request("network", "GET", "/floatingips", params={"project_id": project_id})["floatingips"]
    if len(fips) > expected["floating_ip"]:
        found["floating_ip"] = len(fips) - expected["floating_ip"]
    return found


def _deletes(stdout: str) -> list[str]:
    """Resources the re-run deleted (from `-o json`): in an apply, a twin the killed run made
    (quotas and memberships are settings, not resources that can be twins)."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return []
    return [o.get("address", "?") for o in data.get("outcomes", []) if o.get("step") == "delete"
            and not o.get("address", "").startswith(("quota.", "membership."))]


class Campaign:
    """Cycles on `parallel` tenants at once until `kills` kills landed (or `max_cycles`)."""

    def __init__(self, *, kills: int, seed: int, parallel: int = 2, apply_window: float = 35.0,
                 destroy_window: float = 20.0, admin_cloud: str = "devcloud", env: dict | None = None,
                 forced: list[tuple[str, float]] | None = None, max_cycles: int | None = None, progress=print,
                 adaptive: bool = True):
        self.kills, self.seed, self.parallel = kills, seed, max(1, parallel)
        self.windows = {"apply": apply_window, "destroy": destroy_window}
        self.adaptive = adaptive
        self.admin = SdkApi(admin_cloud)
        self.env = env if env is not None else _env()
        self.forced = list(forced or [])  # (command, seconds) used first, in order
        self.max_cycles = max_cycles or 2 * kills
        self.progress = progress
        self.results: list[Kill] = []
        self.live: set[str] = set()
        self._lock = threading.Lock()
        self._cycles = 0
        self.crashes: list[str] = []

    def _landed(self) -> int:
        return sum(k.killed for k in self.results)

    def _next_at(self, rng: random.Random, command: str) -> float:
        with self._lock:
            for i, (cmd, at) in enumerate(self.forced):
                if cmd == command:
                    return self.forced.pop(i)[1]
        return round(rng.random() * self.windows[command], 2)

    def _learn(self, command: str, killed: bool, ran: float) -> None:
        """A run that ended before its kill shows how long the whole command takes now (devcloud's
        speed varies with its load): the window moves halfway to it, so kills keep landing."""
        if not killed and self.adaptive:
            with self._lock:
                self.windows[command] = round(max(3.5, (self.windows[command] + ran) / 2), 1)

    def _wait_plain_compute(self) -> None:
        """While devcloud is in guests mode (someone's guests test holds it), start no cycle: our
        servers would boot guests beside theirs. The campaign needs Nova's plain fake driver."""
        from gcloudctl.devcloud import guests
        from gcloudctl.devcloud.layout import Layout, default_dir

        layout = Layout(default_dir(Path.home()))
        while guests.load_mode(layout).enabled:
            self.progress("devcloud is in guests mode: waiting for it to be back on the plain driver")
            time.sleep(20)

    def _take_cycle(self) -> bool:
        with self._lock:
            if self._landed() >= self.kills or self._cycles >= self.max_cycles:
                return False
            self._cycles += 1
            return True

    def _record(self, kill: Kill, name: str) -> None:
        with self._lock:
            self.results.append(kill)
        state = "converged" if kill.converged else "NOT CONVERGED"
        self.progress(f"{name} {kill.command} kill@{kill.at:.1f}s "
                      f"{'[' + kill.phase + ']' if kill.killed else '(ended before the kill)'}: re-run rc {kill.rerun_rc} "
                      f"in {kill.rerun_s:.1f}s -> {state}"
                      + (f"; dup {kill.duplicates}" if kill.duplicates else "")
                      + (f"; orphans {kill.orphans}" if kill.orphans else "")
                      + (f"; FIP changes {kill.fip_changes}" if kill.fip_changes else "")
                      + (f"; re-run deleted {kill.rerun_deletes}" if kill.rerun_deletes else "")
                      + (f"; {kill.error[-600:]}" if kill.error and not kill.converged else ""))

    def _gcloudctl(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "gcloudctl"), *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env)

    def cycle(self, rng: random.Random, tmp: Path) -> None:
        name = f"{PREFIX}-{secrets.token_hex(3)}"
        doc = tenant_doc(name)
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        with self._lock:
            self.live.add(name)
        project_id = None
        try:
            # apply, killed, then one re-run
            kill = Kill("apply", self._next_at(rng, "apply"))
            kill.killed, kill.phase, ran = run_killed(["apply", str(path), "--yes"], kill.at, self.env, tmp)
            self._learn("apply", kill.killed, ran)
            project_id = project_id_of(self.admin, name)
            before = floating_ips(self.admin, project_id)
            t0 = time.monotonic()
            out = self._gcloudctl("-o", "json", "apply", str(path), "--yes")
            kill.rerun_s, kill.rerun_rc = time.monotonic() - t0, out.returncode
            kill.rerun_deletes = _deletes(out.stdout)
            if out.returncode:
                kill.error = out.stderr
            project_id = project_id or project_id_of(self.admin, name)
            if project_id:
                kill.duplicates = duplicates(self.admin, project_id, expected_counts(doc))
                after = floating_ips(self.admin, project_id)
                kill.fip_changes = sorted(f"{a}: {'gone' if a not in after else 'moved'}" for a, port in before.items()
                                          if a not in after or (port and after[a] != port))
            plan = self._gcloudctl("plan", str(path), "--detailed-exitcode")
            kill.plan_rc = plan.returncode
            if plan.returncode:
                kill.error += plan.stdout[-1500:] + plan.stderr[-800:]
            self._record(kill, name)
            # destroy, killed, then one re-run
            kill = Kill("destroy", self._next_at(rng, "destroy"))
            kill.killed, kill.phase, ran = run_killed(["destroy", str(path), "--yes"], kill.at, self.env, tmp)
            self._learn("destroy", kill.killed, ran)
            t0 = time.monotonic()
            out = self._gcloudctl("destroy", str(path), "--yes")
            kill.rerun_s, kill.rerun_rc = time.monotonic() - t0, out.returncode
            if out.returncode:
                kill.error = out.stderr
            kill.orphans = leftovers(self.admin, name, doc["metadata"]["agency"], project_id)
            self._record(kill, name)
        finally:
            self.cleanup(name, path, project_id)

    def cleanup(self, name: str, path: Path, project_id: str | None) -> None:
        """Destroy the tenant whatever happened (at most 3 tries), then forget it if nothing is left."""
        for _ in range(3):
            if not leftovers(self.admin, name, "BTC", project_id or project_id_of(self.admin, name)):
                break
            self._gcloudctl("destroy", str(path), "--yes")
        with self._lock:
            if not leftovers(self.admin, name, "BTC", project_id):
                self.live.discard(name)

    def run(self) -> dict:
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="kill-d-") as tmp:
            def slot(i: int) -> None:
                rng = random.Random(self.seed * 1000 + i)
                while self._take_cycle():
                    self._wait_plain_compute()
                    try:
                        self.cycle(rng, Path(tmp))
                    except Exception as exc:  # noqa: BLE001 - a check that failed on the cloud: record it, go on
                        with self._lock:
                            self.crashes.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                        self.progress(f"cycle crashed: {type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=slot, args=(i,), name=f"slot-{i}") for i in range(self.parallel)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return self.report(time.monotonic() - t0)

    def report(self, wall: float) -> dict:
        landed = [k for k in self.results if k.killed]
        phases = Counter(f"{k.command}: {k.phase}" for k in landed)
        return {
            "seed": self.seed, "parallel": self.parallel, "windows": self.windows,
            "kills": len(landed), "missed": len(self.results) - len(landed),
            "by_command": dict(Counter(k.command for k in landed)),
            "early": sum(1 for k in landed if k.at < 3.0),
            "phases": dict(sorted(phases.items())),
            "converged": sum(k.converged for k in landed),
            "duplicates": sum(sum(len(v) if isinstance(v, list) else (sum(v.values()) if isinstance(v, dict) else v)
                                  for v in k.duplicates.values()) for k in self.results) + sum(len(k.rerun_deletes) for k in self.results),
            "orphans": sum(sum(k.orphans.values()) for k in self.results),
            "fip_changes": sum(len(k.fip_changes) for k in self.results),
            "plan_not_empty": sum(1 for k in self.results if k.command == "apply" and k.plan_rc != 0),
            "rerun_s": {c: round(sum(k.rerun_s for k in landed if k.command == c) / max(1, sum(k.command == c for k in landed)), 1)
                        for c in ("apply", "destroy")},
            "wall_s": round(wall, 1),
            "failures": [f"{k.command}@{k.at}s [{k.phase}]: dup {k.duplicates} orphans {k.orphans} fip {k.fip_changes} "
                         f"deletes {k.rerun_deletes} rc {k.rerun_rc}/{k.plan_rc} {k.error[-400:]}"
                         for k in self.results if not k.converged][:20],
            "left": sorted(self.live),
            "crashes": self.crashes,
        }


def table(report: dict) -> str:
    rows = [("kills (kill -9 of the process group)", f"{report['kills']} ({', '.join(f'{c} {n}' for c, n in sorted(report['by_command'].items()))}; "
                                                     f"{report['early']} in the first 3 s; {report['missed']} runs ended before their kill)"),
            ("seed / tenants at once", f"{report['seed']} / {report['parallel']}"),
            ("kill windows at the end (s)", f"apply {report['windows']['apply']:g}, destroy {report['windows']['destroy']:g}")]
    rows += [(f"  killed after: {phase}", n) for phase, n in report["phases"].items()]
    rows += [("converged in ONE re-run", f"{report['converged']}/{report['kills']}"),
             ("duplicates (twins, ERROR servers, spare ports, extra FIPs, re-run deletes)", report["duplicates"]),
             ("orphans after destroy", report["orphans"]),
             ("floating IPs changed by a killed apply + re-run", report["fip_changes"]),
             ("plans not empty after the re-run of apply", report["plan_not_empty"]),
             ("mean re-run time (s)", f"apply {report['rerun_s']['apply']}, destroy {report['rerun_s']['destroy']}"),
             ("wall time", f"{report['wall_s']} s"),
             ("tenants left on the cloud", ", ".join(report["left"]) or "none")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2, help="tenants at once (at most 2: agency quota totals)")
    parser.add_argument("--apply-window", type=float, default=35.0, help="apply kills fall in [0, this) seconds")
    parser.add_argument("--destroy-window", type=float, default=20.0)
    parser.add_argument("--cloud", default="devcloud", help="devcloud admin entry (the checks)")
    args = parser.parse_args()
    campaign = Campaign(kills=args.kills, seed=args.seed, parallel=min(args.parallel, 2), apply_window=args.apply_window,
                        destroy_window=args.destroy_window, admin_cloud=args.cloud,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    report = campaign.run()
    print(table(report))
    for failure in report["failures"]:
        print(f"  {failure}")
    bad = report["converged"] != report["kills"] or report["duplicates"] or report["orphans"] or report["fip_changes"]
    for crash in report["crashes"]:
        print(f"  crashed: {crash}")
    return 1 if bad or report["left"] or report["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
