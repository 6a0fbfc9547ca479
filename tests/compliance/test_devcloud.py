"""The dossier against the real local OpenStack: the topology and the reach come from Neutron and
Nova as they are, and a server a project member renamed to a path is shown as data, escaped,
while every file stays in the output directory."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.cloud.helpers import gcloudctl, openstack, request_file, unique_tenant

pytestmark = pytest.mark.devcloud


def _one_web_server(doc: dict) -> None:
    doc["spec"]["servers"] = [dict(doc["spec"]["servers"][0], count=1, antiAffinity=False)]


def test_dossier_of_a_devcloud_tenant_with_a_renamed_server(devcloud, tmp_path):
    tenant = unique_tenant("byt-dossier")
    path = request_file(tmp_path, tenant, _one_web_server)
    try:
        gcloudctl("apply", str(path), "--yes", check=True)
        pid = openstack("project", "show", tenant)["id"]
        server = next(s for s in openstack("server", "list", "--all-projects", "--project", pid))
        marker = f"gcloudctl-escape-{uuid.uuid4().hex[:8]}"
        evil = f"../../../../tmp/{marker}<b>"
        openstack("server", "set", "--name", evil, server["ID"], parse=False)
        # a member opens SSH to the world behind the controller's back
        web = next(g for g in openstack("security", "group", "list", "--project", pid) if g["Name"] == "web")
        openstack("security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "22",
                  "--remote-ip", "0.0.0.0/0", web["ID"])

        out = tmp_path / "out"
        before = {p for p in tmp_path.rglob("*")}
        done = gcloudctl("compliance", str(path), "--no-controller", "--format", "both", "--out", str(out))
        assert done.returncode == 0, done.stderr[-2000:]
        new = {p for p in tmp_path.rglob("*")} - before
        assert {p.name for p in new if p.is_file()} == {f"{tenant}.html", f"{tenant}.json"}
        assert all(out in p.parents or p == out for p in new)
        assert not any(Path("/tmp").glob(f"{marker}*"))

        dossier = json.loads((out / f"{tenant}.json").read_text("utf-8"))
        assert [h["name"] for h in dossier["topology"]["hosts"]] == [evil]
        nets = {n["name"]: n for n in dossier["topology"]["networks"]}
        assert nets["app"]["observedCidr"] == "10.40.1.0/24" and nets["db"]["observedCidr"].startswith("10.40.")
        reach = {(r["ports"], r["source"]): r for r in dossier["topology"]["observedReach"] if r["target"] == evil}
        assert reach[("443", "0.0.0.0/0")]["inRequest"] is True and reach[("443", "0.0.0.0/0")]["floatingIP"] is True
        assert reach[("22", "0.0.0.0/0")]["internet"] is True and reach[("22", "0.0.0.0/0")]["inRequest"] is False
        html = (out / f"{tenant}.html").read_text("utf-8")
        assert f"{marker}&lt;b&gt;" in html and f"{marker}<b>" not in html
    finally:
        gcloudctl("destroy", tenant, "--yes", check=True)
