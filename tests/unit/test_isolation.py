"""Specification of isolation (issue 11) on the in-memory cloud, which models Keystone domains:
a tenant is owned by (tenant, agency, the agency's domain); a project is the tenant's only if
it is in that domain and tagged gcloudctl, gc-tenant=<name>, gc-agency=<agency>. Everything
else is refused (exit 4) before any write, with a message naming the owner found."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.errors import NotOwned, Refused
from gcloudctl.ownership import Owner, refusal
from tests.fixtures.core import EXAMPLE

REQUESTER = {"BYT": "nguyen.van.a", "QNI": "do.van.g", "BTC": "hoang.van.e"}
POOL = {"BYT": "10.40", "QNI": "10.60", "BTC": "10.50"}
FULL = lambda tenant, agency: ["gcloudctl", f"gc-tenant={tenant}", f"gc-agency={agency}", "gc-level=2"]  # noqa: E731


def doc_for(name: str, agency: str, **changes) -> dict:
    """The example request (3 servers) as tenant `name` of `agency`."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"].update(name=name, agency=agency, requester=REQUESTER[agency])
    doc["spec"]["members"] = [{"user": REQUESTER[agency], "roles": ["member"]}]
    doc["spec"]["networks"][0]["cidr"] = f"{POOL[agency]}.1.0/24"
    doc["spec"].update(changes)
    return doc


def write(tmp_path, doc: dict) -> str:
    path = tmp_path / f"{doc['metadata']['agency']}-{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def world(api: FakeApi, project_id: str) -> dict:
    """Everything of one project, as the cloud holds it (to prove it was left intact)."""
    return copy.deepcopy({
        "project": api.projects.get(project_id),
        "assignments": sorted(a for a in api.assignments if a[0] == project_id),
        "servers": {k: v for k, v in api.servers.items() if v["tenant_id"] == project_id},
        "neutron": {c: {k: v for k, v in items.items() if v.get("project_id") == project_id}
                    for c, items in api.neutron.items()},
        "groups": {k: v for k, v in api.server_groups.items() if v["project_id"] == project_id},
        "quotas": (api.compute_quotas.get(project_id), api.network_quotas.get(project_id)),
    })


def project_of(api: FakeApi, name: str, domain: str) -> str:
    return next(p["id"] for p in api.projects.values() if p["name"] == name and p["domain_id"] == api.domain_id(domain))


@pytest.fixture
def run(cli_on_fake):
    return cli_on_fake


# ------------------------------------------------------------------------------ the proof itself
PROOF = [
    ("all-tags-in-domain", "the three ownership tags and the agency's domain prove it", True, FULL("t1", "BYT"), None),
    ("in-domain-no-managed-tag", "gc-tenant and gc-agency without `gcloudctl`", True,
     ["gc-tenant=t1", "gc-agency=BYT"], "no 'gcloudctl' tag"),
    ("in-domain-tenant-tag-only", "the `destroy core-dns` case of the issue", True, ["gc-tenant=t1"], "no gc-agency= tag"),
    ("in-domain-other-agency", "tags of another agency", True, FULL("t1", "QNI"), "gc-agency=QNI"),
    ("in-domain-other-tenant", "tags of another tenant of the same agency", True, FULL("t2", "BYT"), "gc-tenant=t2"),
    ("right-tags-other-domain", "moved, or made in Default by an older version", False, FULL("t1", "BYT"),
     "not in the agency's domain 'BYT'"),
]


@pytest.mark.parametrize("case_id,reason,in_domain,tags,refused", PROOF, ids=[c[0] for c in PROOF])
def test_ownership_proof(case_id, reason, in_domain, tags, refused):
    why = refusal(Owner("t1", "BYT", "BYT"), project_name="t1", project_domain="BYT" if in_domain else "QNI",
                  in_owner_domain=in_domain, tags=tags)
    if refused is None:
        assert why is None, reason
    else:
        assert why is not None and refused in why, (reason, why)


