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
    for name in ("GCLOUDCTL_AS", "GCLOUDCTL_APPROVAL_RULES", "GCLOUDCTL_SECRETS_KEY", "GCLOUDCTL_SECRETS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
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


def as_os_user(monkeypatch, name: str) -> None:
    """The break-glass identity is the operating-system user: switch it between commands."""
    monkeypatch.setattr("getpass.getuser", lambda: name)


def test_request_flow_with_exit_codes(db, cloud, capsys, monkeypatch):
    as_os_user(monkeypatch, "ops1")
    code, out, _ = run(capsys, "-o", "json", "request", "submit", str(EXAMPLE))
    assert code == ExitCode.OK
    version = json.loads(out)
    assert version["approvalsRequired"] == 2 and version["state"] == "pending-approval"
    assert version["submittedBy"] == "os:ops1"
    rid = str(version["id"])

    code, _, err = run(capsys, "request", "approve", rid, "--reason", "mine")
    assert code == ExitCode.REFUSED and "may not decide" in err, "the OS user who submitted may not approve"
    for removed in (["--as", "tran.thi.b"], ["--approval-rules", str(EXAMPLE)]):
        code, _, err = run(capsys, "request", "approve", rid, "--reason", "x", *removed)
        assert code == ExitCode.INVALID and "No such option" in err, f"{removed[0]} is gone"
    as_os_user(monkeypatch, "ops2")
    assert run(capsys, "request", "approve", rid, "--reason", "ok")[0] == ExitCode.OK
    code, _, err = run(capsys, "request", "approve", rid, "--reason", "again")
    assert code == ExitCode.REFUSED and "distinct" in err, "one OS user cannot give both approvals"
    as_os_user(monkeypatch, "ops3")
    assert run(capsys, "request", "approve", rid, "--reason", "ok")[0] == ExitCode.OK

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

    code, out, _ = run(capsys, "-o", "json", "request", "delete", "byt-his-staging", "--reason", "done")
    deletion = json.loads(out)
    assert code == ExitCode.OK and (deletion["kind"], deletion["state"]) == ("delete", "pending-approval")
    code, out, _ = run(capsys, "-o", "json", "controller", "run", "--once")
    assert json.loads(out)["counts"] == {"converged": 1}, "nothing is destroyed before the deletion is approved"
    assert cloud.api.servers
    as_os_user(monkeypatch, "ops1")
    assert run(capsys, "request", "approve", str(deletion["id"]), "--reason", "ok")[0] == ExitCode.OK
    code, out, _ = run(capsys, "-o", "json", "controller", "run", "--once")
    assert json.loads(out)["counts"] == {"destroyed": 1}
    assert not cloud.api.servers


def test_break_glass_is_recorded_as_unauthenticated_os_user(db, capsys, monkeypatch):
    as_os_user(monkeypatch, "night-ops")
    assert run(capsys, "request", "submit", str(EXAMPLE))[0] == ExitCode.OK
    code, out, _ = run(capsys, "-o", "json", "audit", "export")
    [record] = json.loads(out)
    assert record["actor"] == "os:night-ops"
    assert record["data"]["caller"] == {"userId": "os:night-ops", "user": "night-ops", "domain": None,
                                        "agency": None, "roles": ["gcloud-operator"], "authenticated": False}
    code, out, _ = run(capsys, "status", "byt-his-staging")
    assert "submitted by os:night-ops" in out


def test_approval_rules_come_from_the_server_configuration(db, capsys, monkeypatch, tmp_path):
    from gcloudctl.controller.approvals import default_rules_text

    stricter = tmp_path / "rules.yaml"
    stricter.write_text(default_rules_text().replace("approvalsRequired: 1", "approvalsRequired: 3")
                        .replace('version: "1"', 'version: "7"'))
    monkeypatch.setenv("GCLOUDCTL_APPROVAL_RULES", str(stricter))
    code, out, _ = run(capsys, "-o", "json", "request", "submit", str(EXAMPLE))
    version = json.loads(out)
    assert version["approvalsRequired"] == 3 and version["rulesVersion"].startswith("default@7#")


def test_invalid_request_exit_2(db, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: gcloud.gov.vn/v1\nkind: TenantRequest\nmetadata: {name: X}\n")
    code, _, err = run(capsys, "request", "submit", str(bad))
    assert code == ExitCode.INVALID and "bad.yaml" in err


def test_audit_verify_and_export(db, capsys):
    run(capsys, "request", "submit", str(EXAMPLE))
    code, out, _ = run(capsys, "audit", "verify")
    assert code == ExitCode.OK and "OK" in out
    code, out, _ = run(capsys, "-o", "json", "audit", "export", "--since", "2000-01-01T00:00:00Z")
    assert [r["action"] for r in json.loads(out)] == ["request.submit"]
    with sqlite3.connect(db) as conn:
        from .tamper import drop_audit_guard_sqlite

        drop_audit_guard_sqlite(conn)  # an attacker with DDL rights (the triggers refuse UPDATE of audit rows)
        conn.execute("UPDATE audit SET actor = 'mallory'")
    code, out, _ = run(capsys, "audit", "verify")
    assert code == ExitCode.ERROR and "BROKEN" in out
    assert run(capsys, "audit", "export", "--since", "yesterday")[0] == ExitCode.INVALID


def test_migrate_command(db, capsys):
    code, out, _ = run(capsys, "controller", "migrate")
    from pathlib import Path

    import gcloudctl.controller

    versions = Path(gcloudctl.controller.__file__).parent / "migrations" / "versions"
    newest = max(p.name[:4] for p in versions.glob("0*.py"))
    assert code == ExitCode.OK and f"revision {newest}" in out


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


def test_structured_json_logs_name_the_tenant(db, cloud, capsys, monkeypatch):
    for user, command in (("ops1", ["submit", str(EXAMPLE)]), ("ops2", ["approve", "1", "--reason", "ok"]),
                          ("ops3", ["approve", "1", "--reason", "ok"])):
        as_os_user(monkeypatch, user)
        assert run(capsys, "request", *command)[0] == ExitCode.OK
    code, _, err = run(capsys, "--log-format", "json", "-v", "controller", "run", "--once")
    assert code == ExitCode.OK
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    reconciled = [r for r in records if r.get("tenant") == "byt-his-staging" and r.get("action") == "applied"]
    assert reconciled and "duration" in reconciled[0]
