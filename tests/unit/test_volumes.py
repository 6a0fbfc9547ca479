"""Block storage in requests (issue 15, parts 2-4): validation located by file and line, the
encryption rule, derived quotas, and on the in-memory cloud with Cinder the world after each
step: volumes created and attached once, extended, never shrunk, adopted rather than duplicated
(untagged twin, lost reply, interrupted run), repaired after drift, and never deleted with their
data unless the caller allows it."""

from __future__ import annotations

import copy

import pytest
import yaml

from gcloudctl import pipeline, preflight
from gcloudctl.drivers.fake import FakeCloud
from gcloudctl.errors import ExitCode, Refused
from gcloudctl.executor import Step, build_graph
from gcloudctl.outputs import tenant_outputs
from gcloudctl.ownership import Owner
from gcloudctl.plan import Action
from gcloudctl.quotas import effective_quotas
from gcloudctl.resources import Address, Kind
from gcloudctl.usecases.apply import ApplyOptions, DataLossRefused, apply_request, check_destroy
from gcloudctl.validate import check_document
from tests.unit.volumes_support import block_storage_config, cinder_cloud, request_text, with_db_volume


@pytest.fixture(scope="module")
def bs_config(config):
    return block_storage_config(config)


def _load(doc, cfg):
    return pipeline.load_request(request_text(doc), cfg, filename="req.yaml")


def _line_of(text: str, needle: str, start: int = 1) -> int:
    """1-based number of the first line at or after `start` that contains `needle`."""
    for number, line in enumerate(text.splitlines(), 1):
        if number >= start and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the request")


def _converged(doc, cfg, **kw):
    api, cloud = cinder_cloud()
    request = _load(doc, cfg)
    plan = pipeline.plan_request(request, cloud, cfg)
    result = pipeline.apply_plan(plan, cloud)
    assert result.ok, [o.to_dict() for o in result.outcomes if o.status.value != "done"]
    return api, request


def _project_id(api, tenant):
    return next(p["id"] for p in api.projects.values() if p["name"] == tenant)


def _volume(api, name):
    found = [v for v in api.volumes.values() if v["name"] == name]
    assert len(found) == 1, f"{len(found)} volumes named {name}"
    return found[0]


# --------------------------------------------------------------------------- validation

def _db_volumes(doc):
    return next(s for s in doc["spec"]["servers"] if s["name"] == "db")["volumes"]


def _bad_size(doc):
    _db_volumes(doc)[0]["sizeGiB"] = 0


def _unknown_type(doc):
    _db_volumes(doc)[0]["type"] = "gold"


def _duplicate_name(doc):
    _db_volumes(doc).append({"name": "data", "sizeGiB": 5, "type": "standard"})


def _level_too_high(doc):
    doc["spec"]["classification"] = 3
    _db_volumes(doc)[0]["type"] = "standard"  # standard serves up to level 2


def _quota_too_small(doc):
    doc["spec"]["quotas"] = {"instances": 10, "cores": 32, "ramMiB": 65536, "floatingIPs": 2,
                             "volumes": 1, "volumeGiB": 10}


def _over_ceiling(doc):
    _db_volumes(doc)[0]["sizeGiB"] = 7000  # BYT's ceiling is 6000 GiB


def _boot_unknown_type(doc):
    next(s for s in doc["spec"]["servers"] if s["name"] == "db")["bootVolume"] = {"sizeGiB": 20, "type": "gold"}


# id, change to the request, field path, line holds, message fragment, why
VALIDATION = [
    ("size-zero", _bad_size, "spec.servers[1].volumes[0].sizeGiB", "sizeGiB: 0", "at least 1",
     "a volume has at least 1 GiB"),
    ("unknown-type", _unknown_type, "spec.servers[1].volumes[0].type", "type: gold", "volume type 'gold' is not",
     "types come from the catalog"),
    ("duplicate-name", _duplicate_name, "spec.servers[1].volumes[1].name", ("mountPoint:", "name: data"),
     "volume name 'data' is already used", "each copy gets one volume per name"),
    ("type-level", _level_too_high, "spec.servers[1].volumes[0].type", "type: standard", "up to level 2",
     "a type serves up to its catalog level"),
    ("quota-volumes", _quota_too_small, "spec.quotas.volumeGiB", "volumeGiB: 10", "the servers need volumeGiB 20",
     "explicit quotas must hold the volumes"),
    ("ceiling", _over_ceiling, "spec.servers", ("servers:", "name: web"), "more than the agency's ceiling",
     "derived quotas stay within the agency's ceilings"),
    ("boot-type", _boot_unknown_type, "spec.servers[1].bootVolume.type", "type: gold",
     "volume type 'gold' is not", "a boot volume's type is checked too"),
]