# ------------------------------------------------------------------------------ cross-agency takeover
def test_same_name_in_another_agency_is_another_tenant_and_byt_is_untouched(run, tmp_path, capsys):
    """The issue's takeover: BYT applies `shared-his` with servers, then QNI applies a request
    with the same metadata.name. QNI gets its own project in its own domain; not one write
    reaches BYT's objects; destroy by name needs --agency and removes only QNI's tenant."""
    api = run.api
    byt, qni = write(tmp_path, doc_for("shared-his", "BYT")), write(tmp_path, doc_for("shared-his", "QNI"))
    assert run("apply", byt, "--yes") == 0
    byt_pid = project_of(api, "shared-his", "BYT")
    before = world(api, byt_pid)
    byt_ids = {byt_pid, *before["servers"], *(k for items in before["neutron"].values() for k in items), *before["groups"]}
    assert len(before["servers"]) == 3
    writes_before = len(api.write_log)

    assert run("apply", qni, "--yes") == 0
    qni_pid = project_of(api, "shared-his", "QNI")
    assert qni_pid != byt_pid
    touched = [w for w in api.write_log[writes_before:] if any(i in w[2] for i in byt_ids)]
    assert touched == [], "no write of the QNI apply names a BYT object"
    assert world(api, byt_pid) == before, "BYT's project, members, servers, networks, groups and quotas are intact"
    assert {k["name"] for k in api.keypairs.values()} == {"gc_BYT_shared-his_ops", "gc_QNI_shared-his_ops"}
    assert run("plan", byt, "--detailed-exitcode") == 0 and run("plan", qni, "--detailed-exitcode") == 0

    capsys.readouterr()
    writes = api.total_writes()
    assert run("destroy", "shared-his", "--yes") == 4, "two agencies have a tenant of that name"
    assert "--agency" in capsys.readouterr().err and api.total_writes() == writes
    assert run("destroy", "shared-his", "--agency", "QNI", "--yes") == 0
    assert qni_pid not in api.projects and "gc_QNI_shared-his_ops" not in api.keypairs
    assert world(api, byt_pid) == before, "destroying QNI's tenant leaves BYT's intact"
    assert run("plan", byt, "--detailed-exitcode") == 0


def _applied_byt_moved_to(domain):
    def setup(run, tmp_path):
        assert run("apply", write(tmp_path, doc_for("shared-his", "BYT")), "--yes") == 0
        run.api.move_project(project_of(run.api, "shared-his", "BYT"), domain)
    return setup


def _project(domain, tags):
    return lambda run, tmp_path: run.api.add_project("shared-his", domain, tags)


# (id, reason, setup, agency of the request, fragment of the message naming the owner found)
REFUSED_APPLIES = [
    ("byt-tenant-in-qni-domain", "QNI's name lookup finds BYT's (moved) project in QNI's domain: another agency's",
     _applied_byt_moved_to("QNI"), "QNI", "gc-agency=BYT"),
    ("untagged-project-in-domain", "a project of that name made by hand in the agency's domain is never adopted",
     _project("QNI", []), "QNI", "no 'gcloudctl' tag"),
    ("tenant-tag-only", "a project with only some of the tags", _project("QNI", ["gc-tenant=shared-his"]), "QNI",
     "no gc-agency= tag"),
    ("other-agency-tags-in-domain", "tags naming BYT on a project in QNI's domain", _project("QNI", FULL("shared-his", "BYT")),
     "QNI", "gc-agency=BYT"),
    ("right-tags-moved-away", "BYT's own tenant moved to another domain is not BYT's any more",
     _applied_byt_moved_to("QNI"), "BYT", "in domain 'QNI'"),
    ("older-version-default-domain", "a tenant an older gcloudctl made in Default must be migrated, not touched",
     _project("Default", FULL("shared-his", "BYT")), "BYT", "in domain 'Default'"),
]


@pytest.mark.parametrize("case_id,reason,setup,agency,fragment", REFUSED_APPLIES, ids=[c[0] for c in REFUSED_APPLIES])
def test_apply_refuses_what_it_cannot_prove_with_nothing_written(run, tmp_path, capsys, case_id, reason, setup,
                                                                 agency, fragment):
    setup(run, tmp_path)
    api = run.api
    state, writes = copy.deepcopy((api.projects, api.servers, api.neutron, api.keypairs)), api.total_writes()
    capsys.readouterr()
    assert run("apply", write(tmp_path, doc_for("shared-his", agency)), "--yes") == 4, reason
    err = capsys.readouterr().err
    assert fragment in err and "shared-his" in err, (reason, err)
    assert api.total_writes() == writes, f"{reason}: nothing written"
    assert (api.projects, api.servers, api.neutron, api.keypairs) == state


# ------------------------------------------------------------------------------ destroy by name
DESTROY_REFUSED = [
    ("tenant-tag-only", "the issue's `destroy core-dns`: only gc-tenant=core-dns", "BYT", ["gc-tenant=core-dns"]),
    ("no-agency-tag", "managed and tenant tags, no agency", "BYT", ["gcloudctl", "gc-tenant=core-dns"]),
    ("no-managed-tag", "tenant and agency tags without `gcloudctl`", "BYT", ["gc-tenant=core-dns", "gc-agency=BYT"]),
    ("unknown-agency", "an agency the registry does not know", "BYT", FULL("core-dns", "XYZ")),
    ("agency-mismatch", "tagged QNI but in BYT's domain", "BYT", FULL("core-dns", "QNI")),
    ("moved", "right tags, another agency's domain", "QNI", FULL("core-dns", "BYT")),
    ("default-domain", "right tags, made in Default by an older version", "Default", FULL("core-dns", "BYT")),
]


