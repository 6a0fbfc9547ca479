"""Stage: validate (policy). The classification rulebook document, as frozen pydantic models.

A rulebook is data: a named, versioned profile (e.g. ``vn-nd85-tcvn11930``) whose rules each
apply from a classification level upwards (levels are cumulative) and name one of the fixed
checks in `gcloudctl.policy.checks`, with that check's parameters. Platform ops can version
and switch profiles without touching code. Pure: no I/O (loading is `gcloudctl.model.load`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gcloudctl.model.request import Zone

Level = Annotated[int, Field(ge=1, le=5)]
HardeningProfile = Literal["L1", "L2", "L3", "L4"]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Parameters of each check (the set of checks is fixed in code; their parameters are data).
class NoParams(_Model):
    pass


class PortsInZones(_Model):
    ports: list[Port] = Field(min_length=1, description="Ports open to the internet.")
    zones: list[Zone] = Field(min_length=1, description="Zones whose servers may use such groups.")


class Ports(_Model):
    ports: list[Port] = Field(min_length=1)


class Zones(_Model):
    zones: list[Zone] = Field(min_length=1)


class Bastion(_Model):
    zone: Zone = "mgmt"
    namePattern: str = Field("^(bastion|jump)", description="Regular expression a bastion's server name matches.")


class MinCount(_Model):
    minCount: int = Field(2, ge=2)


class MinProfile(_Model):
    profile: HardeningProfile


CHECK_PARAMS: dict[str, type[_Model]] = {
    "level-not-served": NoParams,
    "world-ingress-ports": PortsInZones,
    "world-ingress-forbidden-ports": Ports,
    "floating-ip-zones": Zones,
    "floating-ip-forbidden-zones": Zones,
    "egress-restricted": NoParams,
    "security-groups-required": NoParams,
    "required-zones": Zones,
    "isolated-zones": Zones,
    "bastion-required": Bastion,
    "anti-affinity-required": MinCount,
    "no-expiry": NoParams,
    "hardening-minimum": MinProfile,
    "volumes-encrypted": NoParams,
}
CheckName = Literal[
    "level-not-served", "world-ingress-ports", "world-ingress-forbidden-ports", "floating-ip-zones",
    "floating-ip-forbidden-zones", "egress-restricted", "security-groups-required", "required-zones",
    "isolated-zones", "bastion-required", "anti-affinity-required", "no-expiry", "hardening-minimum",
    "volumes-encrypted",
]


class RuleSpec(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$", description="Stable rule id, shown as [id].")
    fromLevel: Level = Field(description="The rule applies at this classification level and above.")
    check: CheckName = Field(description="Which built-in check evaluates the rule.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the check.")
    message: str = Field(min_length=1, max_length=300)
    hint: str | None = Field(None, max_length=300)
    reference: str = Field("", max_length=200, description="Where the requirement comes from.")

    @model_validator(mode="after")
    def _params_fit_check(self) -> "RuleSpec":
        try:
            CHECK_PARAMS[self.check].model_validate(self.params)
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"params do not fit check {self.check!r}: {details}") from None
        return self

    def typed_params(self) -> _Model:
        return CHECK_PARAMS[self.check].model_validate(self.params)


class LevelInfo(_Model):
    label: str = Field(description="How the profile names this level, e.g. 'OFFICIAL-SENSITIVE'.")


class RulebookMeta(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$", description="Profile name, e.g. vn-nd85-tcvn11930.")
    version: str = Field(min_length=1, max_length=40)
    description: str = Field("", max_length=500)


class RulebookSpec(_Model):
    levels: dict[Level, LevelInfo] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> "RulebookSpec":
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} appears twice")
            seen.add(rule.id)
        return self


class Rulebook(_Model):
    apiVersion: Literal["gcloud.gov.vn/v1"]
    kind: Literal["Rulebook"]
    metadata: RulebookMeta
    spec: RulebookSpec

    @property
    def profile(self) -> str:
        return f"{self.metadata.name}@{self.metadata.version}"

    def rules_for(self, level: int) -> list[RuleSpec]:
        """The rules in force at *level* (cumulative: every rule from a lower level too)."""
        return [rule for rule in self.spec.rules if rule.fromLevel <= level]

    def level_label(self, level: int) -> str:
        info = self.spec.levels.get(level)
        return f"level {level} ({info.label})" if info else f"level {level}"
