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

# --- Gymnasium environment registration --------------------------------------------------------
# Entry points are strings, so registering imports neither numba nor the network: they load on
# gymnasium.make("BasalGanglia-v0") / gymnasium.make_vec("BasalGanglia-v0", num_envs=...).
import gymnasium as _gymnasium

if "BasalGanglia-v0" not in _gymnasium.registry:
    _gymnasium.register(
        id="BasalGanglia-v0",
        entry_point="stimulation.plant.env:BasalGangliaEnv",
        vector_entry_point="stimulation.plant.vector_env:BasalGangliaVectorEnv",
        nondeterministic=False,
    )
del _gymnasium
# --- end of Gymnasium environment registration ------------------------------------------------
