"""Stage: controller (status). Which servers the controller hardens on this pass, and what the
`Hardened` condition, events and audit records say about it.

Called by the reconciler after a tenant converged (the cloud matches the request). Pure: the
record, the servers seen, the hardening outcome, the time and the backoff are passed in; it never
runs anything. The record (`tenants.hardening`) is {server: {id, state, level, failures,
retry_at, message, at}}; a server is hardened when it is

  new (no record) or replaced (the record's id is not the server's id now);
  failed earlier and its retry time (backoff per server) has come;
  left for want of a key (`nokey`), so a controller started later with a key hardens it;

and never when it was hardened and verified under the same id (so not on every pass), until
`gcloudctl controller harden TENANT` empties the record.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gcloudctl.controller.audit import AuditAction
from gcloudctl.controller.backoff import Backoff
from gcloudctl.controller.conditions import Condition, ConditionType, condition, iso


class State(enum.StrEnum):
    HARDENED = "hardened"
    FAILED = "failed"
    NO_KEY = "nokey"


class Reason(enum.StrEnum):
    HARDENED = "Hardened"
    FAILED = "HardeningFailed"
    NO_KEY = "NoKey"
    PENDING = "Pending"


NO_KEY_HINT = "configure the controller's key: gcloudctl controller run --ssh-key FILE (or GCLOUDCTL_CONTROLLER_SSH_KEY)"


def _parse(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


def due(record: dict[str, dict], servers: dict[str, str], now: datetime) -> list[str]:
    """Servers (name -> id now) to harden on this pass, sorted."""
    names = []
    for name, server_id in sorted(servers.items()):
        entry = record.get(name)
        if entry is None or entry.get("id") != server_id:
            names.append(name)  # new or replaced
        elif entry.get("state") == State.FAILED:
            retry_at = _parse(entry.get("retry_at"))
            if retry_at is None or retry_at <= now:
                names.append(name)
        elif entry.get("state") == State.NO_KEY:
            names.append(name)
    return names


@dataclass
class Pass:
    """What one hardening pass changes: the new record, the condition, events, audits, and when
    to look again (the earliest retry of a failed server)."""

    record: dict[str, dict]
    condition: Condition | None
    events: list[tuple[str, str, str, dict]] = field(default_factory=list)
    audits: list[tuple[str, dict]] = field(default_factory=list)
    retry_at: datetime | None = None
    failed: list[str] = field(default_factory=list)  # servers whose hardening failed on this pass


def record_pass(record: dict[str, dict], servers: dict[str, str], attempted: list[str], outcome: Any,
                *, no_key: str | None, error: str | None = None, previous: Condition | None, generation: int | None, now: datetime,
                backoff: Backoff) -> Pass:
    """Fold this pass into the record. `outcome` is the hardening result (`hosts`: name ->
    outcome with `ok`, `status`, `message`, `level`, `to_dict()`; `left_out`: [(name, why)]) or
    None when nothing ran; `no_key` the reason when the controller has no usable key; `error`
    why the whole pass failed before any host's result (e.g. the cloud did not answer)."""
    # entries of servers not seen ACTIVE now are kept: a stopped server started again (same id)
    # is not hardened again; a replaced one has another id and is
    new = {name: dict(entry) for name, entry in record.items()}
    result = Pass(record=new, condition=None)
    hardened, failed = [], {}
    left_out = dict(getattr(outcome, "left_out", None) or [])
    for name in attempted:
        server_id, before = servers[name], new.get(name) or {}
        same = before.get("id") == server_id
        if no_key is not None:
            new[name] = {"id": server_id, "state": State.NO_KEY.value, "failures": 0, "message": no_key, "at": iso(now)}
            continue
        host = outcome.hosts.get(name) if outcome is not None else None
        if host is not None and host.ok:
            new[name] = {"id": server_id, "state": State.HARDENED.value, "level": host.level, "failures": 0,
                         "at": iso(now), "verify": host.to_dict().get("verify")}
            hardened.append(name)
            continue
        failures = (before.get("failures", 0) if same and before.get("state") == State.FAILED else 0) + 1
        message = (host.message or host.status.value) if host is not None else \
            f"not hardened: {error or left_out.get(name, 'no result for this server')}"
        retry_at = now + timedelta(seconds=backoff.delay(failures))
        new[name] = {"id": server_id, "state": State.FAILED.value, "failures": failures, "message": message[:500],
                     "retry_at": iso(retry_at), "at": iso(now)}
        if host is not None:
            new[name]["level"] = host.level
        failed[name] = new[name]
    result.failed = sorted(failed)
    if hardened:
        data = {name: _audit_entry(outcome.hosts[name], servers[name]) for name in hardened}
        result.events.append(("Normal", Reason.HARDENED.value,
                              f"{len(hardened)} server(s) hardened and verified: {', '.join(hardened)}",
                              {"servers": data}))
        result.audits.append((AuditAction.HARDEN, {"generation": generation, "servers": data}))
    if failed:
        data = {name: {"id": entry["id"], "status": (outcome.hosts[name].status.value if outcome is not None
                                                     and name in outcome.hosts else "left-out"),
                       "message": entry["message"], "failures": entry["failures"], "retry_at": entry["retry_at"]}
                for name, entry in failed.items()}
        text = "; ".join(f"{name}: {entry['message']} (attempt {entry['failures']}, retry at {entry['retry_at']})"
                         for name, entry in sorted(failed.items()))
        result.events.append(("Warning", Reason.FAILED.value, text[:2000], {"servers": data}))
        result.audits.append((AuditAction.HARDEN, {"generation": generation, "servers": data}))
    retries = [_parse(e.get("retry_at")) for e in new.values() if e.get("state") == State.FAILED]
    result.retry_at = min((r for r in retries if r is not None), default=None)
    result.condition = hardened_condition(new, servers, generation, now)
    if (result.condition is not None and result.condition.reason == Reason.NO_KEY
            and (previous is None or previous.reason != Reason.NO_KEY)):  # said once, not on every pass
        result.events.append(("Warning", Reason.NO_KEY.value, result.condition.message, {}))
        result.audits.append((AuditAction.HARDEN, {"generation": generation, "not_hardened": sorted(
            n for n, e in new.items() if e.get("state") == State.NO_KEY), "reason": Reason.NO_KEY.value}))
    return result


