"""What a controller sees in simulation, built the way the online loop builds it.

Online, the controller reads the symptom decoder's estimate (:mod:`decoders.symptom`): spikes of
the units sorted from the plant's virtual probe, 5-ms bins, an order-free estimate of the windowed
GPi beta. It never sees the plant's LFP. Training and evaluation give it the same:

- ``symptom_source="decoder"`` (default): one :class:`DecodedSymptom` per plant bins the spikes
  of the cells the probe records (:class:`~stimulation.plant.probe.VirtualProbe`'s choice for that
  plant's seed) from each period's :class:`~stimulation.plant.PlantRecord` and feeds the shipped
  symptom decoder. Spikes that fall within ``blind_ms`` of a DBS pulse onset are left out: online
  they sit under the stimulation artifact, which the shipped sessions' artifact blanker holds
  over -0.2 to +0.5 ms of each pulse, so no sorter finds them. This matters: STN cells driven by
  DBS fire 0.2-0.75 ms after each pulse, so at therapeutic amplitudes the loop sees almost none
  of their spikes. Other sorting errors are not modelled (the decoder was fitted on true and
  sorted spikes, its module docstring).
- ``symptom_source="state"``: the Parkinsonian state (0 healthy, 1 Parkinsonian) estimated by
  the shipped state decoder (:data:`decoders.symptom.STATE_MODEL`, the same order-free features)
  from the visible spikes of a probe in the GPe (:data:`STATE_NUCLEUS`). The STN probe above is
  blind while DBS is on (its output hardly moves), so a controller fed by it cannot tell whether
  the plant still needs stimulation without stopping to look; the GPe, whose applied current
  carries most of So et al. (2012)'s Parkinsonian change, fires at about half its healthy rate
  with or without DBS (``benchmarks/train_state_decoder.py`` scores the decoder on held-out
  seeds).
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
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from bci.checks import check_value, ensure_float
from stimulation.controllers.base import ControllerConfigError
from stimulation.plant.record import PlantRecord

if TYPE_CHECKING:
    from stimulation.plant.vector_env import BasalGangliaVectorEnv

#: Where the controller's symptom comes from (module docstring).
SYMPTOM_SOURCES: tuple[str, ...] = ("decoder", "state", "plant_beta")
#: The probe of the shipped closed-loop sessions: 8 units in the STN, along the DBS lead's track.
PROBE_NUCLEUS = "stn"
PROBE_UNITS = 8
#: The decoder output each source stands for online (the runner's decoded-state column).
SOURCE_OUTPUT: dict[str, str] = {"decoder": "gpi_beta", "state": "pd_state"}
#: What each source measures (a trained actor's description of its observation).
SOURCE_QUANTITY: dict[str, str] = {
    "decoder": "GPi beta",
    "state": "Parkinsonian state",
    "plant_beta": "GPi beta",
}
#: The probe the state decoder reads (``symptom_source="state"``): 8 units in the GPe.
STATE_NUCLEUS = "gpe"


#: Spikes within this window of a pulse onset (ms) are under the artifact (module docstring).
BLIND_MS: tuple[float, float] = (-0.2, 0.5)


def check_symptom_source(symptom_source: str) -> str:
    """``symptom_source`` if it is one of :data:`SYMPTOM_SOURCES`, else a ControllerConfigError."""
    return str(
        check_value(symptom_source, SYMPTOM_SOURCES, "symptom_source", error=ControllerConfigError)
    )


def visible_spikes(
    spike_times_s: npt.NDArray[np.float64],
    pulse_times_s: npt.NDArray[np.float64],
    blind_ms: tuple[float, float] = BLIND_MS,
) -> npt.NDArray[np.float64]:
    """The spikes not within ``blind_ms`` (before, after) of any pulse onset."""
    s = np.asarray(spike_times_s, dtype=np.float64)
    p = np.sort(np.asarray(pulse_times_s, dtype=np.float64))
    if s.size == 0 or p.size == 0:
        return s
    lo, hi = blind_ms[0] / 1e3, blind_ms[1] / 1e3
    i = np.searchsorted(p, s, side="right")  # p[i - 1] <= s < p[i]
    after_previous = s - p[np.maximum(i - 1, 0)]
    before_next = p[np.minimum(i, p.size - 1)] - s
    hidden = ((i > 0) & (after_previous <= hi)) | ((i < p.size) & (before_next <= -lo))
    return s[~hidden]


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
    blind_ms : (float, float)
        Spikes this close to a pulse onset (ms before, after) are not seen.
    nucleus : str
        The probed nucleus.
    """

    def __init__(
        self,
        cells_per_nucleus: int,
        model: str | Path | None = None,
        n_units: int = PROBE_UNITS,
        blind_ms: tuple[float, float] = BLIND_MS,
        nucleus: str = PROBE_NUCLEUS,
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
        self.blind_ms = (float(blind_ms[0]), float(blind_ms[1]))
        self.nucleus = str(nucleus)

    @property
    def bin_s(self) -> float:
        """Bin width the decoder expects (s)."""
        return float(self.decoder.bin_s)

    def reset(self, seed: int) -> None:
        """A new plant: the probe's cells for its ``seed``, the decoder's window emptied."""
        from stimulation.plant.probe import VirtualProbe

        probe = VirtualProbe(self.cells_per_nucleus, self.nucleus, self.n_units, seed=int(seed))
        self.cells = np.asarray(probe.cells, dtype=np.int64)
        self.decoder.reset()

    def counts(self, record: PlantRecord) -> npt.NDArray[np.float64]:
        """Counts ``(n_bins, n_units)`` of the probe's visible spikes in ``record``'s bins."""
        n_bins = max(1, round(record.duration_s / self.bin_s))
        edges = record.t_start_s + self.bin_s * np.arange(n_bins + 1)
        spikes = record.spike_times[self.nucleus]
        pulses = record.dbs_pulse_times
        return np.stack(
            [
                np.histogram(visible_spikes(spikes[c], pulses, self.blind_ms), edges)[0]
                for c in self.cells
            ],
            axis=1,
        ).astype(np.float64)

    def update(self, record: PlantRecord) -> float:
        """The estimate after one record (a control period, or the warm-up after a reset)."""
        return float(self.decoder.step_bins(self.counts(record))[0])


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


class SymptomObserver:
    """What the controllers of a vector env observe, plant by plant (module docstring).

    Parameters
    ----------
    symptom_source : {"decoder", "plant_beta"}
        Already checked (:func:`check_symptom_source`).
    venv : BasalGangliaVectorEnv
        The plants; their env observation's first entry is the plant's beta.
    """

    def __init__(self, symptom_source: str, venv: BasalGangliaVectorEnv) -> None:
        self.venv = venv
        cells = venv.envs[0].cells_per_nucleus
        self.decoded: list[DecodedSymptom] | None = None
        if symptom_source == "decoder":
            self.decoded = [DecodedSymptom(cells) for _ in venv.envs]
        elif symptom_source == "state":
            from decoders.symptom import STATE_MODEL

            self.decoded = [
                DecodedSymptom(cells, STATE_MODEL, nucleus=STATE_NUCLEUS) for _ in venv.envs
            ]

    def reset(self, i: int, network_seed: int) -> None:
        """Plant ``i`` was reset with ``network_seed`` (its probe's cells follow the seed)."""
        if self.decoded is not None:
            self.decoded[i].reset(network_seed)

    def observe(self, i: int, env_observation: npt.ArrayLike) -> float:
        """Plant ``i``'s symptom after its last step or reset."""
        record = self.venv.envs[i].record
        if self.decoded is None or record is None:
            return float(np.asarray(env_observation).reshape(-1)[0])
        return self.decoded[i].update(record)
