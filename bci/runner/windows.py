"""What a run looked like over time: one row per window of wall time, written as it goes.

Any long ``bci run`` can be checked for drift (a leak, latency creeping up, samples lost late in
the session) from its run folder: every ``window_s`` (10 s) the runner appends one row to
``windows.csv`` and flushes it, so a run still going, or one that was killed, has its rows up to
its last window; ``summary.json`` repeats them as its ``windows`` list. A row holds:

- ``t_s``: wall seconds since the loop started; ``signal_s``: seconds of signal processed by then;
- ``commands``, ``periods``, ``chunks``: commands sent to the stimulator, plant control periods
  reported (biomarker samples) and chunks processed in the window;
- ``p50_ms``, ``p99_ms``, ``max_ms``, ``deadline_misses``: loop latency of the window's commands
  (:class:`bci.runner.metrics.LatencyLog`; NaN when it had none), ``commands_total``: the latency
  log's count at the window's end (so a window's commands are ``latency_ms.npy`` rows
  ``[previous commands_total, commands_total)``);
- ``cpu_p50_ms``, ``cpu_p99_ms``: CPU time of the loop's thread per chunk in the window (its own
  work, which the other processes on the machine do not inflate as they do wall latency),
  ``chunks_total``: the chunk count at the window's end (rows of ``loop_cpu_ms.npy``);
- ``gaps``, ``gap_samples``, ``nan_samples``: what the source lost or saw invalid in the window;
- ``runner_mb``, ``plant_mb``, ``recorder_mb``: resident memory of the runner, the plant (or
  other source) child and the recorder child at the window's end (MB, NaN for a process the run
  does not have).

At the end the runner also writes every command's loop latency to ``latency_ms.npy`` and every
chunk's CPU time to ``loop_cpu_ms.npy`` (float64, in order), from which a percentile over any span
of windows is exact.
"""

from __future__ import annotations

import csv
import ctypes
import ctypes.util
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from bci.runner.metrics import LatencyLog

__all__ = ["WINDOW_COLUMNS", "WINDOW_S", "WindowLog", "describe", "read_windows", "rss_mb"]

#: Seconds of wall time per window.
WINDOW_S = 10.0

WINDOW_COLUMNS = (
    "t_s",
    "signal_s",
    "commands",
    "periods",
    "chunks",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "deadline_misses",
    "commands_total",
    "cpu_p50_ms",
    "cpu_p99_ms",
    "chunks_total",
    "gaps",
    "gap_samples",
    "nan_samples",
    "runner_mb",
    "plant_mb",
    "recorder_mb",
)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _libc_trim()


def release_free_memory() -> None:
    """Give the heap memory the process has freed back to the system (glibc ``malloc_trim``).

    The loop frees what it allocates for every chunk, but glibc keeps freed heap pages mapped,
    and the many small short-lived allocations of a long session leave them scattered, so its
    resident memory creeps up by about a percent per 10 minutes without a leak. Called once per
    window (a millisecond or so, in the loop's thread).
    """
    if _TRIM is not None:
        _TRIM(0)


def rss_mb(pid: int | None) -> float:
    """Resident memory of process ``pid`` in MB (from ``/proc``); NaN if unknown or gone."""
    if pid is None:
        return math.nan
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE / 1e6
    except (OSError, ValueError, IndexError):
        return math.nan


