"""Request intake through the store: who may submit, see, approve, reject and delete what, with
Keystone identities (`Caller`), and what the audit trail keeps of it."""

import json

import pytest

from gcloudctl.errors import Forbidden, InvalidInput, NotFound, Refused

from .conftest import (
    BREAK_GLASS, BTC_USER, BYT_APPROVER1, BYT_APPROVER2, BYT_APPROVER_REQUESTER, BYT_REQUESTER,
    OPERATOR, PEOPLE, approve_all, delete_approved, request_text,
)

LEVEL2_CLOSED = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}
LEVEL3_CLOSED = {"spec.classification": 3, **LEVEL2_CLOSED}
NAME = "byt-his-staging"


def submit(service, caller=BYT_REQUESTER, **changes):
    return service.submit(request_text(**changes), caller=caller)


def test_single_approval_activates_generation(service):
    version = submit(service, **LEVEL2_CLOSED)
    assert (version["state"], version["generation"], version["approvalsRequired"]) == ("pending-approval", 1, 1)
    assert version["kind"] == "change" and version["rulesVersion"].startswith("default@1#")
    assert service.status(NAME, caller=BYT_REQUESTER)["phase"] == "pending-approval"
    approved = service.approve(version["id"], caller=BYT_APPROVER1, reason="ok")
    assert approved["state"] == "approved"
    assert approved["decisions"][0]["rulesVersion"] == version["rulesVersion"]
    status = service.status(NAME, caller=BYT_APPROVER1)
    assert (status["phase"], status["generation"], status["observedGeneration"]) == ("approved", 1, None)
    assert status["nextReconcileAt"] is not None


# --- who sees what: another agency's objects do not exist for it --------------------------------

CROSS_AGENCY = [
    # id, the use case called by the BTC user on a request id / tenant name, reason
    ("show", lambda s, rid, tenant: s.show(rid, caller=BTC_USER), "a version of another agency is not found"),
    ("approve", lambda s, rid, tenant: s.approve(rid, caller=BTC_USER, reason="x"),
     "an approver of another agency gets 404, not 403: no enumeration"),
    ("reject", lambda s, rid, tenant: s.reject(rid, caller=BTC_USER, reason="x"), "same for rejection"),
    ("delete", lambda s, rid, tenant: s.delete(tenant, caller=BTC_USER, reason="x"),
     "another agency's tenant cannot be deleted"),
    ("status", lambda s, rid, tenant: s.status(tenant, caller=BTC_USER), "nor its status read"),
    ("audit", lambda s, rid, tenant: s.audit_export(caller=BTC_USER, tenant=tenant), "nor its audit records"),
]


@pytest.mark.parametrize("case_id,call,reason", CROSS_AGENCY, ids=[c[0] for c in CROSS_AGENCY])
def test_other_agency_gets_not_found_as_if_absent(service, case_id, call, reason):
    version = approve_all(service, submit(service, **LEVEL2_CLOSED))
    with pytest.raises(NotFound) as real:
        call(service, version["id"], NAME)
    with pytest.raises(NotFound) as absent:
        call(service, 999_999, "no-such-tenant")
    same = lambda e, rid, tenant: (e.message.replace(str(rid), "ID").replace(tenant, "T"), e.hint)  # noqa: E731
    assert same(real.value, version["id"], NAME) == same(absent.value, 999_999, "no-such-tenant"), reason
    assert service.status(NAME, caller=OPERATOR)["phase"] == "approved", "nothing changed"
    assert [v["state"] for v in service.list_versions(caller=OPERATOR)] == ["approved"]


