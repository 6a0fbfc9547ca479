"""CLI commands for the core: validate, schema (and plan, apply, destroy, get, describe).

Thin: parse arguments, call `gcloudctl.pipeline`, render. Exit codes come from
`gcloudctl.errors.ExitCode`; the root (`cli.main`) maps raised errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from gcloudctl.cli.render import dump
from gcloudctl.errors import ExitCode, Problem
from gcloudctl.i18n import gettext as _

YAML_SUFFIXES = (".yaml", ".yml")


# ======================================================================= validate, schema

def _request_files(paths: tuple[Path, ...]) -> tuple[list[Path], list[Problem]]:
    """The YAML files named, directories expanded (recursively, sorted)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(path="", file=str(path), message=_("no .yaml or .yml files in this directory")))
            files += found
        else:
            files.append(path)
    return files, problems


def _output_format(local: str | None, app) -> str:
    return local or (app.output if app.output in ("json", "yaml") else "table")


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "output", type=click.Choice(["table", "json", "yaml"]), default=None,
              help="table: FILE:LINE:COL lines on stderr; json/yaml: a list of problems on stdout "
                   "(schema: `gcloudctl schema validate`).")
@click.pass_obj
def validate_command(app, paths: tuple[Path, ...], output: str | None) -> int:
    """Check request files (or directories of them): schema, references, catalog, agency, policy.

    Reports every problem of every file; exit status 2 if there is any, 0 otherwise.
    Nothing is sent to any cloud.
    """
    from gcloudctl.errors import InvalidInput
    from gcloudctl.validate import check_file

    fmt = _output_format(output, app)
    as_json = fmt in ("json", "yaml")
    try:
        config = app.config()
    except InvalidInput as exc:  # a broken catalog, registry or rulebook: still a list for machines
        if not as_json:
            raise
        click.echo(dump([p.to_dict() for p in exc.problems], fmt))
        return ExitCode.INVALID
    files, problems = _request_files(paths)
    bad_files = len({p.file for p in problems})
    for path in files:
        found = check_file(path, config)[1]
        bad_files += bool(found)
        problems += found
    if as_json:
        click.echo(dump([p.to_dict() for p in problems], fmt))
    else:
        for problem in problems:
            click.echo(problem.format(), err=True)
        if problems:
            click.echo(_("{count} problem(s) in {bad} of {files} file(s) (rulebook {rulebook}).", count=len(problems),
                         bad=bad_files, files=len(files), rulebook=config.rulebook.profile), err=True)
        else:
            click.echo((_("{count} file valid (rulebook {rulebook}).") if len(files) == 1 else
                        _("{count} files valid (rulebook {rulebook}).")).format(count=len(files),
                                                                              rulebook=config.rulebook.profile))
    return ExitCode.INVALID if problems else ExitCode.OK


def document_schemas() -> dict[str, dict]:
    """JSON Schema of each document gcloudctl reads, by the name `gcloudctl schema` uses."""
    from gcloudctl.model.catalog import AgencyRegistry, PlatformCatalog
    from gcloudctl.model.request import TenantRequest
    from gcloudctl.policy.rulebook import CHECK_PARAMS, Rulebook

    from gcloudctl.cli.shapes import output_schemas

    schemas = {"request": TenantRequest.model_json_schema(), "platform": PlatformCatalog.model_json_schema(),
               "agencies": AgencyRegistry.model_json_schema(), "rulebook": Rulebook.model_json_schema()}
    schemas["rulebook"]["x-check-params"] = {name: model.model_json_schema() for name, model in CHECK_PARAMS.items()}
    schemas |= output_schemas()  # what commands print under -o json|yaml
    from gcloudctl.compliance.model import Dossier  # the compliance dossier (`gcloudctl compliance --out DIR`)

    schemas["compliance"] = Dossier.model_json_schema()
    for name, schema in schemas.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://gcloud.gov.vn/schemas/v1/{name}.json"
    return schemas


INPUT_DOCUMENTS = ("request", "platform", "agencies", "rulebook", "api")


def _schema_names() -> list[str]:
    from gcloudctl.cli.shapes import API_SHAPES, OUTPUT_SHAPES

    return [*INPUT_DOCUMENTS, *OUTPUT_SHAPES, *API_SHAPES, "compliance"]  # compliance: the dossier (`gcloudctl compliance`)


@click.command("schema")
@click.argument("document", type=click.Choice(_schema_names()), default="request")
@click.option("-o", "--output", "output", type=click.Choice(["table", "json", "yaml"]), default=None,
              help="Schema format (default json; table prints JSON too).")
@click.pass_obj
def schema_command(app, document: str, output: str | None) -> int:
    """Print a JSON Schema. Documents gcloudctl reads: request, platform (catalog), agencies,
    rulebook; `api`: the request API's OpenAPI 3.1 contract (as `GET /openapi.json` serves it).
    What commands print under -o json: error (any failure), validate, plan, apply, destroy, tenants
    (get tenants), describe, outputs, catalog-regions|flavors|images|zones|agencies, reap,
    request-version (request submit|show|approve|reject|delete), request-versions (request list),
    status (also controller harden), controller-migrate, controller-run (controller run --once),
    audit-verify, audit-export, inventory (inventory --format json), harden, audit-hosts,
    compliance-summary (compliance --out DIR); compliance: the dossier (--out - --format json)."""
    if document == "api":
        from gcloudctl.api.app import openapi_document

        schema = openapi_document()
    else:
        schema = document_schemas()[document]
    if _output_format(output, app) == "yaml":
        click.echo(yaml.safe_dump(schema, sort_keys=False, allow_unicode=True), nl=False)
    else:
        click.echo(json.dumps(schema, indent=2, ensure_ascii=False))
    return ExitCode.OK


def register_input_commands(cli: click.Group) -> None:
    cli.add_command(validate_command)
    cli.add_command(schema_command)

# ======================================================================= end of validate, schema


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    register_input_commands(cli)
