"""Train the RL spiking controller with Stable-Baselines3 TD3 (needs the train extra: torch, SB3).

:func:`train` builds the closed loop (:class:`~stimulation.controllers.rl_env.ClosedLoopVecEnv`),
a TD3 agent whose actor is spiking (:class:`~stimulation.controllers.spiking_policy.
SpikingTD3Policy`), learns for ``total_steps`` transitions, and writes into ``out_dir``:

- ``actor.npz``: the trained actor for the numpy runtime
  (:class:`~stimulation.controllers.snn_actor.SpikingActorWeights`), with the command, seed,
  configuration and wall time in its metadata;
- ``checkpoints/actor_<steps>.npz`` every ``checkpoint_every`` transitions;
- ``curve.csv`` and ``curve.png``: mean reward, symptom and energy per block of transitions.

Configuration: :class:`TrainConfig` (a YAML file of its fields for ``bci train-controller``).
Training integrates the plant at ``dt_ms=0.025`` by default, the largest step that keeps the
model's behaviour (``benchmarks/bench_plant_env.py`` states the check), 2.5 times fewer steps than
So et al.'s 0.01 ms; evaluation (:func:`~stimulation.controllers.evaluate`) runs at 0.01 ms, so a
policy is always scored on the reference plant.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from bci.checks import check_value, ensure_float, ensure_int
from stimulation.controllers.base import ControllerConfigError
from stimulation.controllers.evaluate import PLANTS
from stimulation.controllers.observation import SOURCE_QUANTITY, check_symptom_source
from stimulation.controllers.snn_actor import SpikingActorWeights
from stimulation.safety.units import REFERENCE_FREQUENCY_HZ


@dataclass
class TrainConfig:
    """Settings of one training run (every field may appear in the YAML config)."""

    total_steps: int = 30_000
    seed: int = 0
    n_envs: int = 8
    plant: str = "fluctuating"
    episode_s: float = 4.0
    energy_weight: float = 0.03
    reward_symptom: str = "beta"
    symptom_source: str = "decoder"
    memory_tau_s: float = 0.0
    reward_scale: float = 10.0
    symptom_scale: float = 10.0
    control_frequency: bool = True
    frequency_range_hz: tuple[float, float] = (10.0, 250.0)
    frequency_hz: float = REFERENCE_FREQUENCY_HZ
    learning_rate: float = 1e-3
    buffer_size: int = 100_000
    batch_size: int = 256
    learning_starts: int = 1_000
    gamma: float = 0.98
    tau: float = 0.005
    action_noise: float = 0.15
    action_noise_theta: float = 0.0
    gradient_steps: int = 4
    critic_arch: tuple[int, ...] = (256, 256)
    n_pop: int = 10
    hidden: tuple[int, ...] = (64, 64)
    n_out: int = 10
    substeps: int = 5
    checkpoint_every: int = 5_000
    log_every: int = 1_000
    env_seed: int = 10_000
    dt_ms: float = 0.025

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from a mapping; unknown keys are named."""
        known = {f.name: f for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ControllerConfigError(
                    f"Unknown training setting {key!r}. Known settings are "
                    f"{', '.join(sorted(known))}."
                )
        cfg: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**cfg)

    def __post_init__(self) -> None:
        """Every setting checked by name before any plant or network is built."""
        err = ControllerConfigError
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise err(
                        f"Invalid value for the '{f.name}' parameter: expected true or false."
                    )
            elif isinstance(default, int):
                setattr(self, f.name, ensure_int(value, f.name, minimum=0, error=err))
            elif isinstance(default, float):
                setattr(self, f.name, ensure_float(value, f.name, minimum=0.0, error=err))
            elif isinstance(default, tuple):
                if not isinstance(value, (tuple, list)) or len(value) == 0:
                    raise err(f"Invalid value for the '{f.name}' parameter: expected a list.")
                checked = ensure_int if isinstance(default[0], int) else ensure_float
                setattr(
                    self, f.name, tuple(checked(v, f.name, minimum=0, error=err) for v in value)
                )
        for name in ("total_steps", "n_envs", "batch_size", "log_every", "checkpoint_every"):
            ensure_int(getattr(self, name), name, minimum=1, error=err)
        ensure_float(self.frequency_hz, "frequency_hz", minimum=0.0, strict_minimum=True, error=err)
        check_value(self.plant, PLANTS, "plant", error=err)
        check_value(self.reward_symptom, ("beta", "error_index"), "reward_symptom", error=err)
        check_symptom_source(self.symptom_source)