@pytest.mark.parametrize("change,path,holds,fragment", [pytest.param(c, p, h, f, id=i)
                                                        for i, c, p, h, f, _ in VALIDATION])
def test_volume_problems_are_located(bs_config, example_doc, change, path, holds, fragment):
    doc = with_db_volume(example_doc)
    change(doc)
    text = request_text(doc)
    request, problems = check_document(text, bs_config, filename="req.yaml")
    assert request is None
    found = [p for p in problems if p.path == path]
    assert found, [p.format() for p in problems]
    problem = found[0]
    assert fragment in problem.message and problem.file == "req.yaml"
    servers_at = _line_of(text, "servers:")
    start = _line_of(text, "name: db", servers_at) if path.startswith("spec.servers[1]") else 1
    if isinstance(holds, tuple):  # (a line before it, the needle)
        start, holds = _line_of(text, holds[0], start), holds[1]
    assert problem.line == _line_of(text, holds, start), problem.format()


def test_volumes_in_a_region_without_block_storage_are_refused(config, example_doc):
    text = request_text(with_db_volume(example_doc))
    request, problems = check_document(text, block_storage_config(config, block_storage=False), filename="req.yaml")
    assert request is None
    problem = next(p for p in problems if p.path == "spec.servers[1].volumes")
    assert "has no block storage" in problem.message
    volumes_at = _line_of(text, "volumes:", _line_of(text, "name: db", _line_of(text, "servers:")))
    assert problem.line == _line_of(text, "name: data", volumes_at)  # the list's first item


# id, level, type, rule violated, why
ENCRYPTION = [
    ("l3-plain", 3, "standard", True, "from level 3 a volume's type must be encrypted"),
    ("l3-encrypted", 3, "encrypted", False, "an encrypted type satisfies the rule"),
    ("l2-plain", 2, "standard", False, "below level 3 the rule is not in force"),
]


@pytest.mark.parametrize("level,vtype,violated", [pytest.param(l, t, v, id=i) for i, l, t, v, _ in ENCRYPTION])
def test_encrypted_volumes_from_level_3(bs_config, example_doc, level, vtype, violated):
    doc = with_db_volume(example_doc, vtype=vtype)
    doc["spec"]["classification"] = level
    next(s for s in doc["spec"]["servers"] if s["name"] == "db")["bootVolume"] = {"sizeGiB": 20, "type": vtype}
    _, problems = check_document(request_text(doc), bs_config, filename="req.yaml")
    rule = sorted(p.path for p in problems if p.rule == "volumes-encrypted")
    expected = ["spec.servers[1].bootVolume.type", "spec.servers[1].volumes[0].type"] if violated else []
    assert rule == expected, [p.format() for p in problems]


def test_derived_quotas_count_volumes(bs_config, example_doc):
    request = _load(with_db_volume(example_doc, size=20, count=2), bs_config)
    quotas = effective_quotas(request, bs_config.catalog.spec.flavors, bs_config.agencies.get("BYT"))
    assert (quotas.volumes, quotas.volumeGiB, quotas.snapshots) == (3, 50, 0)  # 2 and 40 plus 25 % headroom


def test_agency_volume_ceiling_counts_other_tenants():
    problems = preflight.agency_problems("BYT", {"volumes": 60, "volumeGiB": 6000},
                                         {"volumes": 10, "gigabytes": 1000}, {"other": {"volumes": 5, "gigabytes": 5500}})
    assert problems == ["agency BYT quota volumeGiB: 1000 (this tenant) + 5500 (its other tenants: other 5500) = "
                        "6500 exceeds the agency ceiling 6000"]


# --------------------------------------------------------------------------- plan, apply, world

