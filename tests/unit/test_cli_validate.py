"""Specification of `gcloudctl validate FILE|DIR...`: every problem of every file, exit 2 on any
problem and 0 otherwise, a machine-readable list with -o json, no traceback ever."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from gcloudctl.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "byt-his-staging.yaml").read_text(encoding="utf-8")


def validate_text(directory: Path, source: str | bytes, *options: str) -> tuple[int, Path, str]:
    """Write *source* to a file and run `gcloudctl [options] validate FILE`: (exit code, file, stderr).
    Used by the table-driven tests of load, validate and policy; a traceback fails the test."""
    path = directory / "request.yaml"
    path.write_bytes(source if isinstance(source, bytes) else source.encode("utf-8"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*options, "validate", str(path)])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return code, path, err.getvalue()


@pytest.fixture
def tree(tmp_path):
    """good/a.yaml, good/nested/b.yml (valid) and bad/c.yaml (two problems), bad/d.yaml (one)."""
    (tmp_path / "good" / "nested").mkdir(parents=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "good" / "a.yaml").write_text(EXAMPLE, encoding="utf-8")
    (tmp_path / "good" / "nested" / "b.yml").write_text(EXAMPLE.replace("byt-his-staging", "byt-his-dev"),
                                                        encoding="utf-8")
    (tmp_path / "good" / "notes.txt").write_text("not a request", encoding="utf-8")
    (tmp_path / "bad" / "c.yaml").write_text(EXAMPLE.replace("region: hn1", "region: hn9")
                                             .replace("count: 2", "count: 0"), encoding="utf-8")
    (tmp_path / "bad" / "d.yaml").write_text("kind: [", encoding="utf-8")
    return tmp_path


def test_valid_directory(tree, capsys):
    assert main(["validate", str(tree / "good")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("2 files valid (rulebook vn-nd85-tcvn11930@")
    assert err == ""


def test_all_problems_of_all_files(tree, capsys):
    assert main(["validate", str(tree / "good"), str(tree / "bad")]) == 2
    out, err = capsys.readouterr()
    assert f"{tree / 'bad' / 'c.yaml'}:30:26: spec.servers[0].count: must be at least 1" in err
    assert f"{tree / 'bad' / 'd.yaml'}:1:8: <document>: YAML syntax error" in err
    assert "2 problem(s) in 2 of 4 file(s)" in err
    assert "Traceback" not in out + err


def test_semantic_problems_after_schema_problems_are_fixed(tree, capsys):
    (tree / "bad" / "c.yaml").write_text(EXAMPLE.replace("region: hn1", "region: hn9"), encoding="utf-8")
    assert main(["validate", str(tree / "bad" / "c.yaml")]) == 2
    assert f"{tree / 'bad' / 'c.yaml'}:11:11: spec.region: region 'hn9' is not in the platform catalog" \
        in capsys.readouterr().err


def test_json_output_is_a_list_of_located_problems(tree, capsys):
    assert main(["validate", "-o", "json", str(tree / "bad")]) == 2
    problems = json.loads(capsys.readouterr().out)
    assert [(Path(p["file"]).name, p["line"], p["column"], p["path"]) for p in problems] == [
        ("c.yaml", 30, 26, "spec.servers[0].count"), ("d.yaml", 1, 8, "")]
    assert all(p["message"] for p in problems)


def test_json_output_for_a_broken_rulebook(tree, capsys):
    (tree / "book.yaml").write_text("kind: Rulebook\n", encoding="utf-8")
    assert main(["--rulebook", str(tree / "book.yaml"), "validate", "-o", "json", str(tree / "good")]) == 2
    problems = json.loads(capsys.readouterr().out)
    assert {(p["file"], p["path"]) for p in problems} == {(str(tree / "book.yaml"), field)
                                                          for field in ("apiVersion", "metadata", "spec")}


def test_json_output_when_valid_is_empty(tree, capsys):
    assert main(["-o", "json", "validate", str(tree / "good" / "a.yaml")]) == 0
    assert json.loads(capsys.readouterr().out) == []


# (id, reason, argv builder, expected exit, expected text on stderr)
USAGE = [
    ("missing-file", "a file that does not exist is a usage error", lambda t: ["validate", str(t / "nope.yaml")],
     2, "does not exist"),
    ("no-arguments", "at least one path", lambda t: ["validate"], 2, "Missing argument"),
    ("empty-directory", "a directory without YAML is a problem, not success",
     lambda t: ["validate", str(t / "empty")], 2, "no .yaml or .yml files in this directory"),
    ("bad-platform-file", "a broken catalog is reported at its own position",
     lambda t: ["--platform", str(t / "bad" / "d.yaml"), "validate", str(t / "good")], 2, "d.yaml:1:8: <document>"),
    ("agencies-file", "--agencies selects the registry: BYT unknown there",
     lambda t: ["--agencies", str(t / "agencies.yaml"), "validate", str(t / "good" / "a.yaml")], 2,
     "a.yaml:5:11: metadata.agency: agency 'BYT' is not in the agency registry"),
]


@pytest.mark.parametrize("case_id,reason,argv,code,text", USAGE, ids=[u[0] for u in USAGE])
def test_usage_and_configuration(case_id, reason, argv, code, text, tree, capsys):
    (tree / "empty").mkdir()
    registry = (ROOT / "gcloudctl" / "data" / "agencies.yaml").read_text(encoding="utf-8")
    (tree / "agencies.yaml").write_text(registry.replace("    BYT:", "    BYX:"), encoding="utf-8")
    assert main(argv(tree)) == code, reason
    out, err = capsys.readouterr()
    assert text in err, (reason, err)
    assert "Traceback" not in out + err


def test_platform_file_with_its_own_rulebook(tree, capsys):
    platform = (ROOT / "gcloudctl" / "data" / "platform.yaml").read_text(encoding="utf-8")
    (tree / "platform.yaml").write_text(platform.replace("rulebook: vn-nd85-tcvn11930", "rulebook: uk-official"),
                                        encoding="utf-8")
    assert main(["--platform", str(tree / "platform.yaml"), "validate", str(tree / "good" / "a.yaml")]) == 2
    assert "[internet-ingress-https-only]" in capsys.readouterr().err


def test_examples_shipped_in_the_repo_are_valid(capsys, tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    assert main(["validate", str(tmp_path / "examples")]) == 0


def test_templates_dir_option_overrides_the_shipped_templates(tmp_path, monkeypatch, capsys):
    """Operators replace the shipped cloud-init templates with --templates-dir (or its env variable)."""
    monkeypatch.setenv("GCLOUDCTL_TEMPLATES_DIR", str(tmp_path))  # restored after the test
    request = tmp_path / "request.yaml"
    request.write_text(EXAMPLE, encoding="utf-8")
    own = tmp_path / "own"
    own.mkdir()
    assert main(["--templates-dir", str(own), "validate", str(request)]) == 2
    assert "template 'default.yaml.j2' does not exist" in capsys.readouterr().err
    (own / "default.yaml.j2").write_text("#cloud-config\nhostname: {{ hostname | tojson }}\n", encoding="utf-8")
    assert main(["--templates-dir", str(own), "validate", str(request)]) == 0
