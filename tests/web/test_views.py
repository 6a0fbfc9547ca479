"""The console's pure view values: request order, the preview against the last approved
generation, the policy verdicts, the YAML diff and the planned servers."""

from __future__ import annotations

import pytest
import yaml

from gcloudctl.pipeline import Config
from gcloudctl.web import views
from tests.controller.conftest import request_doc


@pytest.fixture(scope="module")
def rules() -> views.Policy:
    config = Config.load()
    return views.Policy(catalog=config.catalog, agencies=config.agencies, rulebook=config.rulebook)


def request(**changes):
    return views.parse(yaml.safe_dump(request_doc("byt-view", **changes)))


def kinds(rows):
    return {(r["kind"], r["name"]) for r in rows}


def test_pending_first_oldest_waiting_first_then_newest():
    versions = [{"id": 1, "state": "approved"}, {"id": 2, "state": "pending-approval"},
                {"id": 3, "state": "rejected"}, {"id": 4, "state": "pending-approval"}]
    assert [v["id"] for v in views.order_requests(versions)] == [2, 4, 3, 1]


def test_first_generation_creates_everything(rules):
    preview = views.preview(views.desired(request(), rules), None)
    assert preview["available"] and not preview["change"] and not preview["delete"]
    assert {("project", "byt-view"), ("server", "web-1"), ("server", "db-1")} <= kinds(preview["create"])


PREVIEW_CASES = [
    # id, changes to the new version, expected (action, kind, name[, field]), reason
    ("more-instances", {"spec.quotas.instances": 12}, ("change", "quota", "compute", "instances"),
     "a quota change is an update of the quota, naming the field"),
    ("one-more-server", {"spec.servers": request_doc("x")["spec"]["servers"][:1]
                         + [dict(request_doc("x")["spec"]["servers"][1], count=2)]},
     ("create", "server", "db-2", None), "a higher count creates the next server"),
    ("fewer-servers", {"spec.servers": [dict(request_doc("x")["spec"]["servers"][0], count=1),
                                        request_doc("x")["spec"]["servers"][1]]},
     ("delete", "server", "web-2", None), "a lower count deletes the last server"),
]


@pytest.mark.parametrize("case_id,changes,expected,reason", PREVIEW_CASES, ids=[c[0] for c in PREVIEW_CASES])
def test_preview_against_the_last_approved_generation(rules, case_id, changes, expected, reason):
    old, new = views.desired(request(), rules), views.desired(request(**changes), rules)
    preview = views.preview(new, old)
    action, kind, name, field = expected
    row = next((r for r in preview[action] if (r["kind"], r["name"]) == (kind, name)), None)
    assert row is not None, reason
    if field:
        assert field in row["fields"], reason
    others = {a: preview[a] for a in ("create", "change", "delete") if a != action}
    assert not any((r["kind"], r["name"]) == (kind, name) for rows in others.values() for r in rows)


def test_a_deletion_deletes_what_was_approved(rules):
    old = views.desired(request(), rules)
    preview = views.preview(None, old, deletion=True)
    assert not preview["create"] and kinds(preview["delete"]) == {(r.address.kind.value, r.address.name) for r in old}


def test_verdicts_list_every_rule_in_force_and_name_violations(rules):
    fine = views.verdicts(request(), rules)
    assert fine and all(v["passed"] for v in fine)
    assert {v["rule"] for v in fine} == {r.id for r in rules.rulebook.rules_for(2)}
    doc = request_doc("byt-view")
    doc["spec"]["securityGroups"][0]["rules"].append(
        {"direction": "ingress", "protocol": "tcp", "ports": "22", "remote": "0.0.0.0/0"})
    bad = views.verdicts(views.parse(yaml.safe_dump(doc)), rules)
    violated = [v for v in bad if not v["passed"]]
    assert [v["rule"] for v in violated] == ["admin-sources-restricted"]
    assert violated[0]["violations"] and "22" in violated[0]["message"]


def test_text_diff_marks_added_and_removed_lines():
    rows = views.text_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", old_label="generation 1", new_label="generation 2")
    assert {"kind": "del", "text": "-b: 2"} in rows and {"kind": "add", "text": "+b: 3"} in rows
    assert rows[0] == {"kind": "head", "text": "--- generation 1"}
    assert all(r["kind"] == "add" for r in views.text_diff(None, "a: 1\n", old_label="-", new_label="+")
               if r["kind"] not in ("head", "hunk"))


def test_planned_servers_with_their_networks_and_floating_ips(rules):
    servers = views.planned_servers(views.desired(request(), rules))
    by_name = {s["name"]: s for s in servers}
    assert set(by_name) == {"web-1", "web-2", "db-1"}
    assert by_name["web-1"]["floatingIP"] and not by_name["db-1"]["floatingIP"]
    assert by_name["web-1"]["networks"] == [{"name": "app", "cidr": "10.40.1.0/24"}]


def test_an_unreadable_stored_text_gives_no_preview(rules):
    assert views.parse("kind: [") is None and views.parse(None) is None
    assert views.preview(None, None) == {"available": False, "create": [], "change": [], "delete": []}
