"""Stage: web edge. The web console for approvers and inspectors, served by the request API
server (same process, same Keystone identity, same request service use cases).

`mount_console(app, ...)` adds the `/web` pages (`routes`) to the API's FastAPI app: sessions
and CSRF (`sessions`), view values composed from the service's reads (`views`), Jinja2 templates
with autoescape and the `web` gettext catalog (`render`). Called by `gcloudctl.api.app.create_app`.
Holds no business rules; talks to Keystone only through drivers (`drivers.keystone` to validate
tokens, `drivers.keystone_login` to log in and revoke). See docs/web.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gcloudctl.web.sessions import SessionStore


def mount_console(app: Any, *, service: Any, validator: Any, agencies: Any, limiter: Any,
                  login: Any = None, rulebook: Any = None, dossier_dir: str | Path | None = None,
                  environ: dict[str, str] | None = None) -> None:
    """Add the console to `app`. `login`: a `KeystoneLogin` (default: one beside the validator's
    Keystone session, none for a validator double); `rulebook`: the server's (default: the one the
    service's catalog names); `dossier_dir`: where `gcloudctl compliance --out DIR` writes
    TENANT.html (default: $GCLOUDCTL_COMPLIANCE_DIR; none: no dossier links)."""
    from gcloudctl.drivers.keystone_login import login_beside
    from gcloudctl.web.routes import Console, console_router, install_handlers
    from gcloudctl.web.views import Policy

    if service is None:  # the offline OpenAPI document: no console
        return
    if rulebook is None and getattr(service, "catalog", None) is not None:
        from gcloudctl.pipeline import load_rulebook

        rulebook = load_rulebook(str(service.catalog.spec.rulebook))
    environ = os.environ if environ is None else environ
    dossier_dir = dossier_dir or environ.get("GCLOUDCTL_COMPLIANCE_DIR")
    console = Console(service=service, validator=validator, agencies=agencies, limiter=limiter,
                      login_driver=login if login is not None else login_beside(validator),
                      rules=Policy(catalog=getattr(service, "catalog", None), agencies=agencies, rulebook=rulebook),
                      sessions=SessionStore(), dossier_dir=Path(dossier_dir) if dossier_dir else None)
    app.state.console = console
    install_handlers(app, console)
    app.include_router(console_router(console))
