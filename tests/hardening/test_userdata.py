"""User data renderer: StrictUndefined, allowed directory only, Nova's size limit."""

import base64
import os

import pytest
import yaml

from gcloudctl.errors import InvalidInput
from gcloudctl.hardening.userdata import NOVA_USER_DATA_LIMIT, UserDataError, check_user_data, render_user_data

CONTEXT = {"tenant": "moh", "server": "web-1", "hostname": "web-1", "automation_user": "gcadmin",
           "ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ops@moh"],
           "classification_level": 3}


@pytest.fixture
def tdir(tmp_path):
    (tmp_path / "ok.j2").write_text("#cloud-config\nhostname: {{ hostname }}\nx: {{ vars.size }}\n")
    (tmp_path / "unknown.j2").write_text("#cloud-config\nfoo: {{ no_such_variable }}\n")
    (tmp_path / "unknown_var.j2").write_text("#cloud-config\nfoo: {{ vars.missing }}\n")
    (tmp_path / "big.j2").write_text("#cloud-config\nwrite_files:\n{% for i in range(vars.n) %}  - {path: /etc/f{{ i }}, content: '{{ 'x' * 100 }}'}\n{% endfor %}")
    (tmp_path / "badyaml.j2").write_text("#cloud-config\nfoo: [unclosed\n")
    (tmp_path / "ssti.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.j2"
    outside.write_text("secret")
    os.symlink(outside, tmp_path / "escape.j2")
    return tmp_path


def test_default_template_renders_the_promised_settings():
    text = render_user_data("default.yaml.j2", {}, CONTEXT)
    doc = yaml.safe_load(text)
    assert text.startswith("#cloud-config\n")
    user = doc["users"][0]
    assert user["name"] == "gcadmin" and user["sudo"] == "ALL=(ALL) NOPASSWD:ALL" and user["lock_passwd"] is True
    assert user["ssh_authorized_keys"] == CONTEXT["ssh_authorized_keys"]
    assert doc["disable_root"] is True and doc["ssh_pwauth"] is False
    assert doc["timezone"] == "Asia/Ho_Chi_Minh"
    assert doc["ntp"]["enabled"] is True and doc["ntp"]["servers"]
    assert doc["ssh"]["emit_keys_to_console"] is True and doc["no_ssh_fingerprints"] is False


def test_default_template_takes_timezone_and_ntp_from_context():
    doc = yaml.safe_load(render_user_data("default.yaml.j2", {}, {**CONTEXT, "timezone": "UTC", "ntp_servers": ["ntp.gov.vn"]}))
    assert doc["timezone"] == "UTC" and doc["ntp"]["servers"] == ["ntp.gov.vn"]


@pytest.mark.parametrize("template, vars, needle", [
    pytest.param("unknown.j2", {}, "no_such_variable", id="unknown-top-level"),
    pytest.param("unknown_var.j2", {}, "missing", id="unknown-userData-var"),
])
def test_unknown_variables_are_errors_naming_the_variable(tdir, template, vars, needle):
    with pytest.raises(UserDataError) as exc:
        render_user_data(template, vars, CONTEXT, templates_dir=tdir)
    assert needle in exc.value.message and "unknown variable" in exc.value.message


def test_missing_context_value_in_default_template_is_an_error():
    ctx = {k: v for k, v in CONTEXT.items() if k != "automation_user"}
    problems = check_user_data("default.yaml.j2", {}, ctx)
    assert len(problems) == 1 and "automation_user" in problems[0].message and problems[0].rule == "userdata"


@pytest.mark.parametrize("name, why", [
    pytest.param("../outside.j2", "parent directory", id="dotdot"),
    pytest.param("sub/../../x.j2", "nested dotdot", id="nested-dotdot"),
    pytest.param("/etc/passwd", "absolute path", id="absolute"),
    pytest.param("escape.j2", "symlink out of the directory", id="symlink"),
])
def test_templates_outside_the_allowed_directory_are_refused(tdir, name, why):
    with pytest.raises(UserDataError) as exc:
        render_user_data(name, {}, CONTEXT, templates_dir=tdir)
    assert "outside the allowed directory" in exc.value.message, why
    assert exc.value.problems[0].path == "spec.userData.template"


def test_missing_template_lists_what_exists(tdir):
    problems = check_user_data("nope.j2", {}, CONTEXT, templates_dir=tdir)
    assert "does not exist" in problems[0].message and "ok.j2" in problems[0].hint


def test_size_limit_is_nova_base64_65535(tdir):
    def fits(n):
        return not check_user_data("big.j2", {"n": n}, CONTEXT, templates_dir=tdir)

    lo, hi = 1, 2000  # largest n that fits, by bisection
    assert fits(lo) and not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    largest = render_user_data("big.j2", {"n": lo}, CONTEXT, templates_dir=tdir)
    assert NOVA_USER_DATA_LIMIT - 200 < len(base64.b64encode(largest.encode())) <= NOVA_USER_DATA_LIMIT
    with pytest.raises(UserDataError) as exc:
        render_user_data("big.j2", {"n": hi}, CONTEXT, templates_dir=tdir)
    assert "65535" in exc.value.message and "base64" in exc.value.message


def test_invalid_cloud_config_yaml_is_a_validation_problem(tdir):
    problems = check_user_data("badyaml.j2", {}, CONTEXT, templates_dir=tdir)
    assert problems and "not valid YAML" in problems[0].message


def test_sandbox_blocks_python_internals(tdir):
    with pytest.raises(InvalidInput) as exc:
        render_user_data("ssti.j2", {}, CONTEXT, templates_dir=tdir)
    assert "unsafe" in exc.value.message or "unknown variable" in exc.value.message


def test_vars_namespace_is_reserved():
    with pytest.raises(UserDataError):
        render_user_data("default.yaml.j2", {}, {**CONTEXT, "vars": {}})


def test_check_user_data_is_empty_for_a_good_request():
    assert check_user_data("default.yaml.j2", {}, CONTEXT) == []
