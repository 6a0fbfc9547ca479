"""Stage: model. Frozen pydantic models of the three input documents.

- `request.TenantRequest`: what an agency asks for (apiVersion gcloud.gov.vn/v1).
- `catalog.PlatformCatalog`: regions, images, flavors, zones (owned by platform ops).
- `catalog.AgencyRegistry`: agencies with their Keystone domain, CIDR pools, ceilings (entered once).
- `identity.Caller`: who is calling (from a validated Keystone token, or break-glass).

Pure: no I/O here; `gcloudctl.model.load` turns text into these with source positions.
"""

from gcloudctl.model.catalog import Agency, AgencyRegistry, PlatformCatalog
from gcloudctl.model.identity import Caller, GcloudRole
from gcloudctl.model.request import TenantRequest

__all__ = ["Agency", "AgencyRegistry", "Caller", "GcloudRole", "PlatformCatalog", "TenantRequest"]
