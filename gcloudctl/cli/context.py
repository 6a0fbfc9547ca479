"""Composition root for the CLI: builds catalog, registry, rulebook and drivers from options.

Stage: edge (composition root). Called by every command module of `gcloudctl.cli`. Nothing
else in the package reads the environment or creates connections; commands ask the
AppContext for what they need, so tests can inject their own.

Which cloud a region's tenants go to: `--cloud` when given (explicit, for every region), else
the region's `cloud` in the platform catalog. `$OS_CLOUD` is the caller's identity (the request
API client uses it) and never moves a region's tenants to another cloud: when it names another
entry than the region's, a warning names both (`cloud_for`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

OUTPUT_FORMATS = ("table", "json", "yaml")




def cloud_for(region: str, region_cloud: str, explicit: str | None, os_cloud: str | None) -> tuple[str, str | None]:
    """The clouds.yaml entry for `region`, and a warning when `$OS_CLOUD` was set to another one.
    Pure: `--cloud` wins; else the catalog's entry for the region; `$OS_CLOUD` never does."""
    from gcloudctl.i18n import gettext as _

    if explicit:
        return explicit, None
    if os_cloud and os_cloud != region_cloud:
        return region_cloud, _("OS_CLOUD={os_cloud} is not used for region {region}: its tenants live in cloud "
                               "{cloud} (platform catalog); pass --cloud {os_cloud} to use it anyway",
                               os_cloud=os_cloud, region=region, cloud=region_cloud)
    return region_cloud, None


@dataclass
class AppContext:
    # --cloud, else $OS_CLOUD: the caller's own identity (the request API client reads it)
    cloud: str | None = None
    # --cloud only: overrides every region's cloud (see `cloud_for`)
    cloud_explicit: str | None = None
    platform_file: str | None = None
    agencies_file: str | None = None
    rulebook: str | None = None
    output: str = "table"
    log_format: str = "text"
    verbose: int = 0
    debug: bool = False
    api_url: str | None = None  # --api / $GCLOUDCTL_API: request commands go through the request API
    api_ca: str | None = None  # --api-ca / $GCLOUDCTL_API_CA: CA bundle for an HTTPS API with a private CA
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # factories overridable by tests: (cloud_name) -> CloudDriver
    driver_factory: Callable[..., Any] | None = None
    # the pipeline.Config built from platform_file/agencies_file/rulebook; tests may set it
    loaded_config: Any = None
    # the wall clock (expiry of CI stacks); tests inject their own
    clock: Callable[[], datetime] | None = None
    _warned: set = field(default_factory=set, repr=False)

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(timezone.utc)

    @classmethod
    def from_options(cls, **options: Any) -> "AppContext":
        ctx = cls(**options)
        ctx.cloud_explicit = options.get("cloud")
        ctx.cloud = ctx.cloud_explicit or ctx.environ.get("OS_CLOUD") or None
        ctx.configure_logging()
        return ctx

    def driver(self, config, region: str | None = None):
        """The cloud driver for a region: --cloud, else the region's clouds.yaml entry (`cloud_for`)."""
        regions = config.catalog.spec.regions
        name = region or next(iter(regions))
        region_spec = regions.get(name)
        if region_spec is None:
            from gcloudctl.errors import InvalidInput
            from gcloudctl.i18n import gettext as _

            raise InvalidInput(_("unknown region {region!r}; the platform catalog has: {regions}",
                                 region=region, regions=", ".join(regions)))
        cloud, warning = cloud_for(name, region_spec.cloud, self.cloud_explicit, self.environ.get("OS_CLOUD"))
        if warning and warning not in self._warned:
            self._warned.add(warning)
            import click

            from gcloudctl.i18n import gettext as _

            click.echo(_("warning: {message}", message=warning), err=True)  # said to the person, not logged
        if self.driver_factory is not None:
            return self.driver_factory(cloud, region_spec)
        from gcloudctl.drivers.openstack import OpenStackDriver, SdkApi

        return OpenStackDriver(SdkApi(cloud), create_missing_users=region_spec.createMissingUsers)

    def config(self) -> Any:
        """The documents platform ops own (catalog, agencies, rulebook), loaded once."""
        if self.loaded_config is None:
            from gcloudctl.pipeline import Config

            self.loaded_config = Config.load(self.platform_file, self.agencies_file, self.rulebook)
        return self.loaded_config

    def configure_logging(self) -> None:
        level = logging.WARNING - 10 * min(self.verbose, 2)
        from gcloudctl.logs import configure

        configure(level=level, fmt=self.log_format)
