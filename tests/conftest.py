"""Shared pytest set-up: fixture plugins for the core, the real local cloud, test hosts and PostgreSQL."""

import importlib.util

_PLUGINS = ["tests.fixtures.core", "tests.fixtures.devcloud", "tests.fixtures.testhost", "tests.fixtures.postgres"]
# TODO(lead): make this list static once every fixture module has landed.
pytest_plugins = [name for name in _PLUGINS if importlib.util.find_spec(name) is not None]
