"""Stage: API edge (composition root). Assemble the request API from the server's configuration
and run it under uvicorn: the request service on the database (`controller.compose`), the
Keystone validator with the server's own service credentials (`drivers.keystone`), the
validation cache window and the per-identity rate limit.

Called by `gcloudctl api serve` (`gcloudctl.cli.api`). Nothing here comes from a caller.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from gcloudctl.api.auth import DEFAULT_CACHE_SECONDS, CachingValidator
from gcloudctl.api.limits import DEFAULT_BURST, DEFAULT_RATE, RateLimiter
from gcloudctl.errors import InvalidInput

log = logging.getLogger("gcloudctl.api")
DEFAULT_LISTEN = "127.0.0.1:8780"


@dataclass(frozen=True)
class ServeOptions:
    listen: str = DEFAULT_LISTEN
    db_url: str | None = None
    service_cloud: str = "devcloud-gcloudctl"
    tls_cert: str | None = None
    tls_key: str | None = None
    token_cache_seconds: float = DEFAULT_CACHE_SECONDS
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    keystone_timeout: float = 5.0


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8780")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_app(config: Any, options: ServeOptions, environ: dict[str, str] | None = None):
    from gcloudctl.api.app import create_app
    from gcloudctl.controller import compose
    from gcloudctl.drivers.keystone import KeystoneValidator
    from gcloudctl.drivers.keystone_login import KeystoneLogin

    keystone = KeystoneValidator.from_cloud(options.service_cloud, timeout=options.keystone_timeout)
    validator = CachingValidator(keystone, ttl_seconds=options.token_cache_seconds)
    service = compose.request_service(config, db_url=options.db_url, environ=dict(os.environ if environ is None
                                                                                   else environ))
    # the console shows verdicts of the server's own rulebook and logs people in at its Keystone
    console = {"rulebook": config.rulebook, "login": KeystoneLogin(keystone.session, timeout=options.keystone_timeout)}
    return create_app(service, validator, agencies=config.agencies,
                      limiter=RateLimiter(rate=options.rate, burst=options.burst), console=console)


def serve(config: Any, options: ServeOptions, environ: dict[str, str] | None = None) -> None:
    import uvicorn

    if bool(options.tls_cert) != bool(options.tls_key):
        raise InvalidInput("TLS needs both --tls-cert and --tls-key")
    host, port = parse_listen(options.listen)
    app = build_app(config, options, environ)
    scheme = "https" if options.tls_cert else "http"
    log.warning("request API on %s://%s:%d (token cache %gs, rate %g/s burst %d)", scheme, host, port,
                options.token_cache_seconds, options.rate, options.burst)
    uvicorn.run(app, host=host, port=port, ssl_certfile=options.tls_cert, ssl_keyfile=options.tls_key,
                log_level="warning", access_log=False, server_header=False, proxy_headers=False)
