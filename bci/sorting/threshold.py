"""Multi-unit threshold crossings: the BrainGate-style detector, one multi-unit per channel.

No sorting: every negative-going crossing of ``threshold_rms x RMS`` on a channel is one spike of
that channel's multi-unit. This is what most intracortical BCIs decode from; Christie et al. 2015
(J Neural Eng 12:016009) found thresholds of -3 to -4.5 x RMS decode as well as sorted units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from bci.errors import StageCompatibilityError
from bci.sorting.errors import SortingConfigError
from bci.stream import SPIKE_DTYPE, SignalChunk, SpikeChunk, Stage, StreamSpec, mask_spans

#: "Last crossing" of a channel that has not crossed yet: far enough back for any refractory period.
_NO_CROSSING_YET = np.iinfo(np.int64).min // 2


@numba.njit(cache=True, nogil=True)
def _accumulate_power(x, start, stop, sumsq, count, nan_count):  # pragma: no cover (jitted)
    """Add ``x[start:stop]**2`` of finite samples to ``sumsq``, their number to ``count``."""
    n_channels = x.shape[1]
    for i in range(start, stop):
        for c in range(n_channels):
            v = np.float64(x[i, c])
            if v == v:
                sumsq[c] += v * v
                count[c] += 1
            else:
                nan_count[c] += 1


@numba.njit(cache=True, nogil=True)
def _find_crossings(
    x, start, thr, prev, last_cross, refractory, first_sample, nan_count, out_t, out_c, out_a, k
):  # pragma: no cover (jitted)
    """Negative-going crossings of ``thr`` in rows ``x[start:]`` written from ``out_*[k]`` on.

    Returns ``(k, row)``: crossings written in all, and the row where it stopped (``len(x)`` when
    done; earlier when the output buffers could not hold a whole further row: grow them and call
    again from that row, the carried state is consistent at row boundaries).

    A crossing at row ``i`` of channel ``c``: ``x[i, c] < thr[c]`` while the previous sample (``prev``
    for the first row, carried across chunks) was ``>= thr[c]``. NaN compares false both ways, so a
    NaN sample is never a crossing and never arms the next one. A crossing closer than
    ``refractory`` samples to the channel's last accepted one is skipped. Rows run in memory order
    (time-first), so the output is sorted by sample, then channel.
    """
    n_samples, n_channels = x.shape
    capacity = out_t.shape[0]
    for i in range(start, n_samples):
        if k + n_channels > capacity:
            return k, i
        sample = first_sample + i
        for c in range(n_channels):
            v = x[i, c]
            if v != v:
                nan_count[c] += 1
            elif v < thr[c] and prev[c] >= thr[c]:
                if sample - last_cross[c] >= refractory:
                    out_t[k] = sample
                    out_c[k] = c
                    out_a[k] = v
                    last_cross[c] = sample
                    k += 1
            prev[c] = v
    return k, n_samples


class ThresholdCrossings(Stage, name="threshold_crossings"):
    """Multi-unit threshold crossings per channel (no sorting): SignalChunk -> SpikeChunk.

    The threshold of channel ``c`` is ``threshold_rms * RMS_c``, RMS estimated from the first
    ``calibration_s`` seconds of the stream (causally: nothing is detected before calibration ends),
    from :meth:`fit` on given data, or given directly as ``thresholds``. Each channel is one
    multi-unit: ``unit_index == channel_index``, so ``SpikeBinner(n_units=n_channels)`` bins the
    output directly.

    Parameters
    ----------
    threshold_rms : float
        Threshold in multiples of the channel's RMS; negative (negative-going crossings). The
        default -4.5 is the BrainGate convention; Christie et al. 2015 (J Neural Eng 12:016009)
        compared -3 to -4.5 x RMS.
    calibration_s : float
        Seconds at the start of the stream used to estimate each channel's RMS when neither
        ``thresholds`` nor :meth:`fit` gave thresholds. Nothing is emitted until it has passed
        (:attr:`status` says how far it is).
    thresholds : array (n_channels,) or None
        Fixed thresholds in the signal's unit (negative); skips calibration.
    refractory_ms : float
        A crossing within this many ms of the channel's previous *accepted* crossing is ignored.

    Notes
    -----
    **Input.** Expects a high-passed signal (e.g. :class:`~bci.preprocessing.BandPass` upstream):
    the RMS is taken about zero, so a DC offset would inflate it.

    **Crossing.** The first sample below the threshold after a sample at or above it; the previous
    sample is carried across chunks, so a crossing on a chunk boundary is found exactly once and the
    output does not depend on the chunk size. The first sample after calibration is compared with
    the last calibration sample like any other; the stream's first sample and the first after a
    gap (``gap_before > 0``) have no known predecessor, so they are never crossings.

    **Spike time and amplitude.** ``sample_index`` is the crossing sample minus the upstream
    filters' group delay, ``round(spec.group_delay_samples)`` as
    :class:`~bci.preprocessing.BandPass` reports it (0 if absent), so times are on the raw
    signal's clock; the emitted chunk's span is shifted by the same amount, and the residual
    fractional delay is left in the output spec's ``group_delay_samples`` and the
    rounded one added to its ``corrected_delay_samples``. A crossing whose
    corrected time falls before sample 0 is dropped. ``amplitude`` is the value of the crossing
    sample itself (not the trough that follows: finding it would need look-ahead), in the
    signal's unit.

    **Speed.** One compiled (numba) pass over the chunk in memory order (timings in the README).

    **NaN.** A NaN sample is never a crossing, and the first finite sample after one is not either
    (its predecessor is unknown). NaN samples are counted per channel in :attr:`nan_samples` and
    reported by :attr:`status`; during calibration they are left out of the RMS. A channel with no
    finite calibration sample gets a NaN threshold (never crosses) and is listed in
    ``status["channels_without_threshold"]``.

    **State.** :meth:`reset` clears the carried sample, refractory clocks and NaN counts but keeps
    learned thresholds; :meth:`recalibrate` forgets them and calibrates again on the stream.
    """

    accepts = ("signal",)

    def __init__(
        self,
        threshold_rms: float = -4.5,
        calibration_s: float = 10.0,
        thresholds: Sequence[float] | npt.NDArray[np.floating[Any]] | None = None,
        refractory_ms: float = 1.0,
    ) -> None:
        self.threshold_rms = ensure_float(threshold_rms, "threshold_rms", error=SortingConfigError)
        if self.threshold_rms >= 0:
            raise SortingConfigError(
                "Invalid value for the 'threshold_rms' parameter: must be < 0 (negative-going "
                f"crossings, e.g. -4.5), but got {self.threshold_rms}."
            )
        self.calibration_s = ensure_float(
            calibration_s,
            "calibration_s",
            minimum=0.0,
            strict_minimum=True,
            error=SortingConfigError,
        )
        self.refractory_ms = ensure_float(
            refractory_ms, "refractory_ms", minimum=0.0, error=SortingConfigError
        )
        self._given: npt.NDArray[np.float32] | None = None
        if thresholds is not None:
            self._given = self._check_thresholds(thresholds)
        self._thr: npt.NDArray[np.float32] | None = self._given
        self._n_channels = 0 if self._given is None else int(self._given.shape[0])
        self._sfreq = 0.0
        self._delay = 0
        self._prepared = False
        self.recalibrate()

    # -- thresholds -------------------------------------------------------------------------------
    @staticmethod
    def _check_thresholds(thresholds: Any) -> npt.NDArray[np.float32]:
        try:
            arr = np.asarray(thresholds, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise SortingConfigError(
                "Invalid value for the 'thresholds' parameter: expected one number per channel, "
                f"but got {str(thresholds)[:60]!r}."
            ) from None
        if arr.ndim != 1 or arr.size == 0:
            raise SortingConfigError(
                "Invalid value for the 'thresholds' parameter: expected one threshold per channel "
                f"(a 1-D array), but got shape {arr.shape}."
            )
        if not np.all(np.isfinite(arr)) or np.any(arr >= 0):
            raise SortingConfigError(
                "Invalid value for the 'thresholds' parameter: every threshold must be finite and "
                f"< 0 (negative-going crossings), but got {arr.tolist()}."
            )
        return arr.astype(np.float32)

    @property
    def thresholds_(self) -> npt.NDArray[np.float32] | None:
        """Thresholds in use, one per channel in the signal's unit; ``None`` until calibrated."""
        return None if self._thr is None else self._thr.copy()

    @property
    def is_calibrated(self) -> bool:
        """True once thresholds are known (given, fitted, or learned from the stream)."""
        return self._thr is not None

    def fit(self, traces: npt.ArrayLike) -> ThresholdCrossings:
        """Set thresholds from the RMS of ``traces`` (n_samples, n_channels); skip calibration.

        NaN samples are left out of the RMS. Returns ``self``.
        """
        x = np.asarray(traces)
        if x.ndim != 2 or x.shape[0] == 0:
            raise SortingConfigError(
                "Invalid value for the 'traces' parameter: expected a non-empty 2-D array "
                f"(n_samples, n_channels), but got shape {x.shape}."
            )
        n = int(x.shape[1])
        if self._prepared and n != self._n_channels:
            raise StageCompatibilityError(
                f"ThresholdCrossings was prepared for {self._n_channels} channels, but the fit() "
                f"data has {n} channels."
            )
        sumsq = np.zeros(n)
        count = np.zeros(n, dtype=np.int64)
        nan_count = np.zeros(n, dtype=np.int64)
        data = np.ascontiguousarray(x, dtype=np.float32)
        _accumulate_power(data, 0, data.shape[0], sumsq, count, nan_count)
        if n != self._n_channels:
            self._n_channels = n
            self.reset()
        self._set_thresholds(sumsq, count)
        return self

    def recalibrate(self) -> None:
        """Forget stream-learned or fitted thresholds (given ones stay) and calibrate again."""
        self._thr = self._given
        self._cal_seen = 0
        self._cal_sumsq = np.zeros(self._n_channels)
        self._cal_count = np.zeros(self._n_channels, dtype=np.int64)
        self.reset()

    def _set_thresholds(
        self, sumsq: npt.NDArray[np.float64], count: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        with np.errstate(invalid="ignore", divide="ignore"):
            rms = np.sqrt(sumsq / count)
        rms[count == 0] = np.nan
        thr = (self.threshold_rms * rms).astype(np.float32)
        self._thr = thr
        return thr

    # -- the contract -----------------------------------------------------------------------------
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Check the channel count; emit a spike spec whose units are the channels."""
        super().prepare(upstream)
        n = int(upstream.n_channels)
        if self._thr is not None and n != self._thr.shape[0]:
            source = "the given thresholds" if self._given is not None else "fit()"
            raise StageCompatibilityError(
                f"ThresholdCrossings has {self._thr.shape[0]} channels (from {source}), but the "
                f"stage before it emits {n} channels."
            )
        if self._n_channels != n:
            self._n_channels = n
            self.recalibrate()
        self._sfreq = float(upstream.rate_hz)
        delay = float(upstream.group_delay_samples)
        self._delay = int(round(delay))
        self._prepared = True
        self.output_spec = StreamSpec(
            kind="spikes",
            n_channels=n,
            rate_hz=upstream.rate_hz,
            channel_names=upstream.channel_names,
            unit=upstream.unit,
            positions=upstream.positions,
            group_delay_samples=delay - self._delay,
            corrected_delay_samples=upstream.corrected_delay_samples + self._delay,
            origin=upstream.origin,
        )
        self.reset()
        return self.output_spec

    @property
    def _calibration_samples(self) -> int:
        return max(int(round(self.calibration_s * self._sfreq)), 1)

    def reset(self) -> None:
        """Clear the carried sample, refractory clocks and NaN counts (thresholds stay)."""
        n = self._n_channels
        self._prev = np.full(n, np.nan, dtype=np.float32)
        self._last_cross = np.full(n, _NO_CROSSING_YET, dtype=np.int64)
        self.nan_samples = np.zeros(n, dtype=np.int64)
        size = 8 * n  # grown on demand by _grow()
        self._buf_t = np.empty(size, dtype=np.int64)
        self._buf_c = np.empty(size, dtype=np.int32)
        self._buf_a = np.empty(size, dtype=np.float32)

    @property
    def status(self) -> dict[str, Any]:
        """Where the detector stands: calibration progress, NaN samples seen, dead channels."""
        calibrated = self.is_calibrated
        need = self._calibration_samples if self._sfreq else 0
        thr = self._thr
        return {
            "calibrated": calibrated,
            "calibration_progress": 1.0 if calibrated else (self._cal_seen / need if need else 0.0),
            "nan_samples": int(self.nan_samples.sum()),
            "channels_with_nan": np.flatnonzero(self.nan_samples).tolist(),
            "channels_without_threshold": (
                [] if thr is None else np.flatnonzero(np.isnan(thr)).tolist()
            ),
        }

    def process(self, chunk: SignalChunk) -> SpikeChunk | None:
        """Detect crossings in one chunk; ``None`` while calibration is still running."""
        if not self._prepared:  # used bare, without a Pipeline: prepare from the first chunk
            self.prepare(StreamSpec("signal", chunk.n_channels, chunk.sfreq))
        if chunk.n_channels != self._n_channels:
            raise StageCompatibilityError(
                f"ThresholdCrossings was prepared for {self._n_channels} channels, but got a chunk "
                f"with {chunk.n_channels} channels."
            )
        x = chunk.data
        if chunk.gap_before > 0:
            self._prev[:] = np.nan  # the sample before this one is not the one we hold
        start = 0
        thr = self._thr
        if thr is None:
            need = self._calibration_samples
            start = min(need - self._cal_seen, chunk.n_samples)
            _accumulate_power(x, 0, start, self._cal_sumsq, self._cal_count, self.nan_samples)
            self._cal_seen += start
            if start:
                self._prev[:] = x[start - 1]
            if self._cal_seen < need:
                return None
            thr = self._set_thresholds(self._cal_sumsq, self._cal_count)
        refractory = int(round(self.refractory_ms * 1e-3 * self._sfreq))
        k, row = 0, start
        while True:
            k, row = _find_crossings(
                x,
                row,
                thr,
                self._prev,
                self._last_cross,
                refractory,
                chunk.first_sample,
                self.nan_samples,
                self._buf_t,
                self._buf_c,
                self._buf_a,
                k,
            )
            if row >= chunk.n_samples:
                break
            self._grow(k)
        out_first = max(chunk.first_sample + start - self._delay, 0)
        out_last = max(chunk.last_sample - self._delay, out_first - 1)
        spikes = np.empty(k, dtype=SPIKE_DTYPE)
        if k:
            spikes["sample_index"] = self._buf_t[:k] - self._delay
            spikes["channel_index"] = self._buf_c[:k]
            spikes["unit_index"] = self._buf_c[:k]
            spikes["amplitude"] = self._buf_a[:k]
            if spikes["sample_index"][0] < out_first:
                spikes = spikes[spikes["sample_index"] >= out_first]
        invalid = self._invalid_spans(chunk, start, thr)
        return SpikeChunk(spikes, out_first, out_last, chunk.sfreq, invalid)

    def _invalid_spans(
        self, chunk: SignalChunk, start: int, thr: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int64]:
        """Sample spans (on the output's clock) where crossings could not be seen: a NaN/inf
        sample on a channel with a threshold, and the samples a gap before the chunk lost."""
        x = chunk.data[start:]
        used = np.isfinite(thr)
        spans = None
        if x.shape[0] and used.any():
            bad: npt.NDArray[np.bool_] = np.asarray(~np.isfinite(x[:, used]).all(axis=1))
            spans = mask_spans(bad, chunk.first_sample + start - self._delay)
        if chunk.gap_before > 0 and start == 0:
            lost = (
                np.array([[chunk.first_sample - chunk.gap_before, chunk.first_sample]])
                - self._delay
            )
            spans = lost if spans is None else np.concatenate([lost, spans])
        if spans is None or not spans.size:
            return np.zeros((0, 2), dtype=np.int64)
        return np.maximum(spans, 0).astype(np.int64)

    def _grow(self, keep: int) -> None:
        """Double the crossing buffers (at least one row of channels more), keeping ``keep``."""
        size = max(2 * self._buf_t.shape[0], keep + self._n_channels)
        for name in ("_buf_t", "_buf_c", "_buf_a"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[:keep] = old[:keep]
            setattr(self, name, new)
