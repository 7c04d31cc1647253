"""Sliding-window biomarkers of the basal-ganglia plant, updated one record at a time.

The Gymnasium environment (:mod:`stimulation.plant.env`) and the LSL bridge
(:mod:`stimulation.plant.bridge`) both see the plant through consecutive
:class:`~stimulation.plant.PlantRecord` objects, one per control period, and both need the same
causal biomarkers over the last ``window_s`` seconds: relative beta power of each nucleus' LFP
proxy, mean firing rates, the thalamic error index and synchrony. :class:`BiomarkerMonitor` keeps
just enough of the past to compute them (the last ``window_s`` of LFP and spikes), so its memory
and cost per update do not grow with the length of a run.

An update shifts the record's LFP into a preallocated window buffer and adds its spikes to running
counts per nucleus; the relative beta power of all nuclei is then one real FFT call over the
buffer's rows and the error index one sort and search over the window's pooled thalamic spikes.
Every number is the same, bit for bit, as the straightforward computation over the window record
(``tests/stimulation/test_monitor.py`` checks it): rows are reduced one by one in the order of a
1-D call, and the spike counts are integers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import get_window

from bci.checks import check_value, ensure_float, ensure_int
from stimulation.errors import PlantParameterError
from stimulation.plant import biomarkers
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.record import PlantRecord

#: Names of the features :meth:`BiomarkerMonitor.features` computes.
FEATURES: tuple[str, ...] = (
    *(f"beta_{nu}" for nu in NUCLEI),
    *(f"rate_{nu}" for nu in NUCLEI),
    *(f"synchrony_{nu}" for nu in NUCLEI),
    "error_index",
)


def _check_feature(name: str) -> str:
    return str(check_value(name, FEATURES, "features", error=PlantParameterError))


def _error_index_pooled(
    cells: NDArray[np.intp],
    times: NDArray[np.float64],
    n_cells: int,
    smc_pulse_times: NDArray[np.float64],
    t_start_s: float,
    t_stop_s: float,
    window_s: float = biomarkers.EI_WINDOW_S,
) -> float:
    """:func:`stimulation.plant.biomarkers.error_index` of spikes given pooled, vectorised.

    ``times[i]`` is a spike of cell ``cells[i]``; every spike must be >= ``t_start_s``, in any
    order. Same rules and result: the spikes go into one sorted array keyed
    ``offset[cell] + (t - base)``, so one ``searchsorted`` answers every (cell, pulse) query (the
    key ranges of the cells are disjoint and in cell order).
    """
    pulses, nxt = biomarkers.scored_pulses(smc_pulse_times, t_start_s, t_stop_s, window_s)
    if pulses.size == 0 or n_cells == 0:
        return float("nan")
    base = t_start_s - 1.0
    span = t_stop_s - base + 1.0
    offsets = span * np.arange(n_cells, dtype=np.float64)
    keys = np.sort(offsets[cells] + (times - base))
    off = offsets[:, None]
    at = np.searchsorted(keys, off + (pulses - base), side="left")
    end = np.searchsorted(keys, off + (pulses + window_s - base), side="left")
    stop = np.searchsorted(keys, off + (nxt - base), side="left")
    errors = int(np.count_nonzero(end - at != 1)) + int(np.maximum(stop - end, 0).sum())
    return errors / (pulses.size * n_cells)


def _as_slice(mask: NDArray[np.bool_]) -> slice:
    """The slice of the True entries of a mask that holds one run of them (or none)."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return slice(0, 0)
    if idx[-1] - idx[0] + 1 != idx.size:
        raise AssertionError("a frequency band is not one run of FFT bins")
    return slice(int(idx[0]), int(idx[-1]) + 1)


@dataclass
class _Period:
    t_start_s: float
    t_stop_s: float
    spikes: dict[str, list[NDArray[np.float64]]]
    pooled: dict[str, NDArray[np.float64]]  # all cells' spikes of a nucleus, for counting
    cortex_pulse_times: NDArray[np.float64]
    th_cells: NDArray[np.intp]  # the cell of each spike of pooled["th"]


