"""Use case: apply a request — the one path the CLI's `apply` and the controller share.

Stage: pipeline (use case). Callers: `gcloudctl apply` (cli/tenants.py); the controller's engine
uses its steps (`pipeline.apply_plan`, `usecases.harden.harden_servers`) under its own lease and
status rules. In order, under one `Deadline`:

1. plan (observe + the plan's pre-flights: ownership, quota, members) — nothing written yet;
2. a saved plan is refused when its request or the cloud moved since (`Refused`, exit 4); a plan
   that destroys stored data (a volume deleted or replaced, a server with a boot volume deleted
   or replaced: `Plan.data_loss`) is refused unless the caller allows data loss
   (`allow_data_loss`, the CLI's `--allow-data-loss`) — `DataLossRefused`, exit 4, nothing written;
3. checks that can be made before any write: hardening wanted -> the private key is readable
   (`HardeningKeyMissing`, exit 2); then `confirm(plan)` (the CLI asks the person);
4. apply the plan (bounded parallelism, the deadline's remainder as timeout);
5. wait for servers an earlier run left building;
6. harden the servers that ask for it, then verify them (`usecases.harden`).

Returns an `ApplyOutcome` the caller renders; it never prints. Once something was written, no
error leaves as `InvalidInput` ("nothing was sent"): it is re-raised as a plain error that says
how many changes were applied.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from gcloudctl import pipeline
from gcloudctl.errors import GcloudctlError, InvalidInput, Refused
from gcloudctl.executor import ApplyResult, build_graph
from gcloudctl.i18n import gettext as _
from gcloudctl.plan import PLAN_FORMAT, Plan
from gcloudctl.usecases import Deadline
from gcloudctl.usecases.harden import (
    Access, Event, HardenResult, HostOps, ProgressFn, check_access, harden_servers, hardening_levels,
)


class Stage(enum.StrEnum):
    PLAN = "plan"
    APPLY = "apply"
    CHANGE = "change"  # one change of the plan finished (data: (event, node, outcome) of the executor)
    WAIT = "wait"
    HARDEN = "harden"


@dataclass(frozen=True)
class SavedPlan:
    """What a saved plan (`plan --out plan.json`) pins: the request file and the two digests."""

    request_file: str
    request_digest: str
    observed_fingerprint: str

    @classmethod
    def parse(cls, text: str, source: str) -> "SavedPlan":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(_("{file}: not a readable saved plan ({error})", file=source, error=exc)) from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or "request_file" not in data:
            raise InvalidInput(_("{file}: not a gcloudctl plan (expected format {format})", file=source,
                                 format=PLAN_FORMAT))
        return cls(str(data["request_file"]), str(data.get("request_digest")), str(data.get("observed_fingerprint")))

    def check_fresh(self, plan: Plan) -> None:
        """Refused (exit 4) when the request or the cloud changed since the plan was saved."""
        if self.request_digest != plan.request_digest:
            raise Refused(_("stale plan: {file} changed since the plan was saved", file=self.request_file),
                          hint=_("run `gcloudctl plan` again"))
        if self.observed_fingerprint != plan.observed_fingerprint:
            raise Refused(_("stale plan: the cloud changed since the plan was saved"),
                          hint=_("run `gcloudctl plan` again"))


class DataLossRefused(Refused):
    """The plan would destroy stored data and the caller did not allow it (exit 4, nothing written)."""


ALLOW_DATA_LOSS_FLAG = "--allow-data-loss"
DESTROY_KEEPS_DATA_FROM_LEVEL = 3  # `destroy` of a tenant at this level or above with volumes needs the flag


def check_data_loss(plan: Plan, allow_data_loss: bool) -> None:
    """Refuse (`DataLossRefused`) a plan holding changes that destroy stored data, unless allowed."""
    losing = plan.data_loss()
    if losing and not allow_data_loss:
        names = ", ".join(str(c.address) for c in losing)
        raise DataLossRefused(_("the plan would destroy the data of {names}: refused, nothing was changed",
                                names=names),
                              hint=_("if the data may go, re-run with {flag}; otherwise put the volume back in the "
                                     "request (a volume only grows: raise its sizeGiB)", flag=ALLOW_DATA_LOSS_FLAG))


def check_destroy(plan: Plan, allow_data_loss: bool) -> None:
    """`destroy` of a tenant classified at level >= 3 whose volumes hold data is refused unless
    the caller allows data loss. gcloudctl refuses rather than snapshot: a snapshot would outlive
    the tenant (destroy leaves nothing) and keep data nobody is accountable for; the agency
    copies what it keeps first (docs/request-format.md, "Volumes")."""
    if allow_data_loss or not plan.data_loss():
        return
    level = _tenant_level(plan)
    if level is None or level >= DESTROY_KEEPS_DATA_FROM_LEVEL:
        names = ", ".join(str(c.address) for c in plan.data_loss())
        shown = _("unknown") if level is None else str(level)
        raise DataLossRefused(_("destroy {tenant}: the tenant is at level {level} and its volumes hold data "
                                "({names}): refused, nothing was deleted", tenant=plan.tenant, level=shown,
                                names=names),
                              hint=_("copy what must be kept, then re-run with {flag}", flag=ALLOW_DATA_LOSS_FLAG))


def _tenant_level(plan: Plan) -> int | None:
    """The classification level the tenant's project records (`gc-level=` tag); None if unknown."""
    from gcloudctl import naming
    from gcloudctl.resources import Kind

    observed = plan.observed
    projects = [r for r in (observed.resources.values() if observed else ()) if r.address.kind is Kind.PROJECT]
    return naming.level_from_tags(projects[0].attrs.get("tags")) if projects else None


