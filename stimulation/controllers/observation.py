"""What a controller sees in simulation, built the way the online loop builds it.

Online, the controller reads the symptom decoder's estimate (:mod:`decoders.symptom`): spikes of
the units sorted from the plant's virtual probe, 5-ms bins, an order-free estimate of the windowed
GPi beta. It never sees the plant's LFP. Training and evaluation give it the same:

- ``symptom_source="decoder"`` (default): the env observes the spike counts of the probe's
  nucleus (``observation="spikes"``) and one :class:`DecodedSymptom` per plant feeds the counts of
  the cells the probe records (:class:`~stimulation.plant.probe.VirtualProbe`'s choice for that
  plant's seed) to the shipped symptom decoder. The online sorter finds these cells' spikes with
  some misses; the decoder was fitted on both feeds (its module docstring), so one model serves
  both.
- ``symptom_source="plant_beta"``: the plant's own GPi beta biomarker (the relative beta power of
  its LFP proxy over a causal 0.25-s window), the hidden quantity the decoder estimates. Kept to
  measure what the decoder costs a controller.

:class:`StimulationMemory` is the controller's memory of its own recent stimulation (an
exponential average of the amplitude it asked for): a causal quantity every controller has online,
which lets a memoryless policy hold stimulation for a while and then pause to look at the
symptom, as the minimum on-time of Little et al. (2013)'s adaptive DBS does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import check_value, ensure_float
from stimulation.controllers.base import ControllerConfigError

#: Where the controller's symptom comes from (module docstring).
SYMPTOM_SOURCES: tuple[str, ...] = ("decoder", "plant_beta")
#: The probe of the shipped closed-loop sessions: 8 units in the STN, along the DBS lead's track.
PROBE_NUCLEUS = "stn"
PROBE_UNITS = 8


def env_settings(symptom_source: str, bin_s: float = 0.005) -> dict[str, Any]:
    """The :class:`~stimulation.plant.env.BasalGangliaEnv` observation settings a source needs."""
    check_value(symptom_source, SYMPTOM_SOURCES, "symptom_source", error=ControllerConfigError)
    if symptom_source == "plant_beta":
        return {"observation": "biomarkers", "features": ("beta_gpi",)}
    return {"observation": "spikes", "recorded_nuclei": (PROBE_NUCLEUS,), "bin_s": bin_s}


class DecodedSymptom:
    """The symptom decoder fed by one plant's probe (module docstring).

    Parameters
    ----------
    cells_per_nucleus : int
        Cells per nucleus of the plant (the probe records ``n_units`` of them).
    model : str or Path, optional
        Symptom decoder file (default: the shipped one).
    n_units : int
        Cells the probe records.
    """

    def __init__(
        self, cells_per_nucleus: int, model: str | Path | None = None, n_units: int = PROBE_UNITS
    ) -> None:
        from decoders.symptom import DEFAULT_MODEL, SymptomDecoder

        self.cells_per_nucleus = int(cells_per_nucleus)
        self.n_units = min(int(n_units), self.cells_per_nucleus)
        loaded = SymptomDecoder.load(DEFAULT_MODEL if model is None else model)
        if not isinstance(loaded, SymptomDecoder):
            raise ControllerConfigError(
                f"{model} is a {type(loaded).__name__} model, not a symptom decoder."
            )
        self.decoder: SymptomDecoder = loaded
        self.cells: npt.NDArray[np.int64] = np.arange(self.n_units)

    @property
    def bin_s(self) -> float:
        """Bin width the decoder expects (s)."""
        return float(self.decoder.bin_s)

    def reset(self, seed: int) -> None:
        """A new plant: the probe's cells for its ``seed``, the decoder's window emptied."""
        from stimulation.plant.probe import VirtualProbe

        probe = VirtualProbe(self.cells_per_nucleus, PROBE_NUCLEUS, self.n_units, seed=int(seed))
        self.cells = np.asarray(probe.cells, dtype=np.int64)
        self.decoder.reset()

    def update(self, counts: npt.ArrayLike) -> float:
        """One control period's counts ``(n_bins, cells_per_nucleus)`` -> the estimate."""
        c = np.asarray(counts, dtype=np.float64)
        return float(self.decoder.step_bins(c[:, self.cells])[0])


class StimulationMemory:
    """Exponential average of the amplitude a controller asked for (its own past, causal).

    ``m_k = m_{k-1} + (1 - exp(-period_s / tau_s)) (a_k - m_{k-1})`` with ``a_k`` the amplitude
    action in [0, 1] of period ``k``; 0 at a reset. ``tau_s = 0`` means no memory (:attr:`size`
    0: the observation has no memory entry).

    Parameters
    ----------
    tau_s : float
        Time constant (s), >= 0.
    period_s : float
        Control period (s), > 0.
    """

    def __init__(self, tau_s: float, period_s: float) -> None:
        err = ControllerConfigError
        self.tau_s = ensure_float(tau_s, "memory_tau_s", minimum=0.0, error=err)
        period = ensure_float(period_s, "period_s", minimum=0.0, strict_minimum=True, error=err)
        self.gain = 1.0 - math.exp(-period / self.tau_s) if self.tau_s > 0 else 0.0
        self.value = 0.0

    @property
    def size(self) -> int:
        """Entries it adds to an observation (0 or 1)."""
        return 1 if self.tau_s > 0 else 0

    def reset(self) -> None:
        self.value = 0.0

    def update(self, amplitude01: float) -> None:
        """Record the amplitude action of the period just decided."""
        a = float(amplitude01) if math.isfinite(amplitude01) else 0.0
        self.value += self.gain * (min(max(a, 0.0), 1.0) - self.value)

    def entries(self) -> list[float]:
        """The observation entries (empty without memory)."""
        return [self.value] if self.size else []
