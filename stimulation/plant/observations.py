"""What the agent of ``BasalGanglia-v0`` observes: the two observation types and their spaces.

- :class:`BiomarkerObservation` (``observation="biomarkers"``): a float32 vector of the features
  named in ``features``, computed over the causal sliding window of a
  :class:`~stimulation.plant.monitor.BiomarkerMonitor`: ``beta_<nucleus>`` is the relative beta
  power (13-30 Hz over 4-100 Hz) of the nucleus' LFP proxy, in [0, 1]; ``rate_<nucleus>`` the
  mean firing rate divided by ``rate_scale_hz``, clipped to [0, 10]; ``synchrony_<nucleus>``
  Golomb's chi in [0, 1]; ``error_index`` the thalamic error index clipped to [0, 10]. Undefined
  values (no cortical pulse in the window) read 0.
- :class:`SpikeObservation` (``observation="spikes"``): the spike counts of the recorded cells
  (every cell of the nuclei in ``recorded_nuclei``, nucleus by nucleus) in bins of ``bin_s`` over
  the last control period, a float32 array of shape ``(n_bins, n_cells)`` clipped to at most one
  spike per millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from bci.checks import check_value, ensure_float
from stimulation.errors import PlantParameterError
from stimulation.plant.monitor import FEATURES, BiomarkerMonitor
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.record import PlantRecord

OBSERVATIONS: tuple[str, ...] = ("biomarkers", "spikes")
DEFAULT_FEATURES: tuple[str, ...] = (
    "beta_stn",
    "beta_gpi",
    "rate_th",
    "rate_stn",
    "rate_gpe",
    "rate_gpi",
)
_FEATURE_HIGH = {"beta": 1.0, "rate": 10.0, "synchrony": 1.0, "error": 10.0}


def _names(values: Sequence[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    out = tuple(values)
    if not out:
        raise PlantParameterError(f"Invalid value for the '{name}' parameter: it is empty.")
    for value in out:
        check_value(value, allowed, name, error=PlantParameterError)
    return out


class BiomarkerObservation:
    """Sliding-window biomarkers as a float32 vector (module docstring).

    Parameters
    ----------
    features : sequence of str
        Names from :data:`stimulation.plant.monitor.FEATURES`, in observation order.
    rate_scale_hz : float
        Divisor of the ``rate_*`` features.
    """

    def __init__(self, features: Sequence[str], rate_scale_hz: float) -> None:
        self.features = _names(features, FEATURES, "features")
        self.rate_scale_hz = ensure_float(
            rate_scale_hz, "rate_scale_hz", minimum=0.0, strict_minimum=True,
            error=PlantParameterError,
        )  # fmt: skip
        high = np.array([_FEATURE_HIGH[f.partition("_")[0]] for f in self.features], np.float32)
        self.space = spaces.Box(np.zeros_like(high), high, shape=high.shape, dtype=np.float32)
        # rates are observed in units of rate_scale_hz (x / 1.0 is x exactly)
        self._divisor = np.array(
            [self.rate_scale_hz if f.startswith("rate_") else 1.0 for f in self.features]
        )

    def observe(self, monitor: BiomarkerMonitor) -> NDArray[np.float32]:
        """The observation from the monitor's current window."""
        values = monitor.features(self.features) / self._divisor
        values[~np.isfinite(values)] = 0.0
        return np.clip(values, self.space.low, self.space.high).astype(np.float32)


class SpikeObservation:
    """Binned spike counts of the recorded cells over the last control period (module docstring).

    Parameters
    ----------
    recorded_nuclei : sequence of str
        Nuclei whose cells are observed, in column order.
    cells_per_nucleus : int
        Cells of each nucleus.
    bin_s : float
        Bin width; must divide ``control_period_s``.
    control_period_s : float
        Length of the observed period.
    """

    def __init__(
        self,
        recorded_nuclei: Sequence[str],
        cells_per_nucleus: int,
        bin_s: float,
        control_period_s: float,
    ) -> None:
        self.recorded_nuclei = _names(recorded_nuclei, NUCLEI, "recorded_nuclei")
        self.bin_s = ensure_float(
            bin_s, "bin_s", minimum=0.0, strict_minimum=True, error=PlantParameterError
        )
        self.n_bins = int(round(control_period_s / self.bin_s))
        if self.n_bins < 1 or abs(self.n_bins * self.bin_s - control_period_s) > 1e-9:
            raise PlantParameterError(
                f"Invalid value for the 'bin_s' parameter: {self.bin_s} s does not divide the "
                f"control period ({control_period_s} s)."
            )
        n_cells = cells_per_nucleus * len(self.recorded_nuclei)
        self.max_count = float(max(1, int(np.ceil(self.bin_s * 1000.0))))
        self.space = spaces.Box(0.0, self.max_count, shape=(self.n_bins, n_cells), dtype=np.float32)

    def observe(self, rec: PlantRecord) -> NDArray[np.float32]:
        """The observation of the period that ends where ``rec`` ends."""
        t1 = rec.t_stop_s
        t0 = t1 - self.n_bins * self.bin_s
        columns = []
        for nu in self.recorded_nuclei:
            for cell in rec.spike_times[nu]:
                columns.append(np.asarray(cell, dtype=np.float64))
        counts = np.zeros(self.space.shape, dtype=np.float32)
        for j, spikes in enumerate(columns):
            idx = np.floor((spikes[(spikes >= t0) & (spikes < t1)] - t0) / self.bin_s)
            idx = np.minimum(idx.astype(np.int64), self.n_bins - 1)
            counts[:, j] = np.bincount(idx, minlength=self.n_bins)[: self.n_bins]
        return np.minimum(counts, self.max_count)
