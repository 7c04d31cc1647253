"""What every benchmark needs: a parser with ``--json``, percentiles, a printed table, the JSON file.

Benchmarks run as scripts (``python benchmarks/bench_x.py``), so this folder is on ``sys.path`` and
they import it as ``from _common import ...``. Tables are plain text, right-aligned, one row per
case, ours beside the peer; the JSON file holds the same numbers plus the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Column",
    "bench_parser",
    "format_table",
    "machine",
    "percentiles",
    "write_json",
]


def bench_parser(doc: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of ``doc``, with ``--json PATH``."""
    description = (doc or "").strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(description=description, **kwargs)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return parser


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 99)) -> list[float]:
    """Percentiles ``qs`` of ``values`` as floats; NaN for each when there are no values."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if arr.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(arr, list(qs))]


class Column:
    """One table column: its header, width, and how a row's cell is made.

    ``value`` is a row key or a function of the row; ``fmt`` a format spec (``".2f"``, ``"+.1f"``,
    ``""`` for text). A missing key prints ``nan``.
    """

    def __init__(
        self,
        header: str,
        value: str | Callable[[dict[str, Any]], Any],
        fmt: str = "",
        width: int = 0,
    ) -> None:
        self.header, self.value, self.fmt = header, value, fmt
        self.width = max(width, len(header))

    def cell(self, row: dict[str, Any]) -> str:
        value = self.value(row) if callable(self.value) else row.get(self.value, float("nan"))
        return format(value, self.fmt) if self.fmt and value is not None else str(value)


def format_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    *,
    title: str = "",
    notes: str = "",
    sep: str = "  ",
) -> str:
    """Rows as right-aligned text columns, with an optional title line and notes below."""
    cells = [[c.cell(r) for c in columns] for r in rows]
    widths = [max([c.width, *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append(sep.join(f"{c.header:>{w}}" for c, w in zip(columns, widths, strict=True)))
    lines += [sep.join(f"{v:>{w}}" for v, w in zip(line, widths, strict=True)) for line in cells]
    if notes:
        lines.append(notes)
    return "\n".join(lines)


def machine(**extra: Any) -> dict[str, Any]:
    """Where the numbers were measured: platform, CPU count, load average, plus ``extra``."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        **extra,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` (numpy values allowed) as indented JSON to ``path``; nothing if None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_plain))
    print(f"wrote {path}")
