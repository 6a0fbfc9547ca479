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


def test_fuzz_ran_and_saw_both_outcomes():
    """Runs after the fuzzers in this module: they did run, and not every input was refused."""
    assert len(RESULTS) >= 3 * min(EXAMPLES, 10)
    assert 2 in RESULTS
