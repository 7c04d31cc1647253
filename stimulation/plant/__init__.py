"""The simulated Parkinsonian plant: a basal-ganglia network model and its biomarkers.

- :class:`BasalGangliaNetwork`: the Rubin & Terman (2004) STN-GPe-GPi-thalamus network with the
  parameters of So, Kent & Grill (2012), compiled with numba (:mod:`stimulation.plant.network`).
- :class:`PlantRecord`: spikes, pulses and LFP proxies of a run, with the error index, relative
  beta power, firing rates and synchrony (:mod:`stimulation.plant.record`,
  :mod:`stimulation.plant.biomarkers`).
- :mod:`stimulation.plant.reference`: the same equations in plain numpy (the correctness oracle).
"""

from stimulation.plant.network import BasalGangliaNetwork
from stimulation.plant.record import PlantRecord

__all__ = ["BasalGangliaNetwork", "PlantRecord"]
