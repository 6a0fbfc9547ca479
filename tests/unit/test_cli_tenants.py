"""CLI behaviour CI relies on: exit codes, saved plans, confirmation, masked secrets."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.fixtures.core import EXAMPLE


@pytest.fixture
def run(cli_on_fake):
    return cli_on_fake


def test_plan_apply_noop_destroy_exit_codes(run, tmp_path, capsys):
    saved = tmp_path / "plan.json"
    assert run("plan", str(EXAMPLE), "--detailed-exitcode") == 3
    assert run("plan", str(EXAMPLE), "--out", str(saved)) == 0
    assert run("apply", str(saved), "--yes") == 0
    capsys.readouterr()
    assert run("plan", str(EXAMPLE), "--detailed-exitcode") == 0
    assert "No changes" in capsys.readouterr().out
    assert run("destroy", "byt-his-staging", "--yes") == 0
    assert run("destroy", "byt-his-staging", "--yes") == 0  # idempotent


def test_saved_plan_refused_when_cloud_moved(run, tmp_path, capsys):
    saved = tmp_path / "plan.json"
    assert run("plan", str(EXAMPLE), "--out", str(saved)) == 0
    assert run("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert run("apply", str(saved), "--yes") == 4
    assert "stale plan" in capsys.readouterr().err


def test_saved_plan_refused_when_request_changed(run, tmp_path, capsys):
    request = tmp_path / "t.yaml"
    shutil.copy(EXAMPLE, request)
    saved = tmp_path / "plan.json"
    assert run("plan", str(request), "--out", str(saved)) == 0
    doc = yaml.safe_load(request.read_text())
    doc["metadata"]["description"] = "changed"
    request.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert run("apply", str(saved), "--yes") == 4
    assert "changed since the plan was saved" in capsys.readouterr().err


def test_apply_without_yes_and_without_tty_is_refused(run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run("apply", str(EXAMPLE)) == 2
    assert "--yes" in capsys.readouterr().err
    assert not run.api.projects, "nothing was created"


def test_plan_json_is_machine_readable_and_has_no_secrets(run, tmp_path, capsys):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["servers"][0]["userData"]["vars"] = {"api_token": "tok-123456-secret"}
    request = tmp_path / "t.yaml"
    request.write_text(yaml.safe_dump(doc))
    assert run("-o", "json", "plan", str(request)) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["summary"]["create"] == 32
    assert "tok-123456-secret" not in out


def test_describe_unknown_tenant_is_not_found(run, capsys):
    assert run("describe", "nope-tenant") == 7


def test_failed_apply_exits_1_and_says_how_to_resume(run, capsys):
    run.api.inject("POST", r"^/routers$", 400, times=1)
    assert run("apply", str(EXAMPLE), "--yes") == 1
    assert "Re-run the same command" in capsys.readouterr().err
    assert run("apply", str(EXAMPLE), "--yes") == 0


def test_completion_script(run, capsys):
    assert run("completion", "bash") == 0
    assert "_GCLOUDCTL_COMPLETE" in capsys.readouterr().out


def test_hardening_without_a_key_fails_before_any_write(run, tmp_path, capsys):
    """A request whose servers ask for hardening and no key: refused before anything is written
    (exit 2, and then "nothing was sent" is true); --no-harden provisions without hardening."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["servers"][1]["hardening"] = {"profile": "L2"}
    request = tmp_path / "t.yaml"
    request.write_text(yaml.safe_dump(doc))
    assert run("apply", str(request), "--yes") == 2
    err = capsys.readouterr().err
    assert "private key" in err and "--key" in err and "nothing was sent" in err
    assert sum(run.api.writes.values()) == 0 and run.api.write_log == [] and not run.api.projects
    assert run("apply", str(request), "--yes", "--no-harden") == 0
    assert sum(run.api.writes.values()) > 0


def test_a_saved_plan_and_a_missing_key_fail_before_any_write(run, tmp_path, capsys, monkeypatch):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["servers"][0]["hardening"] = {}
    request, saved = tmp_path / "t.yaml", tmp_path / "plan.json"
    request.write_text(yaml.safe_dump(doc))
    assert run("plan", str(request), "--out", str(saved)) == 0
    monkeypatch.delenv("GCLOUDCTL_SSH_KEY", raising=False)
    assert run("apply", str(saved), "--yes") == 2
    assert sum(run.api.writes.values()) == 0


def test_an_unreadable_key_fails_before_any_write(config, fake_api, tmp_path):
    from gcloudctl.drivers.fake import FakeCloud
    from gcloudctl.usecases.apply import ApplyOptions, apply_request
    from gcloudctl.usecases.harden import Access, HardeningKeyMissing
    from tests.fixtures.core import request_from

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["servers"][0]["hardening"] = {}
    with pytest.raises(HardeningKeyMissing, match="not a readable file"):
        apply_request(request_from(doc, config), FakeCloud(fake_api), config,
                      options=ApplyOptions(access=Access(key_file=str(tmp_path / "missing"))))
    assert sum(fake_api.writes.values()) == 0


def test_get_tenants_and_describe_take_their_own_output_option(run, capsys):
    assert run("apply", str(EXAMPLE), "--yes") == 0
    capsys.readouterr()
    assert run("get", "tenants", "--output", "json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["tenant"], row["agency"]) == ("byt-his-staging", "BYT")
    assert run("describe", "byt-his-staging", "--output", "yaml") == 0
    described = yaml.safe_load(capsys.readouterr().out)
    assert described["tenant"] == "byt-his-staging"
    assert any(r["address"] == "server.web-1" and r["status"] == "ACTIVE" for r in described["resources"])


def test_apply_waits_for_servers_an_earlier_run_left_building(run, capsys):
    """After a crash the planner does not count "still building" as a change; `apply --wait`
    still ends with every server ACTIVE."""
    assert run("apply", str(EXAMPLE), "--yes") == 0
    web1 = next(s for s in run.api.servers.values() if s["name"] == "web-1")
    web1.update(status="BUILD", _polls=-3)  # ACTIVE after a few more looks
    capsys.readouterr()
    assert run("apply", str(EXAMPLE), "--yes") == 0
    err = capsys.readouterr().err
    assert "waiting for 1 server(s) an earlier run left building: web-1" in err
    assert web1["status"] == "ACTIVE"
    web1.update(status="BUILD", _polls=-3)
    assert run("apply", str(EXAMPLE), "--yes", "--no-wait") == 0
    assert web1["status"] == "BUILD"


def test_describe_shows_a_volume_with_its_size_type_and_device(run, capsys):
    db_volume = EXAMPLE.parent / "byt-his-db-volume.yaml"
    assert run("apply", str(db_volume), "--yes") == 0
    capsys.readouterr()
    assert run("describe", "byt-his-db") == 0
    text = capsys.readouterr().out
    line = next(row for row in text.splitlines() if "volume.db-1.data" in row)
    assert "50 GiB standard /dev/" in line, text
    assert any("volume_attachment." in row and "/dev/" in row for row in text.splitlines()), text
