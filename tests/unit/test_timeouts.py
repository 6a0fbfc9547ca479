"""Bounded everything (issue 13, part 1), against local servers on loopback that misbehave on
purpose: an auth URL that accepts connections and never answers, Keystone answering 503 or
404, a compute API answering 429 with Retry-After or never answering. Each auth/config failure
exits 6 with a message and a hint naming the clouds.yaml files searched; a deadline (what
`--timeout` becomes) ends the command with exit 5 within the limit plus a few seconds."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gcloudctl.cli import main as cli_main
from gcloudctl.drivers.base import deadline_scope
from gcloudctl.drivers.openstack import ApiSettings, RateBudget, SdkApi
from gcloudctl.errors import CloudError, ExitCode, TimeoutExpired, Unreachable
from tests.fixtures.core import EXAMPLE


# ------------------------------------------------------------------------------ local servers
class Silent:
    """Accepts TCP connections and never answers (a hung service)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class Scripted:
    """A tiny Keystone + compute: the token answer's catalog points back here. `script` maps
    "METHOD path" to a list of answers used in turn (the last one repeats): (status, headers,
    body) or "hang" (never answer)."""

    def __init__(self, script: dict[str, list]):
        self.script = {k: list(v) for k, v in script.items()}
        self.seen: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                key = f"{self.command} {self.path.split('?')[0]}"
                outer.seen[key] += 1
                outer.times.setdefault(key, []).append(time.monotonic())
                answers = outer.script.get(key) or [(404, {}, {"error": {"message": "no such path"}})]
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if answer == "hang":
                    time.sleep(3600)
                    return
                status, headers, body = answer
                payload = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self) -> tuple[int, dict, dict]:
        catalog = [{"type": t, "name": t, "endpoints": [{"url": f"{self.url}{p}", "interface": "public",
                                                          "region": "RegionOne", "region_id": "RegionOne", "id": t}]}
                   for t, p in (("identity", "/v3"), ("compute", "/v2.1"))]
        body = {"token": {"expires_at": "2099-01-01T00:00:00.000000Z", "issued_at": "2026-01-01T00:00:00.000000Z",
                          "methods": ["password"], "user": {"id": "u1", "name": "gcloudctl", "domain": {"id": "default", "name": "Default"}},
                          "project": {"id": "p1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
                          "roles": [{"id": "r1", "name": "admin"}], "catalog": catalog}}
        return 201, {"X-Subject-Token": "tok"}, body

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _entry(url: str, **extra) -> dict:
    auth = {"auth_url": f"{url}/v3", "username": "gcloudctl", "password": "pw", "project_name": "admin",
            "user_domain_name": "Default", "project_domain_name": "Default"}
    auth.update(extra.pop("auth", {}))
    return {"auth": {k: v for k, v in auth.items() if v is not None}, "region_name": "RegionOne", **extra}


@pytest.fixture
def clouds(tmp_path, monkeypatch):
    """Write a clouds.yaml with the given entries and point OS_CLIENT_CONFIG_FILE at it."""
    path = tmp_path / "clouds.yaml"
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    for var in ("OS_CLOUD", "OS_AUTH_URL", "OS_PASSWORD", "OS_USERNAME"):
        monkeypatch.delenv(var, raising=False)

    def write(**entries) -> Path:
        path.write_text(yaml.safe_dump({"clouds": entries}))
        return path
    return write


@pytest.fixture
def silent():
    server = Silent()
    yield server
    server.close()


# ------------------------------------------------------------------------------ auth/config failures
def _plan(cloud: str, capsys) -> tuple[int, str, float]:
    t0 = time.monotonic()
    code = cli_main.main(["--cloud", cloud, "plan", str(EXAMPLE)])
    return code, capsys.readouterr().err, time.monotonic() - t0


def test_unknown_cloud_names_known_clouds_and_paths(clouds, capsys):
    path = clouds(real=_entry("http://127.0.0.1:9"))
    code, err, _ = _plan("nosuch", capsys)
    assert code == ExitCode.UNREACHABLE == 6
    assert "cloud 'nosuch': Cloud nosuch was not found." in err
    assert "known clouds: real" in err and f"found: {path}" in err and "clouds.yaml searched in" in err
    assert "unexpected" not in err


def test_missing_password(clouds, capsys):
    clouds(nopw=_entry("http://127.0.0.1:9", auth={"password": None}))
    code, err, _ = _plan("nopw", capsys)
    assert code == 6
    assert "clouds.yaml entry 'nopw' has no password" in err and "clouds.yaml searched in" in err


def test_auth_url_answering_404(clouds, capsys):
    server = Scripted({})  # every path: 404
    try:
        clouds(k404=_entry(server.url))
        code, err, _ = _plan("k404", capsys)
    finally:
        server.close()
    assert code == 6
    assert "the auth URL answered 404: not a Keystone v3 endpoint" in err and "auth_url should be" in err


def test_keystone_503_is_retried_then_reported_as_unavailable(clouds, capsys):
    server = Scripted({"POST /v3/auth/tokens": [(503, {}, {"error": {"message": "overloaded"}})]})
    try:
        clouds(k503=_entry(server.url, gcloudctl={"retries": 2, "backoff": 0.05}))
        code, err, _ = _plan("k503", capsys)
    finally:
        server.close()
    assert code == 6
    assert server.seen["POST /v3/auth/tokens"] == 3, "one attempt and two retries"
    assert "identity service of cloud 'k503' is unavailable" in err and "503" in err and "after 3 attempts" in err
    assert "unexpected" not in err and "report it" not in err


def test_keystone_503_then_success_logs_in(clouds):
    server = Scripted({})
    server.script["POST /v3/auth/tokens"] = [(503, {}, {"error": {"message": "blip"}}), server.token()]
    try:
        clouds(blip=_entry(server.url, gcloudctl={"backoff": 0.05}))
        api = SdkApi("blip")
    finally:
        server.close()
    assert api.operator_user_id == "u1" and server.seen["POST /v3/auth/tokens"] == 2


def test_bad_gcloudctl_setting(clouds, capsys):
    clouds(bad=_entry("http://127.0.0.1:9", gcloudctl={"read_timout": 5}))
    code, err, _ = _plan("bad", capsys)
    assert code == 6 and "unknown gcloudctl setting(s) read_timout" in err and "read_timeout" in err


# ------------------------------------------------------------------------------ never answers
def test_auth_that_never_answers_is_bounded_by_the_auth_timeout(clouds, silent, capsys):
    clouds(hang=_entry(f"http://127.0.0.1:{silent.port}", gcloudctl={"auth_timeout": 1.5, "retries": 3}))
    code, err, elapsed = _plan("hang", capsys)
    assert code == 6, err
    assert "cannot reach the identity service of cloud 'hang'" in err and "no answer within 1.5s" in err
    assert elapsed < 1.5 * 2 + 5, f"a hung auth URL is tried twice at most, took {elapsed:.1f}s"


def test_auth_that_never_answers_stops_at_the_deadline(clouds, silent):
    """What `--timeout 3` does to the login: exit 5 within the limit plus a few seconds, with
    the default settings (15 s per login attempt)."""
    clouds(hang=_entry(f"http://127.0.0.1:{silent.port}"))
    t0 = time.monotonic()
    with pytest.raises(TimeoutExpired) as caught, deadline_scope(time.monotonic() + 3):
        SdkApi("hang")
    assert caught.value.exit_code == ExitCode.TIMEOUT == 5
    assert time.monotonic() - t0 < 3 + 5


def test_api_call_that_never_answers_stops_at_the_deadline(clouds):
    server = Scripted({})
    server.script["POST /v3/auth/tokens"] = [server.token()]
    server.script["GET /v2.1/flavors"] = ["hang"]
    try:
        clouds(slow=_entry(server.url))
        api = SdkApi("slow")
        t0 = time.monotonic()
        with pytest.raises(TimeoutExpired), deadline_scope(time.monotonic() + 2):
            api.request("compute", "GET", "/flavors")
        assert time.monotonic() - t0 < 2 + 5
    finally:
        server.close()


def test_api_call_that_never_answers_is_retried_once_then_transient(clouds):
    server = Scripted({})
    server.script["POST /v3/auth/tokens"] = [server.token()]
    server.script["GET /v2.1/flavors"] = ["hang"]
    try:
        clouds(slow=_entry(server.url, gcloudctl={"read_timeout": 1, "backoff": 0.05}))
        api = SdkApi("slow")
        with pytest.raises(CloudError) as caught:
            api.request("compute", "GET", "/flavors")
    finally:
        server.close()
    assert caught.value.transient and "no answer within 1s" in caught.value.message
    assert server.seen["GET /v2.1/flavors"] == 2, "a hung server is asked twice, not retries+1 times"


# ------------------------------------------------------------------------------ retries and budget
def test_429_retry_after_is_honoured_and_shared(clouds):
    server = Scripted({})
    server.script["POST /v3/auth/tokens"] = [server.token()]
    server.script["GET /v2.1/flavors"] = [(429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
                                          (200, {}, {"flavors": []})]
    try:
        clouds(busy=_entry(server.url))
        api = SdkApi("busy")
        assert api.request("compute", "GET", "/flavors") == {"flavors": []}
    finally:
        server.close()
    first, second = server.times["GET /v2.1/flavors"]
    assert second - first >= 0.95, "the retry waited for Retry-After"
    assert api.retried["429"] == 1


def test_post_is_not_resent_after_a_500_but_is_after_a_503(clouds):
    """A create answered 500 may have happened: the executor looks for it (`find`) before any
    retry. A 503 was refused before any effect: the driver sends it again."""
    server = Scripted({})
    server.script["POST /v3/auth/tokens"] = [server.token()]
    server.script["POST /v2.1/os-keypairs"] = [(500, {}, {"error": {"message": "boom"}}), (200, {}, {"keypair": {}})]
    server.script["POST /v2.1/os-server-groups"] = [(503, {}, {"error": {"message": "busy"}}), (200, {}, {"server_group": {}})]
    try:
        clouds(c=_entry(server.url, gcloudctl={"backoff": 0.01}))
        api = SdkApi("c")
        with pytest.raises(CloudError) as caught:
            api.request("compute", "POST", "/os-keypairs", json={})
        assert caught.value.status == 500 and caught.value.transient
        assert api.request("compute", "POST", "/os-server-groups", json={}) == {"server_group": {}}
    finally:
        server.close()
    assert server.seen["POST /v2.1/os-keypairs"] == 1 and server.seen["POST /v2.1/os-server-groups"] == 2


def test_rate_budget_paces_and_stops_at_the_deadline():
    clock = {"now": 0.0}
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock["now"] += seconds

    budget = RateBudget(rate=10, burst=2, clock=lambda: clock["now"], sleep=sleep)
    for _ in range(4):
        budget.acquire()
    assert clock["now"] == pytest.approx(0.2), "two go at once, then 10 per second"
    budget.pause(5)
    with pytest.raises(TimeoutExpired), deadline_scope(clock["now"] + 1):
        budget.acquire()


def test_settings_from_clouds_yaml():
    assert ApiSettings.from_cloud_config({"api_timeout": 30}, "x").read_timeout == 30
    assert ApiSettings.from_cloud_config({"gcloudctl": {"connect_timeout": "2", "retries": 1}}, "x").retries == 1
    with pytest.raises(Unreachable):
        ApiSettings.from_cloud_config({"gcloudctl": {"rate": 0}}, "x")
