"""Compliance evidence: the project's own control checks and lynis, per host, as JSON and HTML.

Stage: the report half is pure (`score`, `report_dict`, `render_html`); `audit_host` runs the
checks through an open `drivers.ssh.SshSession` (it never imports paramiko itself). Called by
`gcloudctl audit-hosts`, the tests and the benchmarks.

- Own checks: every control of the profile (cumulative by level) runs as one script over one SSH
  command (sudo); each prints evidence and exits 0 pass / 1 fail / 3 not applicable here.
- lynis (Debian package on the host): `lynis audit system --quick`; the hardening index is read
  from /var/log/lynis-report.dat.
- OpenSCAP: not run. Debian 12's `ssg-debian` content ships no Debian 12 datastream and no CIS
  profile; results from the Debian 11 content would be indicative at best, so the report says so.
Score before/after: a report written over an earlier one keeps that one's score as `baseline`.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from gcloudctl.hardening.controls import CHECK_PRELUDE, FAIL, NOT_APPLICABLE, PASS, Control, controls_for_level

OPENSCAP_NOTE = ("not run: Debian 12's scap-security-guide content has no Debian 12 datastream and no "
                 "CIS profile; the project's own checks and lynis are the evidence")
_MARK = "@@gcloudctl-check@@"
_STATUS = {PASS: "pass", FAIL: "fail", NOT_APPLICABLE: "not applicable"}


class Session(Protocol):
    def run(self, command: str, timeout: float = ..., sudo: bool = ...) -> tuple[int, str, str]: ...


@dataclass(frozen=True)
class ControlResult:
    id: str
    title: str
    level: int
    cis_debian12: str
    cis_ubuntu2404: str
    status: str  # pass | fail | not applicable | error
    evidence: str


@dataclass(frozen=True)
class LynisResult:
    hardening_index: int | None
    tests_performed: int | None
    warnings: int
    suggestions: int
    error: str | None = None


@dataclass
class HostAudit:
    host: str
    level: int
    controls: list[ControlResult] = field(default_factory=list)
    lynis: LynisResult | None = None

    @property
    def passed(self) -> int:
        return sum(c.status == "pass" for c in self.controls)

    @property
    def failed(self) -> int:
        return sum(c.status in ("fail", "error") for c in self.controls)

    @property
    def not_applicable(self) -> int:
        return sum(c.status == "not applicable" for c in self.controls)


# ---- own checks ----------------------------------------------------------------------------------
def checks_script(controls: list[Control]) -> str:
    """One shell script running every check in a subshell, each framed by markers."""
    parts = [CHECK_PRELUDE]
    for c in controls:
        parts.append(f"echo '{_MARK} begin {c.id}'\n( {c.check}\n) 2>&1\necho \"{_MARK} end {c.id} $?\"")
    return "\n".join(parts) + "\n"


def parse_checks(output: str, controls: list[Control]) -> list[ControlResult]:
    by_id: dict[str, tuple[str, list[str]]] = {}
    current, lines = None, []
    for line in output.splitlines():
        if line.startswith(f"{_MARK} begin "):
            current, lines = line.split()[-1], []
        elif line.startswith(f"{_MARK} end ") and current:
            rc = int(line.split()[-1])
            by_id[current] = (_STATUS.get(rc, "fail"), lines)
            current = None
        elif current:
            lines.append(line)
    results = []
    for c in controls:
        status, ev = by_id.get(c.id, ("error", ["check did not run"]))
        results.append(ControlResult(c.id, c.title, c.level, c.cis_debian12, c.cis_ubuntu2404, status,
                                     "\n".join(ev).strip()[:2000]))
    return results


def run_checks(session: Session, level: int) -> list[ControlResult]:
    controls = controls_for_level(level)
    script = base64.b64encode(checks_script(controls).encode()).decode()
    rc, out, err = session.run(f"echo {script} | base64 -d | sudo -n /bin/bash", timeout=300)
    if rc != 0 and _MARK not in out:
        raise RuntimeError(f"control checks did not run (rc={rc}): {err.strip()[:500]}")
    return parse_checks(out, controls)


# ---- lynis ----------------------------------------------------------------------------------------
def parse_lynis_report(text: str) -> LynisResult:
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())

    def _int(key: str) -> int | None:
        try:
            return int(values[key][-1])
        except (KeyError, ValueError):
            return None

    return LynisResult(hardening_index=_int("hardening_index"), tests_performed=_int("lynis_tests_done"),
                       warnings=len(values.get("warning[]", [])), suggestions=len(values.get("suggestion[]", [])))


def run_lynis(session: Session, timeout: float = 600) -> LynisResult:
    cmd = ("sudo -n sh -c 'lynis audit system --quick --no-colors --cronjob >/dev/null 2>&1;"
           " cat /var/log/lynis-report.dat'")
    rc, out, err = session.run(cmd, timeout=timeout)
    result = parse_lynis_report(out)
    if result.hardening_index is None:
        return LynisResult(None, None, 0, 0, error=f"lynis gave no report (rc={rc}): {err.strip()[:300]}")
    return result


def audit_host(session: Session, host: str, level: int, *, lynis: bool = True) -> HostAudit:
    audit = HostAudit(host=host, level=level, controls=run_checks(session, level))
    if lynis:
        audit.lynis = run_lynis(session)
    return audit


# ---- reports (pure) ---------------------------------------------------------------------------
def score(audit: HostAudit) -> dict:
    applicable = audit.passed + audit.failed
    return {"passed": audit.passed, "failed": audit.failed, "not_applicable": audit.not_applicable,
            "percent": round(100 * audit.passed / applicable, 1) if applicable else None,
            "lynis_hardening_index": audit.lynis.hardening_index if audit.lynis else None}


def report_dict(audit: HostAudit, *, generated_at: str, baseline: dict | None = None) -> dict:
    return {
        "host": audit.host, "profile": f"L{audit.level}", "generated_at": generated_at,
        "score": score(audit), "baseline": baseline,
        "lynis": asdict(audit.lynis) if audit.lynis else None,
        "openscap": OPENSCAP_NOTE,
        "controls": [asdict(c) for c in audit.controls],
    }


def render_html(report: dict) -> str:
    e = html.escape
    s, b = report["score"], report.get("baseline") or {}

    def num(d: dict, k: str) -> str:
        return e(str(d.get(k))) if d else "–"

    rows = "\n".join(
        f"<tr class='{e(c['status'].replace(' ', '-'))}'><td>{e(c['id'])}</td><td>{e(c['title'])}</td>"
        f"<td>L{c['level']}</td><td>{e(c['cis_debian12'])}</td><td>{e(c['cis_ubuntu2404'])}</td>"
        f"<td>{e(c['status'])}</td><td><pre>{e(c['evidence'])}</pre></td></tr>"
        for c in report["controls"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>gcloudctl audit: {e(report['host'])}</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}}
tr.pass td:nth-child(6){{background:#cfc}} tr.fail td:nth-child(6){{background:#fcc}} tr.not-applicable td:nth-child(6){{background:#eee}}
pre{{margin:0;white-space:pre-wrap;font-size:85%}}</style></head><body>
<h1>Host {e(report['host'])}: profile {e(report['profile'])}</h1>
<p>Generated {e(report['generated_at'])}.</p>
<table><tr><th></th><th>before</th><th>now</th></tr>
<tr><td>own controls passed</td><td>{num(b, 'passed')}</td><td>{num(s, 'passed')}</td></tr>
<tr><td>own controls failed</td><td>{num(b, 'failed')}</td><td>{num(s, 'failed')}</td></tr>
<tr><td>not applicable here</td><td>{num(b, 'not_applicable')}</td><td>{num(s, 'not_applicable')}</td></tr>
<tr><td>lynis hardening index</td><td>{num(b, 'lynis_hardening_index')}</td><td>{num(s, 'lynis_hardening_index')}</td></tr></table>
<p>OpenSCAP: {e(report['openscap'])}</p>
<table><tr><th>control</th><th>title</th><th>level</th><th>CIS Debian 12</th><th>CIS Ubuntu 24.04</th><th>result</th><th>evidence</th></tr>
{rows}
</table></body></html>
"""


def write_report(audit: HostAudit, out_dir: Path, *, generated_at: str) -> dict:
    """Write <host>.json and <host>.html; an earlier report's score becomes the baseline.

    The host's name comes from the cloud (anyone in the project can rename a server), so the
    file name is `paths.file_stem(host)` and both files are confined to `out_dir`: a name that
    cannot be made safe raises `paths.UnsafePath` before anything is written. The report keeps
    the name as the cloud gave it and says which file holds it."""
    from gcloudctl.hardening.paths import file_for

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = file_for(out_dir, audit.host, ".json")
    html_path = file_for(out_dir, audit.host, ".html")
    baseline = None
    if path.exists():
        previous = json.loads(path.read_text())
        baseline = previous.get("baseline") or previous.get("score")
    report = report_dict(audit, generated_at=generated_at, baseline=baseline)
    report["file"] = path.name
    path.write_text(json.dumps(report, indent=2) + "\n")
    html_path.write_text(render_html(report))
    return report
