"""Specification of `gcloudctl.validate`: cross-document checks (references, catalog, agency,
quotas, templates), each reported at the field it is about, exit 2 via the CLI."""

from __future__ import annotations

import pytest

from gcloudctl import pipeline
from gcloudctl.errors import InvalidInput
from tests.unit.test_cli_validate import validate_text

# Line numbers below refer to this text; keep it stable.
BASE = """\
apiVersion: gcloud.gov.vn/v1
kind: TenantRequest
metadata:
  name: byt-his-test
  agency: BYT
  requester: nguyen.van.a
spec:
  classification: 2
  region: hn1
  quotas: {instances: 4, cores: 8, ramMiB: 16384, floatingIPs: 2}
  members:
    - {user: nguyen.van.a, roles: [member]}
  networks:
    - {name: app, cidr: 10.40.1.0/24, zone: app}
    - {name: db, zone: db}
  router: {externalNetwork: public}
  securityGroups:
    - name: web
      rules:
        - {direction: ingress, protocol: tcp, ports: "443", remote: 0.0.0.0/0}
        - {direction: ingress, protocol: tcp, ports: "22", remoteGroup: web}
    - name: db
      rules:
        - {direction: ingress, protocol: tcp, ports: "5432", remoteGroup: web}
  keypairs:
    - {name: ops, publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBATrWvJFs40A9Ecu0FM1w8WJcG4ol86jgNzS7I9TMW0 ops"}
  servers:
    - name: web
      count: 2
      flavor: g1.small
      image: debian-12-hardened
      networks: [app]
      securityGroups: [web]
      keypair: ops
      floatingIP: true
      userData: {template: default.yaml.j2, vars: {}}
    - name: db
      flavor: g1.medium
      image: debian-12-hardened
      networks: [db]
      securityGroups: [db]
      keypair: ops
"""


def mutate(*pairs: str) -> str:
    text = BASE
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, f"{old!r} must occur exactly once"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def config():
    return pipeline.Config.load()


