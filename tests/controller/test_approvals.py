"""Approval rules as data: who may decide and how many distinct approvers a version needs."""

import pytest

from gcloudctl.controller import approvals
from gcloudctl.errors import InvalidInput, Refused

from .conftest import load_model, request_text

BASE = {}
OPEN_22 = {"spec.securityGroups": [{"name": "web", "rules": [
    {"direction": "ingress", "protocol": "tcp", "ports": "22", "remote": "0.0.0.0/0"}]}]}
NO_OPEN = {"spec.securityGroups": [{"name": "web", "rules": [
    {"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"}]}]}


def quotas(**overrides):
    base = {"instances": 10, "cores": 32, "ramMiB": 65536, "floatingIPs": 2, "volumes": 10, "volumeGiB": 500}
    return {"spec.quotas": base | overrides}


REQUIREMENTS = [
    # id, previous changes (None = first version), new changes, approvals, reason
    ("first-level2-no-open", None, {"spec.securityGroups": [], "spec.servers": []} , 1,
     "level 2, no ingress from anywhere: one approver"),
    ("first-opens-443", None, BASE, 2, "the example opens 443 from 0.0.0.0/0: a first version opens it"),
    ("level3", None, {"spec.classification": 3, **NO_OPEN, "spec.servers": []}, 2, "classification 3 needs two"),
    ("level3-update", NO_OPEN, {"spec.classification": 3, **NO_OPEN, "spec.servers": []}, 2,
     "level applies to updates too"),
    ("update-keeps-open-rule", BASE, BASE, 1, "the rule was already open: nothing new opens"),
    ("update-opens-22", NO_OPEN | {"spec.servers": []}, OPEN_22 | {"spec.servers": []}, 2, "a new rule from anywhere"),
    ("update-closes", OPEN_22 | {"spec.servers": []}, NO_OPEN | {"spec.servers": []}, 1, "closing ingress is not an escalation"),
    ("quota-plus-50", BASE, quotas(cores=48), 1, "exactly +50 % is not more than 50 %"),
    ("quota-plus-51", BASE, quotas(cores=49), 2, "cores 32 -> 49 is more than +50 %"),
    ("quota-from-zero", quotas(volumes=0), quotas(volumes=1), 2, "any raise from zero is more than 50 %"),
    ("quota-lowered", BASE, quotas(cores=8), 1, "lowering never escalates"),
]


@pytest.mark.parametrize("case_id,old,new,expected,reason", REQUIREMENTS, ids=[c[0] for c in REQUIREMENTS])
def test_requirement(rules, case_id, old, new, expected, reason):
    previous = load_model(request_text(**old)) if old is not None else None
    need = approvals.requirement(rules, load_model(request_text(**new)), previous)
    assert need.approvals == expected, reason
    assert (len(need.reasons) > 0) == (expected > 1)


APPROVERS = [
    # id, actor, requester, submitted_by, already, refused?, reason
    ("approver", "tran.thi.b", "nguyen.van.a", "nguyen.van.a", set(), False, "a BYT approver may approve"),
    ("non-approver", "hoang.van.e", "nguyen.van.a", "nguyen.van.a", set(), True, "a BTC approver is not a BYT approver"),
    ("stranger", "mallory", "nguyen.van.a", "nguyen.van.a", set(), True, "not in any list"),
    ("self-approval", "tran.thi.b", "tran.thi.b", "tran.thi.b", set(), True, "an approver cannot approve their own request"),
    ("submitter", "tran.thi.b", "nguyen.van.a", "tran.thi.b", set(), True, "who submitted may not approve either"),
    ("twice", "tran.thi.b", "nguyen.van.a", "nguyen.van.a", {"tran.thi.b"}, True, "two-person rule needs distinct people"),
    ("second-distinct", "le.van.c", "nguyen.van.a", "nguyen.van.a", {"tran.thi.b"}, False, "a second distinct approver"),
]


@pytest.mark.parametrize("case_id,actor,requester,submitted_by,already,refused,reason", APPROVERS,
                         ids=[c[0] for c in APPROVERS])
def test_check_approver(rules, agencies, case_id, actor, requester, submitted_by, already, refused, reason):
    call = lambda: approvals.check_approver(rules, actor=actor, agency_code="BYT", agency=agencies.get("BYT"),  # noqa: E731
                                            requester=requester, submitted_by=submitted_by, already=already)
    if refused:
        with pytest.raises(Refused):
            call()
    else:
        call()


def test_unknown_agency_has_no_approvers(rules):
    with pytest.raises(Refused, match="not in the agency registry"):
        approvals.check_approver(rules, actor="x", agency_code="ZZZ", agency=None, requester="a",
                                 submitted_by="a", already=set())


def test_rules_are_data(rules):
    text = approvals.default_rules_text().replace("approvalsRequired: 1", "approvalsRequired: 3")
    stricter = approvals.parse_rules(text)
    need = approvals.requirement(stricter, load_model(request_text(**NO_OPEN, **{"spec.servers": []})), None)
    assert need.approvals == 3


def test_bad_rules_file_is_invalid_input():
    with pytest.raises(InvalidInput):
        approvals.parse_rules("apiVersion: gcloud.gov.vn/v1\nkind: ApprovalRules\nmetadata: {name: x}\nspec: {bogus: 1}\n")