class WindowLog:
    """Rows of ``windows.csv`` (module docstring), one per ``window_s`` of wall time.

    Parameters
    ----------
    path : Path
        The CSV file (created with its header now).
    latency : LatencyLog
        The loop's latency log (read, never changed).
    window_s : float
        Wall seconds per row.
    """

    def __init__(self, path: Path, latency: LatencyLog, window_s: float = WINDOW_S) -> None:
        self.path = Path(path)
        self.latency = latency
        self.window_s = float(window_s)
        self.rows: list[dict[str, float]] = []
        #: why ``windows.csv`` stopped being written (None: it was not)
        self.write_error: str | None = None
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(WINDOW_COLUMNS)
        self._file.flush()
        self._closed = False
        self._t0: float | None = None
        self._next = 0.0
        self._last: dict[str, float] = {}

    def start(self, now: float, counters: dict[str, float]) -> None:
        """The loop starts at ``now`` (monotonic seconds) with these running totals."""
        self._t0 = now
        self._next = now + self.window_s
        self._last = dict(counters)
        self._last["commands_total"] = float(self.latency.count)
        self._last["chunks_total"] = float(self.latency.chunks)
        self._last["misses"] = float(self.latency.misses)

    def due(self, now: float) -> bool:
        return self._t0 is not None and now >= self._next

    def close_window(
        self, now: float, counters: dict[str, float], pids: dict[str, int | None]
    ) -> dict[str, float]:
        """Write the row of the window ending ``now``.

        ``counters`` are running totals (``signal_s``, ``commands``, ``periods``, ``chunks``,
        ``gaps``, ``gap_samples``, ``nan_samples``); each row holds the window's differences
        (``signal_s`` as is). ``pids``: ``runner``, ``plant``, ``recorder``.
        """
        assert self._t0 is not None
        while self._next <= now:  # a loop held up for longer than a window writes one row
            self._next += self.window_s
        lat = self.latency
        first = int(self._last.get("commands_total", 0))
        values = lat.since(first)
        if values.size:
            p50, p99 = (float(v) for v in np.percentile(values, [50, 99]))
            peak = float(values.max())
        else:
            p50 = p99 = peak = math.nan
        row: dict[str, float] = {
            "t_s": round(now - self._t0, 3),
            "signal_s": round(float(counters.get("signal_s", 0.0)), 4),
        }
        for key in ("commands", "periods", "chunks"):
            row[key] = float(counters.get(key, 0.0) - self._last.get(key, 0.0))
        row.update(p50_ms=p50, p99_ms=p99, max_ms=peak)
        row["deadline_misses"] = float(lat.misses - self._last.get("misses", 0.0))
        row["commands_total"] = float(lat.count)
        cpu = lat.cpu_since(int(self._last.get("chunks_total", 0)))
        cpu = cpu[np.isfinite(cpu)]
        if cpu.size:
            row["cpu_p50_ms"], row["cpu_p99_ms"] = (float(v) for v in np.percentile(cpu, [50, 99]))
        else:
            row["cpu_p50_ms"] = row["cpu_p99_ms"] = math.nan
        row["chunks_total"] = float(lat.chunks)
        for key in ("gaps", "gap_samples", "nan_samples"):
            row[key] = float(counters.get(key, 0.0) - self._last.get(key, 0.0))
        release_free_memory()
        for name in ("runner", "plant", "recorder"):
            row[f"{name}_mb"] = round(rss_mb(pids.get(name)), 2)
        self._last = {
            **counters,
            "commands_total": float(lat.count),
            "chunks_total": float(lat.chunks),
            "misses": float(lat.misses),
        }
        self.rows.append(row)
        if self._file is not None:
            try:
                self._writer.writerow([_cell(row[c]) for c in WINDOW_COLUMNS])
                self._file.flush()
            except OSError as err:  # a full or read-only disk: the rows go on in memory
                self.write_error = f"{self.path}: {err}"
                self._close_file()
        return row

    @property
    def closed(self) -> bool:
        return self._closed

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # what could not be flushed is lost; write_error says why
            self._file = None

    def close(self, latency_path: Path | None = None) -> None:
        """Close the CSV; write every command's latency to ``latency_path`` if given, and every
        chunk's CPU time to ``loop_cpu_ms.npy`` beside it.

        Raises
        ------
        OSError
            ``latency_path`` could not be written.
        """
        self._closed = True
        self._close_file()
        if latency_path is not None:
            np.save(latency_path, self.latency.values.astype(np.float64))
            np.save(Path(latency_path).with_name("loop_cpu_ms.npy"), self.latency.chunk_cpu_ms)


def _cell(x: float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return "nan"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


def read_windows(path: Path) -> list[dict[str, float]]:
    """The rows of a ``windows.csv`` as dicts of floats."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def describe(rows: list[dict[str, Any]]) -> str:
    """One line per row, for a terminal (``benchmarks/soak.py``)."""
    head = (
        f"{'t (s)':>7s} {'signal s':>8s} {'cmds':>5s} {'p50 ms':>7s} {'p99 ms':>7s} {'cpu99':>6s} "
        f"{'runner MB':>9s} {'plant MB':>8s} {'rec MB':>7s} {'gaps':>4s}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['t_s']:7.0f} {r['signal_s']:8.1f} {r['commands']:5.0f} {r['p50_ms']:7.3f} "
            f"{r['p99_ms']:7.3f} {r['cpu_p99_ms']:6.3f} {r['runner_mb']:9.1f} {r['plant_mb']:8.1f} "
            f"{r['recorder_mb']:7.1f} {r['gaps']:4.0f}"
        )
    return "\n".join(lines)
