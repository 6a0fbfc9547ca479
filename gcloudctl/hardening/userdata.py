"""cloud-init user data: render a template from the allowed directory, or report why it can't be.

Stage: validate (``check_user_data``) and expand (``render_user_data``); called by the core.
Pure apart from reading template files from the one allowed directory; no network.

Rules enforced here:
- the template is named relative to the allowed directory; absolute paths, ``..`` and symlinks
  that leave it are refused (path traversal);
- jinja2 runs sandboxed with ``StrictUndefined``: a variable the template uses but nobody gave is
  an error naming the variable, never an empty string;
- Nova stores user data base64-encoded and refuses more than 65535 bytes of it.

The template sees the core's context at top level (tenant, server, hostname, automation_user,
ssh_authorized_keys, classification_level, ...) and the request's ``userData.vars`` as ``vars``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2
import jinja2.meta
import jinja2.sandbox
import yaml

from gcloudctl.errors import InvalidInput, Problem

NOVA_USER_DATA_LIMIT = 65535  # bytes, after base64 encoding
DEFAULT_TEMPLATE = "default.yaml.j2"
PROBLEM_PATH = "spec.userData"


class UserDataError(InvalidInput):
    """User data cannot be rendered: unknown variable, bad template path, too large."""

    def __init__(self, message: str, *, hint: str | None = None, path: str = PROBLEM_PATH):
        super().__init__([Problem(path=path, message=message, hint=hint, rule="userdata")])


def default_templates_dir() -> Path:
    """$GCLOUDCTL_TEMPLATES_DIR (an operator's own templates), else the ones shipped in the package."""
    env = os.environ.get("GCLOUDCTL_TEMPLATES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "templates"


def resolve_template(template: str, templates_dir: Path | str | None = None) -> Path:
    """The template's real path, refusing anything outside the allowed directory."""
    base = Path(templates_dir or default_templates_dir()).resolve()
    if not template or "\x00" in template:
        raise UserDataError("template name is empty or invalid")
    candidate = Path(template)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise UserDataError(f"template {template!r} is outside the allowed directory",
                            hint=f"name a file relative to {base}, without '..'",
                            path=f"{PROBLEM_PATH}.template")
    real = (base / candidate).resolve()
    if not real.is_relative_to(base):
        raise UserDataError(f"template {template!r} resolves outside the allowed directory",
                            hint="symlinks out of the templates directory are not followed",
                            path=f"{PROBLEM_PATH}.template")
    if not real.is_file():
        available = sorted(p.name for p in base.glob("*.j2"))
        raise UserDataError(f"template {template!r} does not exist",
                            hint=f"available: {', '.join(available) or 'none'}",
                            path=f"{PROBLEM_PATH}.template")
    return real


def _environment(base: Path) -> jinja2.Environment:
    return jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(base)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def _namespace(vars: dict, context: dict) -> dict:
    if "vars" in context:
        raise UserDataError("context must not define 'vars' (reserved for userData.vars)")
    return {**context, "vars": dict(vars)}


def encoded_size(text: str) -> int:
    return len(base64.b64encode(text.encode("utf-8")))


def render_user_data(template: str, vars: dict, context: dict,
                     templates_dir: Path | str | None = None) -> str:
    """Render *template* with *context* (top level) and *vars* (as ``vars``); raise UserDataError."""
    real = resolve_template(template, templates_dir)
    base = Path(templates_dir or default_templates_dir()).resolve()
    env = _environment(base)
    name = real.relative_to(base).as_posix()
    namespace = _namespace(vars, context)
    try:
        text = env.get_template(name).render(namespace)
    except (jinja2.UndefinedError, TypeError) as exc:
        # filters such as tojson see an Undefined and raise TypeError: name the variables instead
        missing = sorted(jinja2.meta.find_undeclared_variables(env.parse(real.read_text(encoding="utf-8")))
                         - set(namespace))
        what = ", ".join(repr(m) for m in missing) if missing else str(getattr(exc, "message", exc))
        if not missing and isinstance(exc, TypeError) and "Undefined" not in str(exc):
            raise UserDataError(f"template {template!r}: {exc}") from exc
        raise UserDataError(f"template {template!r}: unknown variable: {what}",
                            hint="define it in userData.vars (used as vars.NAME) or fix the template") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise UserDataError(f"template {template!r} line {exc.lineno}: {exc.message}") from exc
    except jinja2.sandbox.SecurityError as exc:
        raise UserDataError(f"template {template!r}: unsafe operation: {exc}") from exc
    size = encoded_size(text)
    if size > NOVA_USER_DATA_LIMIT:
        raise UserDataError(
            f"rendered user data is {size} bytes base64-encoded; Nova accepts at most {NOVA_USER_DATA_LIMIT}",
            hint="move large files out of user data (e.g. fetch them at first boot or use config drive files)")
    return text


def check_user_data(template: str | None, vars: dict | None, context: dict,
                    templates_dir: Path | str | None = None) -> list[Problem]:
    """Validation: every problem rendering would hit, as Problems (empty list = fine)."""
    try:
        text = render_user_data(template or DEFAULT_TEMPLATE, vars or {}, context, templates_dir)
    except InvalidInput as exc:
        return list(exc.problems)
    if text.startswith("#cloud-config"):
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return [Problem(path=PROBLEM_PATH, rule="userdata",
                            message=f"rendered #cloud-config is not valid YAML: {exc}")]
        if not isinstance(parsed, dict):
            return [Problem(path=PROBLEM_PATH, rule="userdata",
                            message="rendered #cloud-config is not a YAML mapping")]
    return []
