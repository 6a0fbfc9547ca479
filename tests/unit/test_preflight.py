"""The cloud pre-flight (gcloudctl.preflight): what only the cloud can judge is refused before
the first write — exit 4, a message naming the missing thing, zero writes — and `plan` shows
the same problem. On the in-memory cloud (the devcloud proof: tests/cloud/test_preflight.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gcloudctl import naming, pipeline, preflight
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.errors import ExitCode, Refused
from tests.fixtures.core import EXAMPLE

DATA = Path(pipeline.__file__).parent / "data"


def _files(tmp_path: Path, catalog=None) -> tuple[str, str]:
    platform = yaml.safe_load((DATA / "platform.yaml").read_text())
    if catalog:
        catalog(platform["spec"])
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump(platform, sort_keys=False))
    return str(tmp_path / "platform.yaml"), str(DATA / "agencies.yaml")


def _other_tenant(api: FakeApi, name: str, instances: int, agency: str = "BYT") -> None:
    pid = api.add_project(naming.project_name(name), agency, naming.project_tags(name, agency, 2))
    api.compute_quotas[pid] = {"instances": instances, "cores": 4, "ram": 4096}
    api.network_quotas[pid] = {"floatingip": 1}


def _ghost_flavor(spec):
    spec["flavors"]["g1.ghost"] = {"vcpus": 1, "ramMiB": 2048, "diskGiB": 10}


def _ghost_image(spec):
    spec["images"]["debian-13-hardened"] = {"maxClassification": 4, "os": "debian12", "loginUser": "debian"}


def _ghost_network(spec):
    spec["regions"]["hn1"]["externalNetworks"] = ["public", "public-b"]


CASES = [
    # id, catalog change, request change, cloud set-up, text the refusal must name
    ("flavor-missing", _ghost_flavor, lambda d: d["spec"]["servers"][1].update(flavor="g1.ghost"), None,
     "flavor 'g1.ghost' (server db-1) does not exist in the cloud"),
    ("image-renamed", _ghost_image, lambda d: d["spec"]["servers"][0].update(image="debian-13-hardened"), None,
     "image 'debian-13-hardened' (server web-1, web-2) does not exist in the cloud"),
    ("external-network-missing", _ghost_network, lambda d: d["spec"]["router"].update(externalNetwork="public-b"), None,
     "external network 'public-b' (floating_ip.web-1, floating_ip.web-2, router.main) does not exist in the cloud"),
    ("member-of-another-domain", None, lambda d: d["spec"]["members"].append({"user": "pham.van.x", "roles": ["member"]}),
     lambda api: api.add_user("pham.van.x", "BTC"), "user 'pham.van.x' is not in the agency's domain 'BYT'"),
    ("agency-total-over-ceiling", None, None, lambda api: (_other_tenant(api, "byt-a", 30), _other_tenant(api, "byt-b", 25)),
     "agency BYT quota instances: 10 (this tenant) + 55 (its other tenants: byt-a 30, byt-b 25) = 65 exceeds "
     "the agency ceiling 60"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("verb", ["plan", "apply"])
def test_refused_before_any_write(cli_on_fake, tmp_path, capsys, case, verb):
    _, catalog, mutate, setup, expected = case
    platform, agencies = _files(tmp_path, catalog)
    doc = yaml.safe_load(EXAMPLE.read_text())
    if mutate:
        mutate(doc)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(doc))
    if setup:
        setup(cli_on_fake.api)
    writes_before = cli_on_fake.api.total_writes()
    args = ["--platform", platform, "--agencies", agencies, verb, str(tmp_path / "t.yaml")]
    code = cli_on_fake(*args, *(["--yes"] if verb == "apply" else []))
    err = capsys.readouterr().err
    assert code == ExitCode.REFUSED, err
    assert expected in err
    assert cli_on_fake.api.total_writes() == writes_before, cli_on_fake.api.write_log[writes_before:]


def test_agency_total_within_ceiling_is_not_refused(config, example_doc):
    """The boundary: 10 + 50 = 60 is the ceiling itself, allowed; other agencies' tenants do not count."""
    api = FakeApi()
    _other_tenant(api, "byt-a", 50)
    _other_tenant(api, "btc-big", 90, agency="BTC")
    request = pipeline.load_request(yaml.safe_dump(example_doc), config, filename="t.yaml")
    plan = pipeline.plan_request(request, FakeCloud(api), config)
    assert not plan.is_empty()


def test_agency_total_counts_only_when_the_quota_changes(config, example_doc):
    """A converged tenant's no-op plan makes no pre-flight request (no flavor, image or quota
    reads), even when the agency is over its ceiling by other means."""
    api = FakeApi()
    request = pipeline.load_request(yaml.safe_dump(example_doc), config, filename="t.yaml")
    cloud = FakeCloud(api)
    assert pipeline.apply_plan(pipeline.plan_request(request, cloud, config), cloud).ok
    _other_tenant(api, "byt-a", 55)
    log_start = len(api.write_log)

    def cost(call) -> int:
        before = sum(api.requests.values())
        call(FakeCloud(api))  # a fresh driver each time: nothing cached
        return sum(api.requests.values()) - before

    plan_cost = cost(lambda cloud: pipeline.plan_request(request, cloud, config))
    observe_cost = cost(lambda cloud: pipeline.desired_and_observed(request, cloud, config))
    assert plan_cost == observe_cost, "the pre-flight of a no-op plan must cost no request"
    assert pipeline.plan_request(request, FakeCloud(api), config).is_empty()
    assert len(api.write_log) == log_start


def test_pure_rules():
    need = preflight.Needs(flavors={"f": ("a",)}, images={}, external_networks={"ext": ("router.main",)},
                           quota={"instances": 5, "cores": 2})
    assert preflight.catalog_problems(need, missing_flavors=["f"], missing_images=[],
                                      external_networks={"external_network:ext": "id"}) == [
        "flavor 'f' (server a) does not exist in the cloud"]
    assert preflight.agency_problems("X", {"instances": 10, "cores": 4}, need.quota,
                                     {"t1": {"instances": 5, "cores": 2}}) == []
    assert preflight.agency_problems("X", {"instances": 10}, need.quota, {"t1": {"instances": -1}}) == [
        "agency X quota instances: tenant t1 has no limit (-1), the agency ceiling is 10"]


def test_refusal_is_exit_4():
    assert Refused("x").exit_code == ExitCode.REFUSED == 4
