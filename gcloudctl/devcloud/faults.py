"""A fault injector for devcloud: loopback HTTP proxies in front of each API endpoint that answer
a chosen share of requests with a failure instead of (or after) passing them on.

Stage: devcloud tooling (effects: sockets, one file). Callers: `gcloudctl devcloud faults`
(cli/devcloud.py), the fault tests (tests/cloud/test_faults.py) and bench/fault_campaign.py.
It must not touch the running devcloud's services, configs or its `devcloud*` clouds.yaml
entries: it only adds proxies in front of them and writes its own clouds.yaml file.

How the catalog points at the proxies: the clouds.yaml entry it writes (`devcloud-faults`) has
its auth URL on the Keystone proxy, and every JSON answer passing through a proxy has the real
endpoints' URLs (http://127.0.0.1:<port>) rewritten to the proxies' — so the service catalog in
Keystone's token answer names the proxies, and every later call goes through them.

Faults (`Fault`): 500, 503, 409 (writes only; a read that draws it gets 503) and 429 (with Retry-After) answered without passing the request
on; `reset` closes the connection without an answer (nothing was done); `slow` passes it on
after a delay; `drop` — the hard one — passes it on, lets the cloud act, then resets the
connection instead of answering. Which request gets which fault is decided by `FaultPlan.decide`
from the seed, the service, the method and the request's rank among that service's requests
of that method: the same seed gives the same sequence of faults per (service, method).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import http.client
import http.server
import random
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from gcloudctl.devcloud import services as svc
from gcloudctl.devcloud.layout import HOST

FAULT_CLOUD = "devcloud-faults"
PROXIED = ("keystone", "nova-api", "neutron", "glance", "placement")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host"}


class Fault(str, enum.Enum):
    E500 = "500"
    E503 = "503"
    E409 = "409"
    E429 = "429"
    RESET = "reset"
    SLOW = "slow"
    DROP = "drop"


@dataclass(frozen=True)
class Rule:
    """A forced fault: the next `times` requests matching method and path (a regex searched in
    the path without query) get `fault` (tests use it for "a server create that takes 40 s")."""

    method: str
    path: str
    fault: Fault
    times: int = 1
    seconds: float | None = None  # for `slow`: the delay (else the plan's)


@dataclass(frozen=True)
class FaultPlan:
    rate: float = 0.05  # share of requests that get a fault
    seed: int = 0
    kinds: tuple[Fault, ...] = tuple(Fault)
    slow_seconds: float = 2.0
    retry_after: int = 1
    rules: tuple[Rule, ...] = ()

    def decide(self, service: str, method: str, rank: int) -> Fault | None:
        """The fault for the `rank`-th request of `method` to `service` (pure, deterministic)."""
        if self.rate <= 0 or not self.kinds:
            return None
        digest = hashlib.sha256(f"{self.seed}:{service}:{method}:{rank}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        if rng.random() >= self.rate:
            return None
        return self.kinds[rng.randrange(len(self.kinds))]


@dataclass
class Injected:
    """What the proxies saw and did (thread-safe counters)."""

    requests: Counter = field(default_factory=Counter)  # service -> requests seen
    faults: Counter = field(default_factory=Counter)  # Fault value -> times injected
    by_request: Counter = field(default_factory=Counter)  # "service METHOD fault" -> times
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total(self) -> int:
        return sum(self.faults.values())

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": dict(self.requests), "faults": dict(self.faults), "by_request": dict(self.by_request)}


class FaultProxies:
    """One loopback proxy per devcloud API endpoint; `start()` binds them (ephemeral ports),
    `stop()` closes them. `url_map` maps each real endpoint to its proxy."""

    def __init__(self, plan: FaultPlan, upstreams: dict[str, str] | None = None):
        self.plan = plan
        self.upstreams = upstreams or {name: svc.BY_NAME[name].url for name in PROXIED}
        self.injected = Injected()
        self.enabled = True  # False: pass everything through (set-up and checks without faults)
        self._ranks: Counter = Counter()
        self._rules = [[rule, rule.times] for rule in plan.rules]
        self._servers: dict[str, http.server.ThreadingHTTPServer] = {}
        self.url_map: dict[str, str] = {}
        self._rewrite: re.Pattern | None = None
        self.stopping = threading.Event()  # set by stop(): a `slow` request still waiting is dropped, not sent

    def start(self) -> "FaultProxies":
        for name, upstream in self.upstreams.items():
            server = http.server.ThreadingHTTPServer((HOST, 0), _handler(self, name, upstream))
            server.daemon_threads = True
            self._servers[name] = server
            self.url_map[upstream] = f"http://{HOST}:{server.server_address[1]}"
            threading.Thread(target=server.serve_forever, name=f"faults-{name}", daemon=True).start()
        self._rewrite = re.compile("|".join(re.escape(u) + r"(?![0-9])" for u in self.url_map).encode())
        return self

    def stop(self) -> None:
        self.stopping.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def url(self, service: str) -> str:
        return self.url_map[self.upstreams[service]]

    def rewrite(self, body: bytes) -> bytes:
        mapping = {k.encode(): v.encode() for k, v in self.url_map.items()}
        return self._rewrite.sub(lambda m: mapping[m.group(0)], body) if self._rewrite else body

    def choose(self, service: str, method: str, path: str) -> tuple[Fault | None, float]:
        with self.injected.lock:
            self.injected.requests[service] += 1
            if not self.enabled:
                return None, 0.0
            for entry in self._rules:
                rule, left = entry
                if left > 0 and rule.method == method and re.search(rule.path, path):
                    entry[1] -= 1
                    return self._count(service, method, rule.fault), rule.seconds or self.plan.slow_seconds
            rank = self._ranks[(service, method)]
            self._ranks[(service, method)] += 1
            fault = self.plan.decide(service, method, rank)
            if fault is Fault.E409 and method in ("GET", "HEAD"):
                fault = Fault.E503  # a conflict answers a write; real APIs never answer a read with it
            return (self._count(service, method, fault) if fault else None), self.plan.slow_seconds

    def _count(self, service: str, method: str, fault: Fault) -> Fault:
        self.injected.faults[fault.value] += 1
        self.injected.by_request[f"{service} {method} {fault.value}"] += 1
        return fault

    def clouds_entry(self, base: dict) -> dict:
        """A copy of a devcloud clouds.yaml entry whose auth URL is the Keystone proxy."""
        entry = yaml.safe_load(yaml.safe_dump(base))
        auth_url = entry["auth"]["auth_url"]
        for real, proxy in self.url_map.items():
            if auth_url.startswith(real):
                entry["auth"]["auth_url"] = proxy + auth_url[len(real):]
        return entry

    def write_clouds_yaml(self, path: Path, base_file: Path, base_cloud: str = "devcloud",
                          name: str = FAULT_CLOUD) -> Path:
        """A clouds.yaml (mode 0600) holding only the `name` entry: `base_cloud` of `base_file`
        behind the proxies. Point OS_CLIENT_CONFIG_FILE at it (the devcloud entries are untouched)."""
        clouds = (yaml.safe_load(base_file.read_text()) or {}).get("clouds") or {}
        if base_cloud not in clouds:
            raise KeyError(f"{base_file} has no cloud {base_cloud!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump({"clouds": {name: self.clouds_entry(clouds[base_cloud])}}, sort_keys=False))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path


@contextlib.contextmanager
def running(plan: FaultPlan, upstreams: dict[str, str] | None = None) -> Iterator[FaultProxies]:
    proxies = FaultProxies(plan, upstreams).start()
    try:
        yield proxies
    finally:
        proxies.stop()


def _handler(proxies: FaultProxies, service: str, upstream: str) -> type:
    target = http.client.urlsplit(upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: the counters tell what happened
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault, seconds = proxies.choose(service, self.command, self.path.split("?")[0])
            if fault in (Fault.E500, Fault.E503, Fault.E409, Fault.E429):
                self._answer_fault(fault)
                return
            if fault is Fault.RESET:
                self._reset()
                return
            if fault is Fault.SLOW and proxies.stopping.wait(seconds):
                self._reset()  # the proxies are stopping: the request never reaches the cloud
                return
            try:
                status, headers, reply = self._forward(body)
            except OSError:
                self._reset()
                return
            if fault is Fault.DROP:  # the cloud acted; the client never hears of it
                self._reset()
                return
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        def _forward(self, body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                reply = response.read()
                if "json" in (response.getheader("Content-Type") or ""):
                    reply = proxies.rewrite(reply)
                return response.status, response.getheaders(), reply
            finally:
                conn.close()

        def _answer_fault(self, fault: Fault) -> None:
            payload = (f'{{"error": {{"code": {fault.value}, "message": "injected by the devcloud fault '
                       f'proxy ({fault.value})"}}}}').encode()
            self.send_response(int(fault.value))
            self.send_header("Content-Type", "application/json")
            if fault is Fault.E429:
                self.send_header("Retry-After", str(proxies.plan.retry_after))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _reset(self) -> None:
            """Close with a TCP RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

    return Handler
