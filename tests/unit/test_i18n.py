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

# The files whose marked messages (`_()`, `gettext()`, `N_()`) must all be translated: every module
# of the package, so a message marked in a new file (a driver, a use case) is checked too. The web
# console and the compliance dossier have their own domains (tests/web, tests/compliance).
OTHER_DOMAINS = ("gcloudctl/web/", "gcloudctl/compliance/", "gcloudctl/i18n.py", "gcloudctl/devcloud/plugins/")
MARKED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "gcloudctl").rglob("*.py")
                if not str(p.relative_to(ROOT)).startswith(OTHER_DOMAINS))
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


# ---- the language reaches the worker threads ----------------------------------------------------
# `--lang vi` sets a ContextVar in the command's thread; work that runs in a thread pool (the
# executor's changes, each host of `harden`) must see it: a message made there is Vietnamese.

class _DownHosts:
    """Hardening effects where every host refuses SSH; the message is made in the worker thread."""

    def reach(self, name, target, known_hosts, console, timeout):
        from gcloudctl.errors import Unreachable

        raise Unreachable(i18n.gettext("{host}:{port}: no SSH banner yet", host=target.host, port=target.port))

    def harden(self, *args, **kwargs):  # pragma: no cover - never reached
        raise AssertionError("no host answers")

    def verify(self, *args, **kwargs):  # pragma: no cover - never reached
        raise AssertionError("no host answers")


def test_harden_workers_speak_vietnamese(tmp_path, monkeypatch, capsys):
    from gcloudctl.usecases import harden as usecase

    monkeypatch.setattr(usecase, "DriverHostOps", _DownHosts)
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(yaml.safe_dump({"level": 1, "hosts": [
        {"name": f"app-{i}", "role": "app", "zones": ["app"], "fixed_ips": {"net": f"10.0.0.{i}"},
         "floating_ip": f"203.0.113.{i}", "image": "debian-12", "status": "ACTIVE"} for i in (1, 2)]}))
    code = main(["--lang", "vi", "harden", "t1", "--hosts", str(hosts), "--known-hosts", str(tmp_path / "kh")])
    out, err = capsys.readouterr()
    assert code == 6
    assert "tăng cứng 2 máy của t1 theo hồ sơ L1" in err  # the command's own thread
    for i in (1, 2):  # each host's line is made in its worker thread
        assert f"app-{i}: không kết nối được: 203.0.113.{i}:22: chưa có lời chào SSH" in err
    assert "KHÔNG KẾT NỐI ĐƯỢC" in out  # the table


def test_executor_workers_speak_vietnamese(config, example_doc):
    """A change's failure message made by the driver in an executor worker thread."""
    from gcloudctl import pipeline
    from gcloudctl.drivers.base import IdMap
    from gcloudctl.drivers.fake import FakeApi, FakeCloud
    from gcloudctl.errors import CloudError
    from gcloudctl.executor import RetryPolicy, Status, apply
    from tests.fixtures.core import request_from

    class RefusingCloud(FakeCloud):
        def create(self, resource, ids):
            if resource.address.kind.value == "network":
                raise CloudError(i18n.gettext("no such server in the cloud"), transient=False)
            return super().create(resource, ids)

    api = FakeApi()
    plan = pipeline.plan_request(request_from(example_doc, config), FakeCloud(api), config)
    with i18n.use_language("vi"):
        result = apply(plan, RefusingCloud(api), IdMap.from_observed(plan.observed),
                       retry=RetryPolicy(attempts=1, base=0.0, cap=0.0))
    failed = [o for o in result.outcomes if o.status is Status.FAILED]
    assert failed and all(o.error == "không có máy chủ này trên đám mây" for o in failed)
