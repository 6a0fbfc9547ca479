"""Fault campaign on devcloud (issue 13, campaign (a)): apply -> re-apply -> destroy cycles of a
tenant through the fault injector (gcloudctl.devcloud.faults), then check as admin, past the
proxies, that every cycle converged with no duplicates and no leftovers.

    python bench/fault_campaign.py --cycles 100 --rate 0.05 --seed 1 [--tenant example|small] [--parallel 4]

Prints a table: cycles, requests and faults injected by kind, converged cycles, runs needed,
duplicates, leftovers, wall time. tests/cloud/test_faults.py runs a short campaign with it.

A cycle: `apply` (re-run while its result is not ok, at most `--runs` times: an apply that
fails on a fault is re-run, as an operator or the controller would), then a re-apply whose plan
must be empty, then `destroy` (re-run the same way). Converged: the tenant's plan is empty
after the apply phase and nothing of it is left after the destroy phase.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl import naming, pipeline  # noqa: E402
from gcloudctl.devcloud import faults  # noqa: E402
from gcloudctl.devcloud.layout import Layout, default_dir  # noqa: E402
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi  # noqa: E402
from gcloudctl.errors import GcloudctlError  # noqa: E402

EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"


def tenant_doc(name: str, shape: str) -> dict:
    """`example`: the example request (3 servers, 2 floating IPs, 31 resources). `small`: one
    network, the router, one group, one server with a floating IP (the short test campaign)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    if shape == "small":  # of agency BTC: its ceilings hold 10 at once beside the other tests' BYT tenants
        doc["metadata"].update(agency="BTC", requester="hoang.van.e")
        spec = doc["spec"]
        spec["members"] = [{"user": "hoang.van.e", "roles": ["member"]}]
        spec["quotas"].update(instances=2, cores=2, ramMiB=4096, floatingIPs=1)
        spec["networks"] = [{"name": "app", "zone": "app", "prefixLength": 26}]
        spec["securityGroups"] = spec["securityGroups"][:1]
        spec["securityGroups"][0]["rules"] = spec["securityGroups"][0]["rules"][:1]
        spec["servers"] = [{"name": "web", "count": 1, "flavor": "g1.small", "image": "debian-12-hardened",
                            "networks": ["app"], "securityGroups": ["web"], "keypair": "ops", "floatingIP": True}]
    return doc


@dataclass
class Cycle:
    converged: bool = False
    apply_runs: int = 0
    destroy_runs: int = 0
    reapply_writes: int = 0
    duplicates: dict = field(default_factory=dict)
    leftovers: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)


def _run(make_driver, plan_fn, runs: int, cycle: Cycle, what: str) -> tuple[bool, int]:
    """Plan and apply until the plan is empty (at most `runs` applies). (converged, applies)."""
    applies = 0
    for _ in range(runs + 1):
        try:
            driver = make_driver()
            plan = plan_fn(driver)
            if plan.is_empty():
                return True, applies
            if applies == runs:
                break
            applies += 1
            result = pipeline.apply_plan(plan, driver)
            if not result.ok:
                cycle.errors.append(f"{what} run {applies}: " + "; ".join(
                    f"{o.node}: {o.error}" for o in result.outcomes if o.error and o.status.value != "skipped")[:500])
        except GcloudctlError as exc:
            cycle.errors.append(f"{what}: {type(exc).__name__}: {exc.message[:300]}")
            applies += 1
            if applies > runs:
                break
    return False, applies


