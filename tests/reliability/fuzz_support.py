"""Shared pieces of the fuzz tests: hypothesis budgets, byte mutations, and "no raw traceback".

Each fuzz target runs twice: a short, derandomised run in the default suite (the same examples
every time, a few seconds) and a longer random run marked ``slow``. ``BCI_FUZZ_EXAMPLES``
overrides the long run's number of examples (e.g. ``BCI_FUZZ_EXAMPLES=20000`` for an overnight
run). Nothing is stored between runs (no hypothesis database in the repository).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def short_run(max_examples: int) -> settings:
    """The default suite's budget: the same ``max_examples`` examples on every run."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=_QUIET,
    )


def long_run(max_examples: int) -> settings:
    """The ``slow`` run's budget: fresh random examples (``BCI_FUZZ_EXAMPLES`` overrides)."""
    n = int(os.environ.get("BCI_FUZZ_EXAMPLES", "0")) or max_examples
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=_QUIET)


# One edit of a byte string: (what, where as a fraction of the length, bytes).
EDIT = st.tuples(
    st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "zero"]),
    st.floats(0.0, 1.0),
    st.binary(min_size=1, max_size=16),
)


def mutate(data: bytes, edits: list[tuple[str, float, bytes]], *, keep: int = 0) -> bytes:
    """Apply ``edits`` (:data:`EDIT`) to ``data``; the first ``keep`` bytes are left alone."""
    out = bytearray(data)
    for kind, where, payload in edits:
        if len(out) <= keep:
            break
        pos = keep + int(where * (len(out) - keep - 1))
        if kind == "flip":
            out[pos] ^= payload[0] or 0xFF
        elif kind == "overwrite":
            out[pos : pos + len(payload)] = payload
        elif kind == "insert":
            out[pos:pos] = payload
        elif kind == "delete":
            del out[pos : pos + len(payload)]
        elif kind == "zero":
            out[pos : pos + len(payload)] = bytes(len(out[pos : pos + len(payload)]))
        else:  # truncate
            del out[pos:]
    return bytes(out)


def clear_error_or_value(
    call: Callable[[], Any], allowed: tuple[type[BaseException], ...]
) -> tuple[Any, BaseException | None]:
    """Run ``call``; return ``(value, None)``, or ``(None, error)`` for an ``allowed`` error.

    Any other exception propagates: hypothesis then reports (and shrinks) the input that gave a
    raw traceback instead of the toolkit's own error. The allowed error's message must say
    something (not an empty ``str(err)``).
    """
    try:
        return call(), None
    except allowed as err:
        assert str(err).strip(), f"{type(err).__name__} without a message"
        return None, err
