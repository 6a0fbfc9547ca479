"""The control catalogue, the playbooks and the audit parser agree."""

import re
from pathlib import Path

from gcloudctl.hardening import audit
from gcloudctl.hardening.controls import CONTROLS, controls_for_level

PLAYBOOKS = Path(__file__).resolve().parents[2] / "gcloudctl" / "playbooks"


def _task_ids() -> set[str]:
    ids = set()
    for path in PLAYBOOKS.rglob("tasks/*.yml"):
        for name in re.findall(r'- name: "([^"]+)"', path.read_text()):
            head = name.split("|")[0]
            ids |= set(re.findall(r"GC-[A-Z]+-\d+", head))
            for prefix, lo, hi in re.findall(r"(GC-[A-Z]+-)(\d+)\.\.GC-[A-Z]+-(\d+)", head):
                ids |= {f"{prefix}{i:02d}" for i in range(int(lo), int(hi) + 1)}
    return ids


def test_every_control_is_implemented_by_a_task_and_every_task_id_exists():
    catalogue = {c.id for c in CONTROLS}
    tasks = _task_ids()
    audit_only = {c.id for c in CONTROLS if c.audit_only}
    assert catalogue - tasks == audit_only, "controls without a task (and not marked audit-only)"
    assert not (audit_only & tasks), "audit-only controls must not claim a task"
    assert tasks - catalogue == set(), "task names citing unknown controls"


def test_ids_unique_and_levels_cumulative():
    assert len({c.id for c in CONTROLS}) == len(CONTROLS)
    sizes = [len(controls_for_level(n)) for n in range(1, 5)]
    assert sizes == sorted(sizes) and sizes[0] > 20 and sizes[3] == len(CONTROLS)


def test_every_control_maps_to_cis_ids():
    for c in CONTROLS:
        assert re.fullmatch(r"\d+(\.\d+)+", c.cis_debian12), c.id
        assert re.fullmatch(r"\d+(\.\d+)+", c.cis_ubuntu2404), c.id


def test_parse_checks_statuses_and_missing_output():
    controls = controls_for_level(1)[:3]
    out = (f"@@gcloudctl-check@@ begin {controls[0].id}\nsshd x=1\n@@gcloudctl-check@@ end {controls[0].id} 0\n"
           f"@@gcloudctl-check@@ begin {controls[1].id}\nkernel shared\n@@gcloudctl-check@@ end {controls[1].id} 3\n")
    results = audit.parse_checks(out, controls)
    assert [r.status for r in results] == ["pass", "not applicable", "error"]
    assert results[0].evidence == "sshd x=1"


def test_lynis_report_parse():
    text = "# comment\nhardening_index=71\nlynis_tests_done=242\nwarning[]=SSH-7408|x|\nsuggestion[]=a\nsuggestion[]=b\n"
    r = audit.parse_lynis_report(text)
    assert (r.hardening_index, r.tests_performed, r.warnings, r.suggestions) == (71, 242, 1, 2)


def test_report_keeps_the_first_score_as_baseline(tmp_path):
    a = audit.HostAudit("h1", 3, [audit.ControlResult("GC-X-01", "t", 1, "1.1", "1.1", "fail", "<b>e</b>")])
    audit.write_report(a, tmp_path, generated_at="2026-01-01T00:00:00Z")
    first_html = (tmp_path / "h1.html").read_text()
    assert "&lt;b&gt;e&lt;/b&gt;" in first_html and "<b>e</b>" not in first_html  # evidence is escaped
    b = audit.HostAudit("h1", 3, [audit.ControlResult("GC-X-01", "t", 1, "1.1", "1.1", "pass", "ok")])
    rep = audit.write_report(b, tmp_path, generated_at="2026-01-02T00:00:00Z")
    c = audit.write_report(b, tmp_path, generated_at="2026-01-03T00:00:00Z")
    assert rep["baseline"]["passed"] == 0 and rep["score"]["passed"] == 1
    assert c["baseline"] == rep["baseline"]
    html = (tmp_path / "h1.html").read_text()
    assert "GC-X-01" in html and "<td>0</td><td>1</td>" in html  # own controls passed: before 0, now 1
