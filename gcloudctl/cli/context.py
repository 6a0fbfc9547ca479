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
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # factories overridable by tests: (cloud_name) -> CloudDriver
    driver_factory: Callable[..., Any] | None = None

    @classmethod
    def from_options(cls, **options: Any) -> "AppContext":
        ctx = cls(**options)
        ctx.configure_logging()
        return ctx

    def configure_logging(self) -> None:
        level = logging.WARNING - 10 * min(self.verbose, 2)
        from gcloudctl.logs import configure

        configure(level=level, fmt=self.log_format, stream=sys.stderr)
