"""Specification of CI stacks on the CLI path: a request whose expiresAt has passed is refused
(exit 4, nothing written); `get tenants` shows the expiry; `reap` destroys expired stacks
without a controller, `--dry-run` only lists them, `--agency` limits them. In-memory cloud."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from gcloudctl import naming
from gcloudctl.cli import main as cli_main
from gcloudctl.cli.context import AppContext
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.errors import Refused
from gcloudctl.stacks import expired_stacks, expiry_preflight
from tests.fixtures.core import EXAMPLE

EXPIRES = datetime(2026, 12, 31, 0, 0, tzinfo=timezone(timedelta(hours=7)))  # 2026-12-30T17:00:00Z


@pytest.fixture
def cloud(monkeypatch):
    """The CLI on one in-memory cloud with a settable clock (`cloud.clock["now"]`)."""
    api = FakeApi()
    clock = {"now": EXPIRES - timedelta(days=1)}
    original = AppContext.from_options.__func__

    def from_options(cls, **options):
        ctx = original(cls, **options)
        ctx.driver_factory = lambda name, region: FakeCloud(api)
        ctx.clock = lambda: clock["now"]
        return ctx

    monkeypatch.setattr(AppContext, "from_options", classmethod(from_options))
    monkeypatch.delenv("OS_CLOUD", raising=False)

    def run(*args):
        return cli_main.main(list(args))

    run.api, run.clock = api, clock
    return run


def stack_file(tmp_path, name: str, expires: datetime | None) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["expiresAt"] = expires.isoformat() if expires else None
    if expires is None:
        del doc["spec"]["expiresAt"]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return str(path)


def tenants(cloud, capsys) -> dict:
    capsys.readouterr()
    assert cloud("get", "tenants", "-o", "json") == 0
    return {row["tenant"]: row for row in json.loads(capsys.readouterr().out)}


def test_apply_of_an_expired_request_is_refused_and_writes_nothing(cloud, tmp_path, capsys):
    """`apply` of a request already expired used to create it."""
    cloud.clock["now"] = EXPIRES + timedelta(seconds=1)
    assert cloud("apply", stack_file(tmp_path, "ci-stack-1", EXPIRES), "--yes") == 4
    assert "expired at 2026-12-30T17:00:00Z" in capsys.readouterr().err
    assert cloud.api.total_writes() == 0 and not cloud.api.projects


def test_expiry_is_tagged_and_listed(cloud, tmp_path, capsys):
    assert cloud("apply", stack_file(tmp_path, "ci-stack-1", EXPIRES), "--yes") == 0
    assert cloud("apply", stack_file(tmp_path, "long-lived", None), "--yes") == 0
    project = next(p for p in cloud.api.projects.values() if p["name"] == "ci-stack-1")
    assert naming.expiry_tag(EXPIRES) in project["tags"]
    rows = tenants(cloud, capsys)
    assert (rows["ci-stack-1"]["expires_at"], rows["ci-stack-1"]["expired"]) == ("2026-12-30T17:00:00Z", False)
    assert (rows["long-lived"]["expires_at"], rows["long-lived"]["expired"]) == (None, False)
    cloud.clock["now"] = EXPIRES
    assert tenants(cloud, capsys)["ci-stack-1"]["expired"] is True
    assert cloud("get", "tenants") == 0
    assert "2026-12-30T17:00:00Z (expired)" in capsys.readouterr().out


def test_reap_dry_run_then_reap(cloud, tmp_path, capsys):
    assert cloud("apply", stack_file(tmp_path, "ci-stack-1", EXPIRES), "--yes") == 0
    assert cloud("apply", stack_file(tmp_path, "ci-stack-2", EXPIRES + timedelta(days=7)), "--yes") == 0
    assert cloud("apply", stack_file(tmp_path, "long-lived", None), "--yes") == 0
    capsys.readouterr()
    assert cloud("reap", "--dry-run", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["stacks"] == [], "nothing has expired yet"

    cloud.clock["now"] = EXPIRES + timedelta(hours=1)
    writes = cloud.api.total_writes()
    assert cloud("reap", "--dry-run", "-o", "json") == 0
    listed = json.loads(capsys.readouterr().out)["stacks"]
    assert [(s["tenant"], s["status"]) for s in listed] == [("ci-stack-1", "would-destroy")]
    assert cloud.api.total_writes() == writes, "--dry-run writes nothing"

    assert cloud("reap", "--agency", "BTC", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["stacks"] == [], "another agency's stacks are not touched"

    assert cloud("reap", "-o", "json") == 0
    assert [s["status"] for s in json.loads(capsys.readouterr().out)["stacks"]] == ["destroyed"]
    assert sorted(tenants(cloud, capsys)) == ["ci-stack-2", "long-lived"]
    assert cloud("describe", "ci-stack-1") == 7
    assert len(cloud.api.servers) == 6, "the other stacks' servers are still there"


def test_a_project_that_only_claims_an_agency_is_never_reaped(config):
    rows = [{"tenant": "t", "region": "hn1", "agency": "BYT", "owned": False, "expires_at": EXPIRES}]
    assert expired_stacks(rows, EXPIRES + timedelta(days=1)) == []


@pytest.mark.parametrize("now,refused", [
    pytest.param(EXPIRES - timedelta(seconds=1), False, id="before"),
    pytest.param(EXPIRES, True, id="at-the-moment"),
    pytest.param(EXPIRES + timedelta(days=1), True, id="after"),
])
def test_expiry_preflight(config, example_doc, now, refused):
    from tests.fixtures.core import request_from

    example_doc["spec"]["expiresAt"] = EXPIRES.isoformat()
    request = request_from(example_doc, config)
    if refused:
        with pytest.raises(Refused):
            expiry_preflight(request, now)
    else:
        expiry_preflight(request, now)