class BiomarkerMonitor:
    """Biomarkers over the last ``window_s`` seconds of a plant run fed record by record.

    Parameters
    ----------
    lfp_sfreq : float
        Sampling rate of the records' LFP proxy (Hz).
    window_s : float
        Length of the sliding window, > 0. Relative beta power is resolved to ``1 / window_s`` Hz
        (Welch with one Hann segment of at most 1 s), so windows under 0.2 s blur the beta band.

    Notes
    -----
    Until ``window_s`` of signal has been fed, every biomarker covers what there is.
    Biomarkers that are undefined over the window (beta power of a flat or too-short LFP, an error
    index with no cortical pulse, a synchrony with no spikes) come back as NaN.
    """

    def __init__(self, lfp_sfreq: float, window_s: float = 0.25) -> None:
        self._getters: dict[tuple[str, ...], list[Callable[[], float]]] = {}
        err = PlantParameterError
        self.lfp_sfreq = ensure_float(
            lfp_sfreq, "lfp_sfreq", minimum=0.0, strict_minimum=True, error=err
        )
        self.window_s = ensure_float(
            window_s, "window_s", minimum=0.0, strict_minimum=True, error=err
        )
        self.window_samples = ensure_int(
            int(round(self.window_s * self.lfp_sfreq)), "window_s * lfp_sfreq", minimum=8, error=err
        )
        if biomarkers.TOTAL_BAND_HZ[1] >= self.lfp_sfreq / 2:
            raise PlantParameterError(
                f"Invalid value for the 'lfp_sfreq' parameter: beta power needs the band up to "
                f"{biomarkers.TOTAL_BAND_HZ[1]} Hz below Nyquist, but got {self.lfp_sfreq} Hz."
            )
        self.reset()

    def reset(self) -> None:
        """Forget everything fed so far."""
        # the last ``window_samples`` of each nucleus' LFP, oldest first, right-aligned: the
        # window is ``_lfp[:, w - _lfp_fill:]`` (contiguous rows, so sums are those of a copy)
        self._lfp = np.zeros((len(NUCLEI), self.window_samples), dtype=np.float64)
        self._lfp_fill = 0
        self._periods: deque[_Period] = deque()
        self._n_spikes = dict.fromkeys(NUCLEI, 0)  # spikes of the periods held, per nucleus
        self.t_s = float("nan")
        self.n_cells = 0
        self._cache: dict[str, Any] = {}
        self._fft_n = -1

    # ------------------------------------------------------------------ feeding
    def update(self, record: PlantRecord) -> None:
        """Append the next record (it must start where the previous one stopped)."""
        if self._periods and abs(record.t_start_s - self.t_s) > 1e-9:
            raise PlantParameterError(
                f"Records are not consecutive: the monitor is at {self.t_s} s and the next "
                f"record starts at {record.t_start_s} s."
            )
        if record.lfp_sfreq != self.lfp_sfreq:
            raise PlantParameterError(
                f"The record's LFP rate ({record.lfp_sfreq} Hz) differs from the monitor's "
                f"({self.lfp_sfreq} Hz)."
            )
        self._push_lfp(record)
        spikes = {nu: list(record.spike_times[nu]) for nu in NUCLEI}
        pooled = {nu: np.concatenate([np.zeros(0), *spikes[nu]]) for nu in NUCLEI}
        th_sizes = [len(s) for s in spikes["th"]]
        self._periods.append(
            _Period(
                record.t_start_s,
                record.t_stop_s,
                spikes,
                pooled,
                np.asarray(record.cortex_pulse_times, dtype=np.float64),
                np.repeat(np.arange(len(th_sizes)), th_sizes),
            )
        )
        for nu in NUCLEI:
            self._n_spikes[nu] += pooled[nu].size
        self.t_s = record.t_stop_s
        self.n_cells = record.n_cells
        self._cache = {}
        t_from = self.t_s - self.window_s
        while self._periods and self._periods[0].t_stop_s <= t_from + 1e-12:
            gone = self._periods.popleft()
            for nu in NUCLEI:
                self._n_spikes[nu] -= gone.pooled[nu].size

    def _push_lfp(self, record: PlantRecord) -> None:
        """Shift the record's LFP samples into the right end of the window buffer."""
        w = self.window_samples
        new = [np.asarray(record.lfp[nu]) for nu in NUCLEI]
        m = min(min(x.size for x in new), w)
        if m == 0:
            return
        buf = self._lfp
        if m < w:
            buf[:, : w - m] = buf[:, m:].copy()
        for row, x in enumerate(new):
            buf[row, w - m :] = x[x.size - m :]
        self._lfp_fill = min(w, self._lfp_fill + m)

    # ------------------------------------------------------------------ window
    @property
    def window_start_s(self) -> float:
        """Start of the window the biomarkers cover (later than ``t_s - window_s`` at first)."""
        if not self._periods:
            raise PlantParameterError("The monitor has not been fed a record yet.")
        return max(self._periods[0].t_start_s, self.t_s - self.window_s)

    def _spikes(self, nucleus: str) -> list[NDArray[np.float64]]:
        """Each cell's spike times in the window (cached until the next update)."""
        key = f"spikes_{nucleus}"
        cached = self._cache.get(key)
        if cached is None:
            t0 = self.window_start_s
            cached = []
            for cell in range(self.n_cells):
                s = np.concatenate([p.spikes[nucleus][cell] for p in self._periods])
                cached.append(s[s >= t0])
            self._cache[key] = cached
        return cached

    # ------------------------------------------------------------------ biomarkers
    def beta_power(self, nucleus: str = "gpi") -> float:
        """Relative beta power (13-30 Hz over 4-100 Hz) of the nucleus' LFP proxy in the window.

        The same number as :func:`stimulation.plant.biomarkers.relative_beta_power` of the window
        with one Welch segment of the window's length (Hann, mean removed), computed as one real
        FFT with the window and band masks kept from call to call (Welch's scaling cancels in the
        ratio).
        """
        key = f"beta_{self._nucleus(nucleus)}"
        if key not in self._cache:
            if self._lfp_fill >= 8:
                # every nucleus in one FFT call: each row's numbers are those of its own call
                x = self._lfp[:, self.window_samples - self._lfp_fill :]
                for nu, value in zip(NUCLEI, self._relative_beta(x), strict=True):
                    self._cache[f"beta_{nu}"] = value
            else:
                self._cache[key] = float("nan")
        return float(self._cache[key])

    def _relative_beta(self, x: NDArray[np.float64]) -> list[float]:
        """Relative beta power of each row of ``x`` (one LFP per row, each row contiguous).

        Each row's numbers are those of a 1-D call on that row alone: the mean, the FFT and the
        band sums (over contiguous slices of contiguous rows) run row by row in the same order.
        """
        n = x.shape[-1]
        if self._fft_n != n:
            freqs = np.fft.rfftfreq(n, 1.0 / self.lfp_sfreq)
            lo, hi = biomarkers.BETA_BAND_HZ
            t_lo, t_hi = biomarkers.TOTAL_BAND_HZ
            self._hann = get_window("hann", n)
            self._band = _as_slice((freqs >= lo) & (freqs <= hi))
            self._total = _as_slice((freqs >= t_lo) & (freqs <= t_hi))
            self._fft_n = n
        spec = np.fft.rfft(self._hann * (x - np.add.reduce(x, axis=-1, keepdims=True) / n), axis=-1)
        power = spec.real * spec.real + spec.imag * spec.imag
        totals = np.add.reduce(power[:, self._total], axis=-1)
        bands = np.add.reduce(power[:, self._band], axis=-1)
        return [
            float(band) / float(total) if total > 0.0 else float("nan")
            for band, total in zip(bands.tolist(), totals.tolist(), strict=True)
        ]

    def firing_rate_hz(self, nucleus: str) -> float:
        """Mean firing rate (Hz) of the nucleus' cells in the window."""
        t0 = self.window_start_s
        nucleus = self._nucleus(nucleus)
        if self.n_cells == 0 or self.t_s <= t0:
            return float("nan")
        count = self._n_spikes[nucleus]
        for p in self._periods:  # only the oldest period can straddle the window's start
            if p.t_start_s >= t0:
                break
            pooled = p.pooled[nucleus]
            count -= pooled.size - int(np.count_nonzero(pooled >= t0))
        return count / ((self.t_s - t0) * self.n_cells)

    def error_index(self) -> float:
        """Thalamic error index (So et al. 2012) of the cortical pulses in the window."""
        if "error_index" not in self._cache:
            t0 = self.window_start_s
            periods = self._periods
            pulses = np.concatenate([p.cortex_pulse_times for p in periods])
            times = np.concatenate([p.pooled["th"] for p in periods])
            cells = np.concatenate([p.th_cells for p in periods])
            keep = times >= t0
            self._cache["error_index"] = _error_index_pooled(
                cells[keep], times[keep], self.n_cells, pulses, t0, self.t_s
            )
        return float(self._cache["error_index"])

    def synchrony(self, nucleus: str, bin_s: float = 0.01) -> float:
        """Golomb's chi of the nucleus' spike counts in bins of ``bin_s`` over the window."""
        t0 = self.window_start_s
        return biomarkers.golomb_chi(self._spikes(self._nucleus(nucleus)), t0, self.t_s, bin_s)

    def value(self, feature: str) -> float:
        """One feature by name (see :data:`FEATURES`): ``beta_<nucleus>``, ``rate_<nucleus>``
        (Hz), ``synchrony_<nucleus>`` or ``error_index``."""
        kind, _, nucleus = _check_feature(feature).partition("_")
        if kind == "beta":
            return self.beta_power(nucleus)
        if kind == "rate":
            return self.firing_rate_hz(nucleus)
        if kind == "synchrony":
            return self.synchrony(nucleus)
        return self.error_index()

    def features(self, names: tuple[str, ...]) -> NDArray[np.float64]:
        """The named features as a float64 vector, in the given order."""
        getters = self._getters.get(names)
        if getters is None:  # checked once per tuple of names
            getters = [self._getter(n) for n in names]
            self._getters[names] = getters
        return np.array([get() for get in getters], dtype=np.float64)

    def _getter(self, feature: str) -> Callable[[], float]:
        kind, _, nucleus = _check_feature(feature).partition("_")
        if kind == "beta":
            return partial(self.beta_power, nucleus)
        if kind == "rate":
            return partial(self.firing_rate_hz, nucleus)
        if kind == "synchrony":
            return partial(self.synchrony, nucleus)
        return self.error_index

    @staticmethod
    def _nucleus(name: str) -> str:
        return str(check_value(name, NUCLEI, "nucleus", error=PlantParameterError))
