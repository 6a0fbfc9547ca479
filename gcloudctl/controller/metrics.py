"""Stage: controller (observability). Prometheus metrics and the loopback /metrics + /healthz.

One `Metrics` per controller, on its own registry (no module-level singletons). The server binds
127.0.0.1 only. /healthz answers 200 while the run loop has beaten within `stale_after` seconds.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

LOOPBACK = "127.0.0.1"


class _ApiCalls:
    """Reads the engine's per-service API call counters at scrape time."""

    def __init__(self, source: Callable[[], dict[str, int]]):
        self.source = source

    def collect(self):
        family = CounterMetricFamily("gcloudctl_api_calls", "Cloud API calls made by the controller, per service",
                                     labels=["service"])
        for service, count in sorted(self.source().items()):
            family.add_metric([service], count)
        yield family


class Metrics:
    def __init__(self, api_calls: Callable[[], dict[str, int]] = dict):
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("gcloudctl_reconciles", "Reconciles by result", ["result"], registry=r)
        self.duration = Histogram("gcloudctl_reconcile_duration_seconds", "Time per reconcile", registry=r,
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.errors = Counter("gcloudctl_reconcile_errors", "Reconcile errors by kind", ["kind"], registry=r)
        self.drift = Counter("gcloudctl_drift_found", "Drifted changes found, by policy", ["policy"], registry=r)
        self.changes = Counter("gcloudctl_changes_applied", "Changes applied, by purpose", ["purpose"], registry=r)
        self.inflight = Gauge("gcloudctl_reconciles_in_flight", "Reconciles running now", registry=r)
        self.hardened = Counter("gcloudctl_servers_hardened", "Server hardening attempts by result (ok, failed, "
                                "nokey)", ["result"], registry=r)
        self.leases = Gauge("gcloudctl_leases_held", "Tenant leases held by this controller", registry=r)
        self.last_beat = Gauge("gcloudctl_loop_heartbeat_timestamp_seconds", "Last run-loop iteration", registry=r)
        r.register(_ApiCalls(api_calls))
        self._beat = time.monotonic()

    def beat(self) -> None:
        self._beat = time.monotonic()
        self.last_beat.set_to_current_time()

    def healthy(self, stale_after: float) -> bool:
        return time.monotonic() - self._beat <= stale_after

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """`/metrics` and `/healthz` on 127.0.0.1:`port` (0 picks a free port; see `.port`)."""

    def __init__(self, metrics: Metrics, port: int, stale_after: float):
        metrics_ref, stale = metrics, stale_after

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, metrics_ref.render(), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    ok = metrics_ref.healthy(stale)
                    self._send(200 if ok else 503, b"ok\n" if ok else b"stale\n", "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep scrapes out of the logs
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
