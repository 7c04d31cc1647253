"""Entry point of the ``bci`` command.

Subcommands live one per module and are imported lazily, so ``bci --help`` stays fast and a
subcommand's heavy imports (numba, neo) load only when it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: subcommand name -> "module:attribute" of its click command.
#: Add one line here per new subcommand module.
SUBCOMMANDS: dict[str, str] = {
    "analyze": "bci.cli.analyze:analyze",
    "demo": "bci.cli.demo:demo",
    "export": "bci.cli.export:export",
    "plant": "bci.cli.plant:plant",
    "record": "bci.cli.record:record",
    "replay": "bci.cli.replay:replay",
    "run": "bci.cli.run:run",
    "session": "bci.cli.session:session",
    "sessions": "bci.cli.sessions:sessions",
    "source": "bci.cli.source:source",
    "stim": "bci.cli.stim:stim",
    "sweep": "bci.cli.sweep:sweep",
    "train-decoder": "bci.cli.train_decoder:train_decoder",
    "train-controller": "bci.cli.train_controller:train_controller",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            module_name, _, attr = SUBCOMMANDS[cmd_name].partition(":")
            command: Any = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bci-closed-loop")
def cli() -> None:
    """Closed-loop BCI toolkit: LSL acquisition, online sorting, decoding, adaptive DBS."""


def main() -> None:
    """The ``bci`` command: :func:`cli` in a process that takes its stop signals.

    Ctrl-C or a parent's SIGINT stops every command, whatever the parent blocked or ignored
    (:mod:`bci.signals`). Calling :func:`cli` in-process (click's ``CliRunner``) leaves the
    caller's signal handling alone.
    """
    from bci.signals import accept_stop_signals

    accept_stop_signals()
    cli()


if __name__ == "__main__":
    main()
