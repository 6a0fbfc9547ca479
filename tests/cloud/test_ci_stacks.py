"""CI stacks on the real devcloud (Keystone keeps the expiry tag): a stack expiring in a few
seconds is applied, `get tenants` shows its expiry from the project's `gc-expires=` tag, an
apply once it has expired is refused (exit 4) and changes nothing, `reap --dry-run` lists it and
writes nothing, `reap` destroys it and leaves nothing behind."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.cloud.helpers import gcloudctl, leftovers, openstack, request_file, unique_tenant

pytestmark = [pytest.mark.devcloud, pytest.mark.slow]

LIFETIME = 20  # seconds from the request's validation to its expiry


def minimal(expires: datetime):
    def mutate(doc):
        spec = doc["spec"]
        for key in ("quotas", "router"):  # quotas derived from the (no) servers
            spec.pop(key)
        spec.update(classification=1, expiresAt=expires.isoformat(), members=[], securityGroups=[], keypairs=[],
                    servers=[], networks=[{"name": "app", "zone": "app"}])
    return mutate


def test_expiring_stack_is_listed_refused_and_reaped(devcloud, tmp_path):
    tenant = unique_tenant("ci-reap")
    expires = (datetime.now(timezone.utc) + timedelta(seconds=LIFETIME)).replace(microsecond=0)
    path = request_file(tmp_path, tenant, minimal(expires))
    try:
        gcloudctl("apply", str(path), "--yes", check=True)
        project = openstack("project", "show", tenant)
        stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f"gc-expires={stamp}" in project["tags"], "Keystone keeps the tag as written"
        rows = {r["tenant"]: r for r in json.loads(gcloudctl("get", "tenants", "-o", "json", check=True).stdout)}
        assert (rows[tenant]["expires_at"], rows[tenant]["expired"]) == (stamp, False)

        time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 1)
        refused = gcloudctl("apply", str(path), "--yes", "-o", "json")
        assert refused.returncode == 4 and json.loads(refused.stdout)["kind"] == "Refused"
        listed = json.loads(gcloudctl("reap", "--dry-run", "--agency", "BYT", "-o", "json", check=True).stdout)
        assert tenant in [s["tenant"] for s in listed["stacks"] if s["status"] == "would-destroy"]
        assert openstack("project", "show", tenant)["id"] == project["id"], "--dry-run destroys nothing"

        reaped = json.loads(gcloudctl("reap", "--agency", "BYT", "-o", "json", check=True).stdout)
        assert {s["tenant"]: s["status"] for s in reaped["stacks"]}[tenant] == "destroyed"
        assert tenant not in [p["Name"] for p in openstack("project", "list")]
        assert leftovers(tenant, project["id"]) == {}
    finally:
        if tenant in [p["Name"] for p in openstack("project", "list")]:
            gcloudctl("destroy", tenant, "--yes")
