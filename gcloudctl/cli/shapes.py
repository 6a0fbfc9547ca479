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


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def omitted(description: str | None = None) -> Any:
    """A field the command leaves out when it has no value: not required, and never null (the
    field's type says what it holds when present). `T | None` without a default is the other
    case: always present, null when unknown."""
    return Field(None, description=description, json_schema_extra=_no_default)


class ProblemShape(_Shape):
    path: str = Field(description="Dotted field path, e.g. spec.networks[1].cidr ('' for the document).")
    message: str
    file: str
    line: int = omitted()
    column: int = omitted()
    hint: str = omitted()
    rule: str = omitted("Rulebook rule id, when the problem comes from the rulebook.")


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
    changed: list[str] = omitted("The attributes that differ (update, replace).")
    id: str = omitted("The cloud's id of the existing object (update, replace, delete).")
    before: dict[str, Any] = omitted("The existing object's attributes (secrets masked).")
    after: dict[str, Any] = omitted("The wanted attributes (secrets masked).")


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
    error: str | None = Field(description="Why it failed (null unless failed).")


class ReapShape(_Shape):
    """`reap -o json`: the expired stacks found and what became of each."""

    now: str
    dry_run: bool
    stacks: list[ReapedShape]


# --------------------------------------------------------------------------- apply, destroy

class ChangeOutcomeShape(_Shape):
    step: str = Field(description="create, update, delete")
    address: str
    status: str = Field(description="done, failed, skipped, cancelled")
    seconds: float
    error: str = omitted("Why it failed, was skipped or cancelled.")


class HostVerifyShape(_Shape):
    ok: int = Field(description="Audit checks that passed.")
    failed: list[str] = Field(description="Ids of the controls that failed.")
    not_applicable: int


class HostHardeningShape(_Shape):
    host: str
    level: int
    status: str = Field(description="hardened, unverified, checked, verify-failed, failed, unreachable, timeout")
    ok: bool
    changed: int
    seconds: float
    verify: HostVerifyShape = omitted("Only when the audit checks ran (hardened, verify-failed).")
    message: str = omitted("What went wrong (or why it was not verified).")


class LeftOutShape(_Shape):
    host: str
    reason: str


class DriftShape(_Shape):
    host: str
    task: str
    diff: str


class TaskFailureShape(_Shape):
    host: str
    task: str
    status: str
    message: str


class HardenShape(_Shape):
    """`harden -o json` (and `hardening` inside `apply -o json`): each host's result."""

    tenant: str
    ok: bool
    check: bool = Field(description="Check mode: nothing changed, drift reported.")
    seconds: float
    status: str = Field(description="successful, failed")
    hosts: dict[str, HostHardeningShape]
    left_out: list[LeftOutShape] = Field(description="Servers not hardened, and why.")
    drift: list[DriftShape]
    failures: list[TaskFailureShape]
    not_applicable: dict[str, list[str]] = Field(description="Per host: tasks that do not apply there (containers).")


class DestroyShape(_Shape):
    """`destroy -o json`: what the executor did (only tenant, ok, changes when nothing existed)."""

    tenant: str
    ok: bool
    changes: int = omitted("0: nothing to destroy (then no other field but tenant and ok).")
    seconds: float = omitted()
    timed_out: bool = omitted()
    counts: dict[str, int] = omitted("Changes by status: done, failed, skipped, cancelled.")
    outcomes: list[ChangeOutcomeShape] = omitted()
    error: str = omitted("Only after a timeout (as `apply -o json`).")
    exit_code: int = omitted("Only after a timeout (5).")
    hint: str = omitted("Only after a timeout.")


class ApplyShape(_Shape):
    """`apply -o json`: the run (no run fields when the plan was empty), the servers waited for,
    the hardening, and the `outputs` document (`gcloudctl outputs`); after --timeout it carries
    `error`, `exit_code`, `hint` instead of `outputs`."""

    tenant: str
    ok: bool
    changes: int = Field(description="Changes in the plan (0: nothing to do).")
    seconds: float = omitted("Only when the plan had changes (as timed_out, counts, outcomes).")
    timed_out: bool = omitted()
    counts: dict[str, int] = omitted()
    outcomes: list[ChangeOutcomeShape] = omitted()
    waited_for: list[str] = omitted("Servers waited for until active.")
    hardening: HardenShape = omitted("Only when servers were hardened.")
    outputs: TenantOutputs = omitted("Every id and address, as `gcloudctl outputs` prints (not after a timeout).")
    error: str = omitted("Only after a timeout.")
    exit_code: int = omitted("Only after a timeout (5).")
    hint: str = omitted("Only after a timeout.")


# --------------------------------------------------------------------------- inventory, audit-hosts

