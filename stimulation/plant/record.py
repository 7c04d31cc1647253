"""What one run of the basal-ganglia plant produced: spikes, pulses, LFP proxies, and biomarkers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bci.checks import check_value
from stimulation.errors import PlantParameterError
from stimulation.plant import biomarkers
from stimulation.plant.parameters import NUCLEI


def _nucleus(name: str) -> str:
    return check_value(name, NUCLEI, "nucleus", error=PlantParameterError)


@dataclass
class PlantRecord:
    """Output of :meth:`BasalGangliaNetwork.run` or :meth:`~BasalGangliaNetwork.step`.

    Attributes
    ----------
    t_start_s, t_stop_s : float
        Simulated interval (absolute simulated time, seconds).
    spike_times : dict
        Nucleus ("th", "stn", "gpe", "gpi") -> list (one per cell) of float64 arrays of spike times
        in seconds. Thalamic spikes are upward crossings of -40 mV, the others of -10 mV, linearly
        interpolated between integration steps.
    cortex_pulse_times : numpy.ndarray
        Onsets (s) of the sensorimotor-cortex pulses to the thalamus in ``[t_start_s, t_stop_s)``.
    dbs_pulse_times : numpy.ndarray
        Onsets (s) of the DBS pulses delivered in ``[t_start_s, t_stop_s)``.
    lfp : dict
        Nucleus -> float32 array: the LFP proxy, the summed synaptic currents (uA/cm2) onto the
        nucleus' cells, averaged over each sample period of ``1 / lfp_sfreq``.
    lfp_sfreq : float
        Sampling rate of ``lfp`` (Hz).
    lfp_t_start_s : float
        Start of the first LFP sample period.
    """

    t_start_s: float
    t_stop_s: float
    spike_times: dict[str, list[NDArray[np.float64]]]
    cortex_pulse_times: NDArray[np.float64]
    dbs_pulse_times: NDArray[np.float64]
    lfp: dict[str, NDArray[np.float32]]
    lfp_sfreq: float
    lfp_t_start_s: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        if np.isnan(self.lfp_t_start_s):
            self.lfp_t_start_s = self.t_start_s

    @property
    def duration_s(self) -> float:
        """Simulated duration in seconds."""
        return self.t_stop_s - self.t_start_s

    @property
    def n_cells(self) -> int:
        """Cells per nucleus."""
        return len(self.spike_times["th"])

    def _window(self, discard_s: float) -> tuple[float, float]:
        if not np.isfinite(discard_s) or discard_s < 0:
            raise PlantParameterError(f"discard_s must be >= 0, but got {discard_s}.")
        t0 = self.t_start_s + discard_s
        if t0 >= self.t_stop_s:
            raise PlantParameterError(
                f"discard_s ({discard_s} s) leaves nothing of a {self.duration_s:g} s record."
            )
        return t0, self.t_stop_s

    # ------------------------------------------------------------------ biomarkers
    def error_index(self, discard_s: float = 0.0) -> float:
        """Thalamic error index of So et al. (2012) after ``discard_s``; see
        :func:`stimulation.plant.biomarkers.error_index`."""
        t0, t1 = self._window(discard_s)
        return biomarkers.error_index(self.spike_times["th"], self.cortex_pulse_times, t0, t1)

    def lfp_segment(self, nucleus: str = "gpi", discard_s: float = 0.0) -> NDArray[np.float32]:
        """The nucleus' LFP proxy from ``t_start_s + discard_s`` on."""
        t0, _ = self._window(discard_s)
        first = int(np.ceil((t0 - self.lfp_t_start_s) * self.lfp_sfreq - 1e-6))
        return self.lfp[_nucleus(nucleus)][max(first, 0) :]

    def beta_power(self, nucleus: str = "gpi", discard_s: float = 0.0) -> float:
        """Relative beta power of the nucleus' LFP proxy: 13-30 Hz over 4-100 Hz (Welch, 1-s
        Hann segments); see :func:`stimulation.plant.biomarkers.relative_beta_power`."""
        return biomarkers.relative_beta_power(self.lfp_segment(nucleus, discard_s), self.lfp_sfreq)

    def firing_rates(self, discard_s: float = 0.0) -> dict[str, float]:
        """Mean firing rate (Hz) of each nucleus after ``discard_s``."""
        t0, t1 = self._window(discard_s)
        return {nu: biomarkers.firing_rate_hz(self.spike_times[nu], t0, t1) for nu in NUCLEI}

    def synchrony(self, nucleus: str = "gpi", discard_s: float = 0.0, bin_s: float = 0.01) -> float:
        """Golomb's chi of the nucleus' binned spike counts (bins of ``bin_s``): 1 for identical
        trains, about ``1/sqrt(n_cells)`` for independent ones; see
        :func:`stimulation.plant.biomarkers.golomb_chi`."""
        t0, t1 = self._window(discard_s)
        return biomarkers.golomb_chi(self.spike_times[_nucleus(nucleus)], t0, t1, bin_s)

    # ------------------------------------------------------------------ joining
    @classmethod
    def concatenate(cls, records: Sequence[PlantRecord]) -> PlantRecord:
        """Join consecutive records (each starting where the previous one stopped).

        Raises
        ------
        PlantParameterError
            On an empty sequence, a gap or overlap between records, or different cell counts or
            LFP rates.
        """
        records = list(records)
        if not records:
            raise PlantParameterError("concatenate needs at least one PlantRecord.")
        first = records[0]
        for prev, rec in zip(records[:-1], records[1:], strict=True):
            if abs(rec.t_start_s - prev.t_stop_s) > 1e-9:
                raise PlantParameterError(
                    f"Records are not consecutive: one stops at {prev.t_stop_s} s and the next "
                    f"starts at {rec.t_start_s} s."
                )
            if rec.n_cells != first.n_cells or rec.lfp_sfreq != first.lfp_sfreq:
                raise PlantParameterError(
                    "Records differ in cells per nucleus or LFP sampling rate."
                )
        spikes = {
            nu: [
                np.concatenate([r.spike_times[nu][i] for r in records])
                for i in range(first.n_cells)
            ]
            for nu in NUCLEI
        }
        return cls(
            t_start_s=first.t_start_s,
            t_stop_s=records[-1].t_stop_s,
            spike_times=spikes,
            cortex_pulse_times=np.concatenate([r.cortex_pulse_times for r in records]),
            dbs_pulse_times=np.concatenate([r.dbs_pulse_times for r in records]),
            lfp={nu: np.concatenate([r.lfp[nu] for r in records]) for nu in NUCLEI},
            lfp_sfreq=first.lfp_sfreq,
            lfp_t_start_s=first.lfp_t_start_s,
        )
