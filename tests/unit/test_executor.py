"""The executor runs exactly the plan, over its dependency graph, bounded, and never attempts
what depends on a failure. Asserted on the resulting world of the in-memory cloud."""

from __future__ import annotations

import threading

import pytest

from gcloudctl import pipeline
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.ownership import Owner
from gcloudctl.executor import RetryPolicy, Status, apply, build_graph
from gcloudctl.drivers.base import IdMap
from tests.fixtures.core import request_from

FAST = RetryPolicy(attempts=4, base=0.0, cap=0.0)


def _plan(config, example_doc, api):
    return pipeline.plan_request(request_from(example_doc, config), FakeCloud(api), config)


def test_graph_orders_creates_after_dependencies(config, example_doc):
    plan = _plan(config, example_doc, FakeApi())
    graph = build_graph(plan)
    by_name = {str(n): n for n in graph}
    server = by_name["create server.web-1"]
    waits = {str(w) for w in graph[server]}
    assert {"create port.web-1.app", "create keypair.ops", "create server_group.web",
            "create membership.@operator:member"} <= waits
    fip = by_name["create floating_ip.web-1"]
    assert "create router_interface.main.app" in {str(w) for w in graph[fip]}
    assert "create server.web-1" not in {str(w) for w in graph[fip]}, "a floating IP needs the port, not the server"


def test_permanent_failure_skips_dependents_only(config, example_doc):
    api = FakeApi()
    api.inject("POST", r"^/subnets$", 400, times=1, message="bad subnet")
    plan = _plan(config, example_doc, api)
    result = apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), retry=FAST)
    status = {str(o.node): o.status for o in result.outcomes}
    failed = [k for k, v in status.items() if v is Status.FAILED]
    assert len(failed) == 1 and failed[0].startswith("create subnet.")
    net = failed[0].split(".", 1)[1]
    assert status[f"create router_interface.main.{net}"] is Status.SKIPPED
    assert any(v is Status.DONE for k, v in status.items() if k.startswith("create security_group"))
    # the next run converges what is left
    result = pipeline.apply_plan(_plan(config, example_doc, api), FakeCloud(api))
    assert result.ok
    assert _plan(config, example_doc, api).is_empty()


def test_transient_errors_are_retried(config, example_doc):
    api = FakeApi()
    api.inject("POST", r"^/networks$", 503, times=2)
    api.inject("POST", r"^/servers$", 429, times=1)
    plan = _plan(config, example_doc, api)
    result = apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), retry=FAST)
    assert result.ok, result.to_dict()
    assert sum(o.attempts - 1 for o in result.outcomes) == 3, "each injected fault costs exactly one retry"


def test_delete_in_use_names_the_blocker(config, example_doc):
    api = FakeApi()
    cloud = FakeCloud(api)
    assert pipeline.apply_plan(_plan(config, example_doc, api), cloud).ok
    pid = next(iter(api.projects))
    net = next(n for n in api.neutron["networks"].values() if n["name"] == "app")
    subnet = next(s for s in api.neutron["subnets"].values() if s["network_id"] == net["id"])
    # a port another project created on our network: never ours to delete, blocks the network
    api._neutron_create("ports", {"name": "foreign", "network_id": net["id"], "project_id": "other",
                                  "fixed_ips": [{"subnet_id": subnet["id"]}]})
    plan = pipeline.plan_destroy(Owner("byt-his-staging", "BYT", "BYT"), cloud)
    result = apply(plan, cloud, IdMap.from_observed(plan.observed), retry=FAST)
    failed = {str(o.node): o.error for o in result.failed}
    assert any("in use" in e and "blocked by port" in e for e in failed.values()), failed
    assert pid in api.projects, "the project stays while something still blocks its network"


def test_parallelism_is_bounded(config, example_doc):
    """--parallelism bounds the calls that make changes; waiting for servers adds at most one
    shared status poll per project on top."""
    api = FakeApi(build_polls=3)
    peak, current, lock = {"write": 0, "all": 0}, {"write": 0, "all": 0}, threading.Lock()
    original = api.request

    def tracking(service, method, *args, **kwargs):
        kinds = ("all", "write") if method != "GET" else ("all",)
        with lock:
            for k in kinds:
                current[k] += 1
                peak[k] = max(peak[k], current[k])
        try:
            threading.Event().wait(0.002)
            return original(service, method, *args, **kwargs)
        finally:
            with lock:
                for k in kinds:
                    current[k] -= 1

    api.request = tracking
    plan = _plan(config, example_doc, api)
    assert apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), parallelism=3).ok
    assert 1 < peak["write"] <= 3
    assert peak["all"] <= 3 + 1


def test_timeout_skips_the_rest(config, example_doc):
    api = FakeApi(build_polls=10**9)  # servers never become ACTIVE
    cloud = FakeCloud(api, server_timeout=0.2)
    plan = _plan(config, example_doc, api)
    result = apply(plan, cloud, IdMap.from_observed(plan.observed), timeout=1.0, retry=FAST)
    assert not result.ok
    assert any("not ACTIVE" in (o.error or "") for o in result.failed)


