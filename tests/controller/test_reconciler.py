"""The reconciler against the pipeline test double: assert the world and the written status."""

from datetime import timedelta

import pytest

from gcloudctl.controller.backoff import Backoff
from gcloudctl.controller.reconciler import Reconciler, Result
from gcloudctl.controller.runner import Runner
from gcloudctl.errors import CloudError, Refused

from .conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR, request_text
from .fakes import FakeWorld, desired

SMALL = {"spec.securityGroups": [{"name": "web", "rules": [
    {"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"}]},
    {"name": "db", "rules": []}]}
OPEN_22 = ("rule/web/ingress/tcp/22/0.0.0.0/0")


@pytest.fixture
def world():
    return FakeWorld()


@pytest.fixture
def runner(store, world, clock, sealer):
    reconciler = Reconciler(store, world, holder="ctl-a", interval=60, clock=clock, unseal=sealer.unseal,
                            backoff=Backoff(base=2, factor=2, cap=300, rand=lambda: 0.0))
    return Runner(store, reconciler, clock=clock, workers=2, lease_seconds=30)


def approve(service, name="byt-his-staging", **changes):
    version = service.submit(request_text(name, **SMALL, **changes), caller=BYT_REQUESTER)
    for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
        service.approve(version["id"], caller=approver, reason="ok")
    return version


def conditions(service, name="byt-his-staging"):
    return {c["type"]: c for c in service.status(name, caller=OPERATOR)["conditions"]}


def test_approved_tenant_is_provisioned_and_audited(service, runner, world):
    approve(service)
    summary = runner.run_once()
    assert summary.counts() == {"applied": 1}
    request = world.load(request_text(**SMALL), "x")
    assert world.resources["byt-his-staging"] == desired(request)
    status = service.status("byt-his-staging", caller=OPERATOR)
    assert (status["phase"], status["observedGeneration"]) == ("ready", 1)
    assert {k: v["status"] for k, v in conditions(service).items()} == {"Ready": "True", "Synced": "True", "Drifted": "False"}
    applied = [r for r in service.audit_export(caller=OPERATOR) if r["action"] == "tenant.apply"]
    assert len(applied) == len(desired(request)) and all(r["actor"] == "ctl-a" for r in applied)
    assert service.audit_verify(caller=OPERATOR)["ok"]


def test_converged_tenant_costs_no_writes(service, runner, world):
    approve(service)
    runner.run_once()
    writes = sum(world.writes.values())
    summary = runner.run_once()
    assert summary.counts() == {"converged": 1}
    assert sum(world.writes.values()) == writes


def test_pending_and_rejected_tenants_are_not_provisioned(service, runner, world):
    service.submit(request_text("pending-one", **SMALL), caller=BYT_REQUESTER)
    rejected = service.submit(request_text("rejected-one", **SMALL), caller=BYT_REQUESTER)
    service.reject(rejected["id"], caller=BYT_APPROVER1, reason="no")
    assert runner.run_once().outcomes == []
    assert not any(world.resources.values())


def test_drift_enforce_repairs_within_one_cycle(service, runner, world):
    approve(service)
    runner.run_once()
    world.resources["byt-his-staging"].add(OPEN_22)  # a rule opened by hand
    world.resources["byt-his-staging"].discard("server/web-1")  # a server deleted by hand
    summary = runner.run_once()
    assert summary.counts() == {"drift-repaired": 1}
    assert OPEN_22 not in world.resources["byt-his-staging"]
    assert "server/web-1" in world.resources["byt-his-staging"]
    actions = [r["action"] for r in service.audit_export(caller=OPERATOR)]
    assert actions.count("tenant.drift-repair") == 2
    assert "DriftRepaired" in [e["reason"] for e in service.status("byt-his-staging", caller=OPERATOR)["events"]]


def test_drift_report_records_condition_and_event_once(service, runner, world, clock):
    approve(service, **{"spec.driftPolicy": "report"})
    runner.run_once()
    world.resources["byt-his-staging"].add(OPEN_22)
    assert runner.run_once().counts() == {"drift-reported": 1}
    assert OPEN_22 in world.resources["byt-his-staging"], "report never changes the cloud"
    drifted = conditions(service)["Drifted"]
    assert drifted["status"] == "True" and drifted["reason"] == "DriftDetected"
    clock.advance(120)
    runner.run_once()
    events = [e for e in service.status("byt-his-staging", caller=OPERATOR)["events"]
              if e["reason"] == "DriftDetected"]
    assert len(events) == 1, "the same diff is reported once, not on every poll"
    assert [r["action"] for r in service.audit_export(caller=OPERATOR)].count("tenant.drift-report") == 1


def test_transient_errors_back_off_exponentially_then_recover(service, runner, world, clock):
    approve(service)
    world.fail_plan["byt-his-staging"] = [CloudError("503", transient=True)] * 3
    delays = []
    for _ in range(3):
        start = clock()
        runner.run_once(only_due=False)
        delays.append((_next(service) - start).total_seconds())
        clock.now = _next(service)
    assert delays == [2.0, 4.0, 8.0]
    assert service.status("byt-his-staging", caller=OPERATOR)["phase"] == "failed"
    runner.run_once(only_due=True)
    status = service.status("byt-his-staging", caller=OPERATOR)
    assert status["phase"] == "ready" and status["lastError"] is None


