"""ServerWatch: the servers a run waits for share one list call per poll interval, and one
answer serves every waiter at once (a server missing from the project's list is gone for all of
them, not only for the thread that happened to poll)."""

from __future__ import annotations

import threading
import time

from gcloudctl.drivers.openstack import ServerWatch
from gcloudctl.errors import CloudError

PROJECT = "p1"


class ListApi:
    """GET /servers/detail answers from a script: one entry per call (the last one repeats)."""

    def __init__(self, answers: list):
        self.answers = answers
        self.calls = 0
        self.lock = threading.Lock()

    def request(self, service, method, path, **kwargs):
        assert (service, method, path) == ("compute", "GET", "/servers/detail")
        assert kwargs["params"] == {"all_tenants": "1", "project_id": PROJECT}
        with self.lock:
            answer = self.answers[min(self.calls, len(self.answers) - 1)]
            self.calls += 1
        time.sleep(0.02)  # a list takes a while: other waiters arrive meanwhile
        if isinstance(answer, Exception):
            raise answer
        return {"servers": [{"id": sid, "status": "ACTIVE"} for sid in answer]}


def _each_in_a_thread(fn, ids: list[str]) -> None:
    threads = [threading.Thread(target=fn, args=(sid,)) for sid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)


def _wait_all_gone(watch: ServerWatch, ids: list[str]) -> dict[str, float]:
    gone_at: dict[str, float] = {}
    errors: list[Exception] = []

    def waiter(sid: str) -> None:
        try:
            while watch.status(sid, PROJECT) is not None:
                pass
            gone_at[sid] = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    _each_in_a_thread(waiter, ids)
    assert not errors, errors
    return gone_at


def test_one_answer_releases_every_waiter_of_the_project():
    ids = [f"s{i}" for i in range(20)]
    api = ListApi([ids, []])  # all present, then all gone
    watch = ServerWatch(api, interval=0.1, sleep=time.sleep, clock=time.monotonic)
    gone_at = _wait_all_gone(watch, ids)
    assert set(gone_at) == set(ids)
    # one list call per interval serves everybody: not one call per server
    assert api.calls <= 4, api.calls
    assert max(gone_at.values()) - min(gone_at.values()) < 0.1


def test_a_failed_poll_never_reads_as_gone():
    ids = ["a", "b", "c"]
    boom = CloudError("compute API 503", transient=True, status=503)
    api = ListApi([boom, ids, ids, []])
    watch = ServerWatch(api, interval=0.05, sleep=time.sleep, clock=time.monotonic)
    seen: list[object] = []

    def first(sid: str) -> None:
        try:
            seen.append(watch.status(sid, PROJECT))
        except CloudError as exc:
            seen.append(exc)

    _each_in_a_thread(first, ids)
    # the poller gets the error; the others wait for a real answer, in which the servers exist
    assert sum(isinstance(s, CloudError) for s in seen) == 1, seen
    assert [s["status"] for s in seen if not isinstance(s, CloudError)] == ["ACTIVE", "ACTIVE"], seen


def test_an_answer_counts_only_for_those_who_asked_before_it_began():
    """A list that started before a waiter asked may predate the change it waits for."""
    api = ListApi([["x"], []])
    clock_now = [0.0]
    watch = ServerWatch(api, interval=0.0, sleep=time.sleep, clock=lambda: clock_now[0])
    clock_now[0] = 1.0
    assert watch.status("x", PROJECT) == {"id": "x", "status": "ACTIVE"}  # poll began at 1.0
    clock_now[0] = 2.0
    assert watch.status("x", PROJECT) is None  # asked at 2.0: a new poll, which no longer lists it
    assert api.calls == 2


class StatusApi:
    """GET /servers/detail: one server whose status follows a script, one entry per call."""

    def __init__(self, script: list[dict]):
        self.script, self.calls = script, 0

    def request(self, service, method, path, **kwargs):
        answer = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return {"servers": [{"id": "s1", **answer}]}


def _driver(script, clock):
    from gcloudctl.drivers.openstack import OpenStackDriver

    api = StatusApi(script)
    api.operator_user_id = "op"
    return OpenStackDriver(api, poll_interval=0.0, sleep=lambda s: None, clock=clock), api


def test_a_brief_error_without_fault_is_waited_out():
    """devcloud's Nova shows BUILD -> ERROR (no fault) -> BUILD -> ACTIVE while it reschedules a
    build: the wait goes on; an ERROR with a fault fails at once; one without a fault that
    lasts past the grace fails."""
    import pytest

    from gcloudctl.drivers.openstack import ERROR_WITHOUT_FAULT_GRACE

    now = {"t": 0.0}

    def clock():
        now["t"] += 0.5
        return now["t"]

    driver, _ = _driver([{"status": "BUILD"}, {"status": "ERROR"}, {"status": "BUILD"}, {"status": "ACTIVE"}], clock)
    driver._wait_server("s1", "web-1", PROJECT)

    driver, api = _driver([{"status": "ERROR", "fault": {"message": "No valid host"}}], clock)
    with pytest.raises(CloudError, match="No valid host"):
        driver._wait_server("s1", "web-1", PROJECT)
    assert api.calls == 1

    driver, api = _driver([{"status": "ERROR"}], clock)
    started = now["t"]
    with pytest.raises(CloudError, match="went to ERROR"):
        driver._wait_server("s1", "web-1", PROJECT)
    assert now["t"] - started >= ERROR_WITHOUT_FAULT_GRACE
