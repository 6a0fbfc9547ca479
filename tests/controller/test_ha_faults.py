"""Two controller replicas on PostgreSQL, the real devcloud behind the fault injector, one replica
SIGKILLed in the middle of an apply and restarted (issue 13, campaign (c); bench/ha_campaign.py
at full size). Tenants are submitted and approved through the request service. Every tenant
converges (ready at generation 1, and a plan made as admin past the proxies is empty), another
replica finishes what the killed one was applying, no tenant is applied by two replicas at once,
every apply ran under its replica's lease (holder and fencing token read as it started), the
audit chain verifies. Their deletions are then approved through the service and carried out; nothing of them may be left."""

from __future__ import annotations

import sys

import pytest

from bench.ha_campaign import campaign, table
from gcloudctl.devcloud.layout import Layout

pytestmark = [pytest.mark.devcloud, pytest.mark.postgres, pytest.mark.slow]


def test_two_replicas_under_faults_one_killed_every_tenant_converges_never_applied_twice(devcloud, postgres_url):
    # the kill: from a seeded instant in the first second, the first moment replica A is applying (a later
    # instant can miss every apply: both small tenants may already be ready)
    # the deletions go through the service too: approved while the replicas run (a deletion approved during a
    # reconcile was once undone by its status write: tests/controller/test_deletion_race.py)
    report = campaign(postgres_url, tenants=2, rate=0.10, seed=7, lease=3.0, kill_window=(0.0, 1.0), servers=False,
                      timeout=60, interval=5.0, workers=1, delete=True, agencies=("BTC",), admin_cloud=devcloud.cloud_name, layout=Layout(devcloud.dir),
                      progress=lambda m: print(m, file=sys.stderr))
    print(table(report))
    assert report.converged == 2 and not report.plan_not_empty, (report.errors, report.plan_not_empty)
    assert report.deleted == 2, report.errors  # both approved deletions carried out
    assert not report.leftovers, (report.errors, report.leftovers)
    assert report.inflight_at_kill, "the replica was killed in the middle of an apply"
    assert set(report.inflight_at_kill) <= set(report.taken_over), "another replica finished what it was applying"
    assert report.overlaps == [], f"applied by two replicas at once: {report.overlaps}"
    assert report.unfenced == [], f"applies not under the applier's lease: {report.unfenced}"
    assert report.audit_ok and report.audit_records > 0
    assert sum(report.faults.values()) > 0, "faults were injected"
    assert set(report.applies) & {"A", "A2"} and "B" in report.applies, f"both replicas worked: {report.applies}"
