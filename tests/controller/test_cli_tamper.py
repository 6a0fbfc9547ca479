"""`controller run --once` on a tampered approved version: exit 1, nothing applied, the tenant
says TamperedRequest (the issue's reproduction: a row of the approved YAML changed with sqlite3)."""

import json
import sqlite3

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
    for name in ("GCLOUDCTL_APPROVAL_RULES", "GCLOUDCTL_SECRETS_KEY", "GCLOUDCTL_SECRETS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def run(capsys, monkeypatch, user, *args):
    monkeypatch.setattr("getpass.getuser", lambda: user)
    code = main(list(args))
    return code, capsys.readouterr().out


def test_row_changed_with_sqlite3_is_not_applied(db, capsys, monkeypatch):
    cloud = FakeCloud()
    monkeypatch.setattr(AppContext, "driver", lambda self, config, region=None: cloud)
    code, out = run(capsys, monkeypatch, "ops1", "-o", "json", "request", "submit", str(EXAMPLE))
    rid = str(json.loads(out)["id"])
    for approver in ("ops2", "ops3"):
        assert run(capsys, monkeypatch, approver, "request", "approve", rid, "--reason", "ok")[0] == ExitCode.OK
    with sqlite3.connect(db) as conn:  # add an admin member to the approved text, as in the issue
        conn.execute("UPDATE requests SET raw_yaml = replace(raw_yaml, 'members:', "
                     "'members:\n    - {user: mallory, role: admin}') WHERE id = ?", (rid,))
    code, out = run(capsys, monkeypatch, "ops1", "-o", "json", "controller", "run", "--once")
    assert code == ExitCode.ERROR and json.loads(out)["counts"] == {"tampered": 1}
    assert sum(cloud.api.writes.values()) == 0
    code, out = run(capsys, monkeypatch, "ops1", "-o", "json", "status", "byt-his-staging")
    ready = next(c for c in json.loads(out)["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TamperedRequest")
