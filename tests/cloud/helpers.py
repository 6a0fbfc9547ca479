"""Helpers for tests on the real devcloud: the independent `openstack` CLI, request files, the
gcloudctl CLI as a subprocess. The openstack CLI is a different client: what it reports is
the cloud's truth, not gcloudctl's view of it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"
BIN = Path(sys.executable).parent


def openstack(*args: str, cloud: str = "devcloud", parse: bool = True):
    cmd = [str(BIN / "openstack"), "--os-cloud", cloud, *args]
    if parse:
        cmd += ["-f", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} failed: {out.stderr[-800:]}")
    return json.loads(out.stdout) if parse and out.stdout.strip() else out.stdout


def gcloudctl(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    out = subprocess.run([str(BIN / "gcloudctl"), *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"gcloudctl {' '.join(args)} -> {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out


def unique_tenant(prefix: str = "byt-e2e") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def request_file(tmp_path: Path, tenant: str, mutate=None) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = tenant
    if mutate:
        mutate(doc)
    path = tmp_path / f"{tenant}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def leftovers(tenant: str, project_id: str | None) -> dict[str, list]:
    """Everything on the cloud that still carries the tenant's tag or lives in its project
    (queried with plain openstacksdk by raw id filters, which work after the project is gone;
    independent of gcloudctl's driver)."""
    import openstack as sdk

    conn = sdk.connect(cloud="devcloud")
    tag = f"gc-tenant={tenant}"
    found: dict[str, list] = {}
    net = conn.network
    for kind, lister in (("network", net.networks), ("subnet", net.subnets), ("router", net.routers),
                         ("port", net.ports), ("security group", net.security_groups), ("floating ip", net.ips)):
        items = {x.id: x.name for x in lister(tags=tag)} if kind not in ("floating ip",) else {}
        if project_id and kind == "security group":
            # a list filtered by project makes Neutron re-create that project's `default` group
            items.update({x.id: x.name for x in lister() if x.project_id == project_id})
        elif project_id:
            items.update({x.id: getattr(x, "name", None) for x in lister(project_id=project_id)})
        if items:
            found[kind] = sorted(items.items())
    if project_id:
        servers = [s.name for s in conn.compute.servers(all_projects=True, project_id=project_id)]
        if servers:
            found["server"] = servers
        groups = [g.name for g in conn.compute.server_groups(all_projects=True) if g.project_id == project_id]
        if groups:
            found["server group"] = groups
    keypairs = [k.name for k in conn.compute.keypairs() if k.name.startswith("gc_") and f"_{tenant}_" in k.name]
    if keypairs:
        found["keypair"] = keypairs
    if list(conn.identity.projects(name=tenant)):
        found["project"] = [tenant]
    return found
