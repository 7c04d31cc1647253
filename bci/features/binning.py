"""Spike binning: sorted spikes -> spike counts per unit in consecutive fixed-width bins."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import BCIError
from bci.stream import UNSORTED, BinnedChunk, SpikeChunk, Stage, StreamSpec


class BinningError(BCIError, ValueError):
    """A spike names a unit the binner has no column for, or the binner lacks its unit count."""


class SpikeBinner(Stage, name="spike_binner"):
    """Count spikes per unit in bins of ``bin_s`` seconds; emit each bin once it is complete.

    Bin ``b`` holds samples ``b * bin_s * sfreq <= sample_index < (b + 1) * bin_s * sfreq`` (bins
    are counted from sample 0 of the stream, so they line up with ``np.histogram`` of the spike
    times on edges ``k * bin_s``). A bin is complete once a SpikeChunk's ``last_sample`` has reached
    its last sample; partial bins are carried to the next chunk. :meth:`process` returns ``None``
    when no bin completed. The first bin emitted is the one containing the first chunk's
    ``first_sample`` (a stream that starts mid-bin gets a first bin that covers only part of it).

    Parameters
    ----------
    bin_s : float
        Bin width in seconds (20 ms is common for motor decoding, e.g. Glaser et al. 2020, eNeuro).
    n_units : int or None
        Number of units (columns). ``None``: taken from the upstream spec (a spike stream's
        ``n_channels`` is its number of units).
    count_unsorted : bool
        If True, spikes with ``unit_index == -1`` (detected, not assigned) are counted in one extra
        last column (a multi-unit activity channel); if False they are ignored.

    Notes
    -----
    **Invalid bins.** A bin that touches a span the detector could not see (the input SpikeChunk's
    ``invalid`` spans: NaN/inf signal, samples lost in a gap) or a stretch between two chunks that
    no chunk covered is emitted with ``valid`` False: its counts are not a measurement of
    silence. A chunk whose bins are all valid has ``valid`` None.

    A spike arriving for a bin already emitted (it would need look-back) is dropped and counted in
    :attr:`late_spikes`. A spike naming a unit >= ``n_units`` raises :class:`BinningError`.
    """

    accepts = ("spikes",)

    def __init__(
        self, bin_s: float = 0.02, n_units: int | None = None, count_unsorted: bool = False
    ) -> None:
        self.bin_s = ensure_float(bin_s, "bin_s", minimum=0.0, strict_minimum=True)
        self.n_units = None if n_units is None else ensure_int(n_units, "n_units", minimum=1)
        self.count_unsorted = bool(count_unsorted)
        self._units = self.n_units
        self._sfreq = 0.0
        self.reset()

    @property
    def n_columns(self) -> int:
        """Columns of the emitted counts: units, plus one for unsorted spikes if counted."""
        if self._units is None:
            raise BinningError(
                "SpikeBinner does not know the number of units: pass n_units or prepare() it "
                "with the spike stream's spec."
            )
        return self._units + int(self.count_unsorted)

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Take the unit count and sample rate from the spike stream's spec."""
        super().prepare(upstream)
        self._units = self.n_units if self.n_units is not None else int(upstream.n_channels)
        self._sfreq = float(upstream.rate_hz)
        names = tuple(upstream.channel_names) if upstream.channel_names else ()
        if names and len(names) != self._units:
            names = ()
        if names and self.count_unsorted:
            names = (*names, "unsorted")
        self.output_spec = StreamSpec(
            kind="binned",
            n_channels=self.n_columns,
            rate_hz=1.0 / self.bin_s,
            channel_names=names,
            unit="count",
            group_delay_samples=upstream.group_delay_samples,
            corrected_delay_samples=upstream.corrected_delay_samples,
            origin=upstream.origin,
        )
        self.reset()
        return self.output_spec

    def reset(self) -> None:
        """Forget partial bins and the stream position."""
        self._next_bin: int | None = None
        self._pending = np.zeros((0, 0), dtype=np.float32)
        self.late_spikes = 0
        self._last_sample: int | None = None  # last sample covered so far
        self._invalid: list[tuple[int, int]] = []  # sample spans not yet past the emitted bins
        #: bins emitted with ``valid`` False
        self.invalid_bins = 0

    def process(self, chunk: SpikeChunk) -> BinnedChunk | None:
        """Add a chunk's spikes; return the bins it completed, or ``None``."""
        if self._sfreq == 0.0:
            self._sfreq = float(chunk.sfreq)
        n_cols = self.n_columns
        bin_len = round(
            self.bin_s * self._sfreq, 9
        )  # 0.0333 s at 30 kHz is 999 samples, not 998.99..
        if self._next_bin is None:
            self._next_bin = math.floor(chunk.first_sample / bin_len)
            self._pending = np.zeros((0, n_cols), dtype=np.float32)
        n_done = math.floor((chunk.last_sample + 1) / bin_len)  # bins [.., n_done) complete
        self._add(chunk.spikes, bin_len, max(n_done, self._next_bin))
        self._note_invalid(chunk)
        if n_done <= self._next_bin:
            return None
        k = n_done - self._next_bin
        counts = self._pending[:k]
        self._pending = self._pending[k:]
        valid = self._valid(self._next_bin, n_done, bin_len)
        out = BinnedChunk(counts=counts, first_bin=self._next_bin, bin_s=self.bin_s, valid=valid)
        self._next_bin = n_done
        return out

    def _note_invalid(self, chunk: SpikeChunk) -> None:
        """Keep the chunk's invalid spans, and a stretch no chunk covered, for the bins."""
        if self._last_sample is not None and chunk.first_sample > self._last_sample + 1:
            self._invalid.append((self._last_sample + 1, chunk.first_sample))
        for a, b in chunk.invalid.tolist():
            if b > a:
                self._invalid.append((int(a), int(b)))
        last = chunk.last_sample
        self._last_sample = last if self._last_sample is None else max(self._last_sample, last)

    def _valid(self, first: int, stop: int, bin_len: float) -> npt.NDArray[np.bool_] | None:
        """Validity of bins ``[first, stop)``; None when all are valid. Drops spans left behind."""
        if not self._invalid:
            return None
        valid = np.ones(stop - first, dtype=bool)
        keep = []
        for a, b in self._invalid:
            lo = max(math.floor(a / bin_len), first)
            hi = min(math.floor((b - 1) / bin_len) + 1, stop)
            if hi > lo:
                valid[lo - first : hi - first] = False
            if b > stop * bin_len:  # reaches into bins not emitted yet
                keep.append((a, b))
        self._invalid = keep
        if valid.all():
            return None
        self.invalid_bins += int((~valid).sum())
        return valid

    def _add(self, spikes: npt.NDArray[np.void], bin_len: float, upto: int) -> None:
        """Count ``spikes`` into the pending bins, growing them to cover ``upto`` and the spikes."""
        first = 0 if self._next_bin is None else self._next_bin
        n_cols = self._pending.shape[1]
        if spikes.shape[0] == 0:  # the common case at 1 ms chunks: only make room
            self._grow(upto - first, n_cols)
            return
        n_units = n_cols - int(self.count_unsorted)
        raw = spikes["unit_index"].astype(np.int64)
        if raw.max() >= n_units or raw.min() < UNSORTED:
            bad = (raw >= n_units) | (raw < UNSORTED)
            raise BinningError(
                f"SpikeBinner has {n_units} units, but got a spike of unit {int(raw[bad][0])}."
            )
        if self.count_unsorted:
            units = np.where(raw == UNSORTED, n_cols - 1, raw)
        else:
            keep = raw != UNSORTED
            spikes, units = spikes[keep], raw[keep]
        bins = (spikes["sample_index"] // bin_len).astype(np.int64) - first
        if bins.size and bins.min() < 0:
            late = bins < 0
            self.late_spikes += int(late.sum())
            bins, units = bins[~late], units[~late]
        self._grow(max(upto - first, int(bins.max()) + 1 if bins.size else 0), n_cols)
        flat = self._pending.reshape(-1)  # a view: pending is C-contiguous
        flat += np.bincount(bins * n_cols + units, minlength=flat.size).astype(np.float32)

    def _grow(self, need: int, n_cols: int) -> None:
        """Make the pending counts cover ``need`` bins."""
        if need > self._pending.shape[0]:
            grown = np.zeros((need, n_cols), dtype=np.float32)
            grown[: self._pending.shape[0]] = self._pending
            self._pending = grown
