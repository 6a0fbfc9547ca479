"""Benchmark: the API requests and wall time of one no-op controller cycle, fleet-wide
observation against the per-tenant path, as the number of tenants grows (issue 13 part 6).

    python bench/controller_cycle.py devcloud --tenants 10 100 [--workers 4] [--cloud devcloud]
    python bench/controller_cycle.py memory --tenants 1000 2000 [--per-tenant-up-to 1000]

devcloud: a Keystone domain of our own (agency BCH, `fleet-c-…`, made as admin, big ceilings;
the other suites' agencies BYT/BTC/QNI are never touched) receives cheap tenants made by the
controller (a network with its subnet and a security group; no router: `public` is a /24
shared with the other suites; no servers). Sizes are cumulative (10, then 90 more for 100).
Requests are counted at the HTTP layer (the keystoneauth session's response hook, `SdkApi`).
Everything in the domain (tenants through the pipeline's destroy, users, projects, the domain)
is deleted at the end, also after a failure.

memory: the in-memory cloud with bulk listings (`drivers.fake_fleet`); tenants (with a router)
are made straight through the pipeline, then approved in the store and taken over by a first
controller cycle; requests counted by the in-memory API. Also prints the process RSS (the
controller and the in-memory cloud together; the cloud's share is measured before the
controller runs).

Cycles measured per size: `fleet` (steady: quotas cached), `fleet+quotas` (the cycle that
reads the Nova quotas again, once every --quota-every cycles) and `per-tenant` (today's path,
the "before").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl import pipeline  # noqa: E402
from gcloudctl.controller.engine import PipelineEngine  # noqa: E402
from gcloudctl.controller.reconciler import Reconciler  # noqa: E402
from gcloudctl.controller.runner import Runner  # noqa: E402
from gcloudctl.drivers.openstack_fleet import fleet_observer  # noqa: E402
from gcloudctl.ownership import Owner  # noqa: E402
from gcloudctl.resources import ObservedState  # noqa: E402
from tests.controller.test_fleet_support import (AGENCY, PREFIX, DevcloudDomain, Stack, config,  # noqa: E402
                                                 devcloud_driver, tenant_text)


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def requests_of(driver) -> int:
    return sum(driver.api.requests.values())


def cycle(runner: Runner, driver, *, reset=None) -> dict:
    """One pass over every tenant: requests made, seconds, results, writes."""
    writes_before = _writes(driver)
    before = requests_of(driver)
    started = time.monotonic()
    summary = runner.run_once()
    seconds = time.monotonic() - started
    return {"requests": requests_of(driver) - before, "seconds": round(seconds, 2), "results": summary.counts(),
            "writes": _writes(driver) - writes_before}


def _writes(driver) -> int:
    api = driver.api
    if hasattr(api, "write_requests"):
        return api.write_requests
    return sum(api.writes.values())


def runners(stack: Stack, cfg, driver, quota_every: int, workers: int) -> dict[str, Runner]:
    """Three controllers over the same store and driver: fleet (steady), fleet reading every
    quota (quota_every=1), per tenant."""
    out = {"fleet": stack.runner}
    for name, factory in (("fleet+quotas", lambda d: fleet_observer(d, quota_every=1, max_age=3600)),
                          ("per-tenant", None)):
        engine = PipelineEngine(cfg, lambda region: driver, fleet=factory)
        out[name] = Runner(stack.store, Reconciler(stack.store, engine, holder=f"bench-{name}", interval=60,
                                                   clock=stack.runner.clock),
                           clock=stack.runner.clock, workers=workers, claim_poll=0.2,
                           on_cycle=engine.begin_cycle if factory else None)
    return out


def measure(stack, cfg, driver, n: int, quota_every: int, workers: int, per_tenant: bool) -> list[dict]:
    rows = []
    named = runners(stack, cfg, driver, quota_every, workers)
    cycle(named["fleet"], driver)  # settle: quotas cached after the provisioning cycle
    for name in ("fleet", "fleet+quotas", "per-tenant"):
        if name == "per-tenant" and not per_tenant:
            continue
        if name == "fleet+quotas":
            cycle(named[name], driver)  # its own first snapshot; the next cycle reads all quotas again
        result = cycle(named[name], driver)
        assert set(result["results"]) == {"converged"} and result["writes"] == 0, result
        rows.append({"tenants": n, "path": name, **result, "per_tenant": round(result["requests"] / n, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_devcloud(args) -> list[dict]:
    driver = devcloud_driver(args.cloud)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    domain = DevcloudDomain(driver)
    rows: list[dict] = []
    try:
        cfg = config(tmp, domain.name)
        stack = Stack(f"sqlite:///{tmp}/controller.db", cfg, driver, fleet=True, quota_every=args.quota_every,
                      workers=args.workers)
        made = 0
        for n in sorted(args.tenants):
            started = time.monotonic()
            for i in range(made, n):
                stack.submit(f"{PREFIX}{domain.name[-6:]}-{i:03d}", router=False)
            summary = stack.runner.run_once()
            print(json.dumps({"provisioned": n, "seconds": round(time.monotonic() - started, 1),
                              "results": summary.counts()}), flush=True)
            assert summary.counts().get("applied", 0) == n - made, summary.to_dict()
            made = n
            rows += measure(stack, cfg, driver, n, args.quota_every, args.workers, per_tenant=True)
        stack.close()
    finally:
        started = time.monotonic()
        problems = domain.close(None, workers=args.workers)
        print(json.dumps({"cleanup_seconds": round(time.monotonic() - started, 1), "problems": problems}), flush=True)
    return rows


def bench_memory(args) -> list[dict]:
    from gcloudctl import planner
    from gcloudctl.drivers.fake_fleet import FleetFakeApi, fleet_fake_cloud

    rows: list[dict] = []
    for n in sorted(args.tenants):
        tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-mem-"))
        cfg = config(tmp)
        api = FleetFakeApi(domains=(AGENCY,))
        driver = fleet_fake_cloud(api)
        started = time.monotonic()
        for i in range(n):
            request = pipeline.load_request(tenant_text(f"{PREFIX}{i:04d}", index=i), cfg)
            empty = lambda owner, **kw: ObservedState(tenant=owner.tenant, resources={})  # noqa: E731
            desired, observed = pipeline.desired_and_observed(request, driver, cfg, observe=empty)
            result = pipeline.apply_plan(planner.plan(desired, observed), driver)
            assert result.ok, result.to_dict()
        world_rss = rss_mib()[0]
        stack = Stack(f"sqlite:///{tmp}/controller.db", cfg, driver, fleet=True, quota_every=args.quota_every,
                      workers=args.workers)
        for i in range(n):
            stack.submit(f"{PREFIX}{i:04d}", index=i)
        first = stack.runner.run_once()
        print(json.dumps({"provisioned": n, "seconds": round(time.monotonic() - started, 1),
                          "first_cycle": first.counts(), "rss_cloud_mib": round(world_rss, 1)}), flush=True)
        assert first.counts() == {"converged": n}, first.counts()
        rows += measure(stack, cfg, driver, n, args.quota_every, args.workers, per_tenant=n <= args.per_tenant_up_to)
        now, peak = rss_mib()
        rows[-1]["rss_mib"] = round(now, 1)
        rows[-1]["rss_peak_mib"] = round(peak, 1)
        rows[-1]["rss_cloud_mib"] = round(world_rss, 1)
        print(json.dumps({"tenants": n, "rss_mib": round(now, 1), "rss_peak_mib": round(peak, 1),
                          "rss_in_memory_cloud_mib": round(world_rss, 1)}), flush=True)
        stack.close()
        del stack, driver, api
    return rows


def table(rows: list[dict], where: str) -> str:
    lines = [f"| where | tenants | observation | requests / no-op cycle | per tenant | wall time (s) |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {where} | {r['tenants']} | {r['path']} | {r['requests']} | {r['per_tenant']} | {r['seconds']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("where", choices=["devcloud", "memory"])
    parser.add_argument("--tenants", type=int, nargs="+", default=None)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quota-every", type=int, default=10)
    parser.add_argument("--cloud", default="devcloud")
    parser.add_argument("--per-tenant-up-to", type=int, default=1000,
                        help="memory: measure the per-tenant path only up to this many tenants")
    args = parser.parse_args()
    args.tenants = args.tenants or ([10, 100] if args.where == "devcloud" else [1000, 2000])
    rows = bench_devcloud(args) if args.where == "devcloud" else bench_memory(args)
    print(table(rows, args.where))


if __name__ == "__main__":
    main()
