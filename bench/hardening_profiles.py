"""Benchmark: lynis hardening index and own-check pass counts before/after, per profile L1..L4.

One fresh host per profile, all hardened in one ansible run (each host carries its own
gcloudctl_level), audited before and after (own checks of that profile + lynis). Needs root.

    .venv/bin/python bench/hardening_profiles.py [--levels 1 2 3 4] [--out bench/results/hardening_profiles.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gcloudctl.drivers.ansible import run_playbook  # noqa: E402
from gcloudctl.hardening.audit import audit_host  # noqa: E402
from tests.fixtures.testhost import inventory_for  # noqa: E402
from bench.hardening_runtime import factory  # noqa: E402


def audit_all(guests_by_level, lynis=True):
    def one(item):
        level, guest = item
        with guest.session() as s:
            return level, audit_host(s, guest.name, level, lynis=lynis)

    with ThreadPoolExecutor(max_workers=2) as pool:  # lynis is CPU-bound; 2 cores
        return dict(pool.map(one, sorted(guests_by_level.items())))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--out", default="bench/results/hardening_profiles.json")
    args = ap.parse_args()
    f = factory(Path(tempfile.mkdtemp(prefix="bench-profiles-")))
    rows = []
    try:
        guests = {lv: f.boot(f"bp-l{lv}", level=lv) for lv in args.levels}
        before = audit_all(guests)
        inventory = {"all": {"hosts": {}, "children": {}}}
        for lv, g in guests.items():
            inventory["all"]["hosts"].update(inventory_for([g], lv)["all"]["hosts"])
        t = time.monotonic()
        result = run_playbook(inventory, known_hosts=next(iter(guests.values())).known_hosts, forks=len(guests))
        seconds = time.monotonic() - t
        if not result.ok:
            raise SystemExit(f"hardening failed: {result.failures}")
        after = audit_all(guests)
        for lv in sorted(guests):
            b, a = before[lv], after[lv]
            rows.append({"profile": f"L{lv}", "controls": len(a.controls),
                         "own_pass_before": b.passed, "own_pass_after": a.passed,
                         "own_fail_after": a.failed, "not_applicable": a.not_applicable,
                         "lynis_before": b.lynis.hardening_index, "lynis_after": a.lynis.hardening_index,
                         "changed": result.hosts[guests[lv].name].changed})
    finally:
        f.stop_all()
    out = {"rows": rows, "hardening_run_all_profiles_s": round(seconds, 1)}
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
