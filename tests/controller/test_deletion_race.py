"""A deletion approved while a reconcile of the same tenant is running is not undone by that
reconcile's status write (found by bench/ha_campaign.py, issue 13 campaign (c): the periodic
reconcile of a ready tenant wrote `ready` over `deleting`, the deletion was lost and the tenant
stayed up). The deletion keeps the generation, so the generation check alone did not catch it."""

from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner

from .conftest import BYT_APPROVER1, BYT_REQUESTER, OPERATOR, delete_approved, request_text
from .fakes import FakeWorld

NAME = "byt-his-staging"
SMALL = {"spec.securityGroups": [{"name": "web", "rules": []}], "spec.servers": []}


class RacingWorld(FakeWorld):
    """Runs `during_plan` once, in the middle of the next plan (as a person approving meanwhile)."""

    during_plan = None

    def plan(self, request):
        hook, self.during_plan = self.during_plan, None
        if hook:
            hook()
        return super().plan(request)


def test_a_deletion_approved_while_a_reconcile_plans_is_carried_out(service, store, clock, sealer):
    world = RacingWorld()
    runner = Runner(store, Reconciler(store, world, holder="ctl-a", interval=60, clock=clock, unseal=sealer.unseal),
                    clock=clock, workers=1, lease_seconds=30)
    version = service.submit(request_text(NAME, **SMALL), caller=BYT_REQUESTER)
    service.approve(version["id"], caller=BYT_APPROVER1, reason="ok")
    runner.run_once()
    assert service.status(NAME, caller=OPERATOR)["phase"] == "ready" and world.resources[NAME]

    world.during_plan = lambda: delete_approved(service, NAME, approvers=(BYT_APPROVER1,))
    clock.advance(61)
    runner.run_once(only_due=True)  # the periodic reconcile: the deletion is approved while it plans
    assert service.status(NAME, caller=OPERATOR)["phase"] == "deleting", "the reconcile's write undid the deletion"

    runner.run_once(only_due=True)
    assert service.status(NAME, caller=OPERATOR)["phase"] == "deleted"
    assert not world.resources.get(NAME), "the tenant was destroyed"
