"""CLI commands for the 'controller' area (filled in by the issue that owns it)."""

import click


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
