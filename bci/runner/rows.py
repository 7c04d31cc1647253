"""A table of numbers that grows by rows for a whole session, at a bounded memory cost.

The runner keeps what it measures per command, per control period or per decoded bin (loop
latencies, the plant's biomarkers, the decoded values and their times) for the summary at the end.
Kept in memory that grows a long session's resident memory by tens of MB per hour (about 30
bytes a number as Python floats). :class:`Rows` stores them as float64 in blocks of ``block``
rows; once :meth:`spill_into` has named a file, every full block is appended to it and dropped
from memory, so the memory a session holds stays at one block per table however long it runs,
and :meth:`array` reads everything back at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Rows"]


class Rows:
    """Rows of ``width`` float64 numbers, appended for a whole session.

    Parameters
    ----------
    width : int, optional
        Numbers per row (1: a column, indexed as scalars); None: taken from the first rows added.
    block : int
        Rows per block (the memory it holds, once spilling).
    """

    def __init__(self, width: int | None = 1, block: int = 4096) -> None:
        self.width = None if width is None else int(width)
        self.block = int(block)
        self._blocks: list[npt.NDArray[np.float64]] = []
        self._n = 0
        self._spill: Path | None = None
        self._spilled = 0  # rows in the spill file
        #: why spilling stopped (the disk filled up or turned read-only); rows stay in memory
        self._spill_error: str | None = None

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def spill_into(self, path: Path) -> None:
        """From now on, write full blocks to ``path`` (created or emptied) and drop them."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        except OSError as err:
            self._spill_error = f"{path}: {err}"
            return
        self._spill = path
        self._flush_full()

    def extend(self, rows: Sequence[Any] | npt.NDArray[Any]) -> None:
        """Append rows (a sequence of rows, or of scalars when ``width`` is 1)."""
        data = np.asarray(rows, dtype=np.float64)
        if self.width is None:
            if data.size == 0:
                return
            self.width = 1 if data.ndim == 1 else int(data.shape[-1])
        data = data.reshape(-1, self.width)
        done = 0
        while done < data.shape[0]:
            at = (self._n - self._spilled) % self.block
            if at == 0 and (self._n - self._spilled) // self.block == len(self._blocks):
                self._blocks.append(np.empty((self.block, self.width), dtype=np.float64))
                self._flush_full()
            take = min(self.block - at, data.shape[0] - done)
            self._blocks[-1][at : at + take] = data[done : done + take]
            done += take
            self._n += take

    def append(self, row: Any) -> None:
        self.extend([row])

    def _flush_full(self) -> None:
        """Spill every block but the newest (the others are full; recent rows stay in memory)."""
        if self._spill is None or self._spill_error is not None or len(self._blocks) < 2:
            return
        try:
            with self._spill.open("ab") as f:
                while len(self._blocks) > 1:
                    f.write(self._blocks[0].tobytes())
                    f.flush()
                    self._blocks.pop(0)
                    self._spilled += self.block
        except OSError as err:  # a full or read-only disk: the rest stays in memory
            self._spill_error = f"{self._spill}: {err}"

    def __getitem__(self, i: int) -> Any:
        """Row ``i`` (negative from the end): a list of floats, or a float when ``width`` is 1."""
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"row {i} of {self._n}")
        if i < self._spilled:
            row = self._read(i, i + 1)[0]
        else:
            j = i - self._spilled
            row = self._blocks[j // self.block][j % self.block]
        return float(row[0]) if self.width == 1 else row.tolist()

    def _read(self, start: int, stop: int) -> npt.NDArray[np.float64]:
        """Rows ``[start, stop)`` of the spill file."""
        assert self._spill is not None and self.width is not None
        count = (stop - start) * self.width
        data = np.fromfile(
            self._spill, dtype=np.float64, count=count, offset=start * self.width * 8
        )
        return data.reshape(-1, self.width)

    def since(self, start: int) -> npt.NDArray[np.float64]:
        """Rows ``[start, n)``, shaped as :meth:`array`."""
        width = self.width or 1
        start = max(0, min(int(start), self._n))
        parts = []
        if start < self._spilled:
            parts.append(self._read(start, self._spilled))
        if self._blocks:
            memory = np.concatenate(self._blocks)[: self._n - self._spilled]
            parts.append(memory[max(0, start - self._spilled) :])
        out = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float64)
        return out[:, 0].copy() if width == 1 else out

    def array(self) -> npt.NDArray[np.float64]:
        """All rows, ``(n, width)``, or ``(n,)`` when ``width`` is 1 (a copy)."""
        return self.since(0)

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        out = self.array()
        return out if dtype is None else out.astype(dtype)

    def tolist(self) -> list[Any]:
        return self.array().tolist()
