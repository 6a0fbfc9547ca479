"""Specification of the classification rulebook (`gcloudctl.policy`): rules are data, cumulative
by level, each violation located at the field it is about and named by its rule id."""

from __future__ import annotations

import pytest

from gcloudctl import pipeline, policy
from gcloudctl.cli.main import main
from gcloudctl.errors import InvalidInput
from gcloudctl.model.load import load_request
from tests.unit.test_cli_validate import validate_text

# A level-4 request that satisfies vn-nd85-tcvn11930. Line numbers below refer to this text.
L4 = """\
apiVersion: gcloud.gov.vn/v1
kind: TenantRequest
metadata:
  name: btc-tax-prod
  agency: BTC
  requester: hoang.van.e
spec:
  classification: 4
  region: hn1
  quotas: {instances: 6, cores: 8, ramMiB: 16384, floatingIPs: 3}
  networks:
    - {name: dmz, cidr: 10.50.0.0/24, zone: dmz}
    - {name: app, cidr: 10.50.1.0/24, zone: app}
    - {name: mgmt, cidr: 10.50.9.0/24, zone: mgmt, routed: false}
  router: {externalNetwork: public}
  securityGroups:
    - name: web
      rules:
        - {direction: ingress, protocol: tcp, ports: "443", remote: 0.0.0.0/0}
        - {direction: egress, protocol: tcp, ports: "8080", remote: 10.50.1.0/24}
    - name: app
      rules:
        - {direction: ingress, protocol: tcp, ports: "8080", remoteGroup: web}
    - name: admin
      rules:
        - {direction: ingress, protocol: tcp, ports: "22", remoteGroup: bastion}
    - name: bastion
      rules:
        - {direction: ingress, protocol: tcp, ports: "22", remote: 10.50.250.0/24}
  keypairs:
    - {name: ops, publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBATrWvJFs40A9Ecu0FM1w8WJcG4ol86jgNzS7I9TMW0 ops"}
  servers:
    - name: web
      count: 2
      flavor: g1.small
      image: debian-12-hardened
      networks: [dmz, mgmt]
      securityGroups: [web, admin]
      keypair: ops
      floatingIP: true
      antiAffinity: true
    - name: app
      count: 2
      flavor: g1.small
      image: debian-12-hardened
      networks: [app, mgmt]
      securityGroups: [app, admin]
      keypair: ops
      antiAffinity: true
    - name: bastion
      flavor: g1.small
      image: debian-12-hardened
      networks: [dmz, mgmt]
      securityGroups: [bastion]
      keypair: ops
      floatingIP: true
"""


def mutate(*pairs: str, base: str = L4) -> str:
    text = base
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, f"{old!r} must occur exactly once"
        text = text.replace(old, new)
    return text


def at_level(level: int, *pairs: str) -> str:
    return mutate("classification: 4", f"classification: {level}", *pairs)


@pytest.fixture(scope="module")
def config():
    return pipeline.Config.load()


