"""Shared pieces of the ``bci`` subcommands: checked option types and the exit-code rule.

Exit codes follow click's convention everywhere: **2** for a usage error (a bad flag value, a
missing or conflicting flag: the message names the flag, e.g. ``--duration``), **1** for a failure
at run time (a stream that is not there, a file that cannot be read). Arguments are checked before
anything starts (no process, no LSL resolve, no file), so a bad flag costs nothing.

Use the option types for numeric flags (they refuse ``nan`` and ``inf``, which click's
``FloatRange`` lets through) and :func:`fail` to turn a toolkit error into the right exit code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bci.errors import BCIError, ConfigError

__all__ = [
    "DEFAULT_N_UNITS",
    "DEFAULT_SEED",
    "FiniteFloat",
    "channel_format_option",
    "duration_option",
    "fail",
    "non_negative_float",
    "positive_float",
    "probe_options",
    "pulse_options",
    "yaml_file_option",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Units and seed of the synthetic probe that ``bci demo`` and ``bci source synthetic`` share.
DEFAULT_N_UNITS = 12
DEFAULT_SEED = 1


class FiniteFloat(click.ParamType):
    """A finite float (``nan``/``inf`` refused) within optional bounds.

    Parameters
    ----------
    minimum, maximum : float, optional
        Bounds (inclusive unless ``min_open``).
    min_open : bool
        Refuse ``minimum`` itself (e.g. a duration must be > 0).
    """

    name = "float"

    def __init__(
        self, minimum: float | None = None, maximum: float | None = None, *, min_open: bool = False
    ) -> None:
        self.minimum, self.maximum, self.min_open = minimum, maximum, min_open

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            result = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(result):
            self.fail(f"must be a finite number, got {value!r}.", param, ctx)
        if self.minimum is not None:
            if self.min_open and result <= self.minimum:
                self.fail(f"must be > {self.minimum:g}, got {result:g}.", param, ctx)
            if result < self.minimum:
                self.fail(f"must be >= {self.minimum:g}, got {result:g}.", param, ctx)
        if self.maximum is not None and result > self.maximum:
            self.fail(f"must be <= {self.maximum:g}, got {result:g}.", param, ctx)
        return result

    def __repr__(self) -> str:
        return f"FiniteFloat({self.minimum}, {self.maximum}, min_open={self.min_open})"


#: A finite number > 0 (durations, rates, scales).
positive_float = FiniteFloat(0.0, min_open=True)
#: A finite number >= 0 (intervals where 0 means "never", amplitudes).
non_negative_float = FiniteFloat(0.0)


def fail(err: BCIError) -> NoReturn:
    """Leave the command for ``err``: a usage error (exit 2) for a bad argument, else exit 1."""
    if isinstance(err, ConfigError):
        raise click.UsageError(str(err)) from err
    raise click.ClickException(str(err)) from err


# ------------------------------------------------------------------ options shared by subcommands
def _stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply ``options`` as if written one above the other, in that order (as ``--help`` lists)."""

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def probe_options(seed_help: str) -> Callable[[F], F]:
    """``--channels``, ``--units`` and ``--seed`` of the synthetic probe (``bci demo``,
    ``bci source synthetic``)."""
    return _stack(
        click.option(
            "--channels",
            type=click.IntRange(min=1),
            default=32,
            show_default=True,
            help="Probe contacts.",
        ),
        click.option(
            "--units",
            type=click.IntRange(min=0),
            default=DEFAULT_N_UNITS,
            show_default=True,
            help="Units near the probe.",
        ),
        click.option(
            "--seed",
            type=click.IntRange(min=0),
            default=DEFAULT_SEED,
            show_default=True,
            help=seed_help,
        ),
    )


def channel_format_option(choices: Sequence[str], default: str, help: str) -> Callable[[F], F]:
    """``--format`` (the parameter ``channel_format``): the LSL sample format of a published
    stream."""
    return click.option(
        "--format",
        "channel_format",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help=help,
    )


def duration_option(help: str, param_type: click.ParamType | type = float) -> Callable[[F], F]:
    """``--duration SECONDS``, default ``None`` (run until Ctrl-C)."""
    return click.option("--duration", type=param_type, default=None, metavar="SECONDS", help=help)


def pulse_options() -> Callable[[F], F]:
    """``--frequency`` (Hz) and ``--pulse-width`` (us) of DBS pulses, So 2012's 130 Hz, 300 us
    by default."""
    return _stack(
        click.option(
            "--frequency", type=float, default=130.0, show_default=True, help="Pulse rate (Hz)."
        ),
        click.option(
            "--pulse-width", type=float, default=300.0, show_default=True, help="Pulse width (us)."
        ),
    )


def yaml_file_option(flag: str, dest: str, help: str) -> Callable[[F], F]:
    """An optional YAML file that must exist (``flag`` on the command line, ``dest`` in Python)."""
    return click.option(
        flag,
        dest,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help=help,
    )