def test_lists_and_audit_show_own_agency_only(service):
    byt = submit(service, **LEVEL2_CLOSED)
    service.approve(byt["id"], caller=BYT_APPROVER1, reason="ok")
    btc = service.submit(request_text("btc-web", **LEVEL2_CLOSED, **{"metadata.agency": "BTC",
                                                                  "metadata.requester": "hoang.van.e"}),
                         caller=BTC_USER)
    assert [v["id"] for v in service.list_versions(caller=BTC_USER)] == [btc["id"]]
    assert service.list_versions(caller=BTC_USER, tenant=NAME) == []
    assert {v["id"] for v in service.list_versions(caller=OPERATOR)} == {byt["id"], btc["id"]}
    assert {r["tenant"] for r in service.audit_export(caller=BTC_USER)} == {"btc-web"}
    assert {r["tenant"] for r in service.audit_export(caller=BYT_REQUESTER)} == {NAME}
    assert {r["tenant"] for r in service.audit_export(caller=OPERATOR)} == {NAME, "btc-web"}
    assert service.audit_verify(caller=BTC_USER)["ok"]


# --- submit ---------------------------------------------------------------------------------------

SUBMITTERS = [
    # id, caller, request agency, allowed?, reason
    ("requester-own-agency", "byt_requester", "BYT", True, "gcloud-requester of BYT submits for BYT"),
    ("approver-only", "byt_approver1", "BYT", False, "an approver without the requester role may not submit"),
    ("no-role", "byt_reader", "BYT", False, "a person of the agency without a gcloud role may not"),
    ("other-agency", "btc_user", "BYT", False, "a BTC requester may not submit for BYT"),
    ("operator", "operator", "BYT", True, "platform operators may submit for any agency"),
    ("break-glass", "break_glass", "BYT", True, "the OS user on the direct path acts as an operator"),
]


@pytest.mark.parametrize("case_id,who,agency,allowed,reason", SUBMITTERS, ids=[c[0] for c in SUBMITTERS])
def test_who_may_submit(service, case_id, who, agency, allowed, reason):
    caller = PEOPLE[who]
    if allowed:
        version = submit(service, caller=caller, **LEVEL2_CLOSED)
        assert version["submittedBy"] == caller.actor, reason
        return
    with pytest.raises(Forbidden) as refused:
        submit(service, caller=caller, **LEVEL2_CLOSED)
    if caller.agency and caller.agency != agency:
        assert f"belongs to agency {caller.agency}" in refused.value.message, "say which agency they belong to"
    assert service.list_versions(caller=OPERATOR) == [], "nothing stored"


def test_other_agency_cannot_take_tenant_name_and_learns_nothing(service):
    submit(service, **LEVEL2_CLOSED)
    with pytest.raises(Refused) as taken:
        service.submit(request_text(**LEVEL2_CLOSED, **{"metadata.agency": "BTC", "metadata.requester": "x.y"}),
                       caller=BTC_USER)
    assert "not available" in taken.value.message and "BYT" not in taken.value.message


# --- approve / reject --------------------------------------------------------------------------------

DECIDERS = [
    # id, submitter, decider, step, expected error (None = allowed), reason
    ("approver", "byt_requester", "byt_approver1", "approve", None, "a BYT approver approves a BYT version"),
    ("own-version", "byt_approver_requester", "byt_approver_requester", "approve", Forbidden,
     "the submitter (by user id) may never approve"),
    ("own-version-reject", "byt_approver_requester", "byt_approver_requester", "reject", Forbidden,
     "nor reject"),
    ("same-agency-no-role", "byt_requester", "byt_reader", "approve", Forbidden,
     "a same-agency caller lacking gcloud-approver: 403"),
    ("requester-role-only", "byt_approver_requester", "byt_requester", "approve", Forbidden,
     "gcloud-requester is not gcloud-approver"),
    ("other-agency-approver", "byt_requester", "btc_user", "approve", NotFound,
     "an approver of another agency does not see the version"),
    ("authenticated-operator", "byt_requester", "operator", "approve", Forbidden,
     "an operator with a token is not an agency approver"),
    ("break-glass", "byt_requester", "break_glass", "approve", None,
     "the break-glass OS user counts as one (recorded unauthenticated) approver"),
    ("break-glass-own", "break_glass", "break_glass", "approve", Forbidden,
     "and cannot approve what it submitted itself"),
]


