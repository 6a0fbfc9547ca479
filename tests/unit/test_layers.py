"""The layering of docs/architecture.md, enforced: pure stages import no side-effecting
library; only drivers talk to clouds and hosts (import-linter contracts in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    linter = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout
