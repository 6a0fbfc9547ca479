"""Plugins that the devcloud OpenStack services import (stage: runs inside the services venv).

Installed with pip into the services venv by `gcloudctl.devcloud.install`; never imported by
gcloudctl itself (its venv has no Neutron or Nova). Must not import anything from `gcloudctl`.

- `ml2.BindEveryHostDriver`: Neutron ML2 mechanism driver that binds without agents.
Nova virt drivers are loaded only from `nova.virt.*`, so a guests driver (issue 6) needs
a module there; today devcloud runs `fake.FakeDriverWithoutFakeNodes` (config.COMPUTE_DRIVER).
"""
