"""The simulated Parkinsonian plant: a basal-ganglia network model and its biomarkers.

- :class:`BasalGangliaNetwork`: the Rubin & Terman (2004) STN-GPe-GPi-thalamus network with the
  parameters of So, Kent & Grill (2012), compiled with numba (:mod:`stimulation.plant.network`).
- :class:`Fluctuation`: the dwell and ramp times of a fluctuating plant (``plant="fluctuating"``:
  Parkinsonian symptoms that come and go, :mod:`stimulation.plant.fluctuation`).
- :class:`PlantRecord`: spikes, pulses and LFP proxies of a run, with the error index, relative
  beta power, firing rates and synchrony (:mod:`stimulation.plant.record`,
  :mod:`stimulation.plant.biomarkers`).
- :mod:`stimulation.plant.reference`: the same equations in plain numpy (the correctness oracle).
- :class:`NetworkBatch`: several networks integrated side by side in one compiled call
  (bit-identical to running them alone), what the vectorised env steps.
- :class:`BasalGangliaEnv` (``BasalGanglia-v0``) and :class:`BasalGangliaVectorEnv`: the Gymnasium
  environment and its threaded vectorised form; :class:`BiomarkerMonitor`: causal sliding-window
  biomarkers; :class:`PlantBridge`: the network behind LSL (``bci plant``). These load on first use
  (the bridge needs pylsl).
"""

from typing import Any

from stimulation.plant.fluctuation import Fluctuation
from stimulation.plant.network import BasalGangliaNetwork
from stimulation.plant.record import PlantRecord

_LAZY = {
    "BasalGangliaEnv": "stimulation.plant.env",
    "BasalGangliaVectorEnv": "stimulation.plant.vector_env",
    "BiomarkerMonitor": "stimulation.plant.monitor",
    "NetworkBatch": "stimulation.plant.batch",
    "PlantBridge": "stimulation.plant.bridge",
}

__all__ = ["BasalGangliaNetwork", "Fluctuation", "PlantRecord", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stimulation.plant' has no attribute {name!r}")
