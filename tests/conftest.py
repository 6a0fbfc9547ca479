"""Shared pytest set-up: fixture plugins for the core, the real local cloud, test hosts, PostgreSQL, the API server and a headless browser."""

import pytest

pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.devcloud",
    "tests.fixtures.testhost",
    "tests.fixtures.postgres",
    "tests.fixtures.api",
    "tests.fixtures.browser",
]


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    """Every test that reaches the real local cloud carries the `devcloud` marker, also when it
    only uses a fixture built on it: `make test` runs `-m devcloud` (in order: its tests share one
    devcloud — guests mode switches, a Neutron restart, agency quota totals) and `-m "not
    devcloud"` (units, test hosts in namespaces, PostgreSQL, the browser) side by side."""
    for item in items:
        if "devcloud" in getattr(item, "fixturenames", ()) and item.get_closest_marker("devcloud") is None:
            item.add_marker(pytest.mark.devcloud)
