"""Issue 11 on the real devcloud: agencies are Keystone domains. BYT and QNI each apply a tenant
named `portal` with the real CLI; both exist side by side in their domains, each plan is empty,
destroying one leaves the other intact, and a request naming another domain's user is refused
before any write. Every fact about the cloud is read with the independent `openstack` CLI."""

from __future__ import annotations

import secrets

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi
from gcloudctl.errors import Refused
from tests.cloud.helpers import EXAMPLE, gcloudctl

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]

TENANT = "portal"
REQUESTER = {"BYT": "nguyen.van.a", "QNI": "do.van.g"}
POOL = {"BYT": "10.40", "QNI": "10.60"}


def portal_doc(agency: str, name: str = TENANT, members: list | None = None) -> dict:
    """A small tenant: one network behind a router, one g1.small server with the agency's keypair."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"].update(name=name, agency=agency, requester=REQUESTER[agency], description=f"{agency} portal")
    spec = doc["spec"]
    spec["members"] = members or [{"user": REQUESTER[agency], "roles": ["member"]}]
    spec["quotas"] = {"instances": 2, "cores": 2, "ramMiB": 4096, "floatingIPs": 0}
    spec["networks"] = [{"name": "app", "cidr": f"{POOL[agency]}.9.0/24", "zone": "app"}]
    spec["securityGroups"] = [{"name": "web", "rules": [
        {"direction": "ingress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"}]}]
    spec["servers"] = [{"name": "web", "count": 1, "flavor": "g1.small", "image": "debian-12-hardened",
                        "networks": ["app"], "securityGroups": ["web"], "keypair": "ops"}]
    return doc


def projects_in(devcloud, domain: str) -> dict[str, dict]:
    return {p["Name"]: p for p in devcloud.openstack_json("project", "list", "--domain", domain, "--long")}


def portal_facts(devcloud, domain: str) -> dict:
    """What the cloud holds for `portal` in `domain` (None if no such project), by the openstack CLI."""
    project = projects_in(devcloud, domain).get(TENANT)
    if project is None:
        return None
    pid = project["ID"]
    shown = devcloud.openstack_json("project", "show", pid)
    servers = devcloud.openstack_json("server", "list", "--all-projects", "--project", pid)
    networks = devcloud.openstack_json("network", "list", "--project", pid)
    return {"id": pid, "tags": sorted(shown.get("tags") or []),
            "servers": sorted((s["ID"], s["Name"], s["Status"]) for s in servers),
            "networks": sorted((n["ID"], n["Name"]) for n in networks)}


def service_keypairs(devcloud) -> set[str]:
    """Keypairs of the user gcloudctl acts as (the catalog region's clouds.yaml entry, `devcloud`)."""
    return {k["Name"] for k in devcloud.openstack_json("keypair", "list")}


def destroy_portal(agency: str) -> None:
    gcloudctl("destroy", TENANT, "--agency", agency, "--yes", check=True)


@pytest.fixture(scope="module")
def portals(devcloud, tmp_path_factory):
    folder = tmp_path_factory.mktemp("isolation")
    files = {}
    for agency in ("BYT", "QNI"):
        files[agency] = folder / f"{agency.lower()}-portal.yaml"
        files[agency].write_text(yaml.safe_dump(portal_doc(agency)))
        destroy_portal(agency)  # a run cut short may have left one
    yield files
    for agency in ("BYT", "QNI"):
        destroy_portal(agency)
    assert portal_facts(devcloud, "BYT") is None and portal_facts(devcloud, "QNI") is None


def test_1_two_agencies_each_have_a_tenant_named_portal(devcloud, portals):
    for agency in ("BYT", "QNI"):
        gcloudctl("apply", str(portals[agency]), "--yes", check=True)
    byt, qni = portal_facts(devcloud, "BYT"), portal_facts(devcloud, "QNI")
    assert byt and qni and byt["id"] != qni["id"], "two projects named portal, one per domain"
    assert "gc-agency=BYT" in byt["tags"] and "gc-agency=QNI" in qni["tags"]
    assert "gc-tenant=portal" in byt["tags"] and "gcloudctl" in qni["tags"]
    assert [(name, status) for _, name, status in byt["servers"]] == [("web-1", "ACTIVE")]
    assert [(name, status) for _, name, status in qni["servers"]] == [("web-1", "ACTIVE")]
    assert {"gc_BYT_portal_ops", "gc_QNI_portal_ops"} <= service_keypairs(devcloud)
    for agency in ("BYT", "QNI"):
        assert gcloudctl("plan", str(portals[agency]), "--detailed-exitcode").returncode == 0, f"{agency} plan is empty"


def test_2_get_tenants_shows_both_with_agency_and_domain(portals):
    out = gcloudctl("get", "tenants", "--output", "yaml", check=True).stdout
    rows = {(r["agency"], r["domain"], r["owned"]) for r in yaml.safe_load(out) if r["tenant"] == TENANT}
    assert rows == {("BYT", "BYT", True), ("QNI", "QNI", True)}
    described = yaml.safe_load(gcloudctl("describe", TENANT, "--agency", "QNI", "--output", "yaml", check=True).stdout)
    assert (described["agency"], described["domain"]) == ("QNI", "QNI")


def test_3_destroy_by_name_needs_the_agency_and_removes_only_that_one(devcloud, portals):
    byt_before = portal_facts(devcloud, "BYT")
    ambiguous = gcloudctl("destroy", TENANT, "--yes")
    assert ambiguous.returncode == 4 and "--agency" in ambiguous.stderr, ambiguous.stderr
    assert portal_facts(devcloud, "QNI") is not None, "nothing deleted by the refused destroy"
    destroy_portal("QNI")
    assert portal_facts(devcloud, "QNI") is None
    assert portal_facts(devcloud, "BYT") == byt_before, "BYT's project, server and network are untouched"
    assert "gc_BYT_portal_ops" in service_keypairs(devcloud) and "gc_QNI_portal_ops" not in service_keypairs(devcloud)
    assert gcloudctl("plan", str(portals["BYT"]), "--detailed-exitcode").returncode == 0


def test_4_a_user_of_another_domain_is_refused_before_any_write(devcloud, tmp_path):
    """do.van.g is QNI's person (devcloud bootstrap); a BYT request naming them is refused,
    although devcloud's catalog creates missing users."""
    name = f"byt-iso-{secrets.token_hex(3)}"
    doc = portal_doc("BYT", name, members=[{"user": "nguyen.van.a", "roles": ["member"]},
                                           {"user": "do.van.g", "roles": ["reader"]}])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    byt_users = {u["Name"] for u in devcloud.openstack_json("user", "list", "--domain", "BYT")}
    out = gcloudctl("apply", str(path), "--yes")
    assert out.returncode == 4, out.stderr
    assert "do.van.g" in out.stderr and "'QNI'" in out.stderr and "spec.members[1].user" in out.stderr, out.stderr

    config = pipeline.Config.load()
    api = SdkApi(devcloud.cloud_name)
    with pytest.raises(Refused, match="do.van.g"):
        pipeline.plan_request(pipeline.load_request(path, config, filename=str(path)),
                              OpenStackDriver(api, create_missing_users=True), config)
    assert api.write_requests == 1 and api.requests["identity POST"] == 1, dict(api.requests)  # the login only
    assert name not in projects_in(devcloud, "BYT")
    assert not [p for p in devcloud.openstack_json("project", "list") if p["Name"] == name]
    assert {u["Name"] for u in devcloud.openstack_json("user", "list", "--domain", "BYT")} == byt_users, \
        "no user was created in BYT"


def test_5_a_tenant_an_older_version_made_in_default_is_refused(devcloud, tmp_path):
    """Migration note: a project with the right tags in the Default domain (where older versions
    put every tenant) is not the agency's: plan, describe and destroy refuse it, nothing changes."""
    name = f"byt-legacy-{secrets.token_hex(3)}"
    tags = ["gcloudctl", f"gc-tenant={name}", "gc-agency=BYT", "gc-level=2"]
    devcloud.openstack("project", "create", "--domain", "default", *[a for t in tags for a in ("--tag", t)], name)
    try:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(portal_doc("BYT", name)))
        for args in (("plan", str(path)), ("describe", name), ("destroy", name, "--yes"), ("apply", str(path), "--yes")):
            out = gcloudctl(*args)
            assert out.returncode == 4 and "'Default'" in out.stderr, (args, out.stderr)
        assert [p["Name"] for p in devcloud.openstack_json("project", "list", "--domain", "default") if p["Name"] == name]
        assert name not in projects_in(devcloud, "BYT")
    finally:
        devcloud.openstack("project", "delete", "--domain", "default", name, check=False)
