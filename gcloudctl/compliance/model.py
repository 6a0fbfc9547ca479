"""Stage: compliance (value). The dossier's shape: plain frozen records, JSON by `model_dump`.

Called by `compliance.dossier` (builds it), `compliance.render` (reads it) and `gcloudctl schema
compliance` (`dossier_schema`). Pure: no I/O. Statuses are an enum so that nothing outside it
(in particular no "passed" invented from a missing check) can appear.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "gcloud.gov.vn/compliance/v1"


class Status(str, enum.Enum):
    PASS = "pass"  # checked, holds
    FAIL = "fail"  # checked, does not hold
    ERROR = "error"  # the check ran but gave no verdict (counts as not passed)
    NOT_APPLICABLE = "not_applicable"  # checked: cannot apply here, with the reason the check printed
    NOT_CHECKED = "not_checked"  # no evidence: neither passed nor failed


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Note(_Model):
    """A remark in English (`text`), kept also as its message template and parameters so that
    the HTML can say it in the reader's language (`message` is the i18n message id)."""

    message: str = Field(description="English template with {name} fields (the translation key).")
    params: dict[str, str] = Field(default_factory=dict)
    text: str = Field(description="The remark in English, parameters filled in.")


def note(message: str, **params) -> Note:
    """A `Note` from an English template and its parameters (shown as text)."""
    shown = {k: str(v) for k, v in params.items()}
    return Note(message=message, params=shown, text=message.format(**shown))


class Source(_Model):
    kind: str = Field(description="request | observed | evidence | controller")
    detail: Note = Field(description="Where it came from (file, store generation, cloud region, ...).")
    available: bool


class Classification(_Model):
    level: int | None = Field(description="Classification level 1..5 (None: unknown).")
    label: str = Field(description="How the rulebook names the level.")
    rulebook: str = Field(description="Rulebook profile name.")
    rulebookVersion: str
    hardeningProfile: str | None = Field(description="Host hardening profile L1..L4 the controls come from.")
    note: Note | None = None


class NetworkView(_Model):
    name: str
    zone: str | None
    cidr: str | None
    routed: bool | None
    observedCidr: str | None = None
    observed: bool = False


class RouterView(_Model):
    name: str
    externalNetwork: str | None
    networks: list[str] = Field(description="Networks attached to the router.")
    observed: bool = False


class RuleView(_Model):
    direction: str
    protocol: str
    ports: str | None
    source: str = Field(description="Remote CIDR, or 'group NAME' for a security group of the tenant.")


class SecurityGroupView(_Model):
    name: str
    rules: list[RuleView]
    observedRules: list[RuleView] | None = Field(None, description="The rules the cloud has (None: not observed).")


class ReachView(_Model):
    target: str = Field(description="Server (role) reached.")
    zones: list[str]
    protocol: str
    ports: str | None
    source: str
    internet: bool = Field(description="Whether the source includes addresses outside the internal ranges.")
    floatingIP: bool = Field(description="Whether the target has a public (floating) address.")
    inRequest: bool | None = Field(None, description="Observed reach only: whether the request asks for it "
                                                     "(false: the cloud lets in more than was approved).")


class HostView(_Model):
    name: str
    role: str | None
    zones: list[str]
    fixedIPs: dict[str, str | None]
    floatingIP: str | None
    status: str | None


class Topology(_Model):
    networks: list[NetworkView]
    routers: list[RouterView]
    securityGroups: list[SecurityGroupView]
    reach: list[ReachView] = Field(description="Who can reach what, from the request's ingress rules.")
    observedReach: list[ReachView] | None = Field(description="Who can reach what in the cloud: each observed "
                                                              "server's ports' security groups (None: not observed).")
    hosts: list[HostView] = Field(description="Servers as observed in the cloud.")
    unmanaged: list[str] = Field(description="Resources found in the tenant that the request does not describe.")


class HostResult(_Model):
    host: str
    status: Status
    evidence: str = Field(description="The check's output (or why there is none).")
    checkedAt: str | None = Field(description="When the check ran (UTC ISO 8601); None when not checked.")
    source: str | None = Field(description="The evidence report the result comes from.")


class ControlView(_Model):
    id: str
    title: str
    level: int
    cisDebian12: str
    cisUbuntu2404: str
    auditOnly: bool
    status: Status = Field(description="Worst status over the hosts (fail/error > not checked > pass > n/a).")
    hosts: list[HostResult]


class PolicyRuleView(_Model):
    id: str
    fromLevel: int
    message: str
    reference: str
    status: Status
    evidence: list[str] = Field(description="Violations found (empty when it holds or was not checked).")
    checkedAgainst: str | None


class NotApplicable(_Model):
    subject: str
    hosts: list[str]
    reason: str


class Decision(_Model):
    actor: str
    decision: str
    reason: str
    at: str
    rulesVersion: str | None


class VersionView(_Model):
    id: int
    generation: int
    kind: str
    state: str
    submittedBy: str | None
    submittedAt: str | None
    digest: str
    approvalsRequired: int
    approvals: int
    decisions: list[Decision]


class AuditHead(_Model):
    chainOk: bool = Field(description="Whether the whole audit chain verified when the dossier was made.")
    records: int
    headSeq: int | None
    headHash: str | None
    breaks: list[str]
    tenantLastSeq: int | None = Field(description="The tenant's latest record in the chain.")
    tenantLastHash: str | None
    tenantLastAction: str | None
    tenantLastAt: str | None
    tenantRecords: int


class Governance(_Model):
    managed: bool = Field(description="Whether the controller store knows the tenant.")
    phase: str | None
    generation: int | None
    conditions: list[dict]
    versions: list[VersionView]
    audit: AuditHead | None
    note: Note | None = None


class Summary(_Model):
    hosts: int
    controls: int
    byStatus: dict[str, int] = Field(description="Host-control results per status.")
    policyRules: dict[str, int]


class Dossier(_Model):
    schemaVersion: str = SCHEMA_VERSION
    tenant: str
    agency: str | None
    generatedAt: str
    gcloudctlVersion: str
    sources: list[Source]
    classification: Classification
    topology: Topology
    policyRules: list[PolicyRuleView]
    controls: list[ControlView]
    notApplicable: list[NotApplicable]
    notes: list[Note]
    governance: Governance
    summary: Summary


def dossier_schema() -> dict:
    """JSON Schema (draft 2020-12) of the dossier's JSON."""
    schema = Dossier.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://gcloud.gov.vn/schemas/v1/compliance.json"
    return schema
