"""CLI entry point: the root group, global options, and the single error -> exit-code mapping.

Stage: edge (composition of the command modules). Called by the `gcloudctl` console script and
by tests (`main(argv)`). It must not hold business rules: it parses, dispatches and maps errors.

Command modules register themselves (``register(cli)``) so each area (core, devcloud,
controller, hardening) owns its file. Every command, whoever owns it, answers `-o/--output
table|json|yaml` the same way (`OutputGroup` adds the option where a command lacks it), and
under `-o json|yaml` an error is one document on stdout: `{"error", "exit_code", "kind",
"hint", "problems"}` (schema: `gcloudctl schema error`); the human message still goes to
stderr. Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from gcloudctl import __version__, i18n
from gcloudctl.cli.context import AppContext, OUTPUT_FORMATS
from gcloudctl.errors import ExitCode, GcloudctlError, InvalidInput, Problem
from gcloudctl.i18n import gettext as _

COMMAND_MODULES = ("core", "tenants", "devcloud", "controller", "hardening", "api", "catalog", "outputs", "stacks",
                   "compliance")


# Modules of optional extras (pyproject.toml [project.optional-dependencies]): a command that
# needs one when it is not installed says which extra to install instead of a traceback.
OPTIONAL_MODULES = {"ansible_runner": "hardening", "ansible": "hardening", "psycopg": "postgres"}
# Commands that cannot start without a module of an extra: checked before they run (nothing is
# observed or written first). `apply` needs it only when it hardens: its use case checks that.
COMMAND_NEEDS = {"harden": ("ansible_runner",)}


def _check_command_needs(command: str | None) -> None:
    import importlib.util

    for module in COMMAND_NEEDS.get(command or "", ()):
        try:
            missing = importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a module set to None in sys.modules (tests) counts as missing
            missing = True
        if missing:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def _set_output(ctx: click.Context, _param, value: str | None) -> None:
    """Callback of the per-command `-o`: the same effect as the global one."""
    app = ctx.find_object(AppContext)
    if value is not None and app is not None:
        app.output = value


def _output_option() -> click.Option:
    return click.Option(["-o", "--output"], type=click.Choice(OUTPUT_FORMATS), default=None, expose_value=False,
                        callback=_set_output, help="Output format (overrides the global -o).")


def ensure_output_option(command: click.Command) -> None:
    """Give `command` (and a group's subcommands) `-o/--output table|json|yaml` when it lacks it:
    a command with its own `--output` gets the `-o` alias; one with neither gets an option that
    sets the global format. A command that uses `-o` for something else is left alone."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            ensure_output_option(sub)
        return
    opts = {opt: param for param in command.params for opt in getattr(param, "opts", ())}
    if "-o" in opts:
        return
    if "--output" in opts:
        opts["--output"].opts.append("-o")
        opts["--output"].help = opts["--output"].help or "Output format (overrides the global -o)."
        return
    command.params.append(_output_option())


def _export_dir(_ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """--templates-dir / --playbooks-dir: the same as their environment variables, which the
    template renderer and the playbook runner read (so a subprocess sees them too)."""
    if value:
        os.environ[param.envvar] = os.path.abspath(value)


class OutputGroup(click.Group):
    """The root group: every command added gets the common `-o/--output` (see `ensure_output_option`)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        ensure_output_option(cmd)
        super().add_command(cmd, name)


@click.group(cls=OutputGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gcloudctl")
@click.option("--cloud", help="clouds.yaml entry to use for every region (default: each region's cloud in the "
                              "platform catalog; $OS_CLOUD names your identity for the request API, it never "
                              "sends a region's tenants to another cloud).")
@click.option("--platform", "platform_file", envvar="GCLOUDCTL_PLATFORM", type=click.Path(dir_okay=False),
              help="Platform catalog YAML (default: the shipped example).")
@click.option("--agencies", "agencies_file", envvar="GCLOUDCTL_AGENCIES", type=click.Path(dir_okay=False),
              help="Agency registry YAML (default: the shipped example).")
@click.option("--rulebook", envvar="GCLOUDCTL_RULEBOOK", help="Classification rulebook: a profile name or a YAML file.")
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True,
              envvar="GCLOUDCTL_OUTPUT", help="Output format (every command also takes -o).")
@click.option("--templates-dir", type=click.Path(file_okay=False, exists=True), envvar="GCLOUDCTL_TEMPLATES_DIR",
              callback=_export_dir, expose_value=False,
              help="Your own cloud-init templates (default: those shipped in the package).")
@click.option("--playbooks-dir", type=click.Path(file_okay=False, exists=True), envvar="GCLOUDCTL_PLAYBOOKS_DIR",
              callback=_export_dir, expose_value=False,
              help="Your own hardening playbooks (default: those shipped in the package).")
@click.option("--lang", type=click.Choice(i18n.LANGUAGES), envvar="GCLOUDCTL_LANG",
              help="Language of messages (default: from LANG, e.g. vi_VN.UTF-8 -> vi).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for API calls).")
@click.option("--debug", is_flag=True, envvar="GCLOUDCTL_DEBUG", help="Show tracebacks for errors.")
@click.option("--api", "api_url", envvar="GCLOUDCTL_API", metavar="URL",
              help="Request API URL: request/status/audit commands use it with your Keystone token (--cloud).")
@click.option("--api-ca", "api_ca", envvar="GCLOUDCTL_API_CA", type=click.Path(dir_okay=False),
              help="CA bundle to verify an HTTPS request API with a private certificate authority.")
@click.pass_context
def cli(ctx: click.Context, **options) -> None:
    """Turn declarative TenantRequest YAML into G-Cloud tenants on OpenStack.

    \b
    Typical flow:
      gcloudctl validate tenant.yaml
      gcloudctl plan tenant.yaml
      gcloudctl apply tenant.yaml --yes
      gcloudctl outputs TENANT -o json
      gcloudctl destroy tenant.yaml --yes
    """
    lang = options.pop("lang", None)
    i18n.set_language(i18n.language(lang))
    ctx.obj = AppContext.from_options(**options)
    _check_command_needs(ctx.invoked_subcommand)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"gcloudctl.cli.{name}")
        module.register(cli)


_register_commands()


def _argv_value(argv: list[str], short: str | None, long: str) -> str | None:
    """The last value given to an option in argv (`-o json`, `-ojson`, `--output json`,
    `--output=json`): read before parsing, so that a usage error is rendered as asked too."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in (short, long) and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(long + "="):
            found = arg.split("=", 1)[1]
        elif short and arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            found = arg[len(short):]
    return found


def requested_format(argv: list[str], environ) -> str:
    """The output format this invocation asked for (per-command or global -o, else $GCLOUDCTL_OUTPUT)."""
    value = _argv_value(argv, "-o", "--output") or environ.get("GCLOUDCTL_OUTPUT") or "table"
    return value if value in OUTPUT_FORMATS else "table"


def error_document(message: str, code: int, *, kind: str, hint: str | None = None,
                   problems: list[Problem] | None = None) -> dict:
    """The machine form of a failure (schema `gcloudctl schema error`)."""
    return {"error": message, "exit_code": int(code), "kind": kind, "hint": hint,
            "problems": [p.to_dict() for p in problems or ()]}


def _emit_error(fmt: str, document: dict) -> None:
    if fmt in ("json", "yaml"):
        from gcloudctl.cli.render import dump

        click.echo(dump(document, fmt))


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or bool(os.environ.get("GCLOUDCTL_DEBUG"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with i18n.use_language(i18n.language(_argv_value(argv, None, "--lang"))):
        return _main(argv)


def _main(argv: list[str]) -> int:
    debug = _debug_requested(argv)
    fmt = requested_format(argv, os.environ)
    try:
        result = cli.main(args=argv, prog_name="gcloudctl", standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
    except click.exceptions.Abort:
        click.echo(_("Aborted."), err=True)
        code = ExitCode.ERROR
        _emit_error(fmt, error_document(_("Aborted."), code, kind="Aborted"))
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = ExitCode.INVALID if exc.exit_code == 2 else exc.exit_code
        _emit_error(fmt, error_document(exc.format_message(), code, kind="UsageError"))
    except InvalidInput as exc:
        summary = _("error: {count} problem(s); nothing was sent to the cloud.", count=len(exc.problems))
        click.echo(exc.message, err=True)
        click.echo(summary, err=True)
        code = exc.exit_code
        _emit_error(fmt, error_document(summary.removeprefix("error: "), code, kind=type(exc).__name__,
                                        problems=exc.problems))
    except GcloudctlError as exc:
        if debug:
            logging.getLogger("gcloudctl").exception("failed")
        click.echo(_("error: {message}", message=exc.message), err=True)
        if exc.hint:
            click.echo(_("hint: {hint}", hint=exc.hint), err=True)
        code = exc.exit_code
        _emit_error(fmt, error_document(exc.message, code, kind=type(exc).__name__, hint=exc.hint))
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
        if extra is None or debug:
            raise
        message = _("this command needs the optional part '{extra}' of gcloudctl ({module} is not installed)",
                    extra=extra, module=exc.name)
        hint = _("install it with: pip install 'gcloudctl[{extra}]' (with pipx: pipx install --force "
                 "'gcloudctl[{extra}]')", extra=extra)
        click.echo(_("error: {message}", message=message), err=True)
        click.echo(_("hint: {hint}", hint=hint), err=True)
        code = ExitCode.ERROR
        _emit_error(fmt, error_document(message, code, kind="MissingExtra", hint=hint))
    except KeyboardInterrupt:
        click.echo(_("Interrupted; re-run the same command to converge."), err=True)
        code = 130
        _emit_error(fmt, error_document(_("Interrupted; re-run the same command to converge."), code,
                                        kind="Interrupted"))
    except Exception as exc:  # noqa: BLE001 - last-resort mapping, traceback only with --debug
        if debug:
            raise
        message = _("unexpected {type}: {error}", type=type(exc).__name__, error=exc)
        click.echo(_("error: {message}", message=message), err=True)
        click.echo(_("hint: re-run with --debug for a traceback and report it."), err=True)
        code = ExitCode.ERROR
        _emit_error(fmt, error_document(message, code, kind="UnexpectedError",
                                        hint=_("re-run with --debug for a traceback and report it.")))
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