# (id, reason, text, [(line, col, path, rule id)]) -- every expected violation, nothing else
CASES = [
    ("admin-port-from-internet", "from level 2: SSH is never open to the internet",
     at_level(2, "22\", remote: 10.50.250.0/24", "22\", remote: 0.0.0.0/0"),
     [(29, 11, "spec.securityGroups[3].rules[0]", "admin-sources-restricted")]),
    ("rdp-any-protocol", "protocol any from the internet opens 22 and 3389 too",
     at_level(2, '{direction: ingress, protocol: tcp, ports: "443", remote: 0.0.0.0/0}',
              "{direction: ingress, protocol: any, remote: 0.0.0.0/0}"),
     [(19, 11, "spec.securityGroups[0].rules[0]", "admin-sources-restricted")]),
    ("admin-port-from-public-range", "any internet address counts: a partner's public /24 is the internet "
     "(policy.exposure: ops admit trusted networks with the catalog's internalRanges)",
     at_level(2, "22\", remote: 10.50.250.0/24", "22\", remote: 203.0.113.0/24"),
     [(29, 11, "spec.securityGroups[3].rules[0]", "admin-sources-restricted")]),
    ("no-remote-means-anywhere", "a rule without remote or remoteGroup admits any source",
     at_level(2, "22\", remote: 10.50.250.0/24}", "22\"}"),
     [(29, 11, "spec.securityGroups[3].rules[0]", "admin-sources-restricted")]),
    ("level-2-allows-web-outside-dmz", "level 2 has no web-only/dmz-only rule (cumulative from 3)",
     at_level(2, "networks: [dmz, mgmt]\n      securityGroups: [web, admin]",
              "networks: [app, mgmt]\n      securityGroups: [web, admin]"), []),
    ("internet-ingress-non-web-port", "from level 3: only 80/443 from the internet",
     at_level(3, 'ports: "443", remote: 0.0.0.0/0', 'ports: "8443", remote: 0.0.0.0/0'),
     [(19, 11, "spec.securityGroups[0].rules[0]", "internet-ingress-web-only")]),
    ("internet-ingress-range", "a range reaching past 443 is refused",
     at_level(3, 'ports: "443", remote: 0.0.0.0/0', 'ports: "443-444", remote: 0.0.0.0/0'),
     [(19, 11, "spec.securityGroups[0].rules[0]", "internet-ingress-web-only")]),
    ("internet-ingress-wide-cidr", "0.0.0.0/1 is the internet too",
     at_level(3, 'ports: "443", remote: 0.0.0.0/0', 'ports: "25", remote: 0.0.0.0/1'),
     [(19, 11, "spec.securityGroups[0].rules[0]", "internet-ingress-web-only")]),
    ("open-group-outside-dmz", "a group open to the internet only on servers in the dmz",
     at_level(3, "securityGroups: [app, admin]", "securityGroups: [app, admin, web]"),
     [(47, 36, "spec.servers[1].securityGroups[2]", "internet-ingress-web-only")]),
    ("fip-outside-dmz", "from level 3: floating IPs only for servers whose first network is in the dmz",
     at_level(3, "      keypair: ops\n      antiAffinity: true\n    - name: bastion",
              "      keypair: ops\n      antiAffinity: true\n      floatingIP: true\n    - name: bastion"),
     [(50, 19, "spec.servers[1].floatingIP", "floating-ip-dmz-only")]),
    ("allow-all-egress", "from level 3: no allow-all egress",
     at_level(3, '{direction: egress, protocol: tcp, ports: "8080", remote: 10.50.1.0/24}',
              "{direction: egress, protocol: any, remote: 0.0.0.0/0}"),
     [(20, 11, "spec.securityGroups[0].rules[1]", "egress-default-deny")]),
    ("egress-all-tcp-ports", "all tcp ports to anywhere is allow-all too",
     at_level(3, '{direction: egress, protocol: tcp, ports: "8080", remote: 10.50.1.0/24}',
              "{direction: egress, protocol: tcp}"),
     [(20, 11, "spec.securityGroups[0].rules[1]", "egress-default-deny")]),
    ("server-without-group", "from level 3: no server in the default group",
     at_level(3, "      securityGroups: [bastion]\n", ""),
     [(50, 7, "spec.servers[2].securityGroups", "security-group-required")]),
    ("hardening-below-minimum", "from level 3 an explicit lower hardening profile fails",
     at_level(3, "      floatingIP: true\n      antiAffinity: true\n",
              "      floatingIP: true\n      antiAffinity: true\n      hardening: {profile: L2}\n"),
     [(42, 28, "spec.servers[0].hardening.profile", "hardening-l3")]),
    ("hardening-l3-at-level-4", "at level 4, L3 is too low",
     mutate("      floatingIP: true\n      antiAffinity: true\n",
            "      floatingIP: true\n      antiAffinity: true\n      hardening: {profile: L3}\n"),
     [(42, 28, "spec.servers[0].hardening.profile", "hardening-l4")]),
    ("level-3-allows-expiry", "throw-away stacks are fine at level 3",
     at_level(3, "  region: hn1\n", '  region: hn1\n  expiresAt: "2030-01-01T00:00:00+07:00"\n'), []),
    ("expiry-at-level-4", "from level 4: no expiresAt",
     mutate("  region: hn1\n", '  region: hn1\n  expiresAt: "2030-01-01T00:00:00+07:00"\n'),
     [(10, 14, "spec.expiresAt", "no-expiry")]),
    ("mgmt-zone-missing", "from level 4 a mgmt zone (and so a bastion in it) is required",
     mutate("    - {name: mgmt, cidr: 10.50.9.0/24, zone: mgmt, routed: false}",
            "    - {name: mgmt, cidr: 10.50.9.0/24, zone: internal, routed: false}"),
     [(12, 5, "spec.networks", "mgmt-zone-required"), (33, 5, "spec.servers", "bastion-required")]),
    ("mgmt-routed", "from level 4 the mgmt network has no internet",
     mutate("zone: mgmt, routed: false}", "zone: mgmt}"),
     [(14, 7, "spec.networks[2].routed", "mgmt-no-internet")]),
    ("no-bastion", "from level 4 a bastion with a leg in mgmt is required",
     mutate("    - name: bastion\n      flavor", "    - name: relay\n      flavor"),
     [(33, 5, "spec.servers", "bastion-required")]),
    ("fip-on-app", "from level 4 no floating IP on app servers even with a dmz first network",
     mutate("networks: [dmz, mgmt]\n      securityGroups: [web, admin]",
            "networks: [dmz, app]\n      securityGroups: [web, admin]"),
     [(40, 19, "spec.servers[0].floatingIP", "no-public-ip-app-db")]),
    ("anti-affinity-missing", "from level 4 replicated servers spread over hosts",
     mutate("      keypair: ops\n      antiAffinity: true\n    - name: bastion",
            "      keypair: ops\n    - name: bastion"),
     [(42, 7, "spec.servers[1].antiAffinity", "anti-affinity-required")]),
    ("level-5", "level 5 is refused (and the agency/region limits say why too)",
     mutate("classification: 4", "classification: 5"),
     [(8, 19, "spec.classification", "level-5-not-served")]),
]


