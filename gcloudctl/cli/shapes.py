"""The shapes of what commands print under `-o json|yaml`, as models: `gcloudctl schema NAME`
publishes their JSON Schema and the tests check each command's output against it.

Stage: edge (describes the CLI's output; pure, no I/O). Callers: `gcloudctl.cli.core`
(`document_schemas`) and the tests. It must not build outputs: commands do, from the use cases.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from gcloudctl.outputs import TenantOutputs


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemShape(_Shape):
    path: str = Field(description="Dotted field path, e.g. spec.networks[1].cidr ('' for the document).")
    message: str
    file: str
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    rule: str | None = Field(None, description="Rulebook rule id, when the problem comes from the rulebook.")


class ErrorShape(_Shape):
    """Any command under -o json|yaml that fails: one document on stdout, the exit code unchanged."""

    error: str = Field(description="What went wrong, in the chosen language.")
    exit_code: int = Field(ge=1, description="The process's exit status (2 invalid input, 4 refused, ...).")
    kind: str = Field(description="The error's class (InvalidInput, Refused, NotFound, UsageError, ...).")
    hint: str | None = Field(description="What to do next, when known.")
    problems: list[ProblemShape] = Field(description="Located problems (input errors); empty otherwise.")


class ValidateShape(RootModel[list[ProblemShape]]):
    """`validate -o json`: every problem of every file (empty list: all valid)."""


class ChangeShape(_Shape):
    action: str = Field(description="create, update, replace, delete, no-op")
    address: str
    reason: str
    changed: list[str] | None = None
    id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class PlanShape(_Shape):
    """`plan -o json` (also the file `plan --out FILE` saves for `apply`)."""

    format: str
    tenant: str
    destroy: bool
    request_digest: str
    observed_fingerprint: str
    summary: dict[str, int]
    warnings: list[str]
    changes: list[ChangeShape]
    request_file: str


class TenantRowShape(_Shape):
    tenant: str
    region: str
    agency: str | None
    domain: str | None
    classification: str | None
    project_id: str
    enabled: bool
    description: str
    owned: bool = Field(description="The project sits in its agency's domain (tags alone prove nothing).")
    expires_at: str | None = Field(description="expiresAt of a CI stack (UTC, ISO 8601), from the project's tag.")
    expired: bool


class TenantsShape(RootModel[list[TenantRowShape]]):
    """`get tenants -o json`."""


class DescribedResourceShape(_Shape):
    address: str
    id: str | None
    status: str | None
    managed: bool
    detail: str


class DescribeShape(_Shape):
    """`describe TENANT -o json`."""

    tenant: str
    agency: str
    domain: str
    project_id: str
    resources: list[DescribedResourceShape]


class RegionShape(_Shape):
    name: str
    cloud: str
    externalNetworks: list[str]
    maxClassification: int
    blockStorage: bool
    antiAffinityPolicy: str
    allowedRoles: list[str]


class FlavorShape(_Shape):
    name: str
    vcpus: int
    ramMiB: int
    diskGiB: int
    maxClassification: int


class ImageShape(_Shape):
    name: str
    os: str
    loginUser: str
    maxClassification: int


class ZoneShape(_Shape):
    name: str


class AgencyShape(_Shape):
    name: str = Field(description="The agency's name as the registry writes it (Vietnamese).")
    code: str
    domain: str | None
    maxClassification: int
    cidrPools: list[str]
    quotaCeilings: dict[str, int]


class ReapedShape(_Shape):
    tenant: str
    region: str
    agency: str | None
    expires_at: str
    status: str = Field(description="would-destroy (--dry-run), destroyed, failed")
    error: str | None = None


class ReapShape(_Shape):
    """`reap -o json`: the expired stacks found and what became of each."""

    now: str
    dry_run: bool
    stacks: list[ReapedShape]


OUTPUT_SHAPES: dict[str, type[BaseModel]] = {
    "error": ErrorShape,
    "validate": ValidateShape,
    "plan": PlanShape,
    "tenants": TenantsShape,
    "describe": DescribeShape,
    "outputs": TenantOutputs,
    "catalog-regions": RootModel[list[RegionShape]],
    "catalog-flavors": RootModel[list[FlavorShape]],
    "catalog-images": RootModel[list[ImageShape]],
    "catalog-zones": RootModel[list[ZoneShape]],
    "catalog-agencies": RootModel[list[AgencyShape]],
    "reap": ReapShape,
}


# Outputs of the request commands: the request API's own models (the CLI prints what the API
# returns, direct mode included), imported only when asked for (they load FastAPI).
API_SHAPES = {"request-version": "Version", "request-versions": "Version[]", "status": "TenantStatus"}


def _api_shape(name: str) -> type[BaseModel]:
    from gcloudctl.api import app

    model = getattr(app, API_SHAPES[name].removesuffix("[]"))
    return RootModel[list[model]] if API_SHAPES[name].endswith("[]") else model


def output_schemas() -> dict[str, dict]:
    """JSON Schema of each command output, by the name `gcloudctl schema` uses."""
    models = dict(OUTPUT_SHAPES) | {name: _api_shape(name) for name in API_SHAPES}
    return {name: model.model_json_schema(mode="serialization") for name, model in models.items()}
