"""Benchmark: hardening run time per host (first and second run), and 3 hosts in parallel vs one.

Boots fresh Debian 12 test hosts (namespaces, systemd, real cloud-init), hardens them with the
project's playbook through ansible-runner and times each run. Needs root.

    .venv/bin/python bench/hardening_runtime.py [--level 3] [--out bench/results/hardening_runtime.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcloudctl.drivers.ansible import run_playbook  # noqa: E402
from gcloudctl.testhost import build_rootfs  # noqa: E402
from tests.fixtures.testhost import GuestFactory, inventory_for  # noqa: E402


def factory(workdir: Path) -> GuestFactory:
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return GuestFactory(key_file=str(key), public_key=(workdir / "id_ed25519.pub").read_text().strip(),
                        workdir=workdir, rootfs=build_rootfs())


def timed_run(guests, level, forks):
    t = time.monotonic()
    result = run_playbook(inventory_for(guests, level), known_hosts=guests[0].known_hosts, forks=forks)
    seconds = time.monotonic() - t
    if not result.ok:
        raise SystemExit(f"hardening failed: {result.failures}")
    return seconds, result.changed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--out", default="bench/results/hardening_runtime.json")
    args = ap.parse_args()
    f = factory(Path(tempfile.mkdtemp(prefix="bench-hardening-")))
    results = {"level": args.level}
    try:
        t = time.monotonic()
        one = [f.boot("bh-one", level=args.level)]
        results["boot_to_ssh_s"] = round(time.monotonic() - t, 1)
        for run in ("first", "second"):
            s, changed = timed_run(one, args.level, forks=1)
            results[f"one_host_{run}_s"] = round(s, 1)
            results[f"one_host_{run}_changed"] = changed
        three = [f.boot(f"bh-par{i}", level=args.level) for i in range(3)]
        for run in ("first", "second"):
            s, changed = timed_run(three, args.level, forks=3)
            results[f"three_hosts_forks3_{run}_s"] = round(s, 1)
            results[f"three_hosts_forks3_{run}_changed"] = changed
        results["parallel_speedup_first"] = round(3 * results["one_host_first_s"] / results["three_hosts_forks3_first_s"], 2)
    finally:
        f.stop_all()
    print(json.dumps(results, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