def test_retry_after_is_respected(service, runner, world, clock):
    approve(service)
    world.fail_plan["byt-his-staging"] = [CloudError("429", transient=True, retry_after=42)]
    runner.run_once()
    assert (_next(service) - clock()).total_seconds() == 42


def test_jitter_stays_within_bounds():
    backoff = Backoff(base=2, factor=2, cap=300, jitter=0.5, rand=lambda: 1.0)
    assert backoff.delay(1) == 1.0 and backoff.delay(3) == 4.0 and backoff.delay(20) == 150.0


def test_terminal_error_waits_for_new_generation(service, runner, world, clock):
    approve(service)
    world.fail_plan["byt-his-staging"] = [Refused("quota pre-flight: cores 40 > 32")]
    assert runner.run_once().counts() == {"terminal-error": 1}
    status = service.status("byt-his-staging", caller=OPERATOR)
    assert status["phase"] == "failed" and status["nextReconcileAt"] is None
    calls = dict(world.calls)
    clock.advance(3600)
    assert runner.run_once(only_due=True).outcomes == []
    assert runner.run_once().counts() == {"blocked": 1}
    assert dict(world.calls) == calls, "a blocked tenant is not observed again"
    approve(service, **{"metadata.description": "fixed"})
    assert runner.run_once(only_due=True).counts() == {"applied": 1}
    assert service.status("byt-his-staging", caller=OPERATOR)["phase"] == "ready"


def test_update_applies_only_after_approval(service, runner, world):
    approve(service)
    runner.run_once()
    extra = {"spec.networks": [{"name": "app", "cidr": "10.40.1.0/24"}, {"name": "db"}, {"name": "extra"}]}
    version = service.submit(request_text(**SMALL, **extra), caller=BYT_REQUESTER)
    runner.run_once()
    assert "network/extra" not in world.resources["byt-his-staging"]
    service.approve(version["id"], caller=BYT_APPROVER1, reason="ok")
    runner.run_once(only_due=True)
    assert "network/extra" in world.resources["byt-his-staging"]
    assert service.status("byt-his-staging", caller=OPERATOR)["observedGeneration"] == 2


def test_delete_destroys_everything(service, runner, world):
    approve(service)
    runner.run_once()
    deletion = service.delete("byt-his-staging", caller=BYT_APPROVER1, reason="done")
    assert runner.run_once(only_due=True).outcomes == [], "a deletion waits for its approval"
    assert world.resources["byt-his-staging"]
    service.approve(deletion["id"], caller=BYT_APPROVER2, reason="ok")
    assert runner.run_once(only_due=True).counts() == {"destroyed": 1}
    assert world.resources["byt-his-staging"] == set()
    assert service.status("byt-his-staging", caller=OPERATOR)["phase"] == "deleted"
    assert runner.run_once().outcomes == []


def test_expired_tenant_is_destroyed_in_one_cycle(service, runner, world, clock):
    approve(service, **{"spec.expiresAt": (clock() + timedelta(hours=1)).isoformat()})
    runner.run_once()
    assert world.resources["byt-his-staging"]
    clock.advance(3601)
    assert runner.run_once().counts() == {"destroyed": 1}
    assert world.resources["byt-his-staging"] == set()
    assert service.status("byt-his-staging", caller=OPERATOR)["phase"] == "expired"
    phases = [r["data"].get("phase") for r in service.audit_export(caller=OPERATOR)
              if r["action"] == "tenant.phase"]
    assert phases[-1] == "expired"


def test_schedule_polls_after_interval(service, runner, world, clock):
    approve(service)
    runner.run_once(only_due=True)
    clock.advance(30)
    assert runner.run_once(only_due=True).outcomes == []
    clock.advance(31)
    assert runner.run_once(only_due=True).counts() == {"converged": 1}


def test_tenant_leased_by_another_controller_is_left_alone(service, runner, world, store, clock):
    approve(service)
    with store.tx() as tx:
        [claim] = tx.claim_due("ctl-b", clock(), 10, 30)
    assert runner.run_once().outcomes == []
    assert not world.resources["byt-his-staging"]
    clock.advance(31)  # ctl-b died: its lease expires
    assert runner.run_once().counts() == {"applied": 1}


def test_lost_lease_means_no_apply(service, runner, world, store, clock):
    approve(service)
    original = world.plan

    def plan_then_lose_lease(request):
        clock.advance(31)  # the lease expires while observing (e.g. a long GC pause)...
        with store.tx() as tx:
            tx.claim_due("ctl-b", clock(), 10, 30)  # ...and another controller takes it
        return original(request)

    world.plan = plan_then_lose_lease
    assert runner.run_once().counts() == {"lost-lease": 1}
    assert sum(world.writes.values()) == 0


def _next(service):
    from datetime import datetime

    next_at = service.status("byt-his-staging", caller=OPERATOR)["nextReconcileAt"]
    return datetime.fromisoformat(next_at.replace("Z", "+00:00"))


def test_a_crash_backs_off_instead_of_spinning(service, runner, world, clock):
    approve(service)
    world.fail_plan["byt-his-staging"] = [AttributeError("bug in a driver")]
    assert runner.run_once().counts() == {"transient-error": 1}
    status = service.status("byt-his-staging", caller=OPERATOR)
    assert "AttributeError" in status["lastError"]
    assert (_next(service) - clock()).total_seconds() == 2.0
    assert runner.run_once(only_due=True).outcomes == []
