"""The CI guide's pipeline (docs/ci-guide.md, section "The pipeline") run as written on devcloud
in guests mode: it makes a stack from a minimal request (no quotas, expiring in 2 h), applies and
hardens it, reads its outputs, runs a check over SSH with the host key gcloudctl verified, and
destroys it. The script is taken from the guide itself, so the guide cannot drift from what works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from tests.cloud.helpers import BIN, ROOT, gcloudctl, openstack, unique_tenant

pytestmark = [pytest.mark.devcloud, pytest.mark.testhost, pytest.mark.slow]


def pipeline_script() -> str:
    guide = (ROOT / "docs" / "ci-guide.md").read_text(encoding="utf-8")
    section = guide.split("## The pipeline", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_ci_guide_pipeline(guests_devcloud, tmp_path):
    stack = unique_tenant("ci")
    proxy = gcloudctl("devcloud", "proxy-command", check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCLOUDCTL_", "OS_CLOUD"))}
    env |= {"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "STACK": stack, "AGENCY": "BYT", "REGION": "hn1",
            "RUNNER_CIDR": "172.24.4.0/24", "WORK": str(tmp_path), "SSH_PROXY": proxy, "CI_JOB_ID": "test"}
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", pipeline_script()], env=env, capture_output=True, text=True, timeout=1500)
    seconds = time.monotonic() - started
    try:
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        assert "check passed on app-1" in done.stdout
        outputs = json.loads((tmp_path / "outputs.json").read_text())
        assert outputs["tenant"] == stack and outputs["expires_at"]
        assert outputs["servers"]["app-1"]["floating_ip"].startswith("172.24.4.")
        assert all(r["id"] for r in outputs["resources"].values())
        projects = [p["Name"] for p in openstack("project", "list")]
        assert stack not in projects, "the pipeline destroyed its stack"
        print(f"\nci-guide pipeline on devcloud guests: {seconds:.0f} s")
    finally:
        if stack in [p["Name"] for p in openstack("project", "list")]:
            gcloudctl("destroy", stack, "--yes")
