"""The controller hardens what the request asks for, once per server, and never leaves a failure
silent: the real pipeline engine over the in-memory FakeCloud, with the host effects (SSH,
playbooks, audit checks) replaced by `FakeHosts`, which records what was done to which server.
The real hosts are in tests/guests/test_controller_hardening.py."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.controller.backoff import Backoff
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService
from gcloudctl.drivers.ansible import HostEvent, HostSummary, RunResult
from gcloudctl.drivers.fake import FakeCloud
from gcloudctl.errors import Unreachable
from gcloudctl.hardening.audit import ControlResult
from gcloudctl.usecases.harden import Access

from .conftest import BYT_APPROVER1, BYT_APPROVER2, BYT_REQUESTER, OPERATOR, request_doc

NAME = "byt-his-staging"
WEB = ["web-1", "web-2"]


class FakeHosts:
    """Host effects of hardening: `fail[name]` = how many next attempts fail on that server (a
    playbook task), `down` = servers that do not answer SSH, `failing_check[name]` = a control id
    that the audit finds failing."""

    def __init__(self):
        self.hardened: Counter = Counter()  # server -> playbook runs
        self.fail: Counter = Counter()
        self.down: set[str] = set()
        self.failing_check: dict[str, str] = {}

    def reach(self, name, target, known_hosts, console, timeout):
        if name in self.down:
            raise Unreachable(f"{target.host}:22: no SSH banner")

    def harden(self, inventory, known_hosts, *, limit, check, timeout, progress):
        self.hardened[limit] += 1
        if self.fail[limit] > 0:
            self.fail[limit] -= 1
            failure = HostEvent(limit, "GC-SSH-01 sshd drop-in", "failed", "sshd -t: bad config")
            return RunResult("failed", 2, check, 1.0, {limit: HostSummary(ok=3, failed=1)}, failures=[failure])
        return RunResult("successful", 0, check, 1.0, {limit: HostSummary(ok=40, changed=30)})

    def verify(self, name, target, known_hosts, level, timeout):
        failing = self.failing_check.get(name)
        return [ControlResult(cid, "t", level, "", "", "fail" if cid == failing else "pass", "evidence")
                for cid in ("GC-SSH-01", "GC-SSH-02", "GC-FW-01")]


def hardened_request(**changes) -> str:
    doc = request_doc(NAME, **changes)
    doc["spec"]["servers"][0]["hardening"] = {}  # the web servers (they have floating IPs); db does not ask
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def config():
    return pipeline.Config.load()


@pytest.fixture
def cloud():
    return FakeCloud()


@pytest.fixture
def hosts():
    return FakeHosts()


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "id_ed25519"
    path.write_text("not a real key: FakeHosts never reads it\n")
    return str(path)


@pytest.fixture
def make_runner(store, config, cloud, clock, hosts, key, tmp_path, monkeypatch):
    monkeypatch.setenv("GCLOUDCTL_STATE_DIR", str(tmp_path / "state"))

    def make(with_key: bool = True) -> Runner:
        access = Access(key_file=key, proxy_command="nc %h %p") if with_key else None
        engine = PipelineEngine(config, lambda region: cloud, access=access, host_ops=hosts)
        reconciler = Reconciler(store, engine, holder="ctl", interval=60, clock=clock,
                                backoff=Backoff(base=30, rand=lambda: 0.0))  # deterministic: 30 s, 60 s, ...
        return Runner(store, reconciler, clock=clock, workers=1)

    return make


@pytest.fixture
def service(store, config, rules, clock):
    return RequestService(store=store, agencies=config.agencies, rules=rules, clock=clock,
                          load_request=lambda text, name: pipeline.load_request(text, config, filename=name))


def submit(service, text: str) -> None:
    version = service.submit(text, caller=BYT_REQUESTER)
    for approver in (BYT_APPROVER1, BYT_APPROVER2)[: version["approvalsRequired"]]:
        service.approve(version["id"], caller=approver, reason="ok")


def hardened_condition(service) -> dict:
    status = service.status(NAME, caller=OPERATOR)
    return next(c for c in status["conditions"] if c["type"] == "Hardened")


def harden_audits(store) -> list:
    with store.tx() as tx:
        return [r for r in tx.audit_records() if r.tenant == NAME and r.action == "tenant.harden"]


def record(store) -> dict:
    with store.tx() as tx:
        return json.loads(tx.tenant(NAME).hardening)


def test_new_servers_are_hardened_and_verified_with_condition_event_and_audit(service, store, make_runner, hosts):
    submit(service, hardened_request())
    summary = make_runner().run_once()
    assert summary.counts() == {"applied": 1}, summary.to_dict()
    assert dict(hosts.hardened) == {"web-1": 1, "web-2": 1}  # db-1 does not ask for hardening
    condition = hardened_condition(service)
    assert (condition["status"], condition["reason"]) == ("True", "Hardened"), condition
    assert condition["message"].startswith("2 server(s) hardened (L2)")
    events = service.status(NAME, caller=OPERATOR)["events"]
    assert any(e["reason"] == "Hardened" and "web-1, web-2" in e["message"] for e in events)
    (audit,) = harden_audits(store)
    assert sorted(audit.data["servers"]) == WEB
    assert audit.data["servers"]["web-1"]["verify"] == {"ok": 3, "failed": [], "not_applicable": 0}
    assert {e["state"] for e in record(store).values()} == {"hardened"}


def test_hardened_servers_are_not_hardened_again_but_a_replaced_one_is(service, store, make_runner, hosts, cloud,
                                                                       clock):
    submit(service, hardened_request())
    runner = make_runner()
    runner.run_once()
    for _ in range(3):  # converged passes: nothing is hardened again
        clock.advance(120)
        assert runner.run_once().counts() == {"converged": 1}
    assert dict(hosts.hardened) == {"web-1": 1, "web-2": 1}
    assert len(harden_audits(store)) == 1

    web2 = next(s for s in cloud.api.servers.values() if s["name"] == "web-2")
    web2["status"] = "ERROR"  # broken: the controller replaces it with a new web-2
    clock.advance(120)
    summary = runner.run_once()
    assert summary.counts() == {"drift-repaired": 1}, summary.to_dict()
    assert dict(hosts.hardened) == {"web-1": 1, "web-2": 2}  # only the new server
    assert record(store)["web-2"]["id"] != web2["id"]
    assert hardened_condition(service)["status"] == "True"


def test_a_failing_host_is_retried_with_backoff_and_reported(service, store, make_runner, hosts, clock):
    hosts.fail["web-2"] = 2  # two attempts fail, the third succeeds
    submit(service, hardened_request())
    runner = make_runner()
    summary = runner.run_once()
    assert summary.counts() == {"hardening-failed": 1} and not summary.ok  # reported, not silently left
    condition = hardened_condition(service)
    assert (condition["status"], condition["reason"]) == ("False", "HardeningFailed")
    assert "web-2" in condition["message"] and "sshd -t: bad config" in condition["message"]
    with store.tx() as tx:
        assert tx.tenant(NAME).next_reconcile_at == clock.now + timedelta(seconds=30)  # sooner than the 60 s poll
    assert record(store)["web-2"]["failures"] == 1 and record(store)["web-1"]["state"] == "hardened"

    clock.advance(10)  # before the retry time: web-2 is not tried again
    runner.run_once()
    assert hosts.hardened["web-2"] == 1
    clock.advance(25)  # first retry (after 30 s): fails again; the next waits twice as long
    assert runner.run_once().counts() == {"hardening-failed": 1}
    assert hosts.hardened["web-2"] == 2 and record(store)["web-2"]["failures"] == 2
    with store.tx() as tx:
        assert tx.tenant(NAME).next_reconcile_at == clock.now + timedelta(seconds=60)
    clock.advance(61)
    assert runner.run_once().counts() == {"converged": 1}
    assert dict(hosts.hardened) == {"web-1": 1, "web-2": 3}  # web-1 was never hardened again
    assert hardened_condition(service)["status"] == "True"
    warnings = [e for e in service.status(NAME, caller=OPERATOR)["events"] if e["reason"] == "HardeningFailed"]
    assert len(warnings) == 2  # one per failed attempt
    web2 = [a.data["servers"]["web-2"]["status"] for a in harden_audits(store) if "web-2" in a.data["servers"]]
    assert web2 == ["failed", "failed", "hardened"]


@pytest.mark.parametrize("case, break_it, status", [
    ("unreachable", lambda h: h.down.add("web-1"), "unreachable"),
    ("audit-check-fails", lambda h: h.failing_check.update({"web-1": "GC-FW-01"}), "verify-failed"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_unreachable_or_unverified_hosts_count_as_failed(case, break_it, status, service, store, make_runner, hosts):
    break_it(hosts)
    submit(service, hardened_request())
    assert make_runner().run_once().counts() == {"hardening-failed": 1}
    entry = record(store)["web-1"]
    assert entry["state"] == "failed", entry
    assert harden_audits(store)[-1].data["servers"]["web-1"]["status"] == status
    if case == "audit-check-fails":
        assert "GC-FW-01" in hardened_condition(service)["message"]


def test_without_a_key_the_condition_says_nokey_once_and_a_keyed_controller_hardens_later(
        service, store, make_runner, hosts, clock):
    submit(service, hardened_request())
    keyless = make_runner(with_key=False)
    summary = keyless.run_once()
    assert summary.counts() == {"applied": 1}  # the tenant is provisioned; hardening is reported apart
    condition = hardened_condition(service)
    assert (condition["status"], condition["reason"]) == ("False", "NoKey")
    assert "--ssh-key" in condition["message"]
    clock.advance(120)
    keyless.run_once()
    events = service.status(NAME, caller=OPERATOR)["events"]
    assert [e["reason"] for e in events].count("NoKey") == 1  # said once, not on every pass
    assert not hosts.hardened
    clock.advance(120)
    make_runner(with_key=True).run_once()
    assert dict(hosts.hardened) == {"web-1": 1, "web-2": 1}
    assert hardened_condition(service)["status"] == "True"


def test_an_explicit_request_hardens_every_server_again(service, store, make_runner, hosts, clock):
    submit(service, hardened_request())
    runner = make_runner()
    runner.run_once()
    service.harden_again(NAME, caller=OPERATOR, reason="new playbooks")
    clock.advance(1)
    runner.run_once()
    assert dict(hosts.hardened) == {"web-1": 2, "web-2": 2}
    with store.tx() as tx:
        assert any(r.action == "tenant.harden-request" for r in tx.audit_records())


def test_requests_without_hardening_get_no_condition(service, make_runner, hosts):
    submit(service, yaml.safe_dump(request_doc(NAME), sort_keys=False))
    make_runner().run_once()
    assert not hosts.hardened
    assert all(c["type"] != "Hardened" for c in service.status(NAME, caller=OPERATOR)["conditions"])


def test_a_server_seen_building_for_a_pass_is_not_hardened_again(service, store, make_runner, hosts, cloud, clock):
    submit(service, hardened_request())
    runner = make_runner()
    runner.run_once()
    web1 = next(s for s in cloud.api.servers.values() if s["name"] == "web-1")
    web1.update(status="BUILD", _polls=-1000)  # not ACTIVE on the next pass (and not a change either)
    clock.advance(120)
    runner.run_once()
    web1.update(status="ACTIVE")
    clock.advance(120)
    assert runner.run_once().counts() == {"converged": 1}
    assert dict(hosts.hardened) == {"web-1": 1, "web-2": 1}  # same id: its record was kept
