"""Approval rules as data: who may decide and how many distinct approvers a version needs."""

import pytest
import yaml

from gcloudctl.controller import approvals
from gcloudctl.errors import Forbidden, InvalidInput

from .conftest import BYT_APPROVER1, PEOPLE, load_model, request_doc, request_text

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
    # id, caller, submitter's user id, already approved (user ids), refused?, reason
    ("approver", "byt_approver1", "u-byt-req", set(), False, "a BYT approver may approve"),
    ("other-agency-approver", "btc_user", "u-byt-req", set(), True, "a BTC approver is not a BYT approver"),
    ("no-role", "byt_reader", "u-byt-req", set(), True, "in the agency's domain without gcloud-approver"),
    ("requester-role", "byt_requester", "u-x", set(), True, "gcloud-requester does not approve"),
    ("submitter", "byt_approver_requester", "u-byt-both", set(), True, "who submitted (by user id) may not decide"),
    ("twice", "byt_approver1", "u-byt-req", {"u-byt-app1"}, True, "two-person rule needs distinct user ids"),
    ("second-distinct", "byt_approver2", "u-byt-req", {"u-byt-app1"}, False, "a second distinct approver"),
    ("operator-with-token", "operator", "u-byt-req", set(), True, "an authenticated operator is no agency approver"),
    ("break-glass", "break_glass", "u-byt-req", set(), False, "break-glass counts as one approver"),
    ("break-glass-twice", "break_glass", "u-byt-req", {"os:ops"}, True, "but only once"),
]


@pytest.mark.parametrize("case_id,who,submitted_by_id,already,refused,reason", APPROVERS,
                         ids=[c[0] for c in APPROVERS])
def test_check_approver(rules, case_id, who, submitted_by_id, already, refused, reason):
    call = lambda: approvals.check_approver(rules, caller=PEOPLE[who], agency_code="BYT",  # noqa: E731
                                            submitted_by_id=submitted_by_id, already_ids=already)
    if refused:
        with pytest.raises(Forbidden):
            call()
    else:
        call()


def test_typed_names_do_not_count(rules):
    """The same name under another user id is another person; another name under the same id is not."""
    impostor = type(BYT_APPROVER1)(**{**BYT_APPROVER1.__dict__, "user_id": "u-other"})
    approvals.check_approver(rules, caller=impostor, agency_code="BYT", submitted_by_id="u-byt-app1",
                             already_ids={"u-byt-app1"})  # no error: a distinct identity


def test_rules_version_names_and_fingerprints_the_rules(rules):
    version = approvals.rules_version(rules)
    assert version.startswith("default@1#")
    edited = approvals.parse_rules(approvals.default_rules_text().replace("approvalsRequired: 1", "approvalsRequired: 3"))
    assert approvals.rules_version(edited) != version, "an edit without a version bump still shows"


def test_rules_are_data(rules):
    text = approvals.default_rules_text().replace("approvalsRequired: 1", "approvalsRequired: 3")
    stricter = approvals.parse_rules(text)
    need = approvals.requirement(stricter, load_model(request_text(**NO_OPEN, **{"spec.servers": []})), None)
    assert need.approvals == 3


def test_bad_rules_file_is_invalid_input():
    with pytest.raises(InvalidInput):
        approvals.parse_rules("apiVersion: gcloud.gov.vn/v1\nkind: ApprovalRules\nmetadata: {name: x}\nspec: {bogus: 1}\n")


def _without_quotas(**changes):
    doc = request_doc(**changes)
    doc["spec"].pop("quotas", None)
    return load_model(yaml.safe_dump(doc))


def test_versions_without_quotas_compare_their_derived_quotas(rules):
    """`spec.quotas` is optional (derived from the servers): two such versions are compared by the
    quotas they get, so tripling the servers escalates and an unchanged version does not."""
    from gcloudctl import pipeline

    config = pipeline.Config.load()
    context = approvals.Context(catalog=config.catalog, agencies=config.agencies)
    old = _without_quotas(**NO_OPEN)
    servers = [dict(s, count=s.get("count", 1) * 3) for s in request_doc()["spec"]["servers"]]
    tripled = _without_quotas(**NO_OPEN, **{"spec.servers": servers})
    assert approvals.requirement(rules, old, old, context=context).approvals == 1
    need = approvals.requirement(rules, tripled, old, context=context)
    assert need.approvals == 2 and any("quota" in reason for reason in need.reasons)
