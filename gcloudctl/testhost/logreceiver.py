"""A central log receiver for tests: syslog over TCP (newline framing, as rsyslog's omfwd sends
it) or UDP, listening inside a network namespace, every line appended to a file.

Stage: test infrastructure (stdlib only, so it also runs under `python -I` and beside devcloud's
services). Used by the hardening tests on namespace test hosts (controller namespace of a
`testhost.Network`) and by the devcloud guests tests (the external network's namespace `gcd-pub`,
address 172.24.4.1, which the platform catalog names in `spec.logging`). It must not listen in
the machine's own network namespace unless asked to (netns=None).

    with LogReceiver.start("/run/netns/gcd-pub", "172.24.4.1", 5514) as rx:
        ...                                  # harden a server whose catalog names 172.24.4.1:5514
        line, seconds = rx.wait_for("marker-123", timeout=10)

Run directly: python -I logreceiver.py HOST PORT tcp|udp OUTFILE  (prints "ready" when bound).
"""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_lock = threading.Lock()


def _serve(host: str, port: int, protocol: str, out_path: str) -> None:
    out = open(out_path, "a", buffering=1, encoding="utf-8", errors="replace")

    def record(data: bytes) -> None:
        text = data.decode("utf-8", "replace").rstrip("\r\n")
        if text:
            with _lock:
                out.write(f"{time.time():.3f} {text}\n")

    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                record(line)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            record(self.request[0])

    class TcpServer(socketserver.ThreadingTCPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True

    class UdpServer(socketserver.UDPServer):
        address_family = family
        allow_reuse_address = True

    server = TcpServer((host, port), Tcp) if protocol == "tcp" else UdpServer((host, port), Udp)
    print("ready", flush=True)
    server.serve_forever()


class LogReceiver:
    """A receiver process (started by `start`) and the file it writes."""

    def __init__(self, proc: subprocess.Popen, out_path: Path, host: str, port: int, protocol: str):
        self.proc, self.out_path, self.host, self.port, self.protocol = proc, out_path, host, port, protocol

    @classmethod
    def start(cls, netns: str | Path | None, host: str, port: int, protocol: str = "tcp",
              out_path: Path | None = None, python: str | None = None, timeout: float = 10.0) -> "LogReceiver":
        """Start listening on host:port inside `netns` (a /run/netns path or name; None = here)."""
        if protocol not in ("tcp", "udp"):
            raise ValueError("protocol must be tcp or udp")
        if out_path is None:
            fd, name = tempfile.mkstemp(prefix="gcloudctl-logrx-", suffix=".log")
            os.close(fd)
            out_path = Path(name)
        argv = [python or sys.executable, "-I", str(Path(__file__).resolve()), host, str(port), protocol,
                str(out_path)]
        if netns is not None:
            ns = str(netns) if "/" in str(netns) else f"/run/netns/{netns}"
            argv = ["nsenter", f"--net={ns}", *argv]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not ready or ready[0].strip() != "ready":
            proc.kill()
            err = proc.stderr.read() if proc.poll() is not None else ""
            raise RuntimeError(f"log receiver on {host}:{port}/{protocol} did not start: {err.strip()[-500:]}")
        return cls(proc, Path(out_path), host, port, protocol)

    def lines(self) -> list[str]:
        """Every line received so far, without the receipt time."""
        return [line.split(" ", 1)[1] for line in self._raw()]

    def _raw(self) -> list[str]:
        try:
            return self.out_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, text: str, timeout: float = 10.0) -> tuple[str, float]:
        """(the first line containing `text`, seconds waited); TimeoutError if none arrives in time."""
        start = time.monotonic()
        while True:
            for line in self.lines():
                if text in line:
                    return line, time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"no line with {text!r} reached {self.host}:{self.port} within {timeout}s "
                                   f"({len(self._raw())} lines received)")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> "LogReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
