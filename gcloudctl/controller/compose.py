"""Stage: controller (composition). Assemble the request service and the reconciler's unsealer
from the *server's* configuration: the store URL, the approval rules ($GCLOUDCTL_APPROVAL_RULES
or the shipped file) and the secrets key ($GCLOUDCTL_SECRETS_KEY, $GCLOUDCTL_SECRETS_KEY_FILE, or
`secrets.key` created 0600 next to the SQLite database). Nothing here comes from a caller.

Called by the composition roots: the CLI (`gcloudctl.cli.controller`) and the request API
(`gcloudctl.api`). Reads files and the environment given; decides nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gcloudctl.controller import approvals
from gcloudctl.controller.secrets import VarSealer, env_or_file_source
from gcloudctl.controller.store import Store, default_url, open_store
from gcloudctl.errors import InvalidInput

KEY_FILE_NAME = "secrets.key"


def approval_rules(environ: dict[str, str] | None = None) -> approvals.ApprovalRules:
    """The server's approval rules: $GCLOUDCTL_APPROVAL_RULES, else the shipped file."""
    environ = os.environ if environ is None else environ
    rules_file = environ.get("GCLOUDCTL_APPROVAL_RULES")
    if not rules_file:
        return approvals.parse_rules(approvals.default_rules_text())
    try:
        text = Path(rules_file).read_text("utf-8")
    except OSError as exc:
        raise InvalidInput(f"GCLOUDCTL_APPROVAL_RULES={rules_file}: {exc.strerror or exc}") from None
    return approvals.parse_rules(text, rules_file)


def key_file(url: str, environ: dict[str, str]) -> Path:
    """Where the secrets key lives when $GCLOUDCTL_SECRETS_KEY is not set."""
    if environ.get("GCLOUDCTL_SECRETS_KEY_FILE"):
        return Path(environ["GCLOUDCTL_SECRETS_KEY_FILE"]).expanduser()
    if url.startswith("sqlite") and "///" in url:
        path = url.split("///", 1)[1]
        if path and path != ":memory:":
            return Path(path).expanduser().parent / KEY_FILE_NAME
    data_home = Path(environ.get("XDG_DATA_HOME") or Path(environ.get("HOME", "~")) / ".local/share")
    return (data_home / "gcloudctl" / KEY_FILE_NAME).expanduser()


def var_sealer(url: str, environ: dict[str, str] | None = None) -> VarSealer:
    environ = dict(os.environ if environ is None else environ)
    return VarSealer(env_or_file_source(environ, key_file(url, environ)))


def request_service(config: Any, *, db_url: str | None = None, environ: dict[str, str] | None = None,
                    store: Store | None = None):
    """The request service for `config` (a `gcloudctl` Config: agencies, catalog)."""
    from gcloudctl import pipeline
    from gcloudctl.controller.service import RequestService

    environ = os.environ if environ is None else environ
    url = db_url or default_url(environ)
    return RequestService(store=store or open_store(url), agencies=config.agencies,
                          rules=approval_rules(environ), sealer=var_sealer(url, environ), catalog=config.catalog,
                          load_request=lambda text, name: pipeline.load_request(text, config, filename=name))
