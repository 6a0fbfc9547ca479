"""Benchmark: `gcloudctl validate` on a directory of 1,000 generated, varied, valid requests.

Generates requests for the shipped agencies at every level they may run (1-4), with 1-6
server entries, dmz/app/db/mgmt networks as the level demands, security groups, keypairs and
(for a third of the servers) cloud-init user data; then times `gcloudctl validate DIR`
in-process and as a fresh process. Prints time per request.

    .venv/bin/python bench/validate_bench.py [--count 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

AGENCIES = {"BYT": (40, 3), "BTC": (50, 4), "QNI": (60, 3)}  # second octet of the pool, highest level
FLAVORS = {"g1.small": (1, 2048), "g1.medium": (2, 4096), "g1.large": (4, 8192)}
IMAGES = ["debian-12-hardened", "ubuntu-24.04-hardened"]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBATrWvJFs40A9Ecu0FM1w8WJcG4ol86jgNzS7I9TMW0 ops@bench"


def _server(rng: random.Random, name: str, networks: list[str], groups: list[str], level: int,
            public: bool) -> dict:
    count = rng.randint(1, 3)
    server = {"name": name, "count": count, "flavor": rng.choice(list(FLAVORS)), "image": rng.choice(IMAGES),
              "networks": networks, "securityGroups": groups, "keypair": "ops"}
    if public:
        server["floatingIP"] = True
    if count > 1 and (level >= 4 or rng.random() < 0.5):
        server["antiAffinity"] = True
    if rng.random() < 0.33:
        server["userData"] = {"template": "default.yaml.j2", "vars": {"role": name}}
    return server


def generate(index: int, rng: random.Random) -> dict:
    agency = rng.choice(list(AGENCIES))
    octet, highest = AGENCIES[agency]
    level = rng.randint(1, highest)
    base = (index * 4) % 240
    zone_public = "dmz" if level >= 3 else "app"
    networks = [{"name": "front", "cidr": f"10.{octet}.{base}.0/24", "zone": zone_public},
                {"name": "app", "cidr": f"10.{octet}.{base + 1}.0/24", "zone": "app"},
                {"name": "db", "zone": "db", "prefixLength": rng.choice([24, 26, 27])}]
    groups = [
        {"name": "web", "rules": [{"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "0.0.0.0/0"},
                                  {"direction": "ingress", "protocol": "tcp", "ports": "22", "remoteGroup": "admin"}]},
        {"name": "app", "rules": [{"direction": "ingress", "protocol": "tcp", "ports": "8000-8080",
                                   "remoteGroup": "web"}]},
        {"name": "db", "rules": [{"direction": "ingress", "protocol": "tcp", "ports": 5432, "remoteGroup": "app"},
                                 {"direction": "egress", "protocol": "udp", "ports": "123",
                                  "remote": "10.0.0.0/8"}]},
        {"name": "admin", "rules": [{"direction": "ingress", "protocol": "tcp", "ports": "22",
                                     "remote": f"10.{octet}.250.0/24"}]},
    ]
    servers = [_server(rng, "web", ["front"], ["web"], level, public=True)]
    for i in range(rng.randint(0, 3)):
        servers.append(_server(rng, f"app{i}", ["app"], ["app", "admin"], level, public=False))
    servers.append(_server(rng, "db", ["db"], ["db", "admin"], level, public=False))
    if level >= 4:
        networks.append({"name": "mgmt", "cidr": f"10.{octet}.{base + 2}.0/24", "zone": "mgmt", "routed": False})
        servers.append({"name": "bastion", "flavor": "g1.small", "image": IMAGES[0], "networks": ["front", "mgmt"],
                        "securityGroups": ["admin"], "keypair": "ops", "floatingIP": True})
    instances = sum(s.get("count", 1) for s in servers)
    cores = sum(s.get("count", 1) * FLAVORS[s["flavor"]][0] for s in servers)
    ram = sum(s.get("count", 1) * FLAVORS[s["flavor"]][1] for s in servers)
    fips = sum(s.get("count", 1) for s in servers if s.get("floatingIP"))
    spec = {"classification": level, "region": "hn1",
            "quotas": {"instances": instances, "cores": cores, "ramMiB": ram, "floatingIPs": fips},
            "members": [{"user": f"user{index % 7}.bench", "roles": ["member"]}],
            "networks": networks, "router": {"externalNetwork": "public"}, "securityGroups": groups,
            "keypairs": [{"name": "ops", "publicKey": KEY}], "servers": servers}
    if level < 4 and rng.random() < 0.3:
        spec["expiresAt"] = "2027-06-30T00:00:00+07:00"
    return {"apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
            "metadata": {"name": f"{agency.lower()}-bench-{index:04d}", "agency": agency, "requester": "bench.user",
                         "description": f"generated request {index}", "labels": {"bench": "validate"}},
            "spec": spec}


def write_requests(directory: Path, count: int, seed: int = 2026) -> int:
    rng = random.Random(seed)
    total = 0
    for index in range(count):
        text = yaml.safe_dump(generate(index, rng), sort_keys=False)
        (directory / f"request-{index:04d}.yaml").write_text(text, encoding="utf-8")
        total += len(text)
    return total


def time_in_process(directory: Path) -> tuple[float, int, str]:
    from gcloudctl.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(directory)])
    return time.perf_counter() - start, code, (out.getvalue() + err.getvalue()).strip().splitlines()[-1]


def time_process(directory: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gcloudctl.cli.main", "validate", str(directory)],
                          capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="write the requests here and keep them")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="gcloudctl-validate-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        size = write_requests(directory, args.count)
        print(f"generated {args.count} requests ({size / args.count / 1024:.1f} KiB each) in {directory}")
        seconds, code, summary = time_in_process(directory)
        print(f"in-process: exit {code}, {summary}")
        print(f"  total {seconds:.2f} s, {seconds / args.count * 1000:.2f} ms per request")
        wall, code2 = time_process(directory)
        print(f"fresh process (gcloudctl validate DIR): exit {code2}, total {wall:.2f} s, "
              f"{wall / args.count * 1000:.2f} ms per request including interpreter start-up")
        return 0 if code == code2 == 0 else 1
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
