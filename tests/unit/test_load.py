"""Specification of `gcloudctl.model.load`: every bad input is reported at its exact position,
with its field path, as exit status 2 and never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcloudctl.errors import InvalidInput
from gcloudctl.model.load import load_agencies, load_document, load_platform, load_request
from gcloudctl.model.request import TenantRequest
from tests.unit.test_cli_validate import validate_text

# Line numbers below refer to this text; keep it stable.
BASE = """\
apiVersion: gcloud.gov.vn/v1
kind: TenantRequest
metadata:
  name: byt-his-test
  agency: BYT
  requester: nguyen.van.a
  labels: {environment: staging}
spec:
  classification: 2
  region: hn1
  quotas: {instances: 4, cores: 8, ramMiB: 16384, floatingIPs: 1}
  networks:
    - {name: app, cidr: 10.40.1.0/24, zone: app}
  router: {externalNetwork: public}
  securityGroups:
    - name: web
      rules:
        - {direction: ingress, protocol: tcp, ports: "443", remote: 0.0.0.0/0}
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
      floatingIP: false
"""


def mutate(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once in BASE"
    return BASE.replace(old, new)


# (id, reason, text or bytes, [(line, col, path, message fragment), ...], hint fragment or None)
CASES = [
    ("yaml-syntax", "an unclosed flow sequence is reported where the parser gave up",
     mutate("networks: [app]", "networks: [app"), [(27, 21, "", "YAML syntax error")], "indentation"),
    ("tab-indent", "tabs are not YAML indentation",
     mutate("      count: 2", "\tcount: 2"), [(23, 1, "", "YAML syntax error")], None),
    ("empty", "an empty file is not a request", "", [(1, 1, "", "the document is empty")], "apiVersion"),
    ("only-comments", "comments alone are an empty document", "# nothing here\n# at all\n",
     [(1, 1, "", "the document is empty")], None),
    ("explicit-empty", "'---' with nothing after it is empty too", "---\n...\n",
     [(1, 1, "", "the document is empty")], None),
    ("non-utf8", "a Latin-1 byte is located at its line and column",
     mutate("requester: nguyen.van.a", "requester: nguy\xe9n").encode("latin-1"),
     [(6, 18, "", "not UTF-8: byte 0xe9")], "UTF-8"),
    ("control-char", "a NUL character is refused where it is",
     mutate("region: hn1", "region: h\x00n1"), [(10, 12, "", "control character U+0000")], None),
    ("two-documents", "one request per file", BASE + "---\n" + BASE,
     [(30, 1, "", "more than one YAML document")], "one request per file"),
    ("python-tag", "no Python object construction, ever",
     mutate("region: hn1", "region: !!python/object/apply:os.system ['true']"),
     [(10, 11, "spec.region", "YAML tag !!python/object/apply:os.system is not allowed")], None),
    ("custom-tag", "non-core tags are refused",
     mutate("region: hn1", "region: !vault hn1"), [(10, 11, "spec.region", "YAML tag !vault is not allowed")], None),
    ("binary-tag", "!!binary is not a core scalar we accept",
     mutate("region: hn1", "region: !!binary aG4x"), [(10, 11, "spec.region", "YAML tag !!binary")], None),
    ("set-tag", "!!set is not a plain mapping",
     mutate("labels: {environment: staging}", "labels: !!set {a, b}"),
     [(7, 11, "metadata.labels", "YAML tag !!set")], None),
    ("anchor-alias", "anchors and aliases are refused (alias bombs)",
     mutate("region: hn1", "region: &r hn1\n  description: *r").replace("classification: 2", "classification: 2"),
     [(10, 11, "spec.region", "anchor &r is not allowed"), (11, 16, "spec.description", "alias *r is not allowed")],
     None),
    ("merge-key", "merge keys are an alias feature",
     mutate("  router: {externalNetwork: public}", "  router:\n    <<: {externalNetwork: public}"),
     [(15, 5, "spec.router", "merge keys ('<<') are not allowed")], None),
    ("duplicate-key", "the second occurrence is the problem, naming the first",
     mutate("  region: hn1\n", "  region: hn1\n  region: hn2\n"),
     [(11, 3, "spec.region", "duplicate key 'region' (first at line 10)")], "once"),
    ("deep-nesting", "nesting is bounded",
     mutate("labels: {environment: staging}", "labels: " + "[" * 40 + "]" * 40),
     [(7, 41, "metadata.labels" + "[0]" * 30, "nesting deeper than 32 levels")], None),
    ("not-a-mapping", "the document must be a mapping", "- a\n- b\n",
     [(1, 1, "", "expected a mapping, not a list")], "apiVersion, kind"),
    ("wrong-api-version", "apiVersion is fixed",
     mutate("apiVersion: gcloud.gov.vn/v1", "apiVersion: gcloud.gov.vn/v2"),
     [(1, 13, "apiVersion", "must be 'gcloud.gov.vn/v1', not 'gcloud.gov.vn/v2'")], None),
    ("wrong-kind", "a catalog is not a request, and the hint says so",
     mutate("kind: TenantRequest", "kind: PlatformCatalog"),
     [(2, 7, "kind", "must be 'TenantRequest'")], "this file is a PlatformCatalog"),
    ("unknown-field", "a misspelt field gets a suggestion, located at the key",
     mutate("      floatingIP: false", "      floatingIp: false"),
     [(29, 7, "spec.servers[0].floatingIp", "unknown field 'floatingIp'")], "did you mean 'floatingIP'?"),
    ("unknown-field-nested", "suggestions come from the model at that location",
     mutate("{name: app, cidr: 10.40.1.0/24, zone: app}", "{name: app, cdir: 10.40.1.0/24, zone: app}"),
     [(13, 19, "spec.networks[0].cdir", "unknown field 'cdir'")], "did you mean 'cidr'?"),
    ("unknown-top-level", "a field nowhere near any known one lists the fields",
     BASE + "zzz: 1\n", [(30, 1, "zzz", "unknown field 'zzz'")], "fields here: apiVersion, kind, metadata, spec"),
    ("missing-field", "a missing field is reported at its parent",
     mutate("  region: hn1\n", ""), [(9, 3, "spec.region", "missing required field 'region'")], None),
    ("missing-section", "a missing top-level section points at the document start",
     BASE.split("spec:")[0], [(1, 1, "spec", "missing required field 'spec'")], None),
    ("wrong-type-int", "a word where a number belongs",
     mutate("count: 2", "count: two"), [(23, 14, "spec.servers[0].count", "expected a whole number, not 'two'")], None),
    ("norway", "YAML 1.1 booleans in a string field get a quoting hint",
     mutate("environment: staging", "environment: no"),
     [(7, 25, "metadata.labels.environment", "expected a string, not the boolean false")], "quotes"),
    ("pattern", "names are explained in words, not regexes",
     mutate("name: byt-his-test", "name: BYT_HIS"),
     [(4, 9, "metadata.name", "'BYT_HIS' is not valid here: expected lowercase letters")], None),
    ("range", "numbers out of range say the bound",
     mutate("count: 2", "count: 500"), [(23, 14, "spec.servers[0].count", "must be at most 50, not the number 500")], None),
    ("cidr-host-bits", "a CIDR with host bits set is refused with an example",
     mutate("cidr: 10.40.1.0/24", "cidr: 10.40.1.7/24"),
     [(13, 25, "spec.networks[0].cidr", "not a valid IPv4 network")], None),
    ("cidr-boolean", "pydantic alone would read true as 0.0.0.1/32 (found by fuzzing)",
     mutate("cidr: 10.40.1.0/24", "cidr: true"),
     [(13, 25, "spec.networks[0].cidr", "write the address as text, like 10.40.1.0/24")], None),
    ("remote-number", "pydantic alone would read 0 as 0.0.0.0/32, a single host",
     mutate("remote: 0.0.0.0/0", "remote: 0"),
     [(18, 69, "spec.securityGroups[0].rules[0].remote", "write the address as text")], None),
    ("too-long", "length limits are stated in characters",
     mutate("  requester: nguyen.van.a\n", "  requester: nguyen.van.a\n  description: " + "x" * 256 + "\n"),
     [(7, 16, "metadata.description", "too long: at most 255 characters are allowed")], None),
    ("empty-list", "a list that needs items says how many",
     mutate("networks: [app]", "networks: []"),
     [(26, 17, "spec.servers[0].networks", "needs at least 1 item(s)")], None),
    ("impossible-date", "a date YAML recognises but the calendar does not",
     mutate("  region: hn1\n", "  region: hn1\n  expiresAt: 2026-02-30\n"),
     [(11, 14, "spec.expiresAt", "'2026-02-30' is not a valid date")], "2026-12-31T00:00:00+07:00"),
    ("date-without-zone", "expiresAt needs a time zone",
     mutate("  region: hn1\n", "  region: hn1\n  expiresAt: 2026-12-31T00:00:00\n"),
     [(11, 14, "spec.expiresAt", "expiresAt needs a timezone")], None),
    ("ports-word", "a port range that is not one",
     mutate('ports: "443"', 'ports: "https"'),
     [(18, 54, "spec.securityGroups[0].rules[0].ports", 'expected a port "443" or a range "8000-8080"')], None),
    ("model-validator", "cross-field rules inside a model keep their message",
     mutate('ports: "443", remote: 0.0.0.0/0', 'ports: "443", remote: 0.0.0.0/0, remoteGroup: web'),
     [(18, 11, "spec.securityGroups[0].rules[0]", "give either remote or remoteGroup, not both")], None),
    ("private-key", "a private key pasted as publicKey is caught",
     mutate('publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBATrWvJFs40A9Ecu0FM1w8WJcG4ol86jgNzS7I9TMW0 ops"',
            'publicKey: "-----BEGIN OPENSSH PRIVATE KEY-----"'),
     [(20, 30, "spec.keypairs[0].publicKey", "this is a private key")], None),
    ("many-at-once", "every problem is reported, not just the first",
     mutate("count: 2", "count: two").replace("region: hn1", "region: HN1").replace("agency: BYT", "agencyy: BYT"),
     [(4, 3, "metadata.agency", "missing required field 'agency'"), (5, 3, "metadata.agencyy", "unknown field 'agencyy'"),
      (10, 11, "spec.region", "is not valid here"), (23, 14, "spec.servers[0].count", "expected a whole number")], None),
]


@pytest.mark.parametrize("case_id,reason,source,expected,hint", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_located(case_id, reason, source, expected, hint):
    with pytest.raises(InvalidInput) as info:
        load_request(source, filename="t.yaml")
    problems = info.value.problems
    got = [(p.line, p.column, p.path) for p in problems]
    assert got == [(line, col, path) for line, col, path, _ in expected], reason
    for problem, (_, _, _, fragment) in zip(problems, expected):
        assert fragment in problem.message, (reason, problem.message)
        assert problem.file == "t.yaml"
    if hint is not None:
        assert any(hint in (p.hint or "") for p in problems), (reason, [p.hint for p in problems])


@pytest.mark.parametrize("case_id,reason,source,expected,hint", CASES, ids=[c[0] for c in CASES])
def test_bad_input_via_cli_exits_2_without_traceback(case_id, reason, source, expected, hint, tmp_path):
    code, path, err = validate_text(tmp_path, source)
    assert code == 2, reason
    for line, col, field, _ in expected:
        assert f"{path}:{line}:{col}: {field or '<document>'}: " in err, (reason, err)


def test_the_base_text_is_valid():
    request = load_request(BASE)
    assert request.spec.servers[0].count == 2


def test_source_may_be_text_bytes_or_path(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert load_request(BASE) == load_request(BASE.encode()) == load_request(path)
    with pytest.raises(InvalidInput) as info:
        load_request(b"kind: [", filename="given.yaml")
    assert info.value.problems[0].file == "given.yaml"
    with pytest.raises(InvalidInput) as info:
        load_request(tmp_path / "missing.yaml")
    assert "cannot read file" in info.value.problems[0].message


def test_oversized_input_is_refused_before_parsing():
    text = BASE + "# " + "x" * (1024 * 1024) + "\n"
    with pytest.raises(InvalidInput) as info:
        load_request(text)
    assert "limit is 1048576" in info.value.problems[0].message


def test_oversized_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(InvalidInput) as info:
        load_request(path)
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.column) == (str(path), 1, 1)
    assert "file is 1048577 bytes" in problem.message


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
              for i in range(1, 10)]
    with pytest.raises(InvalidInput) as info:
        load_request("\n".join(lines))
    assert "alias *a0 is not allowed" in info.value.message


def test_core_tags_and_bom_are_accepted():
    text = "\ufeff" + BASE.replace("region: hn1", "region: !!str hn1").replace("count: 2", "count: !!int 2")
    assert load_request(text).spec.region == "hn1"


def test_shipped_documents_load():
    root = Path(__file__).resolve().parents[2]
    assert load_platform(root / "gcloudctl/data/platform.yaml").spec.regions
    assert load_agencies(root / "gcloudctl/data/agencies.yaml").get("BYT").maxClassification == 3
    assert isinstance(load_document(root / "examples/byt-his-staging.yaml", TenantRequest), TenantRequest)