@pytest.mark.parametrize("case_id,reason,domain,tags", DESTROY_REFUSED, ids=[c[0] for c in DESTROY_REFUSED])
def test_destroy_refuses_a_project_that_fails_the_proof(run, capsys, case_id, reason, domain, tags):
    api = run.api
    pid = api.add_project("core-dns", domain, tags)
    writes = api.total_writes()
    capsys.readouterr()
    assert run("destroy", "core-dns", "--yes") == 4, reason
    err = capsys.readouterr().err
    assert "core-dns" in err and domain in err, (reason, err)
    assert pid in api.projects and api.total_writes() == writes, f"{reason}: nothing deleted"


def test_destroy_by_file_refuses_the_moved_project(run, tmp_path, capsys):
    path = write(tmp_path, doc_for("shared-his", "BYT"))
    _applied_byt_moved_to("QNI")(run, tmp_path)
    writes = run.api.total_writes()
    assert run("destroy", path, "--yes") == 4
    assert run.api.total_writes() == writes and len(run.api.servers) == 3


# ------------------------------------------------------------------------------ members
# (id, reason, users that exist (name, domain), create_missing_users, refused fragment or None)
MEMBERS = [
    ("user-of-another-domain", "QNI's do.van.g is not BYT's person, even where missing users are created",
     [("do.van.g", "QNI")], True, "user 'do.van.g' is not in the agency's domain 'BYT' (found in domain 'QNI')"),
    ("user-in-both", "a same-named user in BYT is BYT's: the one in QNI is not used", [("do.van.g", "QNI"), ("do.van.g", "BYT")],
     True, None),
    ("missing-created-in-agency-domain", "dev clouds create missing users, in the agency's domain", [], True, None),
    ("missing-refused-in-production", "without createMissingUsers a missing member is refused", [], False,
     "user 'do.van.g' does not exist in the agency's domain 'BYT'"),
]


@pytest.mark.parametrize("case_id,reason,users,create_missing,refused", MEMBERS, ids=[c[0] for c in MEMBERS])
def test_members_are_people_of_the_agency_domain(config, case_id, reason, users, create_missing, refused):
    api = FakeApi()
    for name, domain in users:
        api.add_user(name, domain)
    cloud = FakeCloud(api, create_missing_users=create_missing)
    if not create_missing:
        api.add_user("nguyen.van.a", "BYT")
    doc = doc_for("byt-members", "BYT", members=[{"user": "nguyen.van.a", "roles": ["member"]},
                                                 {"user": "do.van.g", "roles": ["reader"]}])
    request = pipeline.load_request(yaml.safe_dump(doc), config, filename="m.yaml")
    if refused:
        with pytest.raises(Refused) as info:
            pipeline.plan_request(request, cloud, config)
        assert refused in info.value.message and "spec.members[1].user" in info.value.message, (reason, info.value.message)
        assert api.total_writes() == 0, f"{reason}: refused before any write"
        return
    assert pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud).ok
    pid = project_of(api, "byt-members", "BYT")
    granted = {(api.users[u]["name"], api.domains[api.users[u]["domain_id"]]["name"]) for (p, u, _) in api.assignments if p == pid}
    assert ("do.van.g", "BYT") in granted and ("do.van.g", "QNI") not in granted, reason
    assert pipeline.plan_request(request, cloud, config).is_empty()


def test_a_role_granted_out_of_band_to_another_domains_user_is_drift(config, fake_api, fake_cloud):
    doc = doc_for("byt-drift", "BYT")
    request = pipeline.load_request(yaml.safe_dump(doc), config, filename="d.yaml")
    assert pipeline.apply_plan(pipeline.plan_request(request, fake_cloud, config), fake_cloud).ok
    stranger = fake_api.add_user("nguyen.van.a", "QNI")  # same name, another agency's person
    pid = project_of(fake_api, "byt-drift", "BYT")
    fake_api.assignments.add((pid, stranger, fake_api.roles["member"]["id"]))
    plan = pipeline.plan_request(request, fake_cloud, config)
    assert [(c.action.value, str(c.address)) for c in plan.changes] == [("delete", "membership.nguyen.van.a@QNI:member")]


