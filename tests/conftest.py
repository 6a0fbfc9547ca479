"""Shared pytest set-up: fixture plugins for the core, the real local cloud, test hosts, PostgreSQL, the API server and a headless browser."""

import os
import tempfile
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.devcloud",
    "tests.fixtures.testhost",
    "tests.fixtures.postgres",
    "tests.fixtures.api",
    "tests.fixtures.browser",
]


def pytest_configure(config):
    """Under xdist each worker gets its own temporary directory (TMPDIR, inherited by the
    playbooks and commands it starts), so a test that checks what was left in /tmp sees only
    its own worker's files."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        own = Path(tempfile.gettempdir()) / f"gcloudctl-pytest-{worker}"
        own.mkdir(mode=0o700, exist_ok=True)
        os.environ["TMPDIR"] = str(own)
        tempfile.tempdir = None  # recomputed from TMPDIR on next use


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    """Every test that reaches the real local cloud carries the `devcloud` marker (also when it
    only uses a fixture built on it), and the suite splits into two groups for `pytest -n 2
    --dist loadgroup` (what `make test` runs): `cloud` runs on one worker in order, because its
    tests share one devcloud (guests mode switches, a Neutron restart, agency quota totals);
    `local` (units, test hosts in namespaces, PostgreSQL, the browser) runs beside it."""
    for item in items:
        if "devcloud" in getattr(item, "fixturenames", ()) and item.get_closest_marker("devcloud") is None:
            item.add_marker(pytest.mark.devcloud)
        group = "cloud" if item.get_closest_marker("devcloud") else "local"
        item.add_marker(pytest.mark.xdist_group(group))
