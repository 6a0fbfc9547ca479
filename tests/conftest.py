"""Shared pytest set-up: fixture plugins for the core, the real local cloud, test hosts, PostgreSQL, the API server and a headless browser."""

pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.devcloud",
    "tests.fixtures.testhost",
    "tests.fixtures.postgres",
    "tests.fixtures.api",
    "tests.fixtures.browser",
]
