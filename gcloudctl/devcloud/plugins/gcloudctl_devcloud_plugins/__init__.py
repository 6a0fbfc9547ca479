"""Plugins that the devcloud OpenStack services import (stage: runs inside the services venv).

Installed with pip into the services venv by `gcloudctl.devcloud.install`; never imported by
gcloudctl itself (its venv has no Neutron or Nova). Must not import anything from `gcloudctl`.

- `ml2.BindEveryHostDriver`: Neutron ML2 mechanism driver that binds without agents.
- `neutron_api.application`: neutron-server's WSGI app with its policy enforcer initialised
  before the first request (upstream initialises it racily under concurrent requests).
- `virt.GuestDriver`: Nova virt driver for guests mode (issue 6, docs/guests.md); the one
  exception to the rule above: it imports `gcloudctl.devcloud.guests_runtime` (which needs
  only stdlib-only gcloudctl modules), reachable through a .pth file in guests mode.
Nova loads virt drivers only from `nova.virt.*`: guests mode writes a shim module there.
By default devcloud runs `fake.FakeDriverWithoutFakeNodes` (config.COMPUTE_DRIVER).
"""