def _audit_entry(host: Any, server_id: str) -> dict:
    data = host.to_dict()
    return {"id": server_id, "status": data["status"], "level": data["level"], "changed": data["changed"],
            "verify": data.get("verify"), "seconds": data["seconds"]}


def hardened_condition(record: dict[str, dict], servers: dict[str, str], generation: int | None,
                       now: datetime) -> Condition | None:
    """Hardened True when every server that asks for hardening is hardened under its current id;
    False with the reason of the first problem (NoKey, HardeningFailed, Pending). None when no
    server asks for hardening."""
    if not servers:
        return None
    states = {name: (record.get(name) or {}) for name in servers}
    current = {name: e for name, e in states.items() if e.get("id") == servers[name]}
    no_key = sorted(n for n, e in current.items() if e.get("state") == State.NO_KEY)
    failed = sorted(n for n, e in current.items() if e.get("state") == State.FAILED)
    done = sorted(n for n, e in current.items() if e.get("state") == State.HARDENED)
    if no_key:
        return condition(ConditionType.HARDENED, False, Reason.NO_KEY.value,
                         f"{len(no_key)} server(s) not hardened: the controller has no usable SSH key "
                         f"({current[no_key[0]].get('message', '')}); {NO_KEY_HINT}", generation, now)
    if failed:
        first = current[failed[0]]
        return condition(ConditionType.HARDENED, False, Reason.FAILED.value,
                         f"hardening failed on {', '.join(failed)}; {failed[0]}: {first.get('message', '')} "
                         f"(retry at {first.get('retry_at')})"[:2000], generation, now)
    if len(done) == len(servers):
        levels = sorted({f"L{e.get('level')}" for e in current.values() if e.get("level")})
        return condition(ConditionType.HARDENED, True, Reason.HARDENED.value,
                         f"{len(done)} server(s) hardened ({', '.join(levels)}) and verified by the audit checks",
                         generation, now)
    pending = sorted(set(servers) - set(done))
    return condition(ConditionType.HARDENED, False, Reason.PENDING.value,
                     f"not hardened yet: {', '.join(pending)}", generation, now)
