"""``bci sessions``: list the shipped session configs, one line each."""

from __future__ import annotations

import click


@click.command()
def sessions() -> None:
    """List the shipped sessions (run one with `bci run NAME`)."""
    from bci.runner.session import sessions_dir, shipped_sessions

    found = shipped_sessions()
    if not found:
        raise click.ClickException(f"No session configs in {sessions_dir()}.")
    width = max(len(name) for name, _ in found)
    for name, description in found:
        click.echo(f"{name:<{width}}  {description}")
