"""File names built from cloud-side names (server names, tenant names), confined to a directory.

Stage: edge helper for report writing. Callers: `hardening.audit.write_report` (audit-hosts
reports), `gcloudctl.compliance` (dossier files) and `cli.hardening` (the default report
directory). A server's name is chosen by whoever may edit it in Nova (any project member), so
it is untrusted: `../../../../tmp/x` must not become a path outside the output directory.

- `file_stem(name)`: the name itself when it is already a plain file name (letters, digits,
  `.`, `_`, `-`, not starting with a dot, at most 128 characters); otherwise the name with every
  other character replaced by `_`, leading dots dropped, plus `~` and 8 hex digits of the
  name's sha256, so two different names never share a file. None when nothing is left to name
  a file by (empty, only dots, longer than 255 characters): such a host is reported, not written.
- `confined(directory, file_name)`: the resolved path, refused (`UnsafePath`) unless it is a
  direct child of the resolved directory — this also refuses a pre-existing symlink that points
  elsewhere.

It reads the file system only to resolve paths; it writes nothing.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from gcloudctl.errors import GcloudctlError

_PLAIN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME = 255


class UnsafePath(GcloudctlError):
    """A file name built from a cloud-side name would leave its directory (or cannot be built)."""


def file_stem(name: str) -> str | None:
    """A safe file name stem for `name` (see the module docstring); None when there is none."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.strip("."):
        return None
    if _PLAIN.match(name):
        return name
    cleaned = _UNSAFE_CHAR.sub("_", name).lstrip(".")[:100]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned}~{digest}"


def confined(directory: Path, file_name: str) -> Path:
    """`directory/file_name`, resolved, when it stays a direct child of `directory` (resolved)."""
    root = Path(directory).resolve()
    if not file_name or "/" in file_name or "\x00" in file_name or file_name in (".", ".."):
        raise UnsafePath(f"{file_name!r} is not a plain file name")
    path = (root / file_name).resolve()
    if path.parent != root:
        raise UnsafePath(f"{root / file_name} resolves to {path}, outside {root}",
                         hint="a symlink or a crafted name points out of the report directory; remove it")
    return path


def file_for(directory: Path, name: str, suffix: str) -> Path:
    """The confined path of `<file_stem(name)><suffix>` in `directory`; UnsafePath when `name`
    cannot name a file."""
    stem = file_stem(name)
    if stem is None:
        raise UnsafePath(f"the name {name[:80]!r} cannot be made into a file name; nothing written for it",
                         hint="rename the server in the cloud to a plain name (letters, digits, '-', '_', '.')")
    return confined(directory, stem + suffix)
