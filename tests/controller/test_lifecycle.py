"""Lifecycle tables: every allowed move and a selection of refused ones, each with a reason."""

import pytest

from gcloudctl.controller.lifecycle import Phase, Step, VersionState, next_phase, next_version_state
from gcloudctl.errors import Refused

ALLOWED = [
    ("new-submit", None, Step.SUBMIT, Phase.PENDING_APPROVAL, "a first submission waits for approval"),
    ("resubmit-pending", Phase.PENDING_APPROVAL, Step.SUBMIT, Phase.PENDING_APPROVAL, "a newer version replaces the pending one"),
    ("approve", Phase.PENDING_APPROVAL, Step.APPROVE, Phase.APPROVED, "the last approval makes it approved"),
    ("reject", Phase.PENDING_APPROVAL, Step.REJECT, Phase.REJECTED, "a rejected first version ends the tenant"),
    ("provision", Phase.APPROVED, Step.PROVISION, Phase.PROVISIONING, "the reconciler starts applying"),
    ("succeed", Phase.PROVISIONING, Step.SUCCEED, Phase.READY, "observed matches desired"),
    ("fail", Phase.PROVISIONING, Step.FAIL, Phase.FAILED, "apply failed"),
    ("retry-after-fail", Phase.FAILED, Step.PROVISION, Phase.PROVISIONING, "failed tenants are retried"),
    ("update-ready", Phase.READY, Step.SUBMIT, Phase.READY, "an update is pending while the tenant keeps serving"),
    ("reject-update", Phase.READY, Step.REJECT, Phase.READY, "a rejected update leaves the running generation alone"),
    ("approve-update", Phase.READY, Step.APPROVE, Phase.APPROVED, "an approved update is applied next"),
    ("delete-ready", Phase.READY, Step.DELETE, Phase.DELETING, "deletion destroys the resources first"),
    ("delete-pending", Phase.PENDING_APPROVAL, Step.DELETE, Phase.DELETED, "nothing was created yet"),
    ("expire", Phase.READY, Step.EXPIRE, Phase.DELETING, "expiry destroys like a delete"),
    ("destroyed", Phase.DELETING, Step.DESTROYED, Phase.DELETED, "nothing is left"),
    ("retry-destroy", Phase.DELETING, Step.FAIL, Phase.DELETING, "a failed destroy is retried"),
    ("resubmit-deleted", Phase.DELETED, Step.SUBMIT, Phase.PENDING_APPROVAL, "a deleted name can be used again"),
    ("resubmit-expired", Phase.EXPIRED, Step.SUBMIT, Phase.PENDING_APPROVAL, "an expired name can be used again"),
    ("resubmit-rejected", Phase.REJECTED, Step.SUBMIT, Phase.PENDING_APPROVAL, "a rejected request can be fixed and resubmitted"),
]

REFUSED = [
    ("approve-unknown", None, Step.APPROVE, "nothing to approve"),
    ("approve-deleted", Phase.DELETED, Step.APPROVE, "a deleted tenant has no pending version"),
    ("submit-deleting", Phase.DELETING, Step.SUBMIT, "a tenant being deleted cannot be updated"),
    ("delete-deleted", Phase.DELETED, Step.DELETE, "already gone"),
    ("provision-pending", Phase.PENDING_APPROVAL, Step.PROVISION, "nothing is provisioned before approval"),
    ("provision-rejected", Phase.REJECTED, Step.PROVISION, "a rejected request is never provisioned"),
    ("succeed-deleted", Phase.DELETED, Step.SUCCEED, "a deleted tenant cannot become ready"),
    ("expire-pending", Phase.PENDING_APPROVAL, Step.EXPIRE, "nothing to expire before approval"),
]


@pytest.mark.parametrize("case_id,current,step,expected,reason", ALLOWED, ids=[c[0] for c in ALLOWED])
def test_allowed_moves(case_id, current, step, expected, reason):
    assert next_phase(current, step) is expected, reason


@pytest.mark.parametrize("case_id,current,step,reason", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_moves(case_id, current, step, reason):
    with pytest.raises(Refused):
        next_phase(current, step)


@pytest.mark.parametrize("state,step,expected", [
    (VersionState.PENDING, Step.APPROVE, VersionState.APPROVED),
    (VersionState.PENDING, Step.REJECT, VersionState.REJECTED),
    (VersionState.PENDING, Step.SUBMIT, VersionState.SUPERSEDED),
])
def test_version_moves(state, step, expected):
    assert next_version_state(state, step) is expected


@pytest.mark.parametrize("state", [VersionState.APPROVED, VersionState.REJECTED, VersionState.SUPERSEDED])
@pytest.mark.parametrize("step", [Step.APPROVE, Step.REJECT])
def test_decided_versions_stay_decided(state, step):
    with pytest.raises(Refused):
        next_version_state(state, step)
