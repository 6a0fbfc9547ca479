"""Fuzzing `gcloudctl validate` (hypothesis): whatever the bytes, the answer is exit 0 or 2 with
located problems, never a traceback and never another exit code.

The default run is a few seconds; GCLOUDCTL_FUZZ_EXAMPLES=N runs N examples per strategy.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcloudctl.cli.main import main

EXAMPLES = int(os.environ.get("GCLOUDCTL_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)
EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "byt-his-staging.yaml").read_text(encoding="utf-8")
WORK = Path(tempfile.mkdtemp(prefix="gcloudctl-fuzz-"))
RESULTS: list[int] = []


def validate(data: bytes) -> tuple[int, str]:
    path = WORK / "request.yaml"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    RESULTS.append(code)
    return code, out.getvalue() + err.getvalue()


def assert_clean(data: bytes) -> None:
    code, output = validate(data)
    assert code in (0, 2), output
    assert "Traceback" not in output and "error: unexpected" not in output, output
    if code == 2:
        assert f"{WORK / 'request.yaml'}:" in output, output  # every problem is located in the file


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    assert_clean(data)


YAML_TOKENS = st.sampled_from([
    "apiVersion", "kind", "metadata", "spec", "TenantRequest", "gcloud.gov.vn/v1", "servers", "networks",
    "name", "count", "cidr", "10.40.1.0/24", ":", ": ", " ", "  ", "\n", "\n  ", "- ", "[", "]", "{", "}", ",",
    "&a ", "*a", "!!python/object:os.system", "!!binary", "!x ", "'", '"', "#", "\t", "---", "...", "<<: ",
    "? ", "|", ">", "%YAML 1.1", "~", "null", "yes", "0x1F", "1e400", "2026-13-45", "é", "\u0085", "\ufeff",
])


@FUZZ
@given(st.lists(YAML_TOKENS, max_size=80).map("".join))
def test_yaml_ish_text(text):
    assert_clean(text.encode("utf-8", "surrogatepass"))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(),
                   st.text(max_size=30), st.sampled_from(["", "0.0.0.0/0", "10.40.1.0/33", "web", "g1.small",
                                                          "L1", "dmz", "mgmt", "443", "1-70000", "BTC"]))
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=3), max_leaves=6)


@st.composite
def mutated_example(draw):
    document = yaml.safe_load(EXAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["delete", "retype", "rename", "duplicate"]))
        if action == "delete":
            del parent[last]
        elif action == "retype":
            parent[last] = draw(VALUES)
        elif action == "rename" and isinstance(parent, dict):
            parent[last + draw(st.sampled_from(["s", "_", "X", ""])).swapcase()] = parent.pop(last)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


@FUZZ
@given(mutated_example())
def test_mutations_of_the_example(text):
    assert_clean(text.encode("utf-8", "surrogatepass"))


NAMES = st.sampled_from(["web", "app", "db", "mgmt", "dmz", "bastion", "jump", "ops", "web-1", "x"])
RULES = st.fixed_dictionaries(
    {"direction": st.sampled_from(["ingress", "egress"]), "protocol": st.sampled_from(["tcp", "udp", "icmp", "any"])},
    optional={"ports": st.sampled_from(["22", "80", "443", "1-65535", "3389", "8000-8080", 5432]),
              "remote": st.sampled_from(["0.0.0.0/0", "0.0.0.0/1", "10.0.0.0/8", "203.0.113.0/24"]),
              "remoteGroup": NAMES})


@st.composite
def semantic_request(draw):
    """Requests that pass the schema more often than not, to reach references, quotas and policy."""
    networks = draw(st.lists(st.fixed_dictionaries(
        {"name": NAMES, "zone": st.sampled_from(["dmz", "app", "db", "mgmt", "internal", "lab"])},
        optional={"cidr": st.sampled_from(["10.40.1.0/24", "10.40.1.128/25", "10.50.0.0/24", "10.60.9.0/24",
                                           "192.168.0.0/16"]),
                  "routed": st.booleans(), "prefixLength": st.integers(16, 28)}), max_size=4))
    groups = draw(st.lists(st.fixed_dictionaries({"name": NAMES, "rules": st.lists(RULES, max_size=3)}), max_size=3))
    servers = draw(st.lists(st.fixed_dictionaries(
        {"name": NAMES, "flavor": st.sampled_from(["g1.small", "g1.large", "m1.tiny"]),
         "image": st.sampled_from(["debian-12-hardened", "ubuntu-24.04-hardened", "windows"]),
         "networks": st.lists(NAMES, min_size=1, max_size=3)},
        optional={"count": st.integers(1, 50), "securityGroups": st.lists(NAMES, max_size=2),
                  "keypair": NAMES, "floatingIP": st.booleans(), "antiAffinity": st.booleans(),
                  "hardening": st.fixed_dictionaries({"profile": st.sampled_from(["L1", "L2", "L3", "L4"])}),
                  "userData": st.fixed_dictionaries({"template": st.sampled_from(["default.yaml.j2", "x.j2", "../a"]),
                                                     "vars": st.dictionaries(st.sampled_from(["a", "b"]),
                                                                             st.integers())})}), max_size=4))
    spec = {"classification": draw(st.integers(1, 5)), "region": draw(st.sampled_from(["hn1", "hcm1"])),
            "quotas": {name: draw(st.integers(0, 300)) for name in ("instances", "cores", "ramMiB", "floatingIPs")},
            "networks": networks, "securityGroups": groups, "servers": servers,
            "keypairs": [{"name": "ops", "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ops"}]}
    if draw(st.booleans()):
        spec["router"] = {"externalNetwork": draw(st.sampled_from(["public", "other"]))}
    if draw(st.booleans()):
        spec["expiresAt"] = "2026-12-31T00:00:00+07:00"
    return yaml.safe_dump({"apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
                           "metadata": {"name": "fuzz-tenant", "agency": draw(st.sampled_from(["BYT", "BTC", "XYZ"])),
                                        "requester": "fuzz.user"}, "spec": spec}, sort_keys=False)


@FUZZ
@given(semantic_request())
def test_semantically_varied_requests(text):
    assert_clean(text.encode("utf-8"))


def test_fuzz_ran_and_saw_both_outcomes():
    """Runs after the fuzzers in this module: they did run, and not every input was refused."""
    assert len(RESULTS) >= 4 * min(EXAMPLES, 10)
    assert 2 in RESULTS