class _Curve:
    """Mean reward, symptom and energy per ``every`` transitions, and checkpoints."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.rows: list[dict[str, float]] = []
        self._acc: list[tuple[float, float, float]] = []

    def add(self, steps: int, rewards: np.ndarray, infos: list[dict[str, Any]], t0: float) -> None:
        for r, info in zip(rewards, infos, strict=True):
            self._acc.append((float(r), float(info["symptom"]), float(info["energy"])))
        if len(self._acc) >= self.every:
            acc = np.asarray(self._acc)
            self.rows.append(
                {
                    "steps": steps,
                    "wall_s": time.perf_counter() - t0,
                    "reward": float(acc[:, 0].mean()),
                    "symptom": float(acc[:, 1].mean()),
                    "energy": float(acc[:, 2].mean()),
                }
            )
            self._acc = []

    def write(self, out_dir: Path) -> None:
        if not self.rows:
            return
        with (out_dir / "curve.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["steps"] for r in self.rows]
        fig, axes = plt.subplots(3, 1, figsize=(6, 6), sharex=True)
        for ax, key in zip(axes, ("reward", "symptom", "energy"), strict=True):
            ax.plot(steps, [r[key] for r in self.rows])
            ax.set_ylabel(key)
        axes[-1].set_xlabel("transitions")
        fig.suptitle("RL-SNN controller training (TD3, spiking actor)")
        fig.tight_layout()
        fig.savefig(out_dir / "curve.png", dpi=100)
        plt.close(fig)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    command: str = "",
    progress: bool = True,
) -> SpikingActorWeights:
    """Train, checkpoint and export (module docstring); returns the exported actor."""
    import torch
    from stable_baselines3 import TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    from stimulation.controllers.rl_env import ClosedLoopVecEnv
    from stimulation.controllers.spiking_policy import SpikingTD3Policy

    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.set_num_threads(1)
    env = ClosedLoopVecEnv(
        num_envs=config.n_envs,
        plant=config.plant,
        seed=config.env_seed + 1000 * config.seed,
        episode_s=config.episode_s,
        energy_weight=config.energy_weight,
        reward_scale=config.reward_scale,
        symptom_scale=config.symptom_scale,
        control_frequency=config.control_frequency,
        frequency_range_hz=(config.frequency_range_hz[0], config.frequency_range_hz[1]),
        env_kwargs={"dt_ms": config.dt_ms},
        reward_symptom=config.reward_symptom,
        symptom_source=config.symptom_source,
        memory_tau_s=config.memory_tau_s,
        frequency_hz=config.frequency_hz,
    )
    n_act = env.n_actions
    spiking = {
        "obs_range": (0.0, 1.5),
        "n_pop": config.n_pop,
        "hidden": tuple(config.hidden),
        "n_out": config.n_out,
        "substeps": config.substeps,
    }
    sigma = config.action_noise * np.ones(n_act)
    noise = (
        OrnsteinUhlenbeckActionNoise(np.zeros(n_act), sigma, theta=config.action_noise_theta)
        if config.action_noise_theta > 0
        else NormalActionNoise(np.zeros(n_act), sigma)
    )
    model = TD3(
        SpikingTD3Policy,
        env,
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        batch_size=config.batch_size,
        learning_starts=config.learning_starts,
        gamma=config.gamma,
        tau=config.tau,
        train_freq=1,
        gradient_steps=config.gradient_steps,
        action_noise=noise,
        policy_kwargs={"spiking": spiking, "net_arch": {"pi": [], "qf": list(config.critic_arch)}},
        seed=config.seed,
        device="cpu",
        verbose=0,
    )
    curve = _Curve(config.log_every)
    t0 = time.perf_counter()
    meta_base = {
        **env.meta,
        "observation": [
            f"symptom ({config.symptom_source}: {SOURCE_QUANTITY[config.symptom_source]}) "
            "* symptom_scale",
            "previous action in [0, 1]",
            *(["memory of the amplitude action"] if config.memory_tau_s > 0 else []),
        ],
        "command": command,
        "seed": config.seed,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    }

    def export(steps: int) -> SpikingActorWeights:
        net = model.policy.actor.mu
        meta = {**meta_base, "steps": steps, "wall_s": round(time.perf_counter() - t0, 1)}
        return net.export(meta)  # type: ignore[operator]

    class _Hook(BaseCallback):
        def _on_step(self) -> bool:
            steps = self.num_timesteps
            curve.add(steps, self.locals["rewards"], self.locals["infos"], t0)
            if steps % config.checkpoint_every < config.n_envs and steps >= config.n_envs:
                export(steps).save(out / "checkpoints" / f"actor_{steps}.npz")
                curve.write(out)
            return True

    model.learn(total_timesteps=config.total_steps, callback=_Hook(), progress_bar=progress)
    env.close()
    weights = export(model.num_timesteps)
    weights.save(out / "actor.npz")
    curve.write(out)
    return weights
