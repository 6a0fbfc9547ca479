"""Stage: validate (policy). Evaluate a TenantRequest against a classification rulebook.

Called by `gcloudctl.validate` (and through it by `pipeline.load_request`). The rulebook is
data (`rulebook.Rulebook`, shipped profiles in ``gcloudctl/data/rulebooks``); the checks it may
name are the fixed set in `checks`; what "from the internet" means is `exposure` (shared with
the approval rules). Pure: no I/O; returns `Problem`s with field paths and rule
ids, and the caller adds file positions. A rule's message and hint are shown in the user's
language when the `cli` catalog translates them (the shipped rulebooks' are all translated).
"""

from __future__ import annotations

import re

from gcloudctl.errors import Problem
from gcloudctl.i18n import gettext  # a rulebook's messages and hints are msgids of the cli catalog
from gcloudctl.model.catalog import AgencyRegistry, PlatformCatalog
from gcloudctl.model.request import TenantRequest
from gcloudctl.policy.checks import CHECKS, Setting, default_hardening_profile
from gcloudctl.policy.exposure import internal_ranges
from gcloudctl.policy.rulebook import Rulebook, RuleSpec

__all__ = ["Rulebook", "RuleSpec", "default_hardening_profile", "evaluate"]


def _message(rule: RuleSpec) -> str:
    """The rule's message with {param} placeholders filled from its parameters."""
    def fill(match: re.Match) -> str:
        value = rule.params.get(match.group(1))
        if value is None:
            return match.group(0)
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    return re.sub(r"\{([A-Za-z]+)\}", fill, gettext(rule.message))


def evaluate(request: TenantRequest, rulebook: Rulebook, catalog: PlatformCatalog,
             agencies: AgencyRegistry | None = None) -> list[Problem]:
    """Every violation of the rules in force at the request's classification level. "The
    internet" excludes the catalog's `internalRanges` and, given the agency registry, the pools
    of the request's agency (`exposure`)."""
    level = request.spec.classification
    setting = Setting(catalog=catalog, internal=internal_ranges(request, catalog, agencies))
    problems = []
    for rule in rulebook.rules_for(level):
        check = CHECKS[rule.check]
        for violation in check(request, setting, rule.typed_params()):
            message = _message(rule)
            if violation.detail:
                message += f" ({violation.detail})"
            hint = gettext(rule.hint) if rule.hint else None
            problems.append(Problem(path=violation.path, message=message, hint=hint, rule=rule.id))
    return problems
