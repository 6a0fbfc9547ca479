"""The in-memory cloud with the admin bulk listings the fleet observation uses.

Stage: driver (test double). `FleetFakeApi` is `fake.FakeApi` plus the listings a real
Keystone, Nova and Cinder serve an admin and `FakeApi` does not model: every project's servers
(`GET /servers/detail?all_tenants=1` without `project_id`), every project's volumes (Cinder's
`GET /volumes/detail?all_tenants=1`) and every role assignment
(`GET /role_assignments` without a scope). It declares `serves_bulk_listings`, so
`openstack_fleet.fleet_observer` gives the fleet observation for it, exactly as for `SdkApi`.
Called by tests and benchmarks only; like `FakeApi`, it is no proof that provisioning works.
"""

from __future__ import annotations

from typing import Any

from gcloudctl.drivers.fake import FakeApi, FakeCloud


class FleetFakeApi(FakeApi):
    serves_bulk_listings = True

    def _compute(self, method, parts, params, body, scoped):
        if parts == ["servers", "detail"] and method == "GET" and "project_id" not in params \
                and str(params.get("all_tenants")) == "1" and "name" not in params:
            servers = list(self.servers.values())
            for server in servers:
                self._advance(server)
            return {"servers": servers}
        return super()._compute(method, parts, params, body, scoped)

    def _block_storage(self, method, parts, params, body, scoped):
        if self.block_storage and parts == ["volumes", "detail"] and method == "GET" and scoped is None \
                and "project_id" not in params and str(params.get("all_tenants")) == "1" and "name" not in params:
            found = list(self.volumes.values())
            for volume in found:
                self._settle_volume(volume)
            return {"volumes": [self._public(v) for v in found]}
        return super()._block_storage(method, parts, params, body, scoped)

    def _identity(self, method, parts, params, body, scoped):
        if parts == ["role_assignments"] and method == "GET" and "scope.project.id" not in params:
            return {"role_assignments": self._assignments(lambda p: True)}
        return super()._identity(method, parts, params, body, scoped)


def fleet_fake_cloud(api: FleetFakeApi | None = None, **kwargs: Any) -> FakeCloud:
    """The real driver over the in-memory API that serves the bulk listings."""
    return FakeCloud(api or FleetFakeApi(), **kwargs)
