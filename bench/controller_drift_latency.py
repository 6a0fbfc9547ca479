"""Benchmark on devcloud: drift repair latency of the running controller.

    python bench/controller_drift_latency.py [--intervals 5,60] [--samples 3] [--cloud devcloud]

Provisions one tenant, runs `Runner.run` (the loop of `gcloudctl controller run`) with each poll
interval, opens SSH to 0.0.0.0/0 on its security group with openstacksdk (an independent
client, not the controller's driver), and measures the time until the rule is gone. The
drift happens at a random moment of the poll cycle, so the expected latency is about
interval/2 + one reconcile, at most interval + one reconcile.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time

from controller_common import build, delete_approved, submit_approved, tenant_text


def _exists(conn, rule_id: str) -> bool:
    """Whether the rule is still there; a failed look (the API restarting) counts as yes."""
    try:
        return conn.network.find_security_group_rule(rule_id) is not None
    except Exception:  # noqa: BLE001 - keystoneauth/openstacksdk raise many kinds; just look again
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="5,60")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--cloud", default="devcloud")
    args = parser.parse_args()

    import openstack

    from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

    conn = openstack.connect(cloud=args.cloud)
    driver = OpenStackDriver(SdkApi(args.cloud), create_missing_users=True)
    tmp = tempfile.mkdtemp(prefix="bench-drift-")
    results = {}
    _, store, engine, service, runner = build(f"sqlite:///{tmp}/controller.db", lambda region: driver)
    name = submit_approved(service, tenant_text(f"bench-drift-{secrets.token_hex(2)}"))
    try:
        assert runner.run_once().counts() == {"applied": 1}
        project = conn.identity.find_project(name)
        group = next(g for g in conn.network.security_groups(project_id=project.id) if g.name == "web")
        for interval in [float(x) for x in args.intervals.split(",")]:
            runner.reconciler.interval = interval
            runner.run_once()  # reschedule with this interval (the tenant is due per the previous one)
            stop = threading.Event()
            loop = threading.Thread(target=runner.run, args=(stop,), daemon=True)
            loop.start()
            samples = []
            for _ in range(args.samples):
                time.sleep(random.uniform(0, interval))  # land anywhere in the poll cycle
                rule = conn.network.create_security_group_rule(
                    security_group_id=group.id, direction="ingress", protocol="tcp", port_range_min=22,
                    port_range_max=22, remote_ip_prefix="0.0.0.0/0", ethertype="IPv4")
                opened = time.monotonic()
                while _exists(conn, rule.id):
                    time.sleep(0.25)
                    if time.monotonic() - opened > 3 * interval + 120:
                        raise SystemExit(f"rule not repaired within {3 * interval + 120:.0f}s")
                samples.append(round(time.monotonic() - opened, 2))
            stop.set()
            loop.join()
            results[f"interval_{interval:g}s"] = {"samples_s": samples, "median_s": statistics.median(samples),
                                                  "max_s": max(samples)}
            print(json.dumps(results), file=sys.stderr, flush=True)
    finally:
        delete_approved(service, name)
        runner.run_once()
        store.dispose()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
