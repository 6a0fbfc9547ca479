"""Specification of Vietnamese messages: validation problems, hints, rulebook messages and the
main CLI messages are shown in Vietnamese when the locale is `vi` (`LANG=vi_VN.UTF-8` or
`--lang vi`), English otherwise; every message marked for translation in the files listed here
has a Vietnamese translation with the same placeholders (extracted with Babel, as a translator's
tool would), so a new untranslated message fails this test."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
import yaml
from babel.messages.extract import extract_from_file

from gcloudctl import i18n
from gcloudctl.cli.main import main
from tests.fixtures.core import EXAMPLE, ROOT

# The files whose marked messages (`_()` / `gettext()`) must all be translated.
MARKED = ["gcloudctl/validate.py", "gcloudctl/model/load.py", "gcloudctl/stacks.py", "gcloudctl/cli/main.py",
          "gcloudctl/cli/context.py", "gcloudctl/cli/core.py", "gcloudctl/cli/render.py", "gcloudctl/cli/tenants.py",
          "gcloudctl/cli/catalog.py", "gcloudctl/cli/outputs.py", "gcloudctl/cli/stacks.py"]
RULEBOOKS = sorted((ROOT / "gcloudctl" / "data" / "rulebooks").glob("*.yaml"))


def marked_messages() -> list[str]:
    found = []
    for name in MARKED:
        for _line, message, _comments, _context in extract_from_file("python", str(ROOT / name)):
            found.append(message if isinstance(message, str) else message[0])
    for path in RULEBOOKS:  # a rulebook's messages and hints are msgids too (gcloudctl.policy)
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["rules"]:
            found += [rule[key] for key in ("message", "hint") if rule.get(key)]
    return sorted(set(found))


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_enough_messages_are_marked():
    assert len(marked_messages()) > 150, "the extraction found the marked messages"


def test_every_marked_message_is_translated():
    assert i18n.untranslated(marked_messages(), lang="vi", domain="cli") == []


def test_translations_keep_the_placeholders():
    catalog = i18n.catalog("vi", "cli")
    wrong = [m for m in marked_messages() if placeholders(catalog.get(m).string) != placeholders(m)]
    assert wrong == []


def bad_request(tmp_path) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8").replace("region: hn1", "region: hn9")
    text = text.replace("flavor: g1.small", "flavor: g1.smal")
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# id, how the language is chosen, expected fragments, why
CASES = [
    ("lang-env", {"LANG": "vi_VN.UTF-8"}, [], ["vùng 'hn9' không có trong danh mục nền tảng",
                                              "có phải ý bạn là 'g1.small'?", "lỗi: 2 vấn đề"], "the usual locale"),
    ("lang-option", {"LANG": "C.UTF-8"}, ["--lang", "vi"], ["vùng 'hn9' không có trong danh mục nền tảng"],
     "--lang wins over the locale"),
    ("english", {"LANG": "C.UTF-8"}, [], ["region 'hn9' is not in the platform catalog",
                                          "did you mean 'g1.small'?"], "English by default"),
    ("option-en", {"LANG": "vi_VN.UTF-8"}, ["--lang", "en"], ["region 'hn9' is not in the platform catalog"],
     "--lang en over a Vietnamese locale"),
]


@pytest.mark.parametrize("env,options,expected", [pytest.param(e, o, x, id=i) for i, e, o, x, _ in CASES])
def test_validation_messages_follow_the_language(tmp_path, monkeypatch, capsys, env, options, expected):
    for name in ("GCLOUDCTL_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([*options, "plan", str(bad_request(tmp_path))]) == 2
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err


def test_rulebook_messages_in_vietnamese(tmp_path, monkeypatch, capsys):
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["spec"]["securityGroups"][0]["rules"].append({"direction": "ingress", "protocol": "tcp", "ports": 22,
                                                     "remote": "0.0.0.0/0"})
    path = tmp_path / "open-ssh.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    assert main(["--lang", "vi", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "không được mở các cổng quản trị (22, 3389) ra Internet" in err
    assert "chỉ cho phép SSH/RDP" in err  # the "hint:" label of a problem line is errors.Problem.format's


def test_json_errors_and_hints_in_vietnamese(cli_on_fake, capsys):
    assert cli_on_fake("--lang", "vi", "describe", "khong-co", "-o", "json") == 7
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] == "không tìm thấy tenant 'khong-co'"
    assert "lỗi: không tìm thấy tenant 'khong-co'" in err
    assert "gợi ý: xem danh sách tenant bằng: gcloudctl get tenants" in err


def test_tables_in_vietnamese(capsys):
    assert main(["--lang", "vi", "catalog", "flavors"]) == 0
    assert re.match(r"CẤU HÌNH\s+VCPUS", capsys.readouterr().out)