def test_create_attaches_one_volume_per_copy_and_replans_empty(bs_config, example_doc):
    api, request = _converged(with_db_volume(example_doc, count=2), bs_config)
    pid = _project_id(api, request.name)
    servers = {s["id"]: s["name"] for s in api.servers.values()}
    attached = {v["name"]: (servers[v["attachments"][0]["server_id"]], v["size"], v["volume_type"], v["status"])
                for v in api.volumes_of(pid)}
    assert attached == {"db-1-data": ("db-1", 20, "standard", "in-use"), "db-2-data": ("db-2", 20, "standard", "in-use")}
    assert pipeline.plan_request(request, FakeCloud(api), bs_config).is_empty()
    outputs = tenant_outputs(FakeCloud(api).observe(pipeline.owner_of(request, bs_config)))
    out = outputs.volumes["db-1.data"]
    assert (out.server, out.device, out.size_gib, out.type, out.mount_point) == (
        "db-1", "/dev/vdb", 20, "standard", "/var/lib/postgresql")
    assert api.volume_quotas[pid] == {"volumes": 3, "gigabytes": 50, "snapshots": 0}  # derived: 2 and 40, +25 %


def test_attachments_wait_for_server_and_volume_and_go_first_on_destroy(bs_config, example_doc):
    api, cloud = cinder_cloud()
    request = _load(with_db_volume(example_doc), bs_config)
    graph = build_graph(pipeline.plan_request(request, cloud, bs_config))
    attach = next(n for n in graph if n.address == Address(Kind.VOLUME_ATTACHMENT, "db-1.data"))
    assert {str(n) for n in graph[attach]} >= {"create server.db-1", "create volume.db-1.data"}
    assert pipeline.apply_plan(pipeline.plan_request(request, cloud, bs_config), cloud).ok
    destroy = pipeline.plan_destroy(pipeline.owner_of(request, bs_config), FakeCloud(api))
    graph = build_graph(destroy)
    waits = {str(n): {str(w) for w in ws} for n, ws in graph.items()}
    assert "delete volume_attachment.db-1.data" in waits["delete volume.db-1.data"]
    assert "delete volume_attachment.db-1.data" in waits["delete server.db-1"]


def test_destroy_leaves_no_volume_snapshot_or_attachment(bs_config, example_doc):
    api, request = _converged(with_db_volume(example_doc), bs_config)
    volume = _volume(api, "db-1-data")
    pid = _project_id(api, request.name)
    for project in (pid, None):  # one by a tenant member (cascaded), one by an operator as admin (deleted first)
        api.request("block-storage", "POST", "/snapshots", project_id=project,
                    json={"snapshot": {"volume_id": volume["id"], "name": "by-hand"}})
    plan = pipeline.plan_destroy(pipeline.owner_of(request, bs_config), FakeCloud(api))
    check_destroy(plan, allow_data_loss=False)  # level 2: destroy may take the volumes
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    assert api.volumes == {} and api.snapshots == {} and api.servers == {}


def test_extend_is_planned_and_applied_and_shrink_is_refused(bs_config, example_doc):
    api, request = _converged(with_db_volume(example_doc, size=20), bs_config)
    volume_id = _volume(api, "db-1-data")["id"]
    bigger = _load(with_db_volume(example_doc, size=30), bs_config)
    plan = pipeline.plan_request(bigger, FakeCloud(api), bs_config)
    assert [(c.action, str(c.address), c.changed) for c in plan.changes if c.address.kind is Kind.VOLUME] == [
        (Action.UPDATE, "volume.db-1.data", ("size",))]
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    volume = _volume(api, "db-1-data")
    assert (volume["id"], volume["size"], volume["status"]) == (volume_id, 30, "in-use")
    assert pipeline.plan_request(bigger, FakeCloud(api), bs_config).is_empty()
    writes = api.total_writes()
    with pytest.raises(Refused) as refused:
        pipeline.plan_request(_load(with_db_volume(example_doc, size=10), bs_config), FakeCloud(api), bs_config)
    assert "cannot shrink" in refused.value.message and "30 GiB -> 10 GiB" in refused.value.message
    assert refused.value.exit_code == ExitCode.REFUSED and api.total_writes() == writes


def test_an_untagged_volume_with_the_deterministic_name_is_adopted(bs_config, example_doc):
    api, cloud = cinder_cloud()
    request = _load(with_db_volume(example_doc), bs_config)
    before = with_db_volume(example_doc)
    _db_volumes(before).clear()  # the same request before the volume was added
    assert pipeline.apply_plan(pipeline.plan_request(_load(before, bs_config), cloud, bs_config), cloud).ok
    pid = _project_id(api, request.name)
    api.volume_quotas[pid] = {"volumes": 10, "gigabytes": 100, "snapshots": 0}  # made by hand, by an operator
    made = api.request("block-storage", "POST", "/volumes", project_id=pid,
                       json={"volume": {"name": "db-1-data", "size": 20, "volume_type": "standard"}})["volume"]
    plan = pipeline.plan_request(request, FakeCloud(api), bs_config)
    changes = {str(c.address): (c.action, c.reason) for c in plan.changes if str(c.address) != "quota.volume"}
    assert changes == {"volume.db-1.data": (Action.UPDATE, "adopt: untagged twin of an interrupted create"),
                       "volume_attachment.db-1.data": (Action.CREATE, "missing")}, changes
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    volume = _volume(api, "db-1-data")
    assert volume["id"] == made["id"] and volume["metadata"]["gc-addr"] == "volume.db-1.data"
    assert pipeline.plan_request(request, FakeCloud(api), bs_config).is_empty()


