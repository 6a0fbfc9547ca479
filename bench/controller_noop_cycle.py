"""Benchmark on devcloud: one no-op reconcile cycle of the controller over N converged tenants.

    python bench/controller_noop_cycle.py [--tenants 50] [--servers 0] [--workers 4] [--cloud devcloud] [--keep]

Provisions N tenants through the controller (submit, approve, one cycle), then runs one more
cycle in which nothing changed and reports its wall time and the HTTP requests it made per
service (counted by the driver's HTTP hook), per tenant and in total. Expected: a fixed number of
list calls per tenant (one per resource kind), no writes. Tenants are destroyed at the end
through the controller (request delete + a cycle) unless --keep.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time

from controller_common import build, delete_approved, submit_approved, tenant_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--servers", type=int, default=0, help="web servers per tenant")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cloud", default="devcloud")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    driver = OpenStackDriver(SdkApi(args.cloud), create_missing_users=True)
    tmp = tempfile.mkdtemp(prefix="bench-ctl-")
    _, store, engine, service, runner = build(f"sqlite:///{tmp}/controller.db", lambda region: driver,
                                              workers=args.workers)
    prefix = f"bench-{secrets.token_hex(2)}"
    names = [submit_approved(service, tenant_text(f"{prefix}-{i:03d}", servers=args.servers))
             for i in range(args.tenants)]
    result: dict = {"tenants": args.tenants, "servers_per_tenant": args.servers, "workers": args.workers}
    try:
        started = time.monotonic()
        first = runner.run_once()
        result["provision_cycle"] = {"seconds": round(time.monotonic() - started, 1), "counts": first.counts()}
        before = dict(engine.api_calls())
        started = time.monotonic()
        noop = runner.run_once()
        seconds = time.monotonic() - started
        after = engine.api_calls()
        calls = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        total = sum(calls.values())
        result["noop_cycle"] = {"seconds": round(seconds, 2), "counts": noop.counts(), "requests_by_endpoint": calls,
                                "requests_total": total, "requests_per_tenant": round(total / args.tenants, 2),
                                "writes": sum(o.changes for o in noop.outcomes)}
    finally:
        if not args.keep:
            for name in names:
                delete_approved(service, name)
            started = time.monotonic()
            gone = runner.run_once()
            result["destroy_cycle"] = {"seconds": round(time.monotonic() - started, 1), "counts": gone.counts()}
        store.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
