"""Benchmark: the request API under concurrent submissions with REAL Keystone tokens.

Starts the request API (the same `gcloudctl.api.server.build_app` as `gcloudctl api serve`:
real Keystone validator with the `devcloud-gcloudctl` service entry, real request service on a
fresh SQLite database) under uvicorn on a loopback port, then 20 concurrent clients (asyncio +
httpx), each with its own token of `devcloud-byt-requester` issued by Keystone, submit 200
distinct requests over HTTP. Prints p50/p99/max latency, throughput, and Keystone validation
calls per request (the validation cache at work), and checks every version is stored exactly
once (listed back through the API by an operator token).

The per-identity rate limit is switched off here (all 20 clients are one Keystone user).
Needs devcloud up.  Usage: .venv/bin/python bench/api_bench.py [--requests 200] [--clients 20]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl.api.server import ServeOptions, build_app  # noqa: E402
from gcloudctl.drivers.keystone import user_token_source  # noqa: E402
from gcloudctl.pipeline import Config  # noqa: E402

EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"


def request_text(name: str) -> str:
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text("utf-8")))
    doc["metadata"]["name"] = name
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def start_server(workdir: Path, cache_seconds: float):
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = ServeOptions(listen=f"127.0.0.1:{port}", db_url=f"sqlite:///{workdir / 'api.db'}",
                           token_cache_seconds=cache_seconds, rate=0)
    app = build_app(Config.load(), options, {"GCLOUDCTL_SECRETS_KEY_FILE": str(workdir / "secrets.key"),
                                             "HOME": str(workdir)})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, app, f"http://127.0.0.1:{port}"


async def client(url: str, token: str, names: list[str], latencies: list[float], statuses: Counter) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for name in names:
            started = time.perf_counter()
            answer = await http.post("/v1/requests", content=request_text(name).encode(),
                                     headers={"X-Auth-Token": token, "Content-Type": "application/yaml"})
            latencies.append(time.perf_counter() - started)
            statuses[answer.status_code] += 1


async def run(url: str, tokens: list[str], requests: int, run_id: str) -> tuple[list[float], Counter, float]:
    names = [f"byt-bench-{run_id}-{i:03d}" for i in range(requests)]
    shares = [names[i::len(tokens)] for i in range(len(tokens))]
    latencies: list[float] = []
    statuses: Counter = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(client(url, tok, share, latencies, statuses) for tok, share in zip(tokens, shares)))
    return latencies, statuses, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--token-cache-seconds", type=float, default=30.0)
    args = parser.parse_args()

    print(f"issuing {args.clients} Keystone tokens (devcloud-byt-requester) ...", flush=True)
    tokens = [user_token_source("devcloud-byt-requester")() for _ in range(args.clients)]
    operator = user_token_source("devcloud-operator")()
    with tempfile.TemporaryDirectory() as tmp:
        server, thread, app, url = start_server(Path(tmp), args.token_cache_seconds)
        keystone = app.state.validator.inner
        try:
            run_id = f"{int(time.time()) % 100000:05d}"
            latencies, statuses, wall = asyncio.run(run(url, tokens, args.requests, run_id))
            calls_during_run = keystone.calls
            listed = httpx.get(url + "/v1/requests", headers={"X-Auth-Token": operator}, timeout=60).json()
        finally:
            server.should_exit = True
            thread.join(10)
    per_tenant = Counter(v["tenant"] for v in listed if v["tenant"].startswith(f"byt-bench-{run_id}-"))
    once = len(per_tenant) == args.requests and set(per_tenant.values()) == {1}
    print(f"{args.requests} submissions from {args.clients} concurrent clients over HTTP on loopback "
          f"(token cache {args.token_cache_seconds:g} s)")
    print(f"  statuses: {dict(sorted(statuses.items()))}")
    print(f"  latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms; wall {wall:.1f} s ({args.requests / wall:.1f} submissions/s)")
    print(f"  Keystone validations: {calls_during_run} for {args.requests} requests "
          f"({calls_during_run / args.requests:.2f} per request; {args.clients} distinct tokens)")
    print(f"  stored: {sum(per_tenant.values())} versions for {len(per_tenant)} tenants; "
          f"every version exactly once: {'yes' if once else 'NO'}")
    return 0 if once and statuses.get(201) == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
