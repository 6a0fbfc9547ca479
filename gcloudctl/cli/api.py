"""CLI for the request API: `gcloudctl api serve` (and `gcloudctl schema api` in `cli.core`).

Thin: parse options, hand them to the composition root `gcloudctl.api.server`.
"""

from __future__ import annotations

import click

from gcloudctl.cli.context import AppContext
from gcloudctl.errors import ExitCode


@click.group("api")
def api_group() -> None:
    """Serve the request API: agencies submit and approve with their own Keystone identity."""


@api_group.command("serve")
@click.option("--listen", default="127.0.0.1:8780", show_default=True, metavar="HOST:PORT",
              help="Address to listen on.")
@click.option("--db", "db", metavar="URL", help="Controller database URL (default: $GCLOUDCTL_DB, else the SQLite file).")
@click.option("--os-cloud", "service_cloud", envvar="GCLOUDCTL_API_CLOUD", default="devcloud-gcloudctl",
              show_default=True, help="clouds.yaml entry of the server's own service user (validates tokens).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM private key of --tls-cert.")
@click.option("--token-cache-seconds", type=click.FloatRange(0, 3600), default=30.0, show_default=True,
              help="Keep a token validation this long at most (never past the token's expiry). It bounds how "
                   "long a revoked token keeps working; 0 validates every call with Keystone.")
@click.option("--rate", type=click.FloatRange(0, 10000), default=10.0, show_default=True,
              help="Calls per second per identity, sustained (0: no limit).")
@click.option("--burst", type=click.IntRange(1, 100000), default=40, show_default=True,
              help="Calls per identity at once before the rate applies.")
@click.option("--keystone-timeout", type=click.FloatRange(0.1, 120), default=5.0, show_default=True,
              help="Seconds to wait for Keystone (then 503).")
@click.pass_obj
def serve_cmd(app: AppContext, listen: str, db: str | None, service_cloud: str, tls_cert: str | None,
              tls_key: str | None, token_cache_seconds: float, rate: float, burst: int, keystone_timeout: float) -> int:
    """Serve the request API (FastAPI under uvicorn) until interrupted."""
    from gcloudctl.api.server import ServeOptions, serve

    serve(app.config(), ServeOptions(listen=listen, db_url=db, service_cloud=service_cloud, tls_cert=tls_cert,
                                     tls_key=tls_key, token_cache_seconds=token_cache_seconds, rate=rate,
                                     burst=burst, keystone_timeout=keystone_timeout), app.environ)
    return ExitCode.OK


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    cli.add_command(api_group)
