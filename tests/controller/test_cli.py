"""The CLI end to end, in-process: exit codes, output formats, the whole request flow."""

import json
import sqlite3
import urllib.request

import pytest

from gcloudctl.cli.context import AppContext
from gcloudctl.cli.main import main
from gcloudctl.drivers.fake import FakeCloud
from gcloudctl.errors import ExitCode

from .conftest import EXAMPLE


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "ctl.db"
    monkeypatch.setenv("GCLOUDCTL_DB", f"sqlite:///{path}")
    monkeypatch.delenv("GCLOUDCTL_AS", raising=False)
    return path


@pytest.fixture
def cloud(monkeypatch):
    cloud = FakeCloud()
    monkeypatch.setattr(AppContext, "driver", lambda self, config, region=None: cloud)
    return cloud


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_request_flow_with_exit_codes(db, cloud, capsys):
    code, out, _ = run(capsys, "-o", "json", "request", "submit", str(EXAMPLE), "--as", "nguyen.van.a")
    assert code == ExitCode.OK
    version = json.loads(out)
    assert version["approvalsRequired"] == 2 and version["state"] == "pending-approval"
    rid = str(version["id"])

    code, _, err = run(capsys, "request", "approve", rid, "--as", "nguyen.van.a", "--reason", "mine")
    assert code == ExitCode.REFUSED and "not an approver" in err
    code, _, _ = run(capsys, "request", "approve", rid, "--reason", "no identity")
    assert code == ExitCode.INVALID, "--as is required"
    assert run(capsys, "request", "approve", rid, "--as", "tran.thi.b", "--reason", "ok")[0] == ExitCode.OK
    assert run(capsys, "request", "approve", rid, "--as", "le.van.c", "--reason", "ok")[0] == ExitCode.OK

    code, out, _ = run(capsys, "-o", "json", "controller", "run", "--once")
    assert code == ExitCode.OK, out
    assert json.loads(out)["counts"] == {"applied": 1}
    code, out, _ = run(capsys, "-o", "yaml", "status", "byt-his-staging")
    assert code == ExitCode.OK and "phase: ready" in out
    code, out, _ = run(capsys, "status", "byt-his-staging")
    assert "Ready" in out and "Synced" in out

    code, out, _ = run(capsys, "request", "list")
    assert code == ExitCode.OK and "byt-his-staging" in out and "approved" in out
    assert run(capsys, "request", "show", "999")[0] == ExitCode.NOT_FOUND
    assert run(capsys, "status", "nope")[0] == ExitCode.NOT_FOUND

    assert run(capsys, "request", "delete", "byt-his-staging", "--as", "tran.thi.b", "--reason", "done")[0] == 0
    code, out, _ = run(capsys, "-o", "json", "controller", "run", "--once")
    assert json.loads(out)["counts"] == {"destroyed": 1}
    assert not cloud.api.servers


def test_invalid_request_exit_2(db, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: gcloud.gov.vn/v1\nkind: TenantRequest\nmetadata: {name: X}\n")
    code, _, err = run(capsys, "request", "submit", str(bad), "--as", "nguyen.van.a")
    assert code == ExitCode.INVALID and "bad.yaml" in err


def test_audit_verify_and_export(db, capsys):
    run(capsys, "request", "submit", str(EXAMPLE), "--as", "nguyen.van.a")
    code, out, _ = run(capsys, "audit", "verify")
    assert code == ExitCode.OK and "OK" in out
    code, out, _ = run(capsys, "-o", "json", "audit", "export", "--since", "2000-01-01T00:00:00Z")
    assert [r["action"] for r in json.loads(out)] == ["request.submit"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET actor = 'mallory'")
    code, out, _ = run(capsys, "audit", "verify")
    assert code == ExitCode.ERROR and "BROKEN" in out
    assert run(capsys, "audit", "export", "--since", "yesterday")[0] == ExitCode.INVALID


def test_migrate_command(db, capsys):
    code, out, _ = run(capsys, "controller", "migrate")
    assert code == ExitCode.OK and "0001" in out


def test_metrics_and_healthz_on_loopback():
    from gcloudctl.controller.metrics import Metrics, MetricsServer

    metrics = Metrics(api_calls=lambda: {"compute": 7, "network": 3})
    metrics.reconciles.labels("converged").inc()
    metrics.beat()
    server = MetricsServer(metrics, 0, stale_after=60).start()
    try:
        assert server.server.server_address[0] == "127.0.0.1"
        base = f"http://127.0.0.1:{server.port}"
        body = urllib.request.urlopen(f"{base}/metrics").read().decode()
        assert 'gcloudctl_reconciles_total{result="converged"} 1.0' in body
        assert 'gcloudctl_api_calls_total{service="compute"} 7.0' in body
        assert urllib.request.urlopen(f"{base}/healthz").status == 200
        stale = MetricsServer(metrics, 0, stale_after=-1).start()
        try:
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{stale.port}/healthz")
            assert err.value.code == 503
        finally:
            stale.stop()
    finally:
        server.stop()


def test_structured_json_logs_name_the_tenant(db, cloud, capsys):
    run(capsys, "request", "submit", str(EXAMPLE), "--as", "nguyen.van.a")
    run(capsys, "request", "approve", "1", "--as", "tran.thi.b", "--reason", "ok")
    run(capsys, "request", "approve", "1", "--as", "le.van.c", "--reason", "ok")
    code, _, err = run(capsys, "--log-format", "json", "-v", "controller", "run", "--once")
    assert code == ExitCode.OK
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    reconciled = [r for r in records if r.get("tenant") == "byt-his-staging" and r.get("action") == "applied"]
    assert reconciled and "duration" in reconciled[0]
