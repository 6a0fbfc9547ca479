"""WSGI entry point of neutron-server in devcloud: Neutron's own app, policy ready before serving.

Stage: loaded by pyuwsgi (`module = gcloudctl_devcloud_plugins.neutron_api:application`).
neutron.policy.init() publishes its global enforcer before registering and loading the
rules, so requests served concurrently during the first one were checked against an empty
rule set: right after a restart, admin list calls came back empty (reproduced: 4 parallel
GET /v2.0/networks?name=public -> 0 results). Initialising it here, while uWSGI loads the
app and before it accepts requests, removes that window. Must not change any behaviour.
"""

from neutron import policy
from neutron.wsgi.api import application  # noqa: F401  (builds the app and parses the config)

policy.init()
