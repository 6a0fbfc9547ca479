"""What an interrupted run leaves behind is adopted by the next one, never deleted and made
again (issue 13, part 4): a floating IP created but not yet tagged keeps the tenant's public
address; a security group created but not yet tagged keeps the rules Neutron gave it; the
egress rules Neutron makes with a new group are adopted without a POST answered 409. On the
in-memory cloud, asserted on the world (addresses, rule ids, requests sent)."""

from __future__ import annotations

from gcloudctl import pipeline
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.plan import Action
from tests.fixtures.core import request_from


def _converged(config, example_doc):
    api = FakeApi()
    request = request_from(example_doc, config)
    cloud = FakeCloud(api)
    assert pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud).ok
    return api, request


def test_untagged_floating_ip_is_adopted_and_keeps_its_address(config, example_doc):
    api, request = _converged(config, example_doc)
    fip = next(f for f in api.neutron["floatingips"].values() if "floating_ip.web-1" in str(f.get("tags")))
    fip["tags"] = []  # the run that made it died before tagging it
    address = fip["floating_ip_address"]
    plan = pipeline.plan_request(request, FakeCloud(api), config)
    changes = {str(c.address): c.action for c in plan.changes}
    assert changes == {"floating_ip.web-1": Action.UPDATE}, changes
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    assert fip["floating_ip_address"] == address and fip["id"] in api.neutron["floatingips"]
    assert len(api.neutron["floatingips"]) == 2
    assert pipeline.plan_request(request, FakeCloud(api), config).is_empty()


def test_untagged_security_group_is_adopted_with_its_rules(config, example_doc):
    api, request = _converged(config, example_doc)
    group = next(g for g in api.neutron["security-groups"].values() if g["name"] == "web")
    group["tags"] = []
    rules_before = {r["id"] for r in api.neutron["security-group-rules"].values() if r["security_group_id"] == group["id"]}
    plan = pipeline.plan_request(request, FakeCloud(api), config)
    changes = {str(c.address): c.action for c in plan.changes}
    assert changes == {"security_group.web": Action.UPDATE}, changes
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    rules_after = {r["id"] for r in api.neutron["security-group-rules"].values() if r["security_group_id"] == group["id"]}
    assert rules_after == rules_before, "no rule deleted and made again"


def test_a_stray_untagged_group_is_still_deleted(config, example_doc):
    api, request = _converged(config, example_doc)
    project = next(iter(p for p in api.projects.values() if p["name"].endswith(request.name)))
    api._neutron_create("security-groups", {"name": "made-by-hand", "project_id": project["id"]})
    plan = pipeline.plan_request(request, FakeCloud(api), config)
    assert [(c.action, c.before.attrs["name"]) for c in plan.changes] == [(Action.DELETE, "made-by-hand")]


def test_default_egress_rules_are_adopted_without_a_post(config, example_doc):
    api = FakeApi()
    request = request_from(example_doc, config)
    cloud = FakeCloud(api)
    assert pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud).ok
    rule_posts = [w for w in api.write_log if w[1] == "POST" and w[2] == "/security-group-rules"]
    declared = sum(1 for g in request.spec.securityGroups for _ in g.rules)
    assert len(rule_posts) == declared, "only the request's own rules are sent; Neutron's egress defaults are adopted"
    assert pipeline.plan_request(request, FakeCloud(api), config).is_empty()


def test_server_create_in_flight_is_adopted_not_duplicated(config, example_doc):
    """A run died right after sending a server create that Nova was still processing when the
    next run observed the tenant (no server listed yet). The next run finds the intent on the
    server's port, waits for that server and adopts it: one web-1, not two."""
    import threading
    import time

    from gcloudctl.drivers.base import IdMap

    api = FakeApi(build_polls=1)
    request = request_from(example_doc, config)
    api.inject("POST", r"^/servers$", 400, times=3, message="held back: the first run dies before its creates")
    cloud = FakeCloud(api)
    first = pipeline.plan_request(request, cloud, config)
    pipeline.apply_plan(first, cloud)
    assert not api.servers
    web1 = next(c.after for c in first.changes if str(c.address) == "server.web-1")
    dead_run = FakeCloud(api)
    ids = IdMap.from_observed(dead_run.observe(pipeline.owner_of(request, config)))
    api.inject("POST", r"^/servers$", 0, times=1, delay=1.5)  # Nova takes 1.5 s to accept this create

    log_start = len(api.write_log)
    made_by_dead_run: list[str] = []
    late = threading.Thread(target=lambda: made_by_dead_run.append(dead_run.create(web1, ids)))  # intent, then POST
    late.start()
    time.sleep(0.3)  # the next run observes while that POST is still being processed
    cloud = FakeCloud(api)
    result = pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud)
    late.join()
    assert result.ok, result.failed
    assert sorted(s["name"] for s in api.servers.values()) == ["db-1", "web-1", "web-2"]
    assert made_by_dead_run == [next(i for i, s in api.servers.items() if s["name"] == "web-1")], \
        "the next run adopted the dead run's server instead of sending its own create"
    posts = [w for w in api.write_log[log_start:] if w == ("compute", "POST", "/servers")]
    assert len(posts) == 3, "the dead run's web-1, and this run's web-2 and db-1: no second web-1"
    assert pipeline.plan_request(request, FakeCloud(api), config).is_empty()


def test_port_create_in_flight_makes_no_spare_port(config, example_doc):
    """A run died with its port POST in flight; the next run, having observed no port, creates
    it too. The two carry the same deterministic MAC: Neutron takes only the first, and the
    second create adopts it. One port per address, the run converges."""
    import threading
    import time

    from gcloudctl.drivers.base import IdMap

    api = FakeApi()
    request = request_from(example_doc, config)
    api.inject("POST", r"^/ports$", 400, times=10**6, message="held back: the first run dies before its ports")
    cloud = FakeCloud(api)
    first = pipeline.plan_request(request, cloud, config)
    pipeline.apply_plan(first, cloud)
    api.faults.clear()
    port = next(c.after for c in first.changes if str(c.address) == "port.web-1.app")
    dead_run = FakeCloud(api)
    ids = IdMap.from_observed(dead_run.observe(pipeline.owner_of(request, config)))
    api.inject("POST", r"^/ports$", 0, times=1, delay=1.0)  # Neutron takes 1 s to accept this create
    late = threading.Thread(target=lambda: dead_run.create(port, ids))
    late.start()
    time.sleep(0.2)
    cloud = FakeCloud(api)
    result = pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud)
    late.join()
    assert result.ok, result.failed
    named = sorted(p["name"] for p in api.neutron["ports"].values() if p.get("name"))
    assert len(named) == len(set(named)) == 3, named
    assert pipeline.plan_request(request, FakeCloud(api), config).is_empty()