def duplicates(admin: SdkApi, project_id: str, expected_fips: int) -> dict:
    """Resources of the project that share a name (or floating IPs beyond those requested),
    read as admin past the proxies. Neutron's own ports (DHCP, router) are not counted."""
    found = {}
    by = {"network": "/networks", "subnet": "/subnets", "router": "/routers", "security_group": "/security-groups"}
    for kind, path in by.items():
        items = admin.request("network", "GET", path, params={"project_id": project_id})[path.strip("/").replace("-", "_")]
        names = Counter(i.get("name") for i in items if i.get("name") != "default")
        extra = {n: c - 1 for n, c in names.items() if c > 1}
        if extra:
            found[kind] = extra
    ports = admin.request("network", "GET", "/ports", params={"project_id": project_id})["ports"]
    names = Counter(p.get("name") for p in ports if p.get("name") and not (p.get("device_owner") or "").startswith("network:"))
    if any(c > 1 for c in names.values()):
        found["port"] = {n: c - 1 for n, c in names.items() if c > 1}
    servers = admin.request("compute", "GET", "/servers/detail", params={"all_tenants": "1", "project_id": project_id},
                            microversion="2.64")["servers"]
    names = Counter(s["name"] for s in servers)
    if any(c > 1 for c in names.values()):
        found["server"] = {n: c - 1 for n, c in names.items() if c > 1}
    fips = admin.request("network", "GET", "/floatingips", params={"project_id": project_id})["floatingips"]
    if len(fips) > expected_fips:
        found["floating_ip"] = len(fips) - expected_fips
    return found


def leftovers(admin: SdkApi, tenant: str, agency: str, project_id: str | None) -> dict:
    """Everything of the tenant still on the cloud, as admin: its project, resources tagged for
    it or in its project (Neutron's `default` group included: listed unfiltered, since a list
    filtered by project makes Neutron re-create it), servers, server groups, keypairs."""
    tag = naming.TENANT_TAG_PREFIX + tenant
    found: dict[str, int] = {}

    def add(kind: str, n: int) -> None:
        if n:
            found[kind] = found.get(kind, 0) + n

    add("project", len(admin.request("identity", "GET", "/projects", params={"tags": tag})["projects"]))
    for kind, path in (("network", "/networks"), ("subnet", "/subnets"), ("router", "/routers"), ("port", "/ports"),
                       ("floating_ip", "/floatingips")):
        key = path.strip("/")
        add(kind, len(admin.request("network", "GET", path, params={"tags": tag})[key]))
        if project_id:
            tagged = {i["id"] for i in admin.request("network", "GET", path, params={"tags": tag})[key]}
            add(kind, sum(1 for i in admin.request("network", "GET", path, params={"project_id": project_id})[key]
                          if i["id"] not in tagged))
    if project_id:
        groups = admin.request("network", "GET", "/security-groups")["security_groups"]
        add("security_group", sum(1 for g in groups if g.get("project_id") == project_id))
        add("server", len(admin.request("compute", "GET", "/servers/detail", microversion="2.64",
                                        params={"all_tenants": "1", "project_id": project_id})["servers"]))
        groups = admin.request("compute", "GET", "/os-server-groups", params={"all_projects": "True"},
                               microversion="2.64")["server_groups"]
        add("server_group", sum(1 for g in groups if g.get("project_id") == project_id))
    prefix = naming.keypair_prefix(agency, tenant)
    keypairs = admin.request("compute", "GET", "/os-keypairs", microversion="2.64")["keypairs"]
    add("keypair", sum(1 for k in keypairs if k["keypair"]["name"].startswith(prefix)))
    return found


