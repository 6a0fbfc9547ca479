"""Specification of `gcloudctl catalog regions|flavors|images|zones|agencies`: an agency user lists
what a request may name without reading YAML; agency names as the registry writes them
(Vietnamese); the operator's own catalog (--platform) is what is listed. No cloud is called."""

from __future__ import annotations

import json

import pytest
import yaml

from gcloudctl.cli.main import main
from tests.fixtures.core import ROOT


def listed(capsys, *argv) -> list[dict]:
    capsys.readouterr()
    assert main([*argv, "-o", "json"]) == 0
    return json.loads(capsys.readouterr().out)


# id, what, the names the shipped catalog gives, why
CASES = [
    ("regions", "regions", ["hn1"], "the region a request names"),
    ("flavors", "flavors", ["g1.small", "g1.medium", "g1.large"], "smallest first"),
    ("images", "images", ["debian-12-hardened", "ubuntu-24.04-hardened"], "by name"),
    ("zones", "zones", ["dmz", "app", "db", "internal", "mgmt"], "in the catalog's order"),
    ("agencies", "agencies", ["Bộ Tài chính", "Bộ Y tế", "UBND tỉnh Quảng Ninh"], "Vietnamese names, by code"),
]


@pytest.mark.parametrize("what,names", [pytest.param(w, n, id=i) for i, w, n, _ in CASES])
def test_lists_the_shipped_catalog(capsys, monkeypatch, what, names):
    monkeypatch.setenv("OS_CLOUD", "no-such-cloud")  # nothing here talks to a cloud
    rows = listed(capsys, "catalog", what)
    assert [r["name"] for r in rows] == names


def test_agency_rows_and_table(capsys):
    byt = next(r for r in listed(capsys, "catalog", "agencies") if r["code"] == "BYT")
    assert (byt["domain"], byt["maxClassification"], byt["cidrPools"]) == ("BYT", 3, ["10.40.0.0/16"])
    assert byt["quotaCeilings"]["instances"] == 60
    assert main(["catalog", "agencies"]) == 0
    out = capsys.readouterr().out
    assert "Bộ Y tế" in out and "UBND tỉnh Quảng Ninh" in out


def test_flavor_table_for_people(capsys):
    assert main(["catalog", "flavors"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["FLAVOR", "VCPUS"]
    assert lines[1].split()[:4] == ["g1.small", "1", "2048", "10"]


def test_operator_catalog_is_listed(tmp_path, capsys):
    doc = yaml.safe_load((ROOT / "gcloudctl" / "data" / "platform.yaml").read_text())
    doc["spec"]["flavors"]["m1.huge"] = {"vcpus": 64, "ramMiB": 262144, "diskGiB": 500, "maxClassification": 2}
    platform = tmp_path / "platform.yaml"
    platform.write_text(yaml.safe_dump(doc))
    rows = listed(capsys, "--platform", str(platform), "catalog", "flavors")
    assert rows[-1] == {"name": "m1.huge", "vcpus": 64, "ramMiB": 262144, "diskGiB": 500, "maxClassification": 2}


def test_broken_catalog_is_a_clear_error(tmp_path, capsys):
    platform = tmp_path / "platform.yaml"
    platform.write_text("apiVersion: gcloud.gov.vn/v1\nkind: PlatformCatalog\n")
    assert main(["--platform", str(platform), "catalog", "regions", "-o", "json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["problems"] and "Traceback" not in err
