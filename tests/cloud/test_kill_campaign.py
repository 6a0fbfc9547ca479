"""A short kill campaign on the real devcloud (issue 13, campaign (b); bench/kill_campaign.py
at full size): `kill -9` of the `gcloudctl apply` / `destroy` process group at fixed times —
one during the first 3 s (login and plan), one mid-apply, two during destroy — each followed by
exactly one re-run, which must converge: exit 0, the plan empty, no duplicate (same-named
twins, Neutron's `default` group included; servers in ERROR; spare ports; extra floating IPs;
twins the re-run had to delete), the floating IPs seen right after the kill kept, and nothing
left after the destroy. Checked as admin."""

from __future__ import annotations

import sys

import pytest

from bench.kill_campaign import Campaign, phase_of, table

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]


@pytest.mark.parametrize("stderr, phase", [
    pytest.param("", "login / observe / plan", id="killed-before-the-plan-was-printed"),
    pytest.param("apply t: 31 step(s), up to 10 at once\n", "first steps in flight", id="planned-nothing-done"),
    pytest.param("apply t: 31 step(s)\n  [1/31] create project.t ok (0.1s)\n  [2/31] create network.app ok (0.4s)\n",
                 "network done", id="mid-apply: the last step done names the phase"),
    pytest.param("destroy t: 2 step(s)\n  [1/2] delete server.web-1 ok (1.0s)\n  [2/2] delete project.t ok\n",
                 "project (all steps done: waiting)", id="every step done: killed in the final wait"),
])
def test_phase_of_a_killed_run_is_read_from_its_progress_lines(stderr, phase):
    assert phase_of(stderr) == phase


def test_four_kills_each_converge_in_one_rerun_without_duplicates(devcloud):
    campaign = Campaign(kills=4, seed=13, parallel=2, admin_cloud=devcloud.cloud_name, adaptive=False, max_cycles=2,
                        forced=[("apply", 1.5), ("apply", 7.0), ("destroy", 2.0), ("destroy", 4.0)],
                        progress=lambda m: print(m, file=sys.stderr))
    report = campaign.run()
    print(table(report))
    assert report["left"] == [] and report["crashes"] == [], report
    assert report["kills"] >= 3, f"the kills must land while the commands run: {report}"
    assert report["early"] >= 1, "one kill in the first 3 s"
    assert report["by_command"].get("destroy", 0) >= 1, "one kill during destroy"
    assert report["converged"] == report["kills"], report["failures"]
    assert report["duplicates"] == 0 and report["orphans"] == 0, report["failures"]
    assert report["fip_changes"] == 0 and report["plan_not_empty"] == 0, report["failures"]
