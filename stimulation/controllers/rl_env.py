"""The closed loop as a Stable-Baselines3 vector environment, for training the RL controller.

:class:`ClosedLoopVecEnv` wraps :class:`~stimulation.plant.vector_env.BasalGangliaVectorEnv` with
exactly what :func:`stimulation.controllers.evaluate` and the online session put around the plant:
the agent's action in [0, 1] becomes a :class:`~bci.stream.StimCommand` in device units
(:func:`~stimulation.controllers.rl_snn.action_to_setting`), one
:class:`~stimulation.safety.SafetyLimiter` per plant checks it, and the plant gets what the
limiter lets out. The observation is :func:`~stimulation.controllers.rl_snn.observation_vector`
(the decoded symptom, scaled, the agent's previous action and, with ``memory_tau_s > 0``, its
memory of its own amplitude); the decoded symptom is what the online loop gives the controller,
the symptom decoder fed the spikes of the cells the plant's probe records
(:mod:`stimulation.controllers.observation`; ``symptom_source="plant_beta"`` gives the plant's own
beta biomarker instead). The reward is ``reward_scale * (-symptom - energy_weight * energy)`` with
the symptom the plant's GPi beta biomarker (or its thalamic error index) and the energy relative to continuous So-2012 DBS (:func:`~stimulation.controllers.relative_energy`).
Sub-environments reset themselves when their episode ends (SB3's convention:
``infos[i]["terminal_observation"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from bci.stream.chunks import StimCommand
from stimulation.controllers.evaluate import (
    EVALUATION_LIMITS,
    _env_kwargs,
    command_to_action,
    relative_energy,
)
from stimulation.controllers.observation import (
    StimulationMemory,
    SymptomObserver,
    check_symptom_source,
)
from stimulation.controllers.rl_snn import action_to_setting, observation_vector
from stimulation.safety import SafetyLimiter, SafetyLimits
from stimulation.safety.units import REFERENCE_FREQUENCY_HZ, REFERENCE_PULSE_WIDTH_US


def action_meta(
    limits: SafetyLimits,
    control_frequency: bool,
    frequency_range_hz: tuple[float, float] | None = None,
    frequency_hz: float = REFERENCE_FREQUENCY_HZ,
) -> dict[str, Any]:
    """The action conventions stored with a trained actor (the rate range defaults to the
    limiter's; ``frequency_hz`` is the rate of an amplitude-only actor)."""
    lo, hi = frequency_range_hz or (limits.min_frequency_hz, limits.max_frequency_hz)
    return {
        "max_amplitude_ma": limits.max_amplitude_ma,
        "frequency_range_hz": [float(lo), float(hi)],
        "frequency_hz": float(frequency_hz),
        "control_frequency": control_frequency,
        "pulse_width_us": REFERENCE_PULSE_WIDTH_US,
    }


class ClosedLoopVecEnv(VecEnv):
    """``num_envs`` plants behind limiters, as an SB3 ``VecEnv`` (module docstring).

    Parameters
    ----------
    num_envs : int
        Plants stepped side by side.
    plant : {"stationary", "fluctuating"}
        The env's plant.
    seed : int
        Seeds the first episodes (``seed + i``); later ones come from each env's generator.
    episode_s : float
        Episode length.
    energy_weight, reward_scale, symptom_scale : float
        Reward and observation scaling (module docstring).
    reward_symptom : {"beta", "error_index"}
        The symptom the reward penalises: the plant's GPi beta, or the thalamic error index
        over the same window (the simulator's measure of the motor symptom: it shapes training
        only, the observation stays the decoded beta).
    symptom_source : {"decoder", "state", "plant_beta"}
        What the agent observes (module docstring).
    memory_tau_s : float
        Time constant of the agent's memory of its own amplitude; 0: no memory entry.
    control_frequency : bool
        Whether the action sets the rate too.
    frequency_range_hz : (float, float), optional
        Rates at action 0 and 1 (default: the limiter's range).
    frequency_hz : float
        The rate of an amplitude-only agent (``control_frequency=False``).
    limits : SafetyLimits, optional
        The limiters' limits (default: evaluation's).
    """

    def __init__(
        self,
        num_envs: int = 8,
        plant: str = "stationary",
        seed: int = 10_000,
        episode_s: float = 4.0,
        energy_weight: float = 0.03,
        reward_scale: float = 10.0,
        symptom_scale: float = 10.0,
        control_frequency: bool = True,
        frequency_range_hz: tuple[float, float] | None = None,
        limits: SafetyLimits | None = None,
        env_kwargs: dict[str, Any] | None = None,
        reward_symptom: str = "beta",
        symptom_source: str = "decoder",
        memory_tau_s: float = 0.0,
        frequency_hz: float = REFERENCE_FREQUENCY_HZ,
    ) -> None:
        from stimulation.plant.vector_env import BasalGangliaVectorEnv

        self.limits = EVALUATION_LIMITS if limits is None else limits
        check_symptom_source(symptom_source)
        kwargs = _env_kwargs(self.limits, plant, dict(env_kwargs or {}))
        kwargs["episode_s"] = episode_s
        self.venv = BasalGangliaVectorEnv(
            num_envs=num_envs, n_threads=1, autoreset_mode="same_step", **kwargs
        )
        self.period_s = float(self.venv.envs[0].control_period_s)
        self.n_actions = 2 if control_frequency else 1
        self.meta = action_meta(self.limits, control_frequency, frequency_range_hz, frequency_hz)
        self.meta["symptom_scale"] = float(symptom_scale)
        self.meta["symptom_source"] = symptom_source
        self.meta["memory_tau_s"] = float(memory_tau_s)
        self.observer = SymptomObserver(symptom_source, self.venv)
        self.memories = [StimulationMemory(memory_tau_s, self.period_s) for _ in range(num_envs)]
        self.energy_weight = float(energy_weight)
        self.reward_scale = float(reward_scale)
        self.symptom_scale = float(symptom_scale)
        self.seed_base = int(seed)
        if reward_symptom not in ("beta", "error_index"):
            raise ValueError(
                "Invalid value for the 'reward_symptom' parameter. Allowed values are 'beta', "
                f"'error_index', but got {reward_symptom!r} instead."
            )
        self.reward_symptom = reward_symptom
        n_memory = self.memories[0].size
        high = np.array([10.0] + [1.0] * (self.n_actions + n_memory), dtype=np.float32)
        observation_space = gym.spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        action_space = gym.spaces.Box(0.0, 1.0, shape=(self.n_actions,), dtype=np.float32)
        self.render_mode = None
        super().__init__(num_envs, observation_space, action_space)
        self.limiters = [SafetyLimiter(self.limits, name=f"limiter-{i}") for i in range(num_envs)]
        self._previous = np.zeros((num_envs, self.n_actions))
        self._t = np.zeros(num_envs)
        self._seq = np.zeros(num_envs, dtype=np.int64)
        self._actions = np.zeros((num_envs, self.n_actions))
        # the last observed symptom: a finished episode's terminal observation (its plant is
        # reset in the same step, so its last period's record is gone)
        self._last = np.zeros(num_envs)

    # ------------------------------------------------------------------ SB3 VecEnv API
    def _restart(self, i: int, network_seed: int) -> None:
        self.limiters[i].reset(now=-self.period_s)
        self._previous[i] = 0.0
        self._t[i] = 0.0
        self._seq[i] = 0
        self.memories[i].reset()
        self.observer.reset(i, network_seed)

    def _obs(self, i: int, symptom: float) -> np.ndarray:
        vector = observation_vector(
            symptom, self._previous[i], self.symptom_scale, self.memories[i].entries()
        )
        return vector.astype(np.float32)

    def reset(self) -> np.ndarray:
        obs, info = self.venv.reset(seed=self.seed_base)
        self.seed_base += self.num_envs  # a later reset() draws other plants
        out = []
        for i in range(self.num_envs):
            self._restart(i, int(info["network_seed"][i]))
            self._last[i] = self.observer.observe(i, obs[i])
            out.append(self._obs(i, self._last[i]))
        return np.stack(out)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        env_actions = np.zeros((self.num_envs, 2), dtype=np.float32)
        energy = np.zeros(self.num_envs)
        for i in range(self.num_envs):
            a01 = np.clip(self._actions[i], 0.0, 1.0)
            amplitude, frequency = action_to_setting(a01, self.meta)
            t = float(self._t[i])
            command = StimCommand(
                amplitude, frequency, REFERENCE_PULSE_WIDTH_US, t, "rl", int(self._seq[i])
            )
            limiter = self.limiters[i]
            out = limiter.apply(command, t)
            env_actions[i] = command_to_action(out, self.limits)
            energy[i] = relative_energy(out.amplitude_ma, out.frequency_hz, out.pulse_width_us)
            self._previous[i] = a01
            self.memories[i].update(float(a01[0]))
            self._seq[i] += 1
            self._t[i] += self.period_s
        obs, _, terminated, truncated, info = self.venv.step(env_actions)
        dones = terminated | truncated
        error_index = self.reward_symptom == "error_index"
        infos: list[dict[str, Any]] = []
        observations = []
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        for i in range(self.num_envs):
            item: dict[str, Any] = {"energy": energy[i]}
            if dones[i]:
                final = info["final_info"]
                symptom = float(final["error_index" if error_index else "beta"][i])
                item["terminal_observation"] = self._obs(i, float(self._last[i]))
                item["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                self._restart(i, int(info["network_seed"][i]))
            else:
                symptom = float(info["error_index" if error_index else "beta"][i])
            item["symptom"] = symptom
            rewards[i] = self.reward_scale * (-symptom - self.energy_weight * energy[i])
            self._last[i] = self.observer.observe(i, obs[i])
            observations.append(self._obs(i, self._last[i]))
            infos.append(item)
        return np.stack(observations), rewards, dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        return [getattr(self, method_name)(*args, **kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)
