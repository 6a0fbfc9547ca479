"""Stage: controller (lifecycle). Phases of a tenant and states of a request version, as tables.

Called by `service` (submit/approve/reject/delete) and `reconciler` (provision/succeed/fail,
destroy, expire). Pure: no I/O, no clock; an illegal move raises `Refused` with the reason.

A tenant moves through::

    submit -> pending-approval -> approve | reject -> approved -> provisioning -> ready | failed
    request-delete (a deletion version, pending approval; the phase stays)
      -> delete (its last approval) -> deleting -> deleted     (pending-approval -> deleted)
    expiresAt passed -> deleting -> expired

An update of a live tenant is a new *request version* (generation) that is pending approval
while the tenant keeps serving the last approved generation: the version table says what happens
to versions, the phase table what happens to the tenant.
"""

from __future__ import annotations

import enum

from gcloudctl.errors import Refused


class Phase(enum.StrEnum):
    PENDING_APPROVAL = "pending-approval"
    REJECTED = "rejected"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"
    EXPIRED = "expired"


class Step(enum.StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"  # the last approval a version needed was given
    REJECT = "reject"
    PROVISION = "provision"  # the reconciler starts applying a generation
    SUCCEED = "succeed"  # observed == desired
    FAIL = "fail"  # apply failed (transient or terminal)
    REQUEST_DELETE = "request-delete"  # a deletion is filed; it waits for approval like any change
    DELETE = "delete"  # the deletion got its last approval
    EXPIRE = "expire"  # expiresAt passed: destroy, then EXPIRED
    DESTROYED = "destroyed"  # nothing owned by the tenant is left


class VersionState(enum.StrEnum):
    PENDING = "pending-approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # a newer version was submitted before this one was decided


class VersionKind(enum.StrEnum):
    CHANGE = "change"  # a new desired state of the tenant (a TenantRequest)
    DELETE = "delete"  # the tenant's destruction (a TenantDeletion), approved like any change


#: Phases in which the cloud holds (or may hold) resources the controller must keep converged.
LIVE = frozenset({Phase.APPROVED, Phase.PROVISIONING, Phase.READY, Phase.FAILED})
#: Phases after which the tenant name may be submitted afresh.
FINISHED = frozenset({Phase.REJECTED, Phase.DELETED, Phase.EXPIRED})
#: Phases the reconciler works on.
RECONCILABLE = LIVE | {Phase.DELETING}

_STAY = object()  # marker: the phase does not change

# (current phase or None for a tenant never seen, step) -> next phase
_PHASES: dict[tuple[Phase | None, Step], Phase | object] = {
    (None, Step.SUBMIT): Phase.PENDING_APPROVAL,
    (Phase.PENDING_APPROVAL, Step.SUBMIT): _STAY,  # a newer version replaces the pending one
    (Phase.PENDING_APPROVAL, Step.APPROVE): Phase.APPROVED,
    (Phase.PENDING_APPROVAL, Step.REJECT): Phase.REJECTED,
    (Phase.PENDING_APPROVAL, Step.DELETE): Phase.DELETED,  # nothing was ever created
    **{(p, Step.SUBMIT): Phase.PENDING_APPROVAL for p in FINISHED},
    # live tenants: an update is pending while the approved generation keeps being served
    **{(p, Step.SUBMIT): _STAY for p in LIVE},
    **{(p, Step.APPROVE): Phase.APPROVED for p in LIVE},
    **{(p, Step.REJECT): _STAY for p in LIVE},
    **{(p, Step.PROVISION): Phase.PROVISIONING for p in LIVE},
    **{(p, Step.SUCCEED): Phase.READY for p in LIVE},
    **{(p, Step.FAIL): Phase.FAILED for p in LIVE},
    **{(p, Step.DELETE): Phase.DELETING for p in LIVE},
    **{(p, Step.EXPIRE): Phase.DELETING for p in LIVE},
    **{(p, Step.REQUEST_DELETE): _STAY for p in LIVE | {Phase.PENDING_APPROVAL}},
    (Phase.DELETING, Step.DELETE): _STAY,
    (Phase.DELETING, Step.FAIL): _STAY,  # a failed destroy is retried
    (Phase.DELETING, Step.PROVISION): _STAY,
    (Phase.DELETING, Step.DESTROYED): Phase.DELETED,
}

# (version state, step) -> next version state
_VERSIONS: dict[tuple[VersionState, Step], VersionState] = {
    (VersionState.PENDING, Step.APPROVE): VersionState.APPROVED,
    (VersionState.PENDING, Step.REJECT): VersionState.REJECTED,
    (VersionState.PENDING, Step.SUBMIT): VersionState.SUPERSEDED,
}


def next_phase(current: Phase | None, step: Step) -> Phase | None:
    """The tenant's phase after `step`; raises `Refused` when the step is not allowed now."""
    target = _PHASES.get((current, step))
    if target is None:
        state = current.value if current else "unknown"
        raise Refused(f"cannot {step.value} a tenant that is {state}", hint=_HINTS.get(step))
    return current if target is _STAY else target  # type: ignore[return-value]


def next_version_state(current: VersionState, step: Step) -> VersionState:
    """The request version's state after `step`; raises `Refused` when it was already decided."""
    target = _VERSIONS.get((current, step))
    if target is None:
        raise Refused(f"cannot {step.value} a request version that is {current.value}",
                      hint="list the versions with `gcloudctl request list` and act on the pending one")
    return target


def finished_phase_after_destroy(expiring: bool) -> Phase:
    """A destroy ends in EXPIRED when it was caused by expiresAt, else DELETED."""
    return Phase.EXPIRED if expiring else Phase.DELETED


_HINTS = {
    Step.SUBMIT: "wait until the deletion has finished, then submit again",
    Step.APPROVE: "only a pending request version can be approved",
    Step.DELETE: "the tenant is already gone",
    Step.REQUEST_DELETE: "the tenant is already gone or being deleted",
}
