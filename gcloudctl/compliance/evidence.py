"""Stage: compliance (evidence reading). The latest audit-hosts report per host from a directory.

Called by `gcloudctl.cli.compliance` (`--evidence DIR`). Reads files only (never a host or a
cloud): every `*.json` directly in DIR that looks like an audit-hosts report (`host`,
`generated_at`, `controls`); the newest per host wins (by `generated_at`). Files that are not
reports, or unreadable, are named in the returned notes, never silently dropped. Symlinks that
lead out of DIR are not followed (the directory may hold files named after cloud-side names).
"""

from __future__ import annotations

import json
from pathlib import Path

from gcloudctl.compliance.dossier import HostEvidence


def read_reports(directory: Path) -> tuple[dict[str, HostEvidence], list[str]]:
    """({host: newest report}, notes about files left out)."""
    root = Path(directory).resolve()
    found: dict[str, HostEvidence] = {}
    notes: list[str] = []
    for path in sorted(root.glob("*.json")):
        if path.resolve().parent != root:
            notes.append(f"{path.name}: a link out of the evidence directory; not read")
            continue
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"{path.name}: not readable as JSON ({type(exc).__name__}); not used")
            continue
        if not (isinstance(data, dict) and isinstance(data.get("host"), str) and "generated_at" in data
                and isinstance(data.get("controls"), list)):
            notes.append(f"{path.name}: not an audit-hosts report; not used")
            continue
        report = HostEvidence.from_report(data, source=path.name)
        current = found.get(report.host)
        if current is None or report.generated_at > current.generated_at:
            found[report.host] = report
    return found, notes
