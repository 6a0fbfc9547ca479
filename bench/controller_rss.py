"""Benchmark (no cloud needed): controller memory with 1,000 tenants in the store.

    python bench/controller_rss.py [--tenants 1000] [--workers 4]

Stores N approved tenants (SQLite), then runs full controller cycles over them with the real
pipeline on the in-memory FakeCloud, and reports the process RSS (VmRSS, VmHWM from
/proc/self/status) after start-up, after intake, after the provisioning cycle and after a
no-op cycle, plus cycle times. The FakeCloud's own data lives in the same process, so the
figures are an upper bound for the controller itself.
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import tempfile
import time

from controller_common import build, submit_approved, tenant_text


def rss_mib() -> dict:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    from gcloudctl.drivers.fake import FakeCloud

    cloud = FakeCloud()
    tmp = tempfile.mkdtemp(prefix="bench-rss-")
    _, store, engine, service, runner = build(f"sqlite:///{tmp}/controller.db", lambda region: cloud,
                                              workers=args.workers)
    report = {"tenants": args.tenants, "start": rss_mib()}
    agencies = ["BYT", "BTC", "QNI"]
    started = time.monotonic()
    prefix = secrets.token_hex(2)
    for i in range(args.tenants):
        agency = agencies[i % 3]
        submit_approved(service, tenant_text(f"t{prefix}-{i:04d}", agency=agency), agency)
    gc.collect()
    report["after_intake"] = rss_mib() | {"seconds": round(time.monotonic() - started, 1)}
    for label in ("provision_cycle", "noop_cycle"):
        started = time.monotonic()
        summary = runner.run_once()
        gc.collect()
        report[label] = rss_mib() | {"seconds": round(time.monotonic() - started, 1), "counts": summary.counts()}
    with store.tx() as tx:
        report["tenants_in_store"] = tx.count_tenants()
    store.dispose()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
