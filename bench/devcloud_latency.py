"""Latency of list calls against a running devcloud, and the services' memory.

Run: .venv/bin/python bench/devcloud_latency.py [--rounds 30] [--dir DIR]
Writes bench/results/devcloud_latency.json. Bounded: rounds x 7 GETs to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import openstack
from openstack.config import loader

from gcloudctl.devcloud import lifecycle
from gcloudctl.devcloud.layout import Layout, default_dir

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    layout = Layout(Path(args.dir) if args.dir else default_dir(Path.home()))
    config = loader.OpenStackConfig(config_files=[str(layout.clouds_yaml)], load_envvars=False)

    t0 = time.perf_counter()
    conn = openstack.connection.Connection(config=config.get_one("devcloud"))
    conn.authorize()
    login_ms = (time.perf_counter() - t0) * 1000

    calls = {
        "keystone projects": lambda: list(conn.identity.projects()),
        "neutron networks": lambda: list(conn.network.networks()),
        "neutron ports": lambda: list(conn.network.ports()),
        "nova servers": lambda: list(conn.compute.servers()),
        "nova flavors": lambda: list(conn.compute.flavors()),
        "glance images": lambda: list(conn.image.images()),
        "placement providers": lambda: list(conn.placement.resource_providers()),
    }
    for fn in calls.values():  # warm connections and caches once
        fn()
    samples = {name: [_timed(fn) for _ in range(args.rounds)] for name, fn in calls.items()}
    result = {
        "login_ms": round(login_ms, 1),
        "rounds": args.rounds,
        "p50_ms": {name: round(statistics.median(v), 1) for name, v in samples.items()},
        "p90_ms": {name: round(sorted(v)[int(len(v) * 0.9) - 1], 1) for name, v in samples.items()},
        "services_rss_mib": lifecycle.total_rss_mib(layout),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "devcloud_latency.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