class UnsafeShape(_Shape):
    """A cloud-side string Ansible must never template."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    value: str = Field(alias="__ansible_unsafe", serialization_alias="__ansible_unsafe")


class FirewallRuleShape(_Shape):
    proto: str = Field(description="tcp, udp, icmp, ipv6-icmp, any")
    ports: str = omitted("tcp/udp only: 443 or 8000-8080.")
    sources: list[str] = omitted("Ingress rules.")
    destinations: list[str] = omitted("Egress rules.")


class LogTargetShape(_Shape):
    host: str
    port: int
    protocol: str


class HostVarsShape(_Shape):
    ansible_host: str
    ansible_user: str
    gcloudctl_tenant: UnsafeShape
    gcloudctl_server_name: UnsafeShape
    gcloudctl_level: int
    gcloudctl_role: UnsafeShape
    gcloudctl_zones: list[UnsafeShape]
    gcloudctl_automation_user: str
    gcloudctl_is_bastion: bool = omitted()
    ansible_ssh_private_key_file: str = omitted()
    gcloudctl_security_groups: list[UnsafeShape] = omitted()
    gcloudctl_ingress: list[FirewallRuleShape] = omitted()
    gcloudctl_egress: list[FirewallRuleShape] = omitted()
    gcloudctl_ssh_sources: list[str] = omitted()
    gcloudctl_ssh_destinations: list[str] = omitted()
    gcloudctl_log_target: LogTargetShape = omitted()
    ansible_ssh_common_args: str = omitted()
    gcloudctl_bastion: str = omitted()


class InventoryGroupShape(_Shape):
    hosts: dict[str, None]


class InventoryAllShape(_Shape):
    hosts: dict[str, HostVarsShape]
    children: dict[str, InventoryGroupShape] = Field(description="tenant_*, role_*, level_*, zone_* groups.")


class InventoryShape(_Shape):
    """`inventory TENANT --format json`: Ansible's inventory structure."""

    all: InventoryAllShape


class ScoreShape(_Shape):
    passed: int
    failed: int
    not_applicable: int
    percent: float | None = Field(description="Passed of the applicable checks (None: none applied).")
    lynis_hardening_index: int | None


class LynisShape(_Shape):
    hardening_index: int | None
    tests_performed: int | None
    warnings: int
    suggestions: int
    error: str | None


class ControlResultShape(_Shape):
    id: str
    title: str
    level: int
    cis_debian12: str
    cis_ubuntu2404: str
    status: str = Field(description="pass, fail, not applicable, error")
    evidence: str


class HostReportShape(_Shape):
    host: str
    profile: str = Field(description="L1..L4")
    generated_at: str
    score: ScoreShape
    baseline: ScoreShape | None = Field(description="The score of the report found there before, if any.")
    lynis: LynisShape | None
    openscap: str
    controls: list[ControlResultShape]
    file: str = Field(description="The JSON report's file name in the report directory.")


class AuditHostsShape(_Shape):
    """`audit-hosts -o json`: each audited host's report; hosts not audited, with why."""

    reports: dict[str, HostReportShape]
    errors: dict[str, str]


# --------------------------------------------------------------------------- controller, audit

class MigrateShape(_Shape):
    """`controller migrate -o json`."""

    database: str = Field(description="The database URL, password hidden.")
    revision: str | None


class RunTenantShape(_Shape):
    tenant: str
    result: str
    changes: int
    message: str


class ControllerRunShape(_Shape):
    """`controller run --once -o json`: one pass over every tenant."""

    ok: bool
    counts: dict[str, int]
    tenants: list[RunTenantShape]


class AuditRecordShape(_Shape):
    seq: int
    at: str
    actor: str
    action: str
    tenant: str | None
    data: dict[str, Any] = Field(description="Masked: secrets never appear.")
    prevHash: str
    hash: str


class ComplianceSummaryShape(_Shape):
    """`compliance TENANT -o json` (files written to --out DIR): what was written, and the counts."""

    tenant: str
    level: int | None = Field(description="Classification level (None: unknown).")
    files: list[str]
    controls: int
    hosts: int
    byStatus: dict[str, int]
    policyRules: dict[str, int]
    managed: bool


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
    "apply": ApplyShape,
    "destroy": DestroyShape,
    "inventory": InventoryShape,
    "harden": HardenShape,
    "audit-hosts": AuditHostsShape,
    "controller-migrate": MigrateShape,
    "controller-run": ControllerRunShape,
    "audit-export": RootModel[list[AuditRecordShape]],
    "compliance-summary": ComplianceSummaryShape,
}


# Outputs of the request commands: the request API's own models (the CLI prints what the API
# returns, direct mode included), imported only when asked for (they load FastAPI).
API_SHAPES = {"request-version": "Version", "request-versions": "Version[]", "status": "TenantStatus",
              "audit-verify": "VerifyReport"}


def _api_shape(name: str) -> type[BaseModel]:
    from gcloudctl.api import app

    model = getattr(app, API_SHAPES[name].removesuffix("[]"))
    return RootModel[list[model]] if API_SHAPES[name].endswith("[]") else model


def output_schemas() -> dict[str, dict]:
    """JSON Schema of each command output, by the name `gcloudctl schema` uses."""
    models = dict(OUTPUT_SHAPES) | {name: _api_shape(name) for name in API_SHAPES}
    return {name: model.model_json_schema(mode="serialization") for name, model in models.items()}
