"""The RL-trained spiking controller, run in numpy (no torch): the shipped demo controller.

Observation (what the loop has online, once per control period): the decoded symptom (the
symptom decoder's estimate of the GPi beta, :mod:`stimulation.controllers.observation`), the
controller's own previous action (amplitude, and rate with frequency control), normalised to
[0, 1], and, for a model trained with ``memory_tau_s > 0`` in its metadata, the controller's
memory of its own recent amplitude (:class:`~stimulation.controllers.observation.
StimulationMemory`). Action: the spiking actor's output in [-1, 1] (:mod:`stimulation.controllers.snn_actor`),
mapped to ``[0, max_amplitude_ma]`` mA and, with frequency control, ``[min, max]`` Hz. The
mapping and the observation layout are stored with the weights (``meta``), so a model file says
how to drive it. Trained by :mod:`stimulation.controllers.training` (torch, Stable-Baselines3
TD3) and exported to this runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.errors import StageCompatibilityError
from bci.stream.spec import StreamSpec
from stimulation.controllers.base import Controller, ControllerConfigError
from stimulation.controllers.observation import SOURCE_OUTPUT, StimulationMemory
from stimulation.controllers.snn_actor import SpikingActorWeights

#: The shipped controller the demo uses (its metadata holds the command, seed and wall time).
DEFAULT_MODEL = Path(__file__).parent / "models" / "rl_snn.npz"


def observation_vector(
    symptom: float,
    previous_action01: npt.ArrayLike,
    symptom_scale: float,
    memory: list[float] | None = None,
) -> npt.NDArray[np.float64]:
    """The actor's observation: scaled symptom, the previous action in [0, 1], then the
    memory entries (:meth:`StimulationMemory.entries`, none by default)."""
    prev = np.asarray(previous_action01, dtype=np.float64).reshape(-1)
    value = symptom * symptom_scale if np.isfinite(symptom) else 0.0
    return np.concatenate([[value], prev, memory or []])


def action_to_setting(action01: npt.ArrayLike, meta: dict[str, Any]) -> tuple[float, float]:
    """Amplitude (mA) and rate (Hz) of an action in [0, 1] (model metadata conventions)."""
    u = np.clip(np.asarray(action01, dtype=np.float64).reshape(-1), 0.0, 1.0)
    amplitude = float(u[0]) * float(meta["max_amplitude_ma"])
    if len(u) > 1:
        lo, hi = meta["frequency_range_hz"]
        return amplitude, float(lo + u[1] * (hi - lo))
    return amplitude, float(meta["frequency_hz"])


class RLSNNController(Controller, name="rl_snn"):
    """The trained spiking actor as a controller (module docstring).

    Parameters
    ----------
    model : str or Path, optional
        Actor file (:meth:`SpikingActorWeights.save`); default: the shipped one.
    **kwargs
        :class:`~stimulation.controllers.base.Controller` parameters.
    """

    def __init__(self, model: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = str(DEFAULT_MODEL if model is None else model)
        self.weights = SpikingActorWeights.load(self.model)
        meta = self.weights.meta
        self.n_actions = self.weights.n_actions
        try:  # the metadata must turn an action into a setting
            self.symptom_scale = float(meta.get("symptom_scale", 1.0))
            action_to_setting(np.zeros(self.n_actions), meta)
            self.memory = StimulationMemory(float(meta.get("memory_tau_s", 0.0)), self.period_s)
            expected = 1 + self.n_actions + self.memory.size
            if self.weights.n_obs != expected:
                raise ValueError(
                    f"it takes {self.weights.n_obs} observation entries, not {expected} "
                    "(symptom, previous action, memory)"
                )
        except (KeyError, TypeError, ValueError, IndexError, ControllerConfigError) as err:
            raise ControllerConfigError(
                f"The spiking actor file {self.model} has unusable metadata or shapes: "
                f"{type(err).__name__}: {err}"
            ) from None
        self.reset_state()

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """As :meth:`Controller.prepare`, and the decoded column must be the quantity the actor
        was trained on (its metadata's ``symptom_source``)."""
        spec = super().prepare(upstream)
        source = str(self.weights.meta.get("symptom_source", "decoder"))
        expected = SOURCE_OUTPUT.get(source)
        if expected and self.input_name and self.input_name != expected:
            raise StageCompatibilityError(
                f"The RL-SNN model {self.model} was trained on the decoded {expected!r} "
                f"(symptom_source {source!r}), but the decoder before it emits "
                f"{self.input_name!r}: give the session the decoder model it was trained with."
            )
        return spec

    def reset_state(self) -> None:
        self.previous = np.zeros(self.n_actions)
        self.memory.reset()

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        obs = observation_vector(
            self.symptom(observation), self.previous, self.symptom_scale, self.memory.entries()
        )
        action01 = (self.weights.forward(obs) + 1.0) / 2.0
        self.previous = action01
        self.memory.update(float(action01[0]))
        return action_to_setting(action01, self.weights.meta)
