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
from typing import Any, NoReturn

import click

from bci.errors import BCIError, ConfigError

__all__ = [
    "DEFAULT_N_UNITS",
    "DEFAULT_SEED",
    "FiniteFloat",
    "fail",
    "non_negative_float",
    "positive_float",
]

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
