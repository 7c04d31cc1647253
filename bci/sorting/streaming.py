"""The carried margin of the online sorter: residual buffer, scan position, held-back spikes.

A spike near the end of a chunk needs samples that have not arrived yet, so the residual (the
noise-normalised signal minus every template subtracted so far) is kept in a buffer that runs
from ``history`` samples before the scan position to ``pending`` rows past the newest sample
(where subtracted template tails already wait for their data). Each chunk is *added* onto the
buffer, the peeler scans up to ``lookahead`` samples before its end, and spikes are released once
no later rescan can reach back to them. Every spike is reported exactly once, and the output does
not depend on how the stream is cut into chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.sorting.peeler import PeelState
from bci.stream import SPIKE_DTYPE, SpikeChunk

#: ``peel(x, start_row, stop_row, state, first_sample_of_row_0) -> (t, c, k, scale, depth)``.
PeelFunction = Callable[
    [npt.NDArray[np.float32], int, int, PeelState, int],
    tuple[npt.NDArray[Any], ...],
]


def subtract_residue(
    x: npt.NDArray[np.float32],
    pulses: npt.NDArray[np.int64],
    residue: npt.NDArray[np.float32],
    start: int,
) -> None:
    """Subtract ``residue`` at rows ``pulse + start ..`` of ``x`` (clipped to its rows)."""
    n = residue.shape[0]
    for p in pulses.tolist():
        a, b = p + start, p + start + n
        lo, hi = max(a, 0), min(b, x.shape[0])
        if hi > lo:
            x[lo:hi] -= residue[lo - a : hi - a]


class SegmentBuffer:
    """Residual buffer and scan bookkeeping of one contiguous stream segment.

    Parameters
    ----------
    n_channels : int
    first_sample : int
        Stream index of the segment's first sample.
    history, lookahead, pending, rescan : int
        Samples kept before the scan position, needed after a peak before it is decided, rows
        past the newest sample a template tail may reach, and samples a rescan steps back.
    """

    def __init__(
        self,
        n_channels: int,
        first_sample: int,
        history: int,
        lookahead: int,
        pending: int,
        rescan: int,
    ) -> None:
        self.history, self.lookahead, self.pending, self.rescan = (
            history,
            lookahead,
            pending,
            rescan,
        )
        self.buf = np.zeros((4096, n_channels), np.float32)
        self.start = first_sample - history  # stream index of buf[0]
        self.arrived_end = first_sample  # one past the newest sample
        self.pos = first_sample  # next sample to scan
        self.state = PeelState.fresh(n_channels)
        self.residue_todo = np.zeros(0, np.int64)

    # -- data in --------------------------------------------------------------------------------
    def append(self, xn: npt.NDArray[np.float32]) -> None:
        """Add arriving samples onto the residual (which holds pending subtractions there)."""
        n = xn.shape[0]
        i = self.arrived_end - self.start
        if i + n + self.pending > self.buf.shape[0]:
            self._compact(n)
            i = self.arrived_end - self.start
        self.buf[i : i + n] += xn
        self.arrived_end += n

    def _compact(self, n_new: int) -> None:
        """Move the rows still needed to the front (growing the buffer if need be).

        Done only when the buffer is full, so a typical chunk costs no copy.
        """
        drop = max(0, self.pos - self.history - self.start)
        used = self.arrived_end + self.pending - self.start
        rows = used - drop
        capacity = max(self.buf.shape[0], 2 * (rows + n_new), 4096)
        fresh = np.zeros((capacity, self.buf.shape[1]), np.float32)
        fresh[:rows] = self.buf[drop:used]
        self.buf = fresh
        self.start += drop
        self.state.shift_rows(drop)

    def subtract_residue(
        self, pulses: npt.NDArray[np.int64], residue: npt.NDArray[np.float32], offset: int
    ) -> None:
        """Queue pulses whose artifact residue is subtracted once the buffer holds its rows."""
        self.residue_todo = np.unique(np.concatenate([self.residue_todo, pulses]))
        self.apply_residue(residue, offset)

    def apply_residue(self, residue: npt.NDArray[np.float32], offset: int) -> None:
        if self.residue_todo.size == 0:
            return
        end = self.arrived_end + self.pending  # rows allocated for data and pending work
        ready = self.residue_todo + offset + residue.shape[0] <= end
        todo = self.residue_todo[ready]
        if todo.size:
            subtract_residue(self.buf, todo - self.start, residue, offset)
        self.residue_todo = self.residue_todo[~ready]

    # -- scanning -------------------------------------------------------------------------------
    def scan(self, stop: int, peel: PeelFunction) -> tuple[npt.NDArray[Any], ...]:
        """Peel samples ``[pos, stop)``; returns stream times, channels, units, depths."""
        start = self.pos
        if stop <= start:
            empty = np.zeros(0, np.int64)
            return (empty, empty.astype(np.int32), empty.astype(np.int32), np.zeros(0, np.float32))
        t, c, k, _scale, depth = peel(
            self.buf, start - self.start, stop - self.start, self.state, self.start
        )
        self.pos = stop
        return (t + self.start, c, k, depth)

    def scan_available(self, peel: PeelFunction) -> tuple[npt.NDArray[Any], ...]:
        """Scan everything whose look-ahead has arrived."""
        return self.scan(self.arrived_end - self.lookahead, peel)

    def finish(self, peel: PeelFunction) -> tuple[npt.NDArray[Any], ...]:
        """Scan the segment to its end, as if zeros followed it."""
        end = self.arrived_end
        self.append(np.zeros((self.lookahead, self.buf.shape[1]), np.float32))
        return self.scan(end, peel)

    @property
    def final_before(self) -> int:
        """Stream index before which no later rescan can find a spike."""
        return self.pos - self.rescan


class SpikeRelease:
    """Spikes found but not yet final, and the span already reported."""

    def __init__(self) -> None:
        self.held = np.zeros(0, SPIKE_DTYPE)
        self.emitted_upto: int | None = None

    def to_spikes(
        self, results: list[tuple[npt.NDArray[Any], ...]], delay: int, noise: npt.NDArray[Any]
    ) -> npt.NDArray[np.void]:
        n = sum(r[0].size for r in results)
        spikes = np.zeros(n, SPIKE_DTYPE)
        i = 0
        for t, c, k, depth in results:
            m = t.size
            spikes["sample_index"][i : i + m] = t - delay
            spikes["channel_index"][i : i + m] = c
            spikes["unit_index"][i : i + m] = k
            spikes["amplitude"][i : i + m] = depth * noise[c]  # trough on the peak channel, uV
            i += m
        return spikes

    def release(
        self,
        results: list[tuple[npt.NDArray[Any], ...]],
        final_before: int,
        delay: int,
        noise: npt.NDArray[Any],
    ) -> npt.NDArray[np.void]:
        """Spikes (held back ones included) before stream sample ``final_before``; hold the rest."""
        if self.held.size == 0 and all(r[0].size == 0 for r in results):
            return self.held  # nothing found, nothing waiting: the common case
        spikes = np.concatenate([self.held, self.to_spikes(results, delay, noise)])
        spikes = spikes[np.argsort(spikes["sample_index"], kind="stable")]
        n_final = int(np.searchsorted(spikes["sample_index"], final_before - delay))
        self.held = spikes[n_final:]
        return spikes[:n_final]

    def emit(
        self, released: list[npt.NDArray[np.void]], final_before: int, delay: int, sfreq: float
    ) -> SpikeChunk:
        """One SpikeChunk whose span continues the previous one up to ``final_before``."""
        spikes = released[-1] if len(released) == 1 else np.concatenate(released)
        if spikes.base is not None:
            spikes = spikes.copy()  # never hand out a view of the held-back array
        first = 0 if self.emitted_upto is None else self.emitted_upto
        last = final_before - 1 - delay
        out = SpikeChunk(spikes, first, max(last, first - 1), sfreq)
        self.emitted_upto = max(last + 1, first)
        return out
