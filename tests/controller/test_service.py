"""Request intake through the store: submit, approve, reject, delete, with identities and audit."""

import json

import pytest

from gcloudctl.errors import InvalidInput, NotFound, Refused

from .conftest import request_text

LEVEL2_CLOSED = {"spec.securityGroups": [{"name": "web", "rules": []}, {"name": "db", "rules": []}]}


def submit(service, actor="nguyen.van.a", **changes):
    return service.submit(request_text(**changes), actor=actor)


def test_single_approval_activates_generation(service):
    version = submit(service, **LEVEL2_CLOSED)
    assert (version["state"], version["generation"], version["approvalsRequired"]) == ("pending-approval", 1, 1)
    assert service.status("byt-his-staging")["phase"] == "pending-approval"
    approved = service.approve(version["id"], actor="tran.thi.b", reason="ok")
    assert approved["state"] == "approved"
    status = service.status("byt-his-staging")
    assert (status["phase"], status["generation"], status["observedGeneration"]) == ("approved", 1, None)
    assert status["nextReconcileAt"] is not None


def test_requester_cannot_approve_own_request(service):
    version = submit(service, actor="tran.thi.b", **{"metadata.requester": "tran.thi.b"}, **LEVEL2_CLOSED)
    with pytest.raises(Refused, match="may not decide"):
        service.approve(version["id"], actor="tran.thi.b", reason="mine")
    assert service.show(version["id"])["state"] == "pending-approval"


def test_non_approver_refused(service):
    version = submit(service, **LEVEL2_CLOSED)
    with pytest.raises(Refused, match="not an approver"):
        service.approve(version["id"], actor="hoang.van.e", reason="I am BTC")


def test_two_person_rule_needs_distinct_approvers(service):
    version = submit(service, **{"spec.classification": 3}, **LEVEL2_CLOSED)
    assert version["approvalsRequired"] == 2
    first = service.approve(version["id"], actor="tran.thi.b", reason="1st")
    assert first["state"] == "pending-approval" and first["approvals"] == 1
    with pytest.raises(Refused, match="distinct"):
        service.approve(version["id"], actor="tran.thi.b", reason="again")
    assert service.status("byt-his-staging")["phase"] == "pending-approval"
    second = service.approve(version["id"], actor="le.van.c", reason="2nd")
    assert second["state"] == "approved"
    assert service.status("byt-his-staging")["phase"] == "approved"


def test_reject_needs_reason_and_ends_first_version(service):
    version = submit(service, **LEVEL2_CLOSED)
    with pytest.raises(InvalidInput):
        service.reject(version["id"], actor="tran.thi.b", reason=" ")
    rejected = service.reject(version["id"], actor="tran.thi.b", reason="no budget")
    assert rejected["state"] == "rejected"
    assert service.status("byt-his-staging")["phase"] == "rejected"
    with pytest.raises(Refused):
        service.approve(version["id"], actor="le.van.c", reason="too late")


def test_update_is_new_generation_needing_approval(service):
    first = submit(service, **LEVEL2_CLOSED)
    service.approve(first["id"], actor="tran.thi.b", reason="ok")
    update = submit(service, **LEVEL2_CLOSED, **{"metadata.description": "v2"})
    assert (update["generation"], update["state"]) == (2, "pending-approval")
    status = service.status("byt-his-staging")
    assert (status["generation"], status["latestGeneration"]) == (1, 2), "gen 1 stays desired until gen 2 is approved"
    service.approve(update["id"], actor="le.van.c", reason="ok")
    assert service.status("byt-his-staging")["generation"] == 2


def test_identical_resubmission_is_not_a_new_generation(service):
    first = submit(service, **LEVEL2_CLOSED)
    again = submit(service, **LEVEL2_CLOSED)
    assert again["id"] == first["id"] and again.get("unchanged")


def test_newer_pending_version_supersedes_older(service):
    first = submit(service, **LEVEL2_CLOSED)
    second = submit(service, **LEVEL2_CLOSED, **{"metadata.description": "v2"})
    assert service.show(first["id"])["state"] == "superseded"
    with pytest.raises(Refused):
        service.approve(first["id"], actor="tran.thi.b", reason="old")
    assert service.approve(second["id"], actor="tran.thi.b", reason="ok")["state"] == "approved"


def test_other_agency_cannot_take_tenant_name(service):
    submit(service, **LEVEL2_CLOSED)
    with pytest.raises(Refused, match="belongs to agency BYT"):
        submit(service, **LEVEL2_CLOSED, **{"metadata.agency": "BTC", "metadata.requester": "x.y"})


def test_delete_rules(service):
    version = submit(service, **LEVEL2_CLOSED)
    service.approve(version["id"], actor="tran.thi.b", reason="ok")
    with pytest.raises(Refused, match="may not delete"):
        service.delete("byt-his-staging", actor="hoang.van.e")
    assert service.delete("byt-his-staging", actor="nguyen.van.a", reason="done")["phase"] == "deleting"
    with pytest.raises(Refused):
        submit(service, **LEVEL2_CLOSED, **{"metadata.description": "while deleting"})
    with pytest.raises(NotFound):
        service.delete("nope", actor="tran.thi.b")


def test_invalid_request_is_not_stored(service):
    with pytest.raises(InvalidInput):
        service.submit("apiVersion: gcloud.gov.vn/v1\nkind: TenantRequest\n", actor="a")
    assert service.list_versions() == []


def test_every_action_is_audited_without_secrets(service):
    secret_vars = {"spec.servers": [{"name": "web", "flavor": "g1.small", "image": "debian-12-hardened",
                                     "networks": ["app"], "userData": {"template": "default.yaml.j2",
                                                                       "vars": {"db_password": "hunter2"}}}]}
    version = submit(service, **LEVEL2_CLOSED, **secret_vars)
    service.approve(version["id"], actor="tran.thi.b", reason="token=abc123 pasted by mistake")
    service.delete("byt-his-staging", actor="tran.thi.b", reason="bye")
    records = service.audit_export()
    assert [r["action"] for r in records] == ["request.submit", "request.approve", "request.delete"]
    assert [r["actor"] for r in records] == ["nguyen.van.a", "tran.thi.b", "tran.thi.b"]
    text = json.dumps(records)
    assert "hunter2" not in text and "abc123" not in text
    assert service.audit_verify()["ok"]