@pytest.mark.parametrize("case_id,reason,text,expected", CASES, ids=[c[0] for c in CASES])
def test_policy_rule(case_id, reason, text, expected, config):
    request = load_request(text)
    problems = policy.evaluate(request, config.rulebook, config.catalog)
    assert sorted((p.path, p.rule) for p in problems) == sorted((path, rule) for _, _, path, rule in expected), \
        (reason, [p.format() for p in problems])


@pytest.mark.parametrize("case_id,reason,text,expected", [c for c in CASES if c[3]], ids=[c[0] for c in CASES if c[3]])
def test_policy_rule_via_cli(case_id, reason, text, expected, tmp_path):
    code, path, err = validate_text(tmp_path, text)
    assert code == 2, reason
    for line, col, field, rule in expected:
        assert f"{path}:{line}:{col}: {field}: " in err and f"[{rule}]" in err, (reason, err)


def test_level_4_base_is_valid(config):
    assert pipeline.load_request(L4, config).spec.classification == 4


def test_level_5_when_ops_enable_it(config):
    catalog = config.catalog.model_copy(update={"spec": config.catalog.spec.model_copy(update={"serveLevel5": True})})
    request = load_request(mutate("classification: 4", "classification: 5"))
    assert policy.evaluate(request, config.rulebook, catalog) == []


def test_uk_profile_is_selectable_and_differs(tmp_path, capsys):
    """uk-official allows only HTTPS from the internet from level 2; the VN profile allows 80 too."""
    path = tmp_path / "r.yaml"
    path.write_text(at_level(3, 'ports: "443", remote: 0.0.0.0/0', 'ports: "80", remote: 0.0.0.0/0'), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    assert main(["--rulebook", "uk-official", "validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert f"{path}:19:11: spec.securityGroups[0].rules[0]: " in err
    assert "[internet-ingress-https-only]" in err and "uk-official@" in err


def test_rulebook_from_file_and_unknown_name(tmp_path, capsys):
    book = tmp_path / "book.yaml"
    book.write_text("""\
apiVersion: gcloud.gov.vn/v1
kind: Rulebook
metadata: {name: strict, version: "1"}
spec:
  rules:
    - {id: all-hardened, fromLevel: 1, check: hardening-minimum, params: {profile: L4}, message: "L4 only"}
""", encoding="utf-8")
    request = tmp_path / "r.yaml"
    request.write_text(at_level(3, "      floatingIP: true\n      antiAffinity: true\n",
                                "      floatingIP: true\n      antiAffinity: true\n      hardening: {profile: L3}\n"),
                       encoding="utf-8")
    assert main(["--rulebook", str(book), "validate", str(request)]) == 2
    assert main(["--rulebook", "no-such-profile", "validate", str(request)]) == 2
    out, err = capsys.readouterr()
    assert "[all-hardened]" in err and "unknown rulebook profile 'no-such-profile'" in err
    assert "Traceback" not in out + err


# (id, reason, rules YAML, (line, col, path, message fragment))
BAD_RULEBOOKS = [
    ("unknown-check", "checks are a fixed set in code",
     "    - {id: x1, fromLevel: 1, check: world-ingres-ports, message: m}\n",
     (6, 37, "spec.rules[0].check", "must be 'level-not-served'")),
    ("params-misfit", "parameters are validated against the check",
     "    - {id: x1, fromLevel: 1, check: hardening-minimum, params: {profile: L9}, message: m}\n",
     (6, 7, "spec.rules[0]", "params do not fit check 'hardening-minimum'")),
    ("duplicate-id", "rule ids are unique",
     "    - {id: x1, fromLevel: 1, check: no-expiry, message: m}\n"
     "    - {id: x1, fromLevel: 2, check: no-expiry, message: m}\n",
     (5, 3, "spec", "rule id 'x1' appears twice")),
]


@pytest.mark.parametrize("case_id,reason,rules,expected", BAD_RULEBOOKS, ids=[c[0] for c in BAD_RULEBOOKS])
def test_bad_rulebook_is_located(case_id, reason, rules, expected, tmp_path, capsys):
    book = tmp_path / "book.yaml"
    book.write_text("apiVersion: gcloud.gov.vn/v1\nkind: Rulebook\nmetadata: {name: bk, version: '1'}\n"
                    "spec:\n  rules:\n" + rules, encoding="utf-8")
    with pytest.raises(InvalidInput) as info:
        pipeline.load_rulebook(str(book))
    problem = info.value.problems[0]
    assert (problem.line, problem.column, problem.path) == expected[:3], reason
    assert expected[3] in problem.message
    assert main(["--rulebook", str(book), "validate", "examples/byt-his-staging.yaml"]) == 2
    assert "Traceback" not in "".join(capsys.readouterr())


def test_shipped_profiles_cover_every_level():
    for name in pipeline.shipped_rulebooks():
        book = pipeline.load_rulebook(name)
        assert sorted(book.spec.levels) == [1, 2, 3, 4, 5], name
        assert any(rule.check == "level-not-served" and rule.fromLevel == 5 for rule in book.spec.rules), name
        assert book.rules_for(1) != book.rules_for(4)
