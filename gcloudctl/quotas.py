"""Stage: expand (quotas). The quotas a tenant gets: `spec.quotas` when the request sets them,
else derived from its servers with a headroom, capped by the agency's ceilings.

Derived quotas (a minimal CI request need not spell them out):
  instances, cores, ramMiB = what the servers need (count x flavor) plus HEADROOM_PERCENT,
                             rounded up — room to replace a server or add one by hand;
  floatingIPs              = exactly the servers with `floatingIP: true` (public addresses are scarce);
  volumes, volumeGiB       = what the servers' volumes need (data volumes and boot volumes, one per
                             server copy) plus HEADROOM_PERCENT: room to extend a volume;
  snapshots                = 0 (gcloudctl takes no snapshots; `destroy` refuses rather than snapshot);
each capped by the agency's `quotaCeilings`. When the servers alone need more than a ceiling,
validation reports it (`gcloudctl.validate`).

Pure: no I/O. Callers: `gcloudctl.expand` (the desired quota resources), `gcloudctl.validate`
(needs against quotas and ceilings); the approval rules may compare two versions' effective
quotas with it. It must not read a catalog or registry itself: they are passed in.
"""

from __future__ import annotations

import math
from typing import Mapping

from gcloudctl.model.catalog import Agency, Flavor
from gcloudctl.model.request import Quotas, Spec, TenantRequest

HEADROOM_PERCENT = 25
DERIVED = ("instances", "cores", "ramMiB", "floatingIPs", "volumes", "volumeGiB")


def server_needs(spec: Spec, flavors: Mapping[str, Flavor]) -> dict[str, int]:
    """What the servers use: instances, cores, ramMiB, floatingIPs, volumes and volumeGiB
    (unknown flavors count 0; a boot volume is a volume)."""
    servers = spec.servers
    volumes = [(s.count, v.sizeGiB) for s in servers for v in s.volumes]
    volumes += [(s.count, s.bootVolume.sizeGiB) for s in servers if s.bootVolume is not None]
    return {
        "instances": sum(s.count for s in servers),
        "cores": sum(s.count * flavors[s.flavor].vcpus for s in servers if s.flavor in flavors),
        "ramMiB": sum(s.count * flavors[s.flavor].ramMiB for s in servers if s.flavor in flavors),
        "floatingIPs": sum(s.count for s in servers if s.floatingIP),
        "volumes": sum(count for count, _ in volumes),
        "volumeGiB": sum(count * size for count, size in volumes),
    }


def with_headroom(need: int, percent: int = HEADROOM_PERCENT) -> int:
    return need + math.ceil(need * percent / 100)


def derived_quotas(spec: Spec, flavors: Mapping[str, Flavor], agency: Agency | None) -> Quotas:
    """Quotas from the servers (see the module docstring), capped by the agency's ceilings."""
    need = server_needs(spec, flavors)
    values = {name: with_headroom(need[name]) for name in ("instances", "cores", "ramMiB", "volumes", "volumeGiB")}
    values["floatingIPs"] = need["floatingIPs"]
    if agency is not None:
        ceilings = agency.quotaCeilings
        values = {name: min(value, getattr(ceilings, name, value)) for name, value in values.items()}
    return Quotas(**values)


def effective_quotas(request: TenantRequest, flavors: Mapping[str, Flavor], agency: Agency | None) -> Quotas:
    """`spec.quotas` when set, else `derived_quotas`."""
    if request.spec.quotas is not None:
        return request.spec.quotas
    return derived_quotas(request.spec, flavors, agency)