@dataclass(frozen=True)
class ApplyOptions:
    parallelism: int = 10
    wait: bool = True  # until servers are ACTIVE (hardening needs it)
    harden: bool | None = None  # None: when a server asks for it (`servers[].hardening`)
    verify: bool = True  # run the audit checks on hardened hosts
    access: Access | None = None  # key and proxy command for hardening: the caller's own configuration
    forks: int = 10  # servers hardened at once


def wants_hardening(request: Any, harden: bool | None) -> bool:
    if harden is not None:
        return harden
    return any(server.hardening is not None for server in request.spec.servers)


@dataclass
class ApplyOutcome:
    tenant: str
    plan: Plan
    applied: ApplyResult | None = None  # None: the plan was empty
    waited: list[str] = field(default_factory=list)
    hardening: HardenResult | None = None
    timed_out: bool = False

    @property
    def writes(self) -> int:
        """Changes the cloud accepted in this run."""
        return self.applied.counts().get("done", 0) if self.applied else 0

    @property
    def ok(self) -> bool:
        return ((self.applied is None or self.applied.ok) and not self.timed_out
                and (self.hardening is None or self.hardening.ok))

    def to_dict(self) -> dict:
        data: dict = {"tenant": self.tenant, "ok": self.ok, "changes": len(self.plan.changes)}
        if self.applied is not None:
            data.update(self.applied.to_dict())
            data["ok"] = self.ok
        if self.waited:
            data["waited_for"] = self.waited
        if self.hardening is not None:
            data["hardening"] = self.hardening.to_dict()
        return data


def apply_request(request: Any, driver: Any, config: Any, *, saved: SavedPlan | None = None,
                  options: ApplyOptions = ApplyOptions(), deadline: Deadline = Deadline(),
                  progress: ProgressFn | None = None, confirm: Callable[[Plan], None] | None = None,
                  ops: HostOps | None = None, allow_data_loss: bool = False) -> ApplyOutcome:
    """Plan, check, apply, wait, harden and verify `request` (see the module docstring).
    `allow_data_loss`: the caller accepts changes that destroy volumes' data (else refused)."""
    say = progress or (lambda event: None)
    plan = pipeline.plan_request(request, driver, config)
    if saved is not None:
        saved.check_fresh(plan)
    check_data_loss(plan, allow_data_loss)
    harden = options.wait and wants_hardening(request, options.harden)
    if harden:
        check_access(options.access)
    if hasattr(driver, "wait_for_servers"):
        driver.wait_for_servers = options.wait
    outcome = ApplyOutcome(tenant=request.name, plan=plan)
    if not plan.is_empty():
        if confirm is not None:
            confirm(plan)
        total = len(build_graph(plan))
        say(Event(Stage.APPLY, _("apply {tenant}: {total} step(s), up to {parallelism} at once", tenant=plan.tenant,
                                 total=total, parallelism=options.parallelism),
                  data={"total": total}))
        outcome.applied = pipeline.apply_plan(
            plan, driver, parallelism=options.parallelism, timeout=deadline.remaining(),
            progress=lambda event, node, result: say(Event(Stage.CHANGE, str(node), data=(event, node, result))))
        if outcome.applied.timed_out:
            outcome.timed_out = True
            return outcome
        if not outcome.applied.ok:
            return outcome
    try:
        return _after_apply(request, driver, config, plan, outcome, harden, options, deadline, say, ops)
    except InvalidInput as exc:
        if not outcome.writes:
            raise
        raise GcloudctlError(exc.message + "\n" + _("({count} change(s) were applied before this)",
                                                   count=outcome.writes),
                             hint=_("fix the cause and re-run: applied changes are not repeated")) from exc


def _after_apply(request, driver, config, plan: Plan, outcome: ApplyOutcome, harden: bool, options: ApplyOptions,
                 deadline: Deadline, say: ProgressFn, ops: HostOps | None) -> ApplyOutcome:
    if options.wait:
        outcome.waited = pipeline.wait_for_building(plan, driver, announce=lambda names: say(Event(
            Stage.WAIT, _("waiting for {count} server(s) an earlier run left building: {servers}", count=len(names),
                          servers=", ".join(names)),
            data=names)))
    if not harden:
        return outcome
    if deadline.expired():
        outcome.timed_out = True
        return outcome
    levels = hardening_levels(request)
    if options.harden and not levels:  # --harden on a request whose servers name no profile
        levels = {name: min(request.spec.classification, 4) for name in _server_names(request)}
    owner = pipeline.owner_of(request, config)
    say(Event(Stage.HARDEN, _("harden {tenant}: {count} server(s); each waits for SSH with the host key its console "
                              "printed, then its level's playbooks, then the audit checks", tenant=request.name,
                              count=len(levels))))
    outcome.hardening = harden_servers(owner, driver, levels, options.access, deadline=deadline, progress=say,
                                       ops=ops, verify=options.verify, forks=options.forks,
                                       firewall=firewall_settings(request, config))
    outcome.timed_out = outcome.hardening.timed_out
    return outcome


def _server_names(request: Any) -> list[str]:
    from gcloudctl import naming

    return [naming.server_name(s.name, i) for s in request.spec.servers for i in range(1, s.count + 1)]


def firewall_settings(request: Any, config: Any) -> dict:
    """Host-firewall inputs for the inventory from the platform catalog (admin sources, central
    log host: `hardening.firewall.inventory_settings`). The per-server ports come with the
    observed hosts (their security groups)."""
    from gcloudctl.hardening.firewall import inventory_settings

    return inventory_settings(config.catalog.spec)