def test_a_lost_create_reply_makes_no_duplicate(bs_config, example_doc):
    api, cloud = cinder_cloud()
    api.inject("POST", r"^/volumes$", 500, after=True)  # made, but the answer is lost
    request = _load(with_db_volume(example_doc), bs_config)
    result = pipeline.apply_plan(pipeline.plan_request(request, cloud, bs_config), cloud)
    assert result.ok
    assert _volume(api, "db-1-data")["status"] == "in-use"
    assert pipeline.plan_request(request, FakeCloud(api), bs_config).is_empty()


def test_an_interrupted_run_is_finished_without_duplicates(bs_config, example_doc):
    api, cloud = cinder_cloud()
    api.inject("POST", r"os-volume_attachments", 403)  # the run stops after the volume was made
    request = _load(with_db_volume(example_doc), bs_config)
    assert not pipeline.apply_plan(pipeline.plan_request(request, cloud, bs_config), cloud).ok
    volume_id = _volume(api, "db-1-data")["id"]
    plan = pipeline.plan_request(request, FakeCloud(api), bs_config)
    assert [str(c.address) for c in plan.changes] == ["volume_attachment.db-1.data"]
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    assert _volume(api, "db-1-data")["id"] == volume_id


def test_drift_detached_or_deleted_volume_is_repaired(bs_config, example_doc):
    api, request = _converged(with_db_volume(example_doc), bs_config)
    volume = _volume(api, "db-1-data")
    server_id = volume["attachments"][0]["server_id"]
    api.request("compute", "DELETE", f"/servers/{server_id}/os-volume_attachments/{volume['id']}")
    plan = pipeline.plan_request(request, FakeCloud(api), bs_config)
    assert [(c.action, str(c.address)) for c in plan.changes] == [(Action.CREATE, "volume_attachment.db-1.data")]
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    assert _volume(api, "db-1-data")["attachments"][0]["server_id"] == server_id
    api.request("compute", "DELETE", f"/servers/{server_id}/os-volume_attachments/{volume['id']}")
    api.request("block-storage", "GET", f"/volumes/{volume['id']}")  # the detach settles
    api.request("block-storage", "DELETE", f"/volumes/{volume['id']}")
    plan = pipeline.plan_request(request, FakeCloud(api), bs_config)
    assert sorted((c.action, str(c.address)) for c in plan.changes) == [
        (Action.CREATE, "volume.db-1.data"), (Action.CREATE, "volume_attachment.db-1.data")]
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok
    assert _volume(api, "db-1-data")["status"] == "in-use"


def test_removing_a_volume_is_refused_without_allow_data_loss(bs_config, example_doc):
    api, request = _converged(with_db_volume(example_doc), bs_config)
    without = copy.deepcopy(with_db_volume(example_doc))
    _db_volumes(without).clear()
    smaller = _load(without, bs_config)
    writes = api.total_writes()
    with pytest.raises(DataLossRefused) as refused:
        apply_request(smaller, FakeCloud(api), bs_config, options=ApplyOptions(harden=False))
    assert refused.value.exit_code == ExitCode.REFUSED and "--allow-data-loss" in refused.value.hint
    assert "volume.db-1.data" in refused.value.message
    assert api.total_writes() == writes and _volume(api, "db-1-data")
    outcome = apply_request(smaller, FakeCloud(api), bs_config, options=ApplyOptions(harden=False),
                            allow_data_loss=True)
    assert outcome.ok and api.volumes == {}
    assert pipeline.plan_request(smaller, FakeCloud(api), bs_config).is_empty()


