"""CLI commands for the 'devcloud' area (filled in by the issue that owns it)."""

import click


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