# (id, reason, text, [(line, col, path, message fragment)])
CASES = [
    ("unknown-network", "a server's network must be defined in the request",
     mutate("networks: [db]", "networks: [dbx]"),
     [(40, 18, "spec.servers[1].networks[0]", "network 'dbx' is not defined")]),
    ("unknown-group", "a server's security group must be defined",
     mutate("securityGroups: [db]", "securityGroups: [dbs]"),
     [(41, 24, "spec.servers[1].securityGroups[0]", "security group 'dbs' is not defined")]),
    ("unknown-keypair", "a server's keypair must be defined",
     mutate("      keypair: ops\n      floatingIP", "      keypair: opz\n      floatingIP"),
     [(34, 16, "spec.servers[0].keypair", "keypair 'opz' is not defined")]),
    ("unknown-remote-group", "a rule's remoteGroup must be a group of this request",
     mutate('"5432", remoteGroup: web', '"5432", remoteGroup: app'),
     [(24, 75, "spec.securityGroups[1].rules[0].remoteGroup", "security group 'app' is not defined")]),
    ("unknown-external-network", "the router's external network must exist in the region",
     mutate("externalNetwork: public", "externalNetwork: internet"),
     [(16, 29, "spec.router.externalNetwork", "external network 'internet' does not exist in region 'hn1'")]),
    ("no-router-for-fip", "a floating IP needs a router",
     mutate("  router: {externalNetwork: public}\n", ""),
     [(34, 19, "spec.servers[0].floatingIP", "has no router")]),
    ("fip-unrouted-network", "a floating IP needs the first network routed",
     mutate("zone: app}", "zone: app, routed: false}"),
     [(35, 19, "spec.servers[0].floatingIP", "is not routed")]),
    ("unknown-region", "the region must be in the catalog",
     mutate("region: hn1", "region: hcm9"), [(9, 11, "spec.region", "region 'hcm9' is not in the platform catalog")]),
    ("unknown-image", "images come from the catalog, with a suggestion",
     mutate("      image: debian-12-hardened\n      networks: [app]", "      image: debian-12\n      networks: [app]"),
     [(31, 14, "spec.servers[0].image", "image 'debian-12' is not in the platform catalog")]),
    ("unknown-flavor", "flavors come from the catalog",
     mutate("flavor: g1.medium", "flavor: m1.huge"), [(38, 15, "spec.servers[1].flavor", "flavor 'm1.huge'")]),
    ("unknown-agency", "the agency must be registered",
     mutate("agency: BYT", "agency: XYZ"), [(5, 11, "metadata.agency", "agency 'XYZ' is not in the agency registry")]),
    ("above-agency-level", "an agency may not exceed its accreditation (BYT: 3)",
     mutate("classification: 2", "classification: 4"),
     [(8, 19, "spec.classification", "agency BYT may run systems up to level 3")]),
    ("zone-not-in-catalog", "zones come from the catalog",
     mutate("zone: db}", "zone: lab}"), [(15, 24, "spec.networks[1].zone", "zone 'lab' is not one of the platform's zones")]),
    ("cidr-outside-pool", "a CIDR must be inside the agency's pool",
     mutate("cidr: 10.40.1.0/24", "cidr: 10.41.1.0/24"),
     [(14, 25, "spec.networks[0].cidr", "10.41.1.0/24 is outside the agency's CIDR pools (10.40.0.0/16)")]),
    ("cidr-overlap", "CIDRs of one request must not overlap",
     mutate("{name: db, zone: db}", "{name: db, cidr: 10.40.1.128/25, zone: db}"),
     [(15, 24, "spec.networks[1].cidr", "10.40.1.128/25 overlaps 10.40.1.0/24 of spec.networks[0]")]),
    ("duplicate-network", "names are unique per kind",
     mutate("{name: db, zone: db}", "{name: app, zone: db}"),
     [(15, 14, "spec.networks[1].name", "network name 'app' is already used by spec.networks[0]"),
      (40, 18, "spec.servers[1].networks[0]", "network 'db' is not defined")]),
    ("duplicate-member", "a user is listed once",
     mutate("    - {user: nguyen.van.a, roles: [member]}\n",
            "    - {user: nguyen.van.a, roles: [member]}\n    - {user: nguyen.van.a, roles: [reader]}\n"),
     [(13, 14, "spec.members[1].user", "user 'nguyen.van.a' is listed twice")]),
    ("role-not-in-catalog", "roles are the catalog's decision: hn1 allows member and reader, not admin",
     mutate("roles: [member]}", "roles: [member, admin]}"),
     [(12, 44, "spec.members[0].roles[1]", "role 'admin' may not be granted in region 'hn1'")]),
    ("quota-instances", "the request's quota must hold its servers (numbers in the message)",
     mutate("instances: 4", "instances: 2"),
     [(10, 23, "spec.quotas.instances", "the servers need instances 3 but the quota is 2")]),
    ("quota-cores-ram", "cores and RAM come from the flavors",
     mutate("cores: 8, ramMiB: 16384", "cores: 3, ramMiB: 4096"),
     [(10, 33, "spec.quotas.cores", "need cores 4 but the quota is 3"),
      (10, 44, "spec.quotas.ramMiB", "need ramMiB 8192 but the quota is 4096")]),
    ("quota-fips", "floating IPs count per server copy",
     mutate("floatingIPs: 2}", "floatingIPs: 1}"),
     [(10, 64, "spec.quotas.floatingIPs", "need floatingIPs 2 but the quota is 1")]),
    ("agency-ceiling", "a quota above the agency's ceiling (BYT: 60 instances)",
     mutate("instances: 4", "instances: 61"),
     [(10, 23, "spec.quotas.instances", "quota instances 61 exceeds the agency's ceiling 60")]),
    ("template-missing", "user-data templates must exist in the allowed directory",
     mutate("template: default.yaml.j2", "template: nope.j2"),
     [(36, 28, "spec.servers[0].userData.template", "template 'nope.j2' does not exist")]),
    ("template-traversal", "user-data templates cannot leave the allowed directory",
     mutate("template: default.yaml.j2", "template: ../../etc/passwd"),
     [(36, 28, "spec.servers[0].userData.template", "outside the allowed directory")]),
]


