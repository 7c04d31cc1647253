"""Sliding-window biomarkers of the basal-ganglia plant, updated one record at a time.

The Gymnasium environment (:mod:`stimulation.plant.env`) and the LSL bridge
(:mod:`stimulation.plant.bridge`) both see the plant through consecutive
:class:`~stimulation.plant.PlantRecord` objects, one per control period, and both need the same
causal biomarkers over the last ``window_s`` seconds: relative beta power of each nucleus' LFP
proxy, mean firing rates, the thalamic error index and synchrony. :class:`BiomarkerMonitor` keeps
just enough of the past to compute them (the last ``window_s`` of LFP and spikes), so its memory
and cost per update do not grow with the length of a run.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bci._checks import ensure_float, ensure_int
from bci.errors import ConfigError
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
    if name not in FEATURES:
        options = ", ".join(repr(f) for f in FEATURES)
        raise PlantParameterError(
            f"Invalid value for the 'features' parameter. Allowed values are {options}, "
            f"but got {name!r} instead."
        )
    return name


@dataclass
class _Period:
    t_start_s: float
    t_stop_s: float
    spikes: dict[str, list[NDArray[np.float64]]]
    cortex_pulse_times: NDArray[np.float64]


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
        try:
            self.lfp_sfreq = ensure_float(lfp_sfreq, "lfp_sfreq", minimum=0.0, strict_minimum=True)
            self.window_s = ensure_float(window_s, "window_s", minimum=0.0, strict_minimum=True)
            self.window_samples = ensure_int(
                int(round(self.window_s * self.lfp_sfreq)), "window_s * lfp_sfreq", minimum=8
            )
        except ConfigError as err:
            raise PlantParameterError(str(err)) from None
        self.reset()

    def reset(self) -> None:
        """Forget everything fed so far."""
        self._lfp: dict[str, NDArray[np.float64]] = {nu: np.zeros(0) for nu in NUCLEI}
        self._periods: deque[_Period] = deque()
        self.t_s = float("nan")
        self.n_cells = 0

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
        w = self.window_samples
        for nu in NUCLEI:
            lfp = np.asarray(record.lfp[nu], dtype=np.float64)
            self._lfp[nu] = np.concatenate([self._lfp[nu][-w:], lfp])[-w:]
        self._periods.append(
            _Period(
                record.t_start_s,
                record.t_stop_s,
                {nu: list(record.spike_times[nu]) for nu in NUCLEI},
                np.asarray(record.cortex_pulse_times, dtype=np.float64),
            )
        )
        self.t_s = record.t_stop_s
        self.n_cells = record.n_cells
        t_from = self.t_s - self.window_s
        while self._periods and self._periods[0].t_stop_s <= t_from + 1e-12:
            self._periods.popleft()

    # ------------------------------------------------------------------ window
    @property
    def window_start_s(self) -> float:
        """Start of the window the biomarkers cover (later than ``t_s - window_s`` at first)."""
        if not self._periods:
            raise PlantParameterError("The monitor has not been fed a record yet.")
        return max(self._periods[0].t_start_s, self.t_s - self.window_s)

    def _spikes(self, nucleus: str, t0: float) -> list[NDArray[np.float64]]:
        out = []
        for cell in range(self.n_cells):
            s = np.concatenate([p.spikes[nucleus][cell] for p in self._periods])
            out.append(s[s >= t0])
        return out

    # ------------------------------------------------------------------ biomarkers
    def beta_power(self, nucleus: str = "gpi") -> float:
        """Relative beta power (13-30 Hz over 4-100 Hz) of the nucleus' LFP proxy in the window."""
        x = self._lfp[self._nucleus(nucleus)]
        if x.size < 8:
            return float("nan")
        return biomarkers.relative_beta_power(x, self.lfp_sfreq, segment_s=self.window_s)

    def firing_rate_hz(self, nucleus: str) -> float:
        """Mean firing rate (Hz) of the nucleus' cells in the window."""
        t0 = self.window_start_s
        return biomarkers.firing_rate_hz(self._spikes(self._nucleus(nucleus), t0), t0, self.t_s)

    def error_index(self) -> float:
        """Thalamic error index (So et al. 2012) of the cortical pulses in the window."""
        t0 = self.window_start_s
        pulses = np.concatenate([p.cortex_pulse_times for p in self._periods])
        return biomarkers.error_index(self._spikes("th", t0), pulses, t0, self.t_s)

    def synchrony(self, nucleus: str, bin_s: float = 0.01) -> float:
        """Golomb's chi of the nucleus' spike counts in bins of ``bin_s`` over the window."""
        t0 = self.window_start_s
        return biomarkers.golomb_chi(self._spikes(self._nucleus(nucleus), t0), t0, self.t_s, bin_s)

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
        return np.array([self.value(n) for n in names], dtype=np.float64)

    @staticmethod
    def _nucleus(name: str) -> str:
        if name not in NUCLEI:
            options = ", ".join(repr(n) for n in NUCLEI)
            raise PlantParameterError(
                f"Invalid value for the 'nucleus' parameter. Allowed values are {options}, "
                f"but got {name!r} instead."
            )
        return name
