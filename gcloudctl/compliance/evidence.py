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
from gcloudctl.compliance.model import Note, note


def read_reports(directory: Path) -> tuple[dict[str, HostEvidence], list[Note]]:
    """({host: newest report}, notes about files left out)."""
    root = Path(directory).resolve()
    found: dict[str, HostEvidence] = {}
    notes: list[Note] = []
    for path in sorted(root.glob("*.json")):
        if path.resolve().parent != root:
            notes.append(note("{file}: a link out of the evidence directory; not read", file=path.name))
            continue
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(note("{file}: not readable as JSON ({error}); not used", file=path.name,
                              error=type(exc).__name__))
            continue
        if not (isinstance(data, dict) and isinstance(data.get("host"), str) and "generated_at" in data
                and isinstance(data.get("controls"), list)):
            notes.append(note("{file}: not an audit-hosts report; not used", file=path.name))
            continue
        report = HostEvidence.from_report(data, source=path.name)
        current = found.get(report.host)
        if current is None or report.generated_at > current.generated_at:
            found[report.host] = report
    return found, notes