@pytest.mark.parametrize("case_id,submitter,decider,step,error,reason", DECIDERS, ids=[c[0] for c in DECIDERS])
def test_who_may_decide(service, case_id, submitter, decider, step, error, reason):
    version = submit(service, caller=PEOPLE[submitter], **LEVEL2_CLOSED)
    decide = getattr(service, step)
    if error is None:
        assert decide(version["id"], caller=PEOPLE[decider], reason="ok")["state"] != "pending-approval", reason
        return
    with pytest.raises(error):
        decide(version["id"], caller=PEOPLE[decider], reason="ok")
    assert service.show(version["id"], caller=OPERATOR)["state"] == "pending-approval", reason


def test_two_person_rule_needs_distinct_approvers_by_user_id(service):
    version = submit(service, **LEVEL3_CLOSED)
    assert version["approvalsRequired"] == 2
    first = service.approve(version["id"], caller=BYT_APPROVER1, reason="1st")
    assert first["state"] == "pending-approval" and first["approvals"] == 1
    renamed = type(BYT_APPROVER1)(**{**BYT_APPROVER1.__dict__, "user_name": "someone.else"})
    for again in (BYT_APPROVER1, renamed):
        with pytest.raises(Forbidden, match="distinct"):
            service.approve(version["id"], caller=again, reason="again")
    assert service.status(NAME, caller=OPERATOR)["phase"] == "pending-approval"
    second = service.approve(version["id"], caller=BYT_APPROVER2, reason="2nd")
    assert second["state"] == "approved"
    assert service.status(NAME, caller=OPERATOR)["phase"] == "approved"


def test_break_glass_alone_cannot_satisfy_two_person_rule(service):
    version = submit(service, caller=BYT_REQUESTER, **LEVEL3_CLOSED)
    service.approve(version["id"], caller=BREAK_GLASS, reason="emergency")
    with pytest.raises(Forbidden, match="distinct"):
        service.approve(version["id"], caller=BREAK_GLASS, reason="emergency again")
    assert service.show(version["id"], caller=OPERATOR)["state"] == "pending-approval"


def test_reject_needs_reason_and_ends_first_version(service):
    version = submit(service, **LEVEL2_CLOSED)
    with pytest.raises(InvalidInput):
        service.reject(version["id"], caller=BYT_APPROVER1, reason=" ")
    rejected = service.reject(version["id"], caller=BYT_APPROVER1, reason="no budget")
    assert rejected["state"] == "rejected"
    assert service.status(NAME, caller=OPERATOR)["phase"] == "rejected"
    with pytest.raises(Refused):
        service.approve(version["id"], caller=BYT_APPROVER2, reason="too late")


def test_update_is_new_generation_needing_approval(service):
    first = submit(service, **LEVEL2_CLOSED)
    service.approve(first["id"], caller=BYT_APPROVER1, reason="ok")
    update = submit(service, **LEVEL2_CLOSED, **{"metadata.description": "v2"})
    assert (update["generation"], update["state"]) == (2, "pending-approval")
    status = service.status(NAME, caller=OPERATOR)
    assert (status["generation"], status["latestGeneration"]) == (1, 2), "gen 1 stays desired until gen 2 is approved"
    service.approve(update["id"], caller=BYT_APPROVER2, reason="ok")
    assert service.status(NAME, caller=OPERATOR)["generation"] == 2


def test_identical_resubmission_is_not_a_new_generation(service):
    first = submit(service, **LEVEL2_CLOSED)
    again = submit(service, **LEVEL2_CLOSED)
    assert again["id"] == first["id"] and again.get("unchanged")


