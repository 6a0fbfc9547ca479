"""Stage: controller (approvals). Who may approve a request version, and how many must.

The rules are data (`approval_rules.yaml`, shipped; platform ops may replace it in the server's own
configuration, $GCLOUDCTL_APPROVAL_RULES — never a caller's file): a base number of
approvals and *escalations*, each a named condition that raises it. Called by `service` when a
version is submitted (to record how many approvals it needs and why) and on every approve or
reject. Pure: takes the rules, the request models, the `Context` (catalog and agency registry,
for what is "the internet": `gcloudctl.policy.exposure`, the same definition the classification
rulebook uses) and the caller (`Caller`); returns values or raises `Forbidden`. No I/O —
reading the file is the caller's job (`default_rules_text`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gcloudctl.errors import Forbidden, InvalidInput
from gcloudctl.model import TenantRequest
from gcloudctl.model.catalog import AgencyRegistry, PlatformCatalog
from gcloudctl.model.identity import Caller, GcloudRole
from gcloudctl.policy.exposure import ANYWHERE, InternalRanges, internal_ranges, opened_ingress


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Model):
    """One condition; exactly one field is set. Each field has an evaluator in `_CONDITIONS`."""

    classificationAtLeast: int | None = Field(None, ge=1, le=5)
    opensIngressFromInternet: bool | None = Field(
        None, description="The version lets in, on some group or server, protocol and ports, an internet address "
                          "(gcloudctl.policy.exposure) that the last approved version did not.")
    opensIngressFrom: ipaddress.IPv4Network | None = Field(
        None, description="Older form: the same, counting only internet addresses inside this network "
                          "(`0.0.0.0/0` is `opensIngressFromInternet: true`).")
    raisesQuotaByMoreThanPercent: float | None = Field(None, ge=0)


class Escalation(_Model):
    id: str
    when: When
    approvalsRequired: int = Field(ge=1, le=5)
    reason: str


class RulesSpec(_Model):
    approverMustBeAgencyApprover: bool = True
    requesterMayNotApprove: bool = True
    approvalsRequired: int = Field(1, ge=1, le=5)
    escalations: list[Escalation] = Field(default_factory=list)


class RulesMeta(_Model):
    name: str
    version: str = "1"


class ApprovalRules(_Model):
    apiVersion: Literal["gcloud.gov.vn/v1"]
    kind: Literal["ApprovalRules"]
    metadata: RulesMeta
    spec: RulesSpec


@dataclass(frozen=True)
class Context:
    """What the conditions need besides the two versions: the platform catalog (its
    `internalRanges`) and the agency registry (the agency's pools), both the server's own
    configuration. Unknown (None): only the private ranges are internal — never fewer approvals."""

    catalog: PlatformCatalog | None = None
    agencies: AgencyRegistry | None = None

    def internal(self, request: TenantRequest) -> InternalRanges:
        return internal_ranges(request, self.catalog, self.agencies)


@dataclass(frozen=True)
class Requirement:
    """How many distinct approvals a version needs, and which escalations fired."""

    approvals: int
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"approvals": self.approvals, "reasons": list(self.reasons)}


def default_rules_text() -> str:
    """The shipped rules file (package data)."""
    return resources.files("gcloudctl.controller").joinpath("approval_rules.yaml").read_text("utf-8")


def parse_rules(text: str, filename: str = "approval_rules.yaml") -> ApprovalRules:
    try:
        return ApprovalRules.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidInput(f"{filename}: not valid approval rules: {exc}") from None


# --- conditions -------------------------------------------------------------------------------

def _opens_ingress(new: TenantRequest, old: TenantRequest | None, context: Context,
                   within: ipaddress.IPv4Network = ANYWHERE) -> bool:
    """`new` lets in internet addresses (inside `within`) that `old` did not, judged per group
    and per server on the union of its rules (`exposure.opened_ingress`)."""
    return bool(opened_ingress(new, old, context.internal(new), within))


def _quotas_of(request: TenantRequest, context: Context) -> dict[str, Any]:
    """The quotas a version gets: its `spec.quotas`, else derived from its servers (unknown
    catalog: derived from what is known, never an error here)."""
    from gcloudctl.quotas import effective_quotas

    flavors = context.catalog.spec.flavors if context.catalog is not None else {}
    agency = context.agencies.get(request.metadata.agency) if context.agencies is not None else None
    return effective_quotas(request, flavors, agency).model_dump()


def _quota_raise(new: TenantRequest, old: TenantRequest | None, percent: float, context: Context) -> bool:
    if old is None:
        return False  # a first version raises nothing; agency ceilings are checked by validate
    before, after = _quotas_of(old, context), _quotas_of(new, context)
    for key, value in after.items():
        previous = before.get(key)
        if value is None or previous is None:
            continue
        if value > previous * (1 + percent / 100):
            return True
    return False


_CONDITIONS: dict[str, Callable[[Any, TenantRequest, TenantRequest | None, Context], bool]] = {
    "classificationAtLeast": lambda level, new, old, ctx: new.spec.classification >= level,
    "opensIngressFromInternet": lambda flag, new, old, ctx: flag and _opens_ingress(new, old, ctx),
    "opensIngressFrom": lambda remote, new, old, ctx: _opens_ingress(new, old, ctx, remote),
    "raisesQuotaByMoreThanPercent": lambda percent, new, old, ctx: _quota_raise(new, old, percent, ctx),
}
assert set(_CONDITIONS) == set(When.model_fields), "every condition has an evaluator"


def _holds(when: When, new: TenantRequest, old: TenantRequest | None, context: Context) -> bool:
    return any(
        _CONDITIONS[name](getattr(when, name), new, old, context)
        for name, value in when.model_dump(exclude_none=True).items()
    )


def requirement(rules: ApprovalRules, new: TenantRequest, previous: TenantRequest | None, *,
                context: Context = Context()) -> Requirement:
    """Approvals `new` needs, compared with the last approved version `previous` (None if first).
    `context`: the server's catalog and agency registry (what is internal for `new`'s agency);
    the default knows neither, so only the private ranges are internal."""
    needed, reasons = rules.spec.approvalsRequired, []
    for escalation in rules.spec.escalations:
        if _holds(escalation.when, new, previous, context):
            needed = max(needed, escalation.approvalsRequired)
            reasons.append(f"{escalation.id}: {escalation.reason}")
    return Requirement(needed, tuple(reasons))


def rules_version(rules: ApprovalRules) -> str:
    """What a version and every decision record about the rules that judged them:
    `name@version` plus a digest of the rules' content (an edit without a version bump shows)."""
    content = json.dumps(rules.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return f"{rules.metadata.name}@{rules.metadata.version}#{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def check_approver(rules: ApprovalRules, *, caller: Caller, agency_code: str, submitted_by_id: str | None,
                   already_ids: set[str]) -> None:
    """Raise `Forbidden` unless `caller` may approve or reject a version of `agency_code`'s tenant.

    Identities are Keystone user ids (`Caller.user_id`), never typed names: `submitted_by_id` is
    the submitter's, `already_ids` those who approved this version so far. An approver holds
    `gcloud-approver` in the agency (its Keystone domain). A platform operator on the
    break-glass path (`authenticated=False`) counts as one approver, under the OS user's
    identity; the two-person rule still needs a second, distinct identity. Seeing the version
    at all (same agency, or operator) is checked by the caller of this function (`NotFound`).
    """
    spec = rules.spec
    if spec.approverMustBeAgencyApprover and not _approver_of(caller, agency_code):
        raise Forbidden(f"{caller.actor} is not an approver of agency {agency_code}",
                        hint=f"an approver holds the role {GcloudRole.APPROVER.value} in agency {agency_code}'s "
                             "Keystone domain")
    if spec.requesterMayNotApprove and submitted_by_id is not None and caller.user_id == submitted_by_id:
        raise Forbidden(f"{caller.actor} submitted this version and may not decide on it",
                        hint="another approver of the agency must decide")
    if caller.user_id in already_ids:
        raise Forbidden(f"{caller.actor} has already approved this version; a distinct approver is needed")


def _approver_of(caller: Caller, agency_code: str) -> bool:
    if caller.is_approver and caller.agency == agency_code:
        return True
    return caller.is_operator and not caller.authenticated  # break-glass: one platform operator
