"""What acts on the brain, and the simulated brain.

- :mod:`stimulation.pulses`: pulse trains in physical (or model) units, charge and energy.
- :mod:`stimulation.plant`: the Rubin & Terman (2004) / So, Kent & Grill (2012) basal-ganglia
  network model compiled with numba, its biomarkers (error index, beta power), and its
  Gymnasium environment.

Kept light: importing :mod:`stimulation` imports neither numba kernels nor torch.
"""

from stimulation.errors import PlantParameterError, PulseParameterError, StimulationError
from stimulation.pulses import PulseTrain

__all__ = ["PlantParameterError", "PulseParameterError", "PulseTrain", "StimulationError"]

# --- Gymnasium environment registration (owned by the plant-env engineer) ---------------------
# Place the `gymnasium.register(...)` call for the plant environment here.
# --- end of Gymnasium environment registration ------------------------------------------------
