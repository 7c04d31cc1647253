"""Controllers for adaptive DBS: each turns the decoded symptom into stimulation commands.

- :mod:`stimulation.controllers.base`: :class:`Controller`, the one interface (a registered stage
  from :class:`~bci.stream.StateChunk` to :class:`~bci.stream.StimCommand`, and ``act`` for the
  env).
- :mod:`stimulation.controllers.baselines`: off, continuous DBS, threshold and dual-threshold
  adaptive DBS, PI amplitude control.
- :mod:`stimulation.controllers.rl_snn`: the RL-trained spiking controller in numpy
  (:mod:`~stimulation.controllers.snn_actor`); trained by :mod:`~stimulation.controllers.training`
  (torch, Stable-Baselines3; imported only to train).
- :mod:`stimulation.controllers.evaluate`: :func:`evaluate`, the scoring every controller shares.

Every command goes through a :class:`~stimulation.safety.SafetyLimiter` before any stimulator.
"""

from stimulation.controllers.base import (
    Calibration,
    Controller,
    ControllerConfigError,
    ControllerError,
)
from stimulation.controllers.baselines import (
    ContinuousController,
    DualThresholdController,
    OffController,
    PIController,
    ThresholdController,
)
from stimulation.controllers.evaluate import (
    ENERGY_REFERENCE,
    EVALUATION_LIMITS,
    OBSERVATION_FEATURES,
    command_to_action,
    evaluate,
    make_controller,
    relative_energy,
)
from stimulation.controllers.rl_snn import RLSNNController

#: Shipped controller names -> classes (``evaluate("pi", seeds, kp=...)``).
CONTROLLERS: dict[str, type[Controller]] = {
    "off": OffController,
    "continuous": ContinuousController,
    "threshold": ThresholdController,
    "dual_threshold": DualThresholdController,
    "pi": PIController,
    "rl_snn": RLSNNController,
}

__all__ = [
    "CONTROLLERS",
    "ENERGY_REFERENCE",
    "EVALUATION_LIMITS",
    "OBSERVATION_FEATURES",
    "Calibration",
    "ContinuousController",
    "Controller",
    "ControllerConfigError",
    "ControllerError",
    "DualThresholdController",
    "OffController",
    "PIController",
    "RLSNNController",
    "ThresholdController",
    "command_to_action",
    "evaluate",
    "make_controller",
    "relative_energy",
]