def test_newer_pending_version_supersedes_older(service):
    first = submit(service, **LEVEL2_CLOSED)
    second = submit(service, **LEVEL2_CLOSED, **{"metadata.description": "v2"})
    assert service.show(first["id"], caller=OPERATOR)["state"] == "superseded"
    with pytest.raises(Refused):
        service.approve(first["id"], caller=BYT_APPROVER1, reason="old")
    assert service.approve(second["id"], caller=BYT_APPROVER1, reason="ok")["state"] == "approved"


# --- delete is a change like any other ---------------------------------------------------------------

DELETIONS = [
    # id, request changes, approvals needed, reason
    ("level-2", LEVEL2_CLOSED, 1, "one approver deletes a level-2 tenant"),
    ("level-3", LEVEL3_CLOSED, 2, "two distinct approvers delete a level-3 tenant (the rules' escalation)"),
]


@pytest.mark.parametrize("case_id,changes,needed,reason", DELETIONS, ids=[c[0] for c in DELETIONS])
def test_delete_needs_approval(service, case_id, changes, needed, reason):
    approve_all(service, submit(service, **changes))
    deletion = service.delete(NAME, caller=BYT_REQUESTER, reason="project over")
    assert (deletion["kind"], deletion["state"], deletion["approvalsRequired"]) == ("delete", "pending-approval",
                                                                                     needed), reason
    assert service.status(NAME, caller=OPERATOR)["phase"] == "approved", "nothing moves before approval"
    with pytest.raises(Forbidden):
        service.approve(deletion["id"], caller=BYT_REQUESTER, reason="my own deletion")
    for given, approver in enumerate((BYT_APPROVER1, BYT_APPROVER2)[:needed], start=1):
        phase = service.status(NAME, caller=OPERATOR)["phase"]
        assert phase == "approved", f"still {phase} with {given - 1} of {needed} approvals"
        service.approve(deletion["id"], caller=approver, reason="ok")
    status = service.status(NAME, caller=OPERATOR)
    assert status["phase"] == "deleting" and status["generation"] == 1, "destroys the approved generation"
    with pytest.raises(Refused):
        service.delete(NAME, caller=BYT_REQUESTER)


FILERS = [
    # id, filer, allowed?, reason
    ("requester", "byt_requester", True, "the agency's requesters may file a deletion"),
    ("approver", "byt_approver1", True, "and its approvers"),
    ("reader", "byt_reader", False, "a person of the agency without a gcloud role may not"),
    ("operator", "operator", True, "operators may"),
]


@pytest.mark.parametrize("case_id,filer,allowed,reason", FILERS, ids=[c[0] for c in FILERS])
def test_who_may_file_a_deletion(service, case_id, filer, allowed, reason):
    approve_all(service, submit(service, caller=BYT_APPROVER_REQUESTER, **LEVEL2_CLOSED))
    if allowed:
        assert service.delete(NAME, caller=PEOPLE[filer])["state"] == "pending-approval", reason
    else:
        with pytest.raises(Forbidden):
            service.delete(NAME, caller=PEOPLE[filer])
    assert service.status(NAME, caller=OPERATOR)["phase"] == "approved"


def test_having_submitted_a_rejected_version_gives_no_power(service):
    approve_all(service, submit(service, caller=BYT_APPROVER_REQUESTER, **LEVEL2_CLOSED))
    rejected = submit(service, caller=BYT_APPROVER_REQUESTER, **LEVEL2_CLOSED, **{"metadata.description": "v2"})
    service.reject(rejected["id"], caller=BYT_APPROVER1, reason="no")
    deletion = service.delete(NAME, caller=BYT_APPROVER_REQUESTER)
    with pytest.raises(Forbidden):
        service.approve(deletion["id"], caller=BYT_APPROVER_REQUESTER, reason="mine")
    assert service.status(NAME, caller=OPERATOR)["phase"] == "approved"


