"""WSGI entry point of cinder-api in devcloud: Cinder's own app, config file from the environment.

Stage: loaded by pyuwsgi (`module = gcloudctl_devcloud_plugins.cinder_api:application`).
cinder.wsgi.api parses `sys.argv[1:]` as oslo.config arguments; under pyuwsgi those are
uWSGI's own (`--ini …`), which oslo.config rejects. This module points argv at
`$OS_CINDER_CONFIG_DIR/cinder.conf` before Cinder builds its app. Must not change any behaviour.
"""

import os
import sys

_CONF = os.path.join(os.environ.get("OS_CINDER_CONFIG_DIR", "/etc/cinder"), "cinder.conf")
sys.argv = [sys.argv[0] if sys.argv else "cinder-api", "--config-file", _CONF]

from cinder.wsgi.api import application  # noqa: E402,F401  (parses the config, builds the app)
