"""The example tenant's world for the dossier tests: its request approved in a controller store
(SQLite, the real request service), applied to the in-memory cloud through the real CLI, and
audit evidence on disk as audit-hosts writes it (`hardening.audit.write_report`).

The evidence is made up for the test, chosen to exercise every status honestly:
- web-1: every control of the level has a result; the kernel-wide and partition checks (those
  whose check can exit 3) are "not applicable" with the reason the check prints, one control
  fails, the rest pass;
- web-2: a report from before the catalogue's newest control: that control has no result;
- db-1: no report at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gcloudctl.controller import compose
from gcloudctl.hardening.audit import ControlResult, HostAudit, write_report
from gcloudctl.hardening.controls import controls_for_level
from tests.controller.conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, submit_approved
from tests.fixtures.core import EXAMPLE

LEVEL = 2
NA_REASON = "kernel-wide setting shared with the machine; read-only in this container"


def can_be_not_applicable(control) -> bool:
    """Checks that may answer "not applicable here" (they exit 3 inside a container)."""
    return "exit 3" in control.check or "kernel_na" in control.check


@dataclass
class World:
    db: str
    evidence: Path
    out: Path
    failing: str  # the control made to fail on web-1
    missing: str  # the control web-2's report has no result for
    not_applicable: list[str]
    service: object


def _audit(host: str, controls, failing: str | None) -> HostAudit:
    results = []
    for c in controls:
        if can_be_not_applicable(c):
            status, evidence = "not applicable", NA_REASON
        elif c.id == failing:
            status, evidence = "fail", f"{c.id}: setting not found"
        else:
            status, evidence = "pass", f"{c.id}: ok on {host}"
        results.append(ControlResult(c.id, c.title, c.level, c.cis_debian12, c.cis_ubuntu2404, status, evidence))
    return HostAudit(host=host, level=LEVEL, controls=results)


@pytest.fixture
def world(tmp_path, cli_on_fake, config) -> World:
    db = f"sqlite:///{tmp_path / 'controller.db'}"
    environ = {"GCLOUDCTL_SECRETS_KEY_FILE": str(tmp_path / "secrets.key")}
    service = compose.request_service(config, db_url=db, environ=environ)
    submit_approved(service, EXAMPLE.read_text(), submitter=BYT_REQUESTER, approvers=(BYT_APPROVER1, BYT_APPROVER2))
    assert cli_on_fake("apply", str(EXAMPLE), "--yes") == 0

    controls = controls_for_level(LEVEL)
    failing = next(c.id for c in controls if not can_be_not_applicable(c))
    missing = controls[-1].id
    evidence = tmp_path / "evidence"
    write_report(_audit("web-1", controls, failing), evidence, generated_at="2026-12-03T08:00:00Z")
    write_report(_audit("web-2", controls[:-1], None), evidence, generated_at="2026-12-03T08:01:00Z")
    return World(db=db, evidence=evidence, out=tmp_path / "dossier", failing=failing, missing=missing,
                 not_applicable=[c.id for c in controls if can_be_not_applicable(c)], service=service)