def test_destroy_at_level_3_with_volumes_needs_allow_data_loss(bs_config, example_doc):
    doc = with_db_volume(example_doc, vtype="encrypted")
    doc["spec"]["classification"] = 3
    doc["spec"]["securityGroups"][0]["rules"][0]["remote"] = "10.0.0.0/8"
    for group in doc["spec"]["securityGroups"]:
        group["rules"].append({"direction": "egress", "protocol": "tcp", "ports": "443", "remote": "10.0.0.0/8"})
    for server in doc["spec"]["servers"]:
        server["floatingIP"] = False
    api, request = _converged(doc, bs_config)
    plan = pipeline.plan_destroy(pipeline.owner_of(request, bs_config), FakeCloud(api))
    with pytest.raises(DataLossRefused) as refused:
        check_destroy(plan, allow_data_loss=False)
    assert "level 3" in refused.value.message and "volume.db-1.data" in refused.value.message
    check_destroy(plan, allow_data_loss=True)
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok and api.volumes == {}


def test_boot_volume_goes_with_its_server(bs_config, example_doc):
    doc = with_db_volume(example_doc)
    next(s for s in doc["spec"]["servers"] if s["name"] == "db")["bootVolume"] = {"sizeGiB": 15, "type": "standard"}
    api, request = _converged(doc, bs_config)
    boot = [v for v in api.volumes.values() if v["bootable"] == "true"]
    assert [(v["size"], v["volume_type"], v["attachments"][0]["device"]) for v in boot] == [(15, "standard", "/dev/vda")]
    assert pipeline.plan_request(request, FakeCloud(api), bs_config).is_empty(), "the boot volume is the server's"
    plan = pipeline.plan_destroy(pipeline.owner_of(request, bs_config), FakeCloud(api))
    assert {str(c.address) for c in plan.data_loss()} == {"server.db-1", "volume.db-1.data"}
    assert pipeline.apply_plan(plan, FakeCloud(api)).ok and api.volumes == {}


def test_agency_quotas_count_volume_quotas_and_usage_where_the_quota_is_the_default(bs_config, example_doc):
    api, request = _converged(with_db_volume(example_doc), bs_config)
    other = Owner("byt-other", "BYT", "BYT")
    assert FakeCloud(api).agency_quotas(other)[request.name] == {
        "instances": 4, "cores": 5, "ram": 10240, "floatingip": 2, "volumes": 2, "gigabytes": 25}
    del api.volume_quotas[_project_id(api, request.name)]  # back at Cinder's default: what it uses counts
    counted = FakeCloud(api).agency_quotas(other)[request.name]
    assert (counted["volumes"], counted["gigabytes"]) == (1, 20)


def test_the_db_volume_example_validates_and_plans_its_volume(bs_config):
    from tests.unit.volumes_support import DB_VOLUME_EXAMPLE

    request = pipeline.load_request(DB_VOLUME_EXAMPLE, bs_config, filename="byt-his-db-volume.yaml")
    api, cloud = cinder_cloud()
    plan = pipeline.plan_request(request, cloud, bs_config)
    assert {str(c.address) for c in plan.changes if c.address.kind in (Kind.VOLUME, Kind.VOLUME_ATTACHMENT)} == {
        "volume.db-1.data", "volume_attachment.db-1.data"}
    assert pipeline.apply_plan(plan, cloud).ok and _volume(api, "db-1-data")["size"] == 50


def test_a_volume_quota_the_region_does_not_manage_is_left_alone(config, example_doc):
    """A cloud with Cinder, a catalog region without block storage: no-op plans stay empty."""
    api, cloud = cinder_cloud()
    plain = block_storage_config(config, block_storage=False)
    request = _load(example_doc, plain)
    assert pipeline.apply_plan(pipeline.plan_request(request, cloud, plain), cloud).ok
    assert pipeline.plan_request(request, FakeCloud(api), plain).is_empty()
    destroy = pipeline.plan_destroy(pipeline.owner_of(request, plain), FakeCloud(api))
    assert "quota.volume" in {str(c.address) for c in destroy.changes}, "destroy still resets it"


def test_agency_quotas_skip_a_tenant_whose_nova_quota_is_still_the_default(bs_config, example_doc):
    """Another run is making the tenant: its Neutron quota is set, its Nova quota not yet. Nova's
    default is not a grant the agency asked for: counting it (a campaign saw 500 instances) refused
    a sibling tenant's apply with a false agency-ceiling problem."""
    api, request = _converged(with_db_volume(example_doc), bs_config)
    other = Owner("byt-other", "BYT", "BYT")
    assert request.name in FakeCloud(api).agency_quotas(other)
    del api.compute_quotas[_project_id(api, request.name)]  # back at (or not yet past) Nova's default
    assert request.name not in FakeCloud(api).agency_quotas(other)