# ------------------------------------------------------------------------------ get tenants, describe
def test_get_tenants_and_describe_show_agency_and_domain(run, tmp_path, capsys):
    for agency in ("BYT", "QNI"):
        assert run("apply", write(tmp_path, doc_for("portal", agency)), "--yes") == 0
    run.api.add_project("legacy", "Default", FULL("legacy", "BYT"))
    capsys.readouterr()
    assert run("get", "tenants", "--output", "json") == 0
    rows = {(r["tenant"], r["agency"]): r for r in json.loads(capsys.readouterr().out)}
    assert {k: (r["domain"], r["owned"]) for k, r in rows.items()} == {
        ("portal", "BYT"): ("BYT", True), ("portal", "QNI"): ("QNI", True), ("legacy", "BYT"): ("Default", False)}
    assert run("get", "tenants") == 0
    table = capsys.readouterr().out
    assert "DOMAIN" in table.splitlines()[0] and "Default (NOT OWNED)" in table
    assert run("describe", "portal", "--agency", "QNI", "--output", "yaml") == 0
    described = yaml.safe_load(capsys.readouterr().out)
    assert (described["agency"], described["domain"]) == ("QNI", "QNI")
    assert described["project_id"] == project_of(run.api, "portal", "QNI")
    assert run("describe", "portal", "--agency", "BYT") == 0
    assert "of agency BYT (domain BYT" in capsys.readouterr().out
    assert run("describe", "portal") == 4, "two agencies: say which"
    assert run("describe", "legacy") == 4, "the Default-domain project is not provably BYT's"
    assert run("inventory", "legacy", "--level", "2") == 4


# ------------------------------------------------------------------------------ controller
def test_controller_engine_refuses_a_project_it_cannot_prove(config):
    api = FakeApi()
    api.add_project("shared-his", "QNI", FULL("shared-his", "BYT"))
    engine = PipelineEngine(config, lambda region: FakeCloud(api))
    request = pipeline.load_request(yaml.safe_dump(doc_for("shared-his", "QNI")), config, filename="c.yaml")
    with pytest.raises(NotOwned, match="gc-agency=BYT"):
        engine.plan(request)
    with pytest.raises(NotOwned):
        engine.plan_destroy(request)
    assert api.total_writes() == 0


# ------------------------------------------------------------------------------ roles
# (id, reason, region allowedRoles (None: catalog default), agency, level, roles, refused fragment or None)
ROLES = [
    ("default-member-reader", "the catalog default allows member and reader", None, "BYT", 2, ["member", "reader"], None),
    ("default-no-admin", "admin is not in the default list", None, "BYT", 2, ["admin"], "may not be granted"),
    ("catalog-allows-admin", "a region whose catalog allows admin, below level 4", ["member", "reader", "admin"], "BYT", 3,
     ["admin"], None),
    ("admin-never-at-level-4", "never at level >= 4, whatever the catalog says", ["member", "reader", "admin"], "BTC", 4,
     ["admin"], "never granted at level 4"),
    ("reader-not-listed", "a region may allow fewer roles", ["member"], "BYT", 2, ["reader"], "may not be granted"),
]


@pytest.mark.parametrize("case_id,reason,allowed,agency,level,roles,refused", ROLES, ids=[c[0] for c in ROLES])
def test_roles_are_the_catalogs_decision(tmp_path, case_id, reason, allowed, agency, level, roles, refused):
    from gcloudctl.pipeline import _shipped

    platform = yaml.safe_load(_shipped("platform.yaml")[0])
    if allowed is not None:
        platform["spec"]["regions"]["hn1"]["allowedRoles"] = allowed
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform))
    config = pipeline.Config.load(platform_file=tmp_path / "platform.yaml")
    doc = doc_for("roles", agency, classification=level, members=[{"user": REQUESTER[agency], "roles": roles}])
    _, problems = pipeline.check_request(yaml.safe_dump(doc), config, "r.yaml")
    found = [p for p in problems if p.path.startswith("spec.members")]
    if refused is None:
        assert found == [], (reason, [p.format() for p in found])
    else:
        assert found and refused in found[0].message and found[0].line, (reason, [p.format() for p in problems])


# ------------------------------------------------------------------------------ cost of the proof
# (id, reason, agencies that have a tenant `portal`, identity GETs of a no-op plan by a fresh driver)
PROOF_COST = [
    ("one-namesake", "the role assignments observe reads anyway name the project's domain: no domain lookup",
     ["BYT"], 2),
    ("two-namesakes", "two projects bear the name: the agency's domain id is looked up (once per driver)",
     ["BYT", "QNI"], 3),
]


@pytest.mark.parametrize("case_id,reason,agencies,identity_gets", PROOF_COST, ids=[c[0] for c in PROOF_COST])
def test_a_no_op_plan_costs_no_domain_lookup_in_the_common_case(config, case_id, reason, agencies, identity_gets):
    api = FakeApi()
    requests = {a: pipeline.load_request(yaml.safe_dump(doc_for("portal", a)), config, filename=f"{a}.yaml")
                for a in agencies}
    for request in requests.values():
        cloud = FakeCloud(api)
        assert pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud).ok
    api.requests.clear()
    assert pipeline.plan_request(requests["BYT"], FakeCloud(api), config).is_empty()
    assert api.requests["identity"] == identity_gets, (reason, dict(api.requests))
