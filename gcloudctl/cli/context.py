"""Composition root for the CLI: builds catalog, registry, rulebook and drivers from options.

Nothing else in the package reads the environment or creates connections; commands ask the
AppContext for what they need, so tests can inject their own.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

OUTPUT_FORMATS = ("table", "json", "yaml")


@dataclass
class AppContext:
    cloud: str | None = None
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

    @classmethod
    def from_options(cls, **options: Any) -> "AppContext":
        ctx = cls(**options)
        ctx.configure_logging()
        return ctx

    def driver(self, config, region: str | None = None):
        """The cloud driver for a region: --cloud / OS_CLOUD, else the region's clouds.yaml entry."""
        regions = config.catalog.spec.regions
        region_spec = regions.get(region) if region else next(iter(regions.values()))
        if region_spec is None:
            from gcloudctl.errors import InvalidInput

            raise InvalidInput(f"unknown region {region!r}; the platform catalog has: {', '.join(regions)}")
        cloud = self.cloud or region_spec.cloud
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
