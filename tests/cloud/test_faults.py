"""The fault injector (gcloudctl.devcloud.faults) in front of the real devcloud: a short campaign
of apply -> re-apply -> destroy cycles at 10 % injected faults converges every time with no
duplicates and no leftovers (checked as admin, past the proxies), and `apply --timeout` with a
server create that hangs exits 5 within the limit plus a few seconds, reporting what was done.
devcloud itself is untouched: the proxies sit in front of it with their own clouds.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench.fault_campaign import campaign, leftovers, tenant_doc
from gcloudctl.devcloud import faults
from gcloudctl.devcloud.layout import Layout
from gcloudctl.drivers.openstack import SdkApi
from tests.cloud.helpers import unique_tenant

BIN = Path(sys.executable).parent


def test_fault_plan_is_deterministic_and_near_its_rate():
    """Pure: same seed, same faults; the share injected is close to the rate; every kind drawn."""
    plan = faults.FaultPlan(rate=0.1, seed=42)
    first = [plan.decide("compute", "GET", n) for n in range(5000)]
    assert first == [plan.decide("compute", "GET", n) for n in range(5000)]
    assert first != [faults.FaultPlan(rate=0.1, seed=43).decide("compute", "GET", n) for n in range(5000)]
    drawn = [f for f in first if f]
    assert 0.08 < len(drawn) / 5000 < 0.12
    assert set(drawn) == set(faults.Fault)
    assert not any(faults.FaultPlan(rate=0.0, seed=1).decide("compute", "GET", n) for n in range(1000))


@pytest.mark.devcloud
@pytest.mark.slow
def test_short_campaign_converges_without_duplicates_or_leftovers(devcloud):
    report = campaign(cycles=10, rate=0.10, seed=2026, shape="small", parallel=5, admin_cloud=devcloud.cloud_name,
                      layout=Layout(devcloud.dir), progress=lambda m: print(m, file=sys.stderr))
    print(report)
    assert report["converged"] == 10, report["errors"]
    assert report["duplicates"] == 0 and report["leftovers"] == 0
    assert sum(report["faults"].values()) >= 0.05 * report["requests"], report["faults"]
    assert {"drop", "reset", "429", "503"} <= set(report["faults"]), "the campaign exercised the hard faults"


@pytest.mark.devcloud
@pytest.mark.slow
def test_apply_timeout_with_a_hanging_server_create_exits_5_in_time(devcloud, tmp_path):
    """The server create never gets an answer (the proxy holds it); `apply --timeout 10` stops
    at the deadline: exit 5 within 10 + 5 s, what was done reported done, the create cancelled."""
    name = unique_tenant("fault-to")
    doc = tenant_doc(name, "small")
    request = tmp_path / f"{name}.yaml"
    request.write_text(yaml.safe_dump(doc))
    rule = faults.Rule("POST", r"/servers$", faults.Fault.SLOW, times=5, seconds=120)
    admin = SdkApi(devcloud.cloud_name)
    project_id = None
    with faults.running(faults.FaultPlan(rate=0.0, rules=(rule,))) as proxies:
        clouds = proxies.write_clouds_yaml(tmp_path / "clouds.yaml", devcloud.clouds_yaml, devcloud.cloud_name)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")} | {"OS_CLIENT_CONFIG_FILE": str(clouds)}
        try:
            t0 = time.monotonic()
            out = subprocess.run([str(BIN / "gcloudctl"), "--cloud", faults.FAULT_CLOUD, "-o", "json", "apply",
                                  str(request), "--yes", "--timeout", "10"], capture_output=True, text=True,
                                 timeout=120, env=env)
            elapsed = time.monotonic() - t0
            project = admin.request("identity", "GET", "/projects", params={"name": name})["projects"]
            project_id = project[0]["id"] if project else None
        finally:
            proxies.stop()  # the held server create is dropped, never sent
            subprocess.run([str(BIN / "gcloudctl"), "--cloud", devcloud.cloud_name, "destroy", str(request), "--yes"],
                           capture_output=True, text=True, timeout=300)
    assert out.returncode == 5, out.stderr[-2000:]
    plan_and_start = 10.0
    assert elapsed < 10 + 5 + plan_and_start, f"apply --timeout 10 took {elapsed:.1f}s"
    assert "did not finish within 10s" in out.stderr
    assert '"cancelled"' in out.stdout and '"address": "server.web-1"' in out.stdout, out.stdout[-2000:]
    assert '"status": "done"' in out.stdout, "what finished before the deadline is reported"
    assert proxies.injected.faults["slow"] >= 1
    assert project_id is not None
    assert leftovers(admin, name, doc["metadata"]["agency"], project_id) == {}


@pytest.mark.devcloud
@pytest.mark.slow
def test_kill_while_the_server_post_is_processed_then_one_run_creates_no_second_server(devcloud, tmp_path):
    """`kill -9` of apply while Nova is still processing its server create (the proxy holds the
    POST 8 s, then passes it on: the cloud acts although the client is dead). The next apply,
    started at once (the server not listed yet), finds the intent on the server's port, waits
    for that server and adopts it: one web-1, and the run converges."""
    import signal

    name = unique_tenant("fault-kill")
    doc = tenant_doc(name, "small")
    request = tmp_path / f"{name}.yaml"
    request.write_text(yaml.safe_dump(doc))
    rule = faults.Rule("POST", r"/servers$", faults.Fault.SLOW, times=1, seconds=8)
    admin = SdkApi(devcloud.cloud_name)
    env_direct = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    try:
        with faults.running(faults.FaultPlan(rate=0.0, rules=(rule,))) as proxies:
            clouds = proxies.write_clouds_yaml(tmp_path / "clouds.yaml", devcloud.clouds_yaml, devcloud.cloud_name)
            first = subprocess.Popen([str(BIN / "gcloudctl"), "--cloud", faults.FAULT_CLOUD, "apply", str(request), "--yes"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env_direct | {"OS_CLIENT_CONFIG_FILE": str(clouds)})
            deadline = time.monotonic() + 120
            while not proxies.injected.faults["slow"] and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.1)
            assert proxies.injected.faults["slow"] == 1, "the first run reached its server create"
            first.send_signal(signal.SIGKILL)
            first.wait()
            second = subprocess.run([str(BIN / "gcloudctl"), "--cloud", devcloud.cloud_name, "apply", str(request), "--yes"],
                                    capture_output=True, text=True, timeout=300, env=env_direct)
            project = admin.request("identity", "GET", "/projects", params={"name": name})["projects"]
            servers = admin.request("compute", "GET", "/servers/detail", microversion="2.64",
                                    params={"all_tenants": "1", "project_id": project[0]["id"]})["servers"]
            ports = admin.request("network", "GET", "/ports", params={"project_id": project[0]["id"]})["ports"]
    finally:
        subprocess.run([str(BIN / "gcloudctl"), "--cloud", devcloud.cloud_name, "destroy", str(request), "--yes"],
                       capture_output=True, text=True, timeout=300, env=env_direct)
    assert second.returncode == 0, second.stderr[-2000:]
    assert [(s["name"], s["status"]) for s in servers] == [("web-1", "ACTIVE")], servers
    named = [p["name"] for p in ports if p.get("name")]
    assert len(named) == len(set(named)), f"no spare ports: {named}"