def test_cancel_stops_starting_changes(config, example_doc):
    """The controller's lease fence: once cancel() says yes, no further change starts."""
    api = FakeApi()
    plan = _plan(config, example_doc, api)
    started = []
    cancel_after = 5

    def cancel():
        return len(started) >= cancel_after

    def progress(event, node, outcome):
        if event == "start":
            started.append(node)

    result = apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), parallelism=1, cancel=cancel,
                   progress=progress)
    done = [o for o in result.outcomes if o.status is Status.DONE]
    assert len(done) == cancel_after
    assert all(o.status is Status.SKIPPED for o in result.outcomes if o.status is not Status.DONE)
    assert sum(api.writes.values()) <= cancel_after + 1  # at most the one write in flight when it tripped


def test_destroy_deletes_each_servers_port_before_the_server(config, example_doc):
    """Nova then has no port to unbind (on Neutron an unbind costs ~10x a port delete)."""
    api = FakeApi()
    cloud = FakeCloud(api)
    assert pipeline.apply_plan(_plan(config, example_doc, api), cloud).ok
    plan = pipeline.plan_destroy(Owner("byt-his-staging", "BYT", "BYT"), cloud)
    graph = build_graph(plan)
    by_name = {str(n): n for n in graph}
    waits = {str(n): {str(w) for w in ws} for n, ws in graph.items()}
    servers = [n for n in by_name if n.startswith("delete server.")]
    assert len(servers) == 3
    for server in servers:
        name = server.split(".", 1)[1]
        ports = [n for n in by_name if n.startswith(f"delete port.{name}.")]
        assert ports and set(ports) <= waits[server], (server, waits[server])
        assert all(server not in waits[p] for p in ports)
    # a subnet still waits for the ports on it; the project for everything
    subnets = [n for n in by_name if n.startswith("delete subnet.")]
    assert subnets and all(any(w.startswith("delete port.") for w in waits[s]) for s in subnets)
    result = apply(plan, cloud, IdMap.from_observed(plan.observed), retry=FAST)
    assert result.ok, result.to_dict()
    assert not api.servers and not [p for p in api.neutron["ports"].values() if p.get("project_id") in api.projects]


def test_a_replaced_server_keeps_the_usual_order():
    from gcloudctl.executor import Node, Step, _port_goes_first
    from gcloudctl.plan import Action, Change
    from gcloudctl.resources import Address, Kind, Resource

    def change(kind, name, action):
        res = Resource(address=Address(kind, name), attrs={})
        return Change(address=res.address, action=action, before=res,
                      after=res if action is not Action.DELETE else None)

    server, port = change(Kind.SERVER, "web-1", Action.DELETE), change(Kind.PORT, "web-1.app", Action.DELETE)
    assert _port_goes_first(Node(Step.DELETE, server), Node(Step.DELETE, port))
    server_r, port_r = change(Kind.SERVER, "web-1", Action.REPLACE), change(Kind.PORT, "web-1.app", Action.REPLACE)
    assert not _port_goes_first(Node(Step.DELETE, server_r), Node(Step.DELETE, port_r))
    assert not _port_goes_first(Node(Step.DELETE, server_r), Node(Step.DELETE, port))


@pytest.mark.parametrize("case", [
    pytest.param({"method": "POST", "path": r"^/servers$", "delay": 40.0}, id="slow-server-create"),
    pytest.param({"method": "GET", "path": r"^/servers/detail$", "delay": 40.0, "times": 10**6}, id="slow-server-poll"),
])
def test_deadline_bounds_changes_in_flight(config, example_doc, case):
    """--timeout bounds the whole run: a server create (or its wait) that takes 40 s is stopped
    at the deadline, reported CANCELLED, and apply returns within the grace, not after 40 s."""
    import time

    api = FakeApi()
    plan = _plan(config, example_doc, api)
    api.inject(case["method"], case["path"], 0, times=case.get("times", 10**6), delay=case["delay"])
    t0 = time.monotonic()
    result = apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), deadline=time.monotonic() + 2.0, retry=FAST)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0 + 3.5, f"apply took {elapsed:.1f}s"
    assert result.timed_out and not result.ok
    statuses = {str(o.node): o.status for o in result.outcomes}
    assert Status.CANCELLED in statuses.values(), statuses
    assert statuses["create network.app"] is Status.DONE, "what was done before the deadline is reported done"


def test_lost_reply_of_a_router_interface_is_adopted(config, example_doc):
    """Seen under injected faults on devcloud: the interface was added but the answer lost;
    the retry's 400 "Router already has a port on subnet" means done, not failed."""
    api = FakeApi()
    api.inject("PUT", r"/add_router_interface$", 503, times=1, after=True)
    plan = _plan(config, example_doc, api)
    result = apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), retry=FAST)
    assert result.ok, result.failed
    interfaces = [p for p in api.neutron["ports"].values() if p.get("device_owner") == "network:router_interface"]
    assert len(interfaces) == 2, "one interface per subnet, none twice"


def test_a_deadline_already_passed_starts_nothing(config, example_doc):
    """`timeout=0` (what a use case passes when its deadline is spent) is a limit, not "none"."""
    api = FakeApi()
    plan = _plan(config, example_doc, api)
    result = apply(plan, FakeCloud(api), IdMap.from_observed(plan.observed), timeout=0.0, retry=FAST)
    assert result.timed_out and api.total_writes() == 0
    assert {o.status for o in result.outcomes} == {Status.SKIPPED}
