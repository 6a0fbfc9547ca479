"""Specification of optional `spec.quotas`: a minimal CI request (one network, one server) need
not spell quotas out; they are derived from the servers (instances, cores, RAM + 25% headroom,
floating IPs as used), capped by the agency's ceilings; explicit quotas are kept as written."""

from __future__ import annotations

import pytest
import yaml

from gcloudctl import pipeline
from gcloudctl.errors import InvalidInput
from gcloudctl.quotas import HEADROOM_PERCENT
from gcloudctl.resources import Address, Kind

MINIMAL = """\
apiVersion: gcloud.gov.vn/v1
kind: TenantRequest
metadata: {name: ci-minimal, agency: QNI, requester: ci.bot}
spec:
  classification: 1
  region: hn1
  networks: [{name: app}]
  router: {}
  servers:
    - {name: web, count: COUNT, flavor: g1.small, image: debian-12-hardened, networks: [app], floatingIP: true}
"""


def desired_quotas(text: str, config) -> dict:
    request = pipeline.load_request(text, config, filename="ci.yaml")
    desired = pipeline._expand(request, config.catalog, config.agencies.get("QNI"), domain="QNI")
    compute = desired.resources[Address(Kind.QUOTA, "compute")].attrs
    network = desired.resources[Address(Kind.QUOTA, "network")].attrs
    return {**compute, "floatingip": network["floatingip"]}


# id, servers, expected compute quotas, why
CASES = [
    ("one-server", 1, {"instances": 2, "cores": 2, "ram": 2560, "floatingip": 1}, "1 + 25% rounded up"),
    ("four-servers", 4, {"instances": 5, "cores": 5, "ram": 10240, "floatingip": 4}, "4 + 1"),
    ("capped", 36, {"instances": 40, "cores": 45, "ram": 92160, "floatingip": 36},
     "45 instances wanted, QNI's ceiling is 40"),
]


@pytest.mark.parametrize("count,expected", [pytest.param(c, e, id=i) for i, c, e, _ in CASES])
def test_derived_from_servers(config, count, expected):
    if count > 6:  # QNI's ceiling has 6 floating IPs: these servers get none
        text = MINIMAL.replace("floatingIP: true", "floatingIP: false")
        expected = {**expected, "floatingip": 0}
    else:
        text = MINIMAL
    assert HEADROOM_PERCENT == 25
    assert desired_quotas(text.replace("COUNT", str(count)), config) == expected


def test_servers_beyond_the_ceiling_are_refused(config):
    text = MINIMAL.replace("COUNT", "41").replace("floatingIP: true", "floatingIP: false")
    with pytest.raises(InvalidInput) as caught:
        pipeline.load_request(text, config, filename="ci.yaml")
    assert [(p.path, p.line) for p in caught.value.problems] == [("spec.servers", 10)]
    assert "ceiling 40" in caught.value.problems[0].message


def test_explicit_quotas_are_kept(config):
    doc = yaml.safe_load(MINIMAL.replace("COUNT", "1"))
    doc["spec"]["quotas"] = {"instances": 3, "cores": 4, "ramMiB": 8192, "floatingIPs": 2}
    assert desired_quotas(yaml.safe_dump(doc), config) == {"instances": 3, "cores": 4, "ram": 8192, "floatingip": 2}


def test_minimal_request_plans_and_applies(cli_on_fake, tmp_path, capsys):
    path = tmp_path / "ci.yaml"
    path.write_text(MINIMAL.replace("COUNT", "1"))
    assert cli_on_fake("validate", str(path)) == 0
    assert cli_on_fake("apply", str(path), "--yes") == 0
    assert cli_on_fake("plan", str(path), "--detailed-exitcode") == 0, "converged: derived quotas are stable"
