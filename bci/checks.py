"""The toolkit's shared parameter checks, with one message shape; every room uses them.

"Invalid value for the 'x' parameter. Allowed values are ..., but got ... instead." (the MNE-LSL
shape), never with ``assert`` (stripped under ``python -O``). Each check raises
:class:`bci.ConfigError` by default; a room passes its own subclass as ``error`` (e.g.
``ensure_float(x, "x", error=PlantParameterError)``) instead of catching and re-raising.
Command-line code passes the flag's name (``"--duration"``) as ``name``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

from bci.errors import ConfigError


def check_value(
    value: Any, allowed: Iterable[Any], name: str, *, error: type[ConfigError] = ConfigError
) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ConfigError naming both."""
    allowed = tuple(allowed)
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise error(
            f"Invalid value for the '{name}' parameter. Allowed values are {options}, "
            f"but got {value!r} instead."
        )
    return value


def check_type(
    value: Any,
    types: type | tuple[type, ...],
    name: str,
    *,
    error: type[ConfigError] = ConfigError,
) -> Any:
    """Return ``value`` if it is an instance of ``types``, else raise a ConfigError."""
    if not isinstance(value, types):
        names = ", ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        raise error(
            f"Invalid type for the '{name}' parameter. Allowed types are {names}, "
            f"but got {type(value).__name__} instead."
        )
    return value


def ensure_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    error: type[ConfigError] = ConfigError,
) -> int:
    """Return ``value`` as an int (bools and floats with a fraction refused)."""
    if isinstance(value, bool):
        raise error(f"Invalid value for the '{name}' parameter: expected an integer, got a bool.")
    try:
        result = operator.index(value)
    except TypeError:
        raise error(
            f"Invalid value for the '{name}' parameter: expected an integer, but got {value!r}."
        ) from None
    if minimum is not None and result < minimum:
        raise error(
            f"Invalid value for the '{name}' parameter: must be >= {minimum}, but got {result}."
        )
    return result


def ensure_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    error: type[ConfigError] = ConfigError,
) -> float:
    """Return ``value`` as a finite float within the given bounds, else raise a ConfigError."""
    if isinstance(value, bool):
        raise error(f"Invalid value for the '{name}' parameter: expected a number, got a bool.")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise error(
            f"Invalid value for the '{name}' parameter: expected a number, but got {value!r}."
        ) from None
    except OverflowError:  # an integer beyond the float range
        raise error(
            f"Invalid value for the '{name}' parameter: must be finite, but got an integer of "
            f"{len(str(value))} digits."
        ) from None
    if not math.isfinite(result):
        raise error(f"Invalid value for the '{name}' parameter: must be finite, but got {result}.")
    if minimum is not None:
        if strict_minimum and result <= minimum:
            raise error(
                f"Invalid value for the '{name}' parameter: must be > {minimum}, but got {result}."
            )
        if result < minimum:
            raise error(
                f"Invalid value for the '{name}' parameter: must be >= {minimum}, but got {result}."
            )
    if maximum is not None and result > maximum:
        raise error(
            f"Invalid value for the '{name}' parameter: must be <= {maximum}, but got {result}."
        )
    return result