def test_rejected_deletion_keeps_the_tenant_and_a_new_version_supersedes_a_pending_one(service):
    approve_all(service, submit(service, **LEVEL2_CLOSED))
    first = service.delete(NAME, caller=BYT_REQUESTER)
    service.reject(first["id"], caller=BYT_APPROVER1, reason="still needed")
    assert service.status(NAME, caller=OPERATOR)["phase"] == "approved"
    second = service.delete(NAME, caller=BYT_REQUESTER)
    submit(service, **LEVEL2_CLOSED, **{"metadata.description": "keep it"})
    assert service.show(second["id"], caller=OPERATOR)["state"] == "superseded"


def test_deleting_a_never_approved_tenant_also_needs_approval(service):
    submit(service, **LEVEL2_CLOSED)
    delete_approved(service, NAME)
    assert service.status(NAME, caller=OPERATOR)["phase"] == "deleted", "nothing was created: straight to deleted"


def test_delete_unknown_tenant_is_not_found(service):
    with pytest.raises(NotFound):
        service.delete("nope", caller=OPERATOR)


def test_invalid_request_is_not_stored(service):
    with pytest.raises(InvalidInput):
        service.submit("apiVersion: gcloud.gov.vn/v1\nkind: TenantRequest\n", caller=BYT_REQUESTER)
    assert service.list_versions(caller=OPERATOR) == []


# --- audit ---------------------------------------------------------------------------------------------

SECRET_VARS = {"spec.servers": [{"name": "web", "flavor": "g1.small", "image": "debian-12-hardened",
                                 "networks": ["app"], "userData": {"template": "default.yaml.j2",
                                                                   "vars": {"db_password": "hunter2"}}}]}


def test_every_action_is_audited_with_identity_binding_and_without_secrets(service):
    version = submit(service, **LEVEL2_CLOSED, **SECRET_VARS)
    service.approve(version["id"], caller=BYT_APPROVER1, reason="token=abc123 pasted by mistake")
    delete_approved(service, NAME, filer=BYT_APPROVER1, approvers=(BYT_APPROVER2,), reason="bye")
    records = service.audit_export(caller=OPERATOR)
    assert [r["action"] for r in records] == ["request.submit", "request.approve", "request.delete",
                                              "request.approve", "tenant.phase"]
    assert [r["actor"] for r in records] == ["nguyen.van.a@BYT", "tran.thi.b@BYT", "tran.thi.b@BYT",
                                             "le.van.c@BYT", "le.van.c@BYT"]
    submit_record, approve_record = records[0]["data"], records[1]["data"]
    assert (records[0]["tenant"], submit_record["generation"], submit_record["digest"]) == (NAME, 1, version["digest"])
    assert submit_record["yaml"] and submit_record["rulesVersion"] == version["rulesVersion"]
    assert submit_record["caller"]["userId"] == "u-byt-req" and submit_record["caller"]["authenticated"] is True
    assert (approve_record["digest"], approve_record["generation"], approve_record["approverId"],
            approve_record["rulesVersion"]) == (version["digest"], 1, "u-byt-app1", version["rulesVersion"])
    text = json.dumps(records)
    assert "hunter2" not in text and "abc123" not in text
    assert service.audit_verify(caller=OPERATOR)["ok"]


def test_break_glass_is_recorded_as_unauthenticated_os_user(service):
    version = submit(service, caller=BREAK_GLASS, **LEVEL2_CLOSED)
    service.approve(version["id"], caller=BYT_APPROVER1, reason="ok")
    record = service.audit_export(caller=OPERATOR)[0]
    assert record["actor"] == "os:ops"
    assert record["data"]["caller"]["authenticated"] is False and record["data"]["caller"]["user"] == "ops"
    events = service.status(NAME, caller=OPERATOR)["events"]
    assert "os:ops" in events[0]["message"]
    with service.store.tx() as tx:
        submitted = json.loads(tx.events(NAME)[0].data)
    assert submitted == {"actor": "os:ops", "userId": "os:ops", "authenticated": False}
