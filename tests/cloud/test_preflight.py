"""The cloud pre-flight on the real devcloud: a flavor or an image the catalog names but the
cloud lacks, a missing external network, a member of another domain, and a quota that takes
the agency's total over its ceiling are each refused — exit 4, a message naming the missing
thing — with zero writes counted at the HTTP layer (the driver's request counter)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gcloudctl import naming, pipeline
from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi
from gcloudctl.errors import ExitCode, Refused
from tests.cloud.helpers import EXAMPLE, gcloudctl, unique_tenant

pytestmark = [pytest.mark.devcloud]
DATA = Path(pipeline.__file__).parent / "data"


def _platform(tmp_path: Path) -> Path:
    platform = yaml.safe_load((DATA / "platform.yaml").read_text())
    spec = platform["spec"]
    spec["flavors"]["g1.ghost"] = {"vcpus": 1, "ramMiB": 2048, "diskGiB": 10}
    spec["images"]["debian-13-hardened"] = {"maxClassification": 4, "os": "debian12", "loginUser": "debian"}
    spec["regions"]["hn1"]["externalNetworks"] = ["public", "public-b"]
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(platform, sort_keys=False))
    return path


def _qni(doc: dict) -> None:
    doc["metadata"].update(agency="QNI", requester="do.van.g")
    doc["spec"]["members"] = [{"user": "do.van.g", "roles": ["member"]}]
    doc["spec"]["networks"] = [{"name": "app", "zone": "app", "prefixLength": 26}]
    doc["spec"]["servers"] = [s | {"networks": ["app"]} for s in doc["spec"]["servers"]]
    doc["spec"]["securityGroups"][1]["rules"] = doc["spec"]["securityGroups"][1]["rules"][:1]


@pytest.fixture
def other_qni_tenant(devcloud):
    """Another tenant of agency QNI holding 35 instances of its ceiling of 40 (made as admin)."""
    api = SdkApi(devcloud.cloud_name)
    tenant = unique_tenant("qni-other")
    domain = api.request("identity", "GET", "/domains", params={"name": "QNI"})["domains"][0]["id"]
    project = api.request("identity", "POST", "/projects", json={"project": {
        "name": naming.project_name(tenant), "domain_id": domain, "tags": naming.project_tags(tenant, "QNI", 2)}})["project"]
    api.request("compute", "PUT", f"/os-quota-sets/{project['id']}", json={"quota_set": {"instances": 35}},
                microversion="2.64")
    api.request("network", "PUT", f"/quotas/{project['id']}", json={"quota": {"floatingip": 1}})
    yield tenant
    api.request("network", "DELETE", f"/quotas/{project['id']}")
    api.request("compute", "DELETE", f"/os-quota-sets/{project['id']}", microversion="2.64")
    api.request("identity", "DELETE", f"/projects/{project['id']}")


CASES = [
    # id, request change, text the refusal names
    ("flavor-missing", lambda d: d["spec"]["servers"][1].update(flavor="g1.ghost"),
     "flavor 'g1.ghost' (server db-1) does not exist in the cloud"),
    ("image-renamed", lambda d: d["spec"]["servers"][0].update(image="debian-13-hardened"),
     "image 'debian-13-hardened' (server web-1, web-2) does not exist in the cloud"),
    ("external-network-missing", lambda d: d["spec"]["router"].update(externalNetwork="public-b"),
     "external network 'public-b' (floating_ip.web-1, floating_ip.web-2, router.main) does not exist in the cloud"),
    ("member-of-another-domain", lambda d: d["spec"]["members"].append({"user": "hoang.van.e", "roles": ["member"]}),
     "user 'hoang.van.e' is not in the agency's domain 'BYT' (found in domain 'BTC')"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_with_zero_writes(devcloud, tmp_path, case):
    _, mutate, expected = case
    config = pipeline.Config.load(_platform(tmp_path))
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = unique_tenant("pf")
    mutate(doc)
    request = pipeline.load_request(yaml.safe_dump(doc), config, filename="t.yaml")
    api = SdkApi(devcloud.cloud_name)
    writes = api.write_requests  # the login
    with pytest.raises(Refused) as caught:
        pipeline.plan_request(request, OpenStackDriver(api, create_missing_users=True), config)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert expected in caught.value.message
    assert api.write_requests == writes, dict(api.requests)


def test_agency_total_over_its_ceiling_is_refused(devcloud, other_qni_tenant):
    config = pipeline.Config.load()
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = unique_tenant("qni-pf")
    _qni(doc)
    request = pipeline.load_request(yaml.safe_dump(doc), config, filename="t.yaml")
    api = SdkApi(devcloud.cloud_name)
    writes = api.write_requests
    with pytest.raises(Refused) as caught:
        pipeline.plan_request(request, OpenStackDriver(api, create_missing_users=True), config)
    message = caught.value.message
    assert "agency QNI quota instances: 10 (this tenant) + " in message and f"{other_qni_tenant} 35" in message
    assert "exceeds the agency ceiling 40" in message
    assert api.write_requests == writes, dict(api.requests)


def test_plan_and_apply_show_it_exit_4(devcloud, tmp_path):
    """The CLI: `plan` shows the problem (exit 4), `apply` refuses before any write; the admin
    view confirms nothing was made."""
    platform = _platform(tmp_path)
    doc = yaml.safe_load(EXAMPLE.read_text())
    name = unique_tenant("pf-cli")
    doc["metadata"]["name"] = name
    doc["spec"]["servers"][1]["flavor"] = "g1.ghost"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    for verb in (["plan"], ["apply", "--yes"]):
        out = gcloudctl("--cloud", devcloud.cloud_name, "--platform", str(platform), verb[0], str(path), *verb[1:],
                        timeout=120)
        assert out.returncode == 4, out.stderr[-1500:]
        assert "flavor 'g1.ghost' (server db-1) does not exist in the cloud" in out.stderr
        assert "unexpected" not in out.stderr
    assert SdkApi(devcloud.cloud_name).request("identity", "GET", "/projects", params={"name": name})["projects"] == []