def campaign(*, cycles: int, rate: float, seed: int, shape: str = "example", runs: int = 3, parallel: int = 1,
             admin_cloud: str = "devcloud", layout: Layout | None = None, progress=print) -> dict:
    """Run the cycles (`parallel` tenants at a time: each cycle is its own tenant) and return
    the figures. With parallel > 1 the faults still follow the seed per (service, method), but
    which tenant's request draws them depends on the interleaving."""
    layout = layout or Layout(default_dir(Path.home()))
    config = pipeline.Config.load()
    admin = SdkApi(admin_cloud)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, faults.running(faults.FaultPlan(rate=rate, seed=seed)) as proxies:
        clouds = proxies.write_clouds_yaml(Path(tmp) / "clouds.yaml", layout.clouds_yaml, admin_cloud)

        def make_driver() -> OpenStackDriver:
            return OpenStackDriver(SdkApi(faults.FAULT_CLOUD, config_files=[str(clouds)]), create_missing_users=True)

        def one(i: int) -> Cycle:
            name = f"fault-{shape[:3]}-{secrets.token_hex(3)}"
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(tenant_doc(name, shape)))
            request = pipeline.load_request(path, config, filename=str(path))
            owner = pipeline.owner_of(request, config)
            cycle = Cycle()
            started = time.monotonic()
            applied, cycle.apply_runs = _run(make_driver, lambda d: pipeline.plan_request(request, d, config), runs,
                                             cycle, "apply")
            project = admin.request("identity", "GET", "/projects", params={"name": naming.project_name(name)})["projects"]
            project_id = project[0]["id"] if project else None
            if project_id:
                fips = sum(s.floatingIP * s.count for s in request.spec.servers)
                cycle.duplicates = duplicates(admin, project_id, fips)
            reapplied, _ = _run(make_driver, lambda d: pipeline.plan_request(request, d, config), 0, cycle, "re-apply")
            destroyed, cycle.destroy_runs = _run(make_driver, lambda d: pipeline.plan_destroy(owner, d), runs,
                                                 cycle, "destroy")
            cycle.leftovers = leftovers(admin, name, owner.agency, project_id)
            cycle.converged = applied and reapplied and destroyed and not cycle.leftovers and not cycle.duplicates
            progress(f"cycle {i + 1}/{cycles} {name}: {'converged' if cycle.converged else 'NOT converged'} "
                     f"(apply runs {cycle.apply_runs}, destroy runs {cycle.destroy_runs}) "
                     f"{time.monotonic() - started:.1f}s; faults so far {dict(proxies.injected.faults)}"
                     + (f"; dup {cycle.duplicates}" if cycle.duplicates else "")
                     + (f"; left {cycle.leftovers}" if cycle.leftovers else "")
                     + (f"; errors {cycle.errors[:2]}" if cycle.errors and not cycle.converged else ""))
            return cycle

        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="cycle") as pool:
            results = list(pool.map(one, range(cycles)))
        injected = proxies.injected.snapshot()
    return {
        "cycles": cycles, "rate": rate, "seed": seed, "shape": shape, "parallel": parallel,
        "requests": sum(injected["requests"].values()), "faults": injected["faults"],
        "converged": sum(c.converged for c in results),
        "first_run_converged": sum(c.converged and c.apply_runs <= 1 and c.destroy_runs <= 1 for c in results),
        "max_apply_runs": max((c.apply_runs for c in results), default=0),
        "max_destroy_runs": max((c.destroy_runs for c in results), default=0),
        "duplicates": sum(sum(v.values()) if isinstance(v, dict) else v for c in results for v in c.duplicates.values()),
        "leftovers": sum(sum(c.leftovers.values()) for c in results),
        "wall_s": round(time.monotonic() - t0, 1),
        "errors": [e for c in results for e in c.errors][:20],
    }


def table(report: dict) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report["faults"].items())) or "none"
    rows = [("cycles", f"{report['cycles']} ({report['parallel']} at a time)"), ("tenant shape", report["shape"]),
            ("fault rate / seed", f"{report['rate']:.0%} / {report['seed']}"),
            ("requests through the proxies", report["requests"]),
            ("faults injected", f"{sum(report['faults'].values())} ({kinds})"),
            ("converged", f"{report['converged']}/{report['cycles']}"),
            ("converged with one apply and one destroy run", f"{report['first_run_converged']}/{report['cycles']}"),
            ("most apply / destroy runs in a cycle", f"{report['max_apply_runs']} / {report['max_destroy_runs']}"),
            ("duplicates", report["duplicates"]), ("leftovers", report["leftovers"]),
            ("wall time", f"{report['wall_s']} s")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tenant", choices=["example", "small"], default="example")
    parser.add_argument("--runs", type=int, default=3, help="most apply (and destroy) runs per cycle")
    parser.add_argument("--parallel", type=int, default=1, help="cycles (tenants) run at once")
    parser.add_argument("--cloud", default="devcloud", help="devcloud admin entry (checks, and the entry proxied)")
    args = parser.parse_args()
    report = campaign(cycles=args.cycles, rate=args.rate, seed=args.seed, shape=args.tenant, runs=args.runs, parallel=args.parallel,
                      admin_cloud=args.cloud, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(table(report))
    for error in report["errors"]:
        print(f"  {error}")
    return 0 if report["converged"] == report["cycles"] and not report["duplicates"] and not report["leftovers"] else 1


if __name__ == "__main__":
    sys.exit(main())
