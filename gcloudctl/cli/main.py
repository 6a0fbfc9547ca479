"""CLI entry point: the root group, global options, and the single error -> exit-code mapping.

Command modules register themselves (``register(cli)``) so each area (core, devcloud,
controller, hardening) owns its file. Tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from gcloudctl import __version__
from gcloudctl.cli.context import AppContext, OUTPUT_FORMATS
from gcloudctl.errors import ExitCode, GcloudctlError, InvalidInput

COMMAND_MODULES = ("core", "tenants", "devcloud", "controller", "hardening", "api")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gcloudctl")
@click.option("--cloud", envvar="OS_CLOUD", help="clouds.yaml entry to use (default: the region's cloud in the platform catalog, or $OS_CLOUD).")
@click.option("--platform", "platform_file", envvar="GCLOUDCTL_PLATFORM", type=click.Path(dir_okay=False),
              help="Platform catalog YAML (default: the shipped example).")
@click.option("--agencies", "agencies_file", envvar="GCLOUDCTL_AGENCIES", type=click.Path(dir_okay=False),
              help="Agency registry YAML (default: the shipped example).")
@click.option("--rulebook", envvar="GCLOUDCTL_RULEBOOK", help="Classification rulebook: a profile name or a YAML file.")
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True,
              envvar="GCLOUDCTL_OUTPUT", help="Output format.")
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
      gcloudctl destroy tenant.yaml --yes
    """
    ctx.obj = AppContext.from_options(**options)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"gcloudctl.cli.{name}")
        module.register(cli)


_register_commands()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or bool(__import__("os").environ.get("GCLOUDCTL_DEBUG"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    try:
        result = cli.main(args=argv, prog_name="gcloudctl", standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = ExitCode.ERROR
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = ExitCode.INVALID if exc.exit_code == 2 else exc.exit_code
    except InvalidInput as exc:
        click.echo(exc.message, err=True)
        click.echo(f"error: {len(exc.problems)} problem(s); nothing was sent to the cloud.", err=True)
        code = exc.exit_code
    except GcloudctlError as exc:
        if debug:
            logging.getLogger("gcloudctl").exception("failed")
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted; re-run the same command to converge.", err=True)
        code = 130
    except Exception as exc:  # noqa: BLE001 - last-resort mapping, traceback only with --debug
        if debug:
            raise
        click.echo(f"error: unexpected {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: re-run with --debug for a traceback and report it.", err=True)
        code = ExitCode.ERROR
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