@pytest.mark.parametrize("case_id,reason,text,expected", CASES, ids=[c[0] for c in CASES])
def test_semantic_problem_is_located(case_id, reason, text, expected, config):
    with pytest.raises(InvalidInput) as info:
        pipeline.load_request(text, config, "r.yaml")
    got = [(p.line, p.column, p.path) for p in info.value.problems if p.rule is None or p.rule == "userdata"]
    assert got == [(line, col, path) for line, col, path, _ in expected], (reason, info.value.message)
    for problem, (*_, fragment) in zip(info.value.problems, expected):
        assert fragment in problem.message, (reason, problem.message)


@pytest.mark.parametrize("case_id,reason,text,expected", CASES, ids=[c[0] for c in CASES])
def test_semantic_problem_via_cli(case_id, reason, text, expected, tmp_path):
    code, path, err = validate_text(tmp_path, text)
    assert code == 2, reason
    for line, col, field, _ in expected:
        assert f"{path}:{line}:{col}: {field}: " in err, (reason, err)


def test_base_is_valid(config):
    request = pipeline.load_request(BASE, config)
    assert [s.name for s in request.spec.servers] == ["web", "db"]


def test_quota_hint_names_the_needed_number(config):
    with pytest.raises(InvalidInput) as info:
        pipeline.load_request(mutate("instances: 4", "instances: 2"), config)
    assert info.value.problems[0].hint == "raise spec.quotas.instances to at least 3 or remove servers"


def test_flavor_above_its_level_is_refused(config):
    from gcloudctl.model.catalog import Flavor

    flavors = dict(config.catalog.spec.flavors)
    flavors["g1.small"] = Flavor(vcpus=1, ramMiB=2048, diskGiB=10, maxClassification=1)
    catalog = config.catalog.model_copy(update={"spec": config.catalog.spec.model_copy(update={"flavors": flavors})})
    narrowed = pipeline.Config(catalog=catalog, agencies=config.agencies, rulebook=config.rulebook)
    with pytest.raises(InvalidInput) as info:
        pipeline.load_request(BASE, narrowed, "r.yaml")
    assert [(p.line, p.column, p.path) for p in info.value.problems] == [(30, 15, "spec.servers[0].flavor")]
    assert "may serve up to level 1; the request is level 2" in info.value.problems[0].message


def test_expires_in_the_past_is_not_an_error(config):
    text = mutate("  region: hn1\n", '  region: hn1\n  expiresAt: "2000-01-01T00:00:00+07:00"\n')
    assert pipeline.load_request(text, config).spec.expiresAt.year == 2000


def test_user_data_check_can_be_injected(config):
    from gcloudctl.errors import Problem
    from gcloudctl.model.load import load_located
    from gcloudctl.model.request import TenantRequest
    from gcloudctl.validate import validate_request

    seen = []

    def check(template, vars, context):
        seen.append((template, context["hostname"], context["classification_level"]))
        return [Problem(path="spec.userData.vars", message="nope")]

    loaded = load_located(BASE, TenantRequest, "r.yaml")
    problems = validate_request(loaded.model, config.catalog, config.agencies, config.rulebook,
                                positions=loaded.positions, user_data_check=check)
    assert seen == [("default.yaml.j2", "web-1", 2)]
    assert [(p.line, p.column, p.path) for p in problems] == [(36, 51, "spec.servers[0].userData.vars")]


def test_expanded_server_names_must_not_collide(config, monkeypatch):
    """With today's naming (role-index, always suffixed) distinct roles cannot collide; the check
    guards a naming scheme that drops the suffix for count 1 (then 'web-2' would clash)."""
    from gcloudctl import naming

    monkeypatch.setattr(naming, "server_name", lambda role, index: role if index == 1 else f"{role}-{index}")
    text = mutate("    - name: db\n      flavor", "    - name: web-2\n      flavor")
    with pytest.raises(InvalidInput) as info:
        pipeline.load_request(text, config, "r.yaml")
    located = [(p.line, p.column, p.path) for p in info.value.problems if p.rule is None]
    assert located == [(37, 13, "spec.servers[1].name")]
    assert "server 'web-2' would create 'web-2', which server 'web' creates too" in info.value.message
