"""Common referencing: subtract, sample by sample, the median or mean across channels."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from bci.checks import check_value, ensure_int
from bci.errors import StageCompatibilityError
from bci.stream import SignalChunk, Stage, StreamSpec

ReferenceMode = Literal["median", "average"]

#: At most this many candidates left, the selection finishes by counting ranks (no partition).
_RANK_COUNT_MAX = 8
#: From this many candidates on, the pivot is Tukey's ninther instead of a median of three.
_NINTHER_MIN = 40


@numba.njit(cache=True, nogil=True, inline="always")
def _median_of_three(a, b, c):  # pragma: no cover (jitted)
    """Middle value of three, with min/max only (no branch)."""
    return max(min(a, b), min(max(a, b), c))


@numba.njit(cache=True, nogil=True)
def _select_pair(src, less, greater, n, k_lo, k_hi):  # pragma: no cover (jitted)
    """Return the ``k_lo``-th and ``k_hi``-th smallest of ``src[:n]`` (0-based, ``k_hi - k_lo`` 0 or 1).

    Quickselect (Hoare 1961, CACM 4:321, "FIND") descending towards both ranks at once. The pivot
    is a median of three, or from ``_NINTHER_MIN`` candidates Tukey's ninther (Bentley & McIlroy
    1993, Softw Pract Exp 23:1249), both computed with min/max. The three-way partition has no
    data-dependent branch: every value is stored into both ``less`` and ``greater`` and only the
    fill counters advance by the comparison result, so random data costs no branch mispredictions
    (the reason a textbook Hoare-partition quickselect was no faster than numpy here). The three
    buffers swap roles instead of copying. When the two ranks fall on different sides of the
    pivot, they are the largest value below it (or the pivot) and the smallest above it (or the
    pivot); at most ``_RANK_COUNT_MAX`` candidates are finished by counting each one's rank.
    ``src`` must hold no NaN; all three buffers are overwritten.
    """
    while n > _RANK_COUNT_MAX:
        if n >= _NINTHER_MIN:
            s = n >> 3
            pivot = _median_of_three(
                _median_of_three(src[0], src[s], src[2 * s]),
                _median_of_three(src[3 * s], src[4 * s], src[5 * s]),
                _median_of_three(src[6 * s], src[7 * s], src[n - 1]),
            )
        else:
            pivot = _median_of_three(src[0], src[n >> 1], src[n - 1])
        n_less = 0
        n_greater = 0
        for t in range(n):
            v = src[t]
            less[n_less] = v
            n_less += v < pivot
            greater[n_greater] = v
            n_greater += v > pivot
        equal_end = n - n_greater  # ranks n_less .. equal_end - 1 hold the pivot's value
        if k_hi < n_less:
            src, less = less, src
            n = n_less
        elif k_lo >= equal_end:
            k_lo -= equal_end
            k_hi -= equal_end
            src, greater = greater, src
            n = n_greater
        else:
            lower = pivot
            if k_lo < n_less:  # then k_lo == n_less - 1: the largest value below the pivot
                lower = less[0]
                for t in range(1, n_less):
                    v = less[t]
                    lower = v if v > lower else lower
            upper = pivot
            if k_hi >= equal_end:  # then k_hi == equal_end: the smallest value above the pivot
                upper = greater[0]
                for t in range(1, n_greater):
                    v = greater[t]
                    upper = v if v < upper else upper
            return lower, upper
    lower = src[0]
    upper = src[0]
    for i in range(n):
        v = src[i]
        n_below = 0
        n_at_or_below = 0
        for j in range(n):
            w = src[j]
            n_below += w < v
            n_at_or_below += w <= v
        lower = v if (n_below <= k_lo) & (k_lo < n_at_or_below) else lower
        upper = v if (n_below <= k_hi) & (k_hi < n_at_or_below) else upper
    return lower, upper


@numba.njit(cache=True, nogil=True)
def _median_reference_rows(x, ref_channels, out):  # pragma: no cover (jitted)
    """``out[i, :] = x[i, :] - nanmedian(x[i, ref_channels])`` for float32 time-first ``x``.

    The median is numpy's, bit for bit: the middle value for an odd count, and for an even count
    ``(lower + upper) / 2`` evaluated in float32, as ``np.median`` does for float32 input (its
    ``mean`` of the two middle values sums and divides in the input dtype). NaN values are skipped;
    a row whose reference values are all NaN gets a NaN reference. Three scratch rows are
    allocated per call, nothing per sample.
    """
    n_samples, n_channels = x.shape
    n_ref = ref_channels.shape[0]
    all_channels = n_ref == n_channels
    for j in range(n_ref):
        all_channels &= ref_channels[j] == j
    row = np.empty(n_ref, dtype=np.float32)
    less = np.empty(n_ref, dtype=np.float32)
    greater = np.empty(n_ref, dtype=np.float32)
    two = np.float32(2.0)
    for i in range(n_samples):
        if all_channels:  # contiguous copy, which vectorizes; a gather does not
            for j in range(n_ref):
                row[j] = x[i, j]
        else:
            for j in range(n_ref):
                row[j] = x[i, ref_channels[j]]
        n = n_ref
        n_nan = 0
        for j in range(n_ref):
            n_nan += np.isnan(row[j])
        if n_nan:  # rare: compact the finite values to the front
            n = 0
            for j in range(n_ref):
                v = row[j]
                row[n] = v
                n += not np.isnan(v)
        if n == 0:
            ref = np.float32(np.nan)
        else:
            k = n >> 1
            if n & 1:
                ref, _ = _select_pair(row, less, greater, n, k, k)
            else:
                lower, upper = _select_pair(row, less, greater, n, k - 1, k)
                ref = (lower + upper) / two
        for c in range(n_channels):
            out[i, c] = x[i, c] - ref


def _numpy_reference(
    data: npt.NDArray[np.floating], channels: npt.NDArray[np.intp] | None, mode: ReferenceMode
) -> npt.NDArray[np.float32]:
    """The plain-numpy reference (``nanmedian``/``nanmean`` when the block holds a NaN).

    The path for ``"average"`` and for non-float32 input, and the oracle the median kernel is
    tested and benchmarked against.
    """
    src = data if channels is None else data[:, channels]
    if src.shape[0] == 0:
        return data.astype(np.float32)
    has_nan = bool(np.isnan(src).any())
    if mode == "median":
        ref = np.nanmedian(src, axis=1) if has_nan else np.median(src, axis=1)
    else:
        ref = np.nanmean(src, axis=1) if has_nan else src.mean(axis=1)
    return (data - ref[:, None].astype(np.float32)).astype(np.float32, copy=False)


class CommonReference(Stage, name="common_reference"):
    """Subtract the across-channel median (CMR) or mean (CAR) from every channel.

    Removes what all contacts share (reference noise, movement, far-field), which is stateless and
    therefore trivially causal. The median is robust to a spike or an artifact on a few channels;
    Ludwig et al. 2009 (J Neurophysiol 101:1679) showed common referencing raises spike SNR on
    multichannel arrays.

    Parameters
    ----------
    mode : {"median", "average"}
        Median (common median reference) or mean (common average reference).
    channels : sequence of int or None
        Channels the reference is computed from (e.g. skip broken ones); ``None``: all. The
        reference is subtracted from every channel.

    Notes
    -----
    NaN values are ignored when computing the reference (``nanmedian``/``nanmean``); a sample whose
    reference channels are all NaN stays NaN. (The median path does this without numpy's
    "All-NaN slice" warning; ``"average"`` still warns "Mean of empty slice".)

    The median of float32 data runs in a numba kernel (:func:`_median_reference_rows`): one
    branch-free quickselect per sample on scratch rows, identical bit for bit to ``np.nanmedian``
    followed by the float32 subtraction (except possibly the sign of a zero reference when a row
    holds both -0.0 and +0.0). ``benchmarks/bench_preprocessing.py`` compares it with the numpy
    path it replaced (``np.median`` along the channel axis, about 1.2-1.5 us per sample at 96
    channels here); per-chunk p50 was about 3-4x faster at 96 and 384 channels (2 cores, loaded).
    Other dtypes and ``"average"`` go through numpy.
    """

    accepts = ("signal",)

    def __init__(
        self, mode: ReferenceMode = "median", channels: Sequence[int] | None = None
    ) -> None:
        self.mode: ReferenceMode = check_value(mode, ("median", "average"), "mode")
        self.channels = (
            None
            if channels is None
            else np.asarray([ensure_int(c, "channels", minimum=0) for c in channels], dtype=np.intp)
        )
        if self.channels is not None and self.channels.size == 0:
            raise StageCompatibilityError(
                "CommonReference 'channels' must name at least one channel."
            )
        self._n_channels = 0
        self._ref_index: npt.NDArray[np.intp] | None = None

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Check that the reference channels exist in the stream."""
        spec = super().prepare(upstream)
        self._n_channels = int(upstream.n_channels)
        if self.channels is not None and int(self.channels.max()) >= self._n_channels:
            raise StageCompatibilityError(
                f"CommonReference channel {int(self.channels.max())} does not exist in a stream of "
                f"{self._n_channels} channels."
            )
        return spec

    def process(self, chunk: SignalChunk) -> SignalChunk:
        """Return the chunk minus its per-sample common reference."""
        if self.input_spec is None:
            self.prepare(StreamSpec("signal", chunk.n_channels, chunk.sfreq))
        if chunk.n_channels != self._n_channels:
            raise StageCompatibilityError(
                f"CommonReference was prepared for {self._n_channels} channels, but got a chunk "
                f"with {chunk.n_channels} channels."
            )
        return dataclasses.replace(chunk, data=self.apply(chunk.data))

    def apply(self, data: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Reference a ``(n_samples, n_channels)`` block (no state involved); returns a new array."""
        if self.mode != "median" or data.dtype != np.float32 or data.ndim != 2:
            return _numpy_reference(data, self.channels, self.mode)
        if data.shape[0] == 0:
            return data.copy()
        n_channels = data.shape[1]
        ref_index = self._ref_index
        if ref_index is None or (self.channels is None and ref_index.size != n_channels):
            ref_index = (
                np.arange(n_channels, dtype=np.intp) if self.channels is None else self.channels
            )
            self._ref_index = ref_index
        if self.channels is not None and int(ref_index.max()) >= n_channels:
            raise StageCompatibilityError(
                f"CommonReference channel {int(ref_index.max())} does not exist in a block of "
                f"{n_channels} channels."
            )
        out = np.empty(data.shape, dtype=np.float32)
        _median_reference_rows(data, ref_index, out)
        return out
