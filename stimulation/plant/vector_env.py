"""Vectorised ``BasalGanglia-v0``: many independent networks stepped together.

:class:`BasalGangliaVectorEnv` is a :class:`gymnasium.vector.VectorEnv` over ``num_envs``
:class:`~stimulation.plant.env.BasalGangliaEnv` instances. Two ways to step them:

- ``batched=True`` (default): the envs are split into ``n_threads`` groups, and the networks of a
  group are integrated in one compiled call by a :class:`~stimulation.plant.batch.NetworkBatch`
  (their cells side by side in the vector lanes: 8 envs of 10 cells fill 80 lanes instead of 8 x
  16 padded ones, and the per-call overhead is paid once per group). Each env then observes the
  record its network produced with
  :meth:`~stimulation.plant.env.BasalGangliaEnv.observe_step`, the second half of its own
  ``step`` (the first, :meth:`~stimulation.plant.env.BasalGangliaEnv.integrate_step`, is what the
  batch replaces), so rewards, observations and infos come from the same code as for a single
  env; each action is validated once, before any network moves. Resets likewise: each env draws
  its network (:meth:`~stimulation.plant.env.BasalGangliaEnv.begin_reset`), the warm-ups of a
  group are integrated in one call, and each env observes its own
  (:meth:`~stimulation.plant.env.BasalGangliaEnv.observe_reset`).
- ``batched=False``: each env is stepped on its own, the envs spread over the threads.

Threads, not processes: almost all the time of a step is spent in the numba integration kernel,
which is compiled with ``nogil=True`` and so runs truly in parallel, while the Python around it
(biomarkers, observation) is short. Threads need no pickling of observations and no worker
processes, which is why this beats :class:`gymnasium.vector.AsyncVectorEnv` on a small machine
(``benchmarks/bench_plant_env.py`` measures both). Each sub-environment stays on its own network,
and a batch computes bit for bit what its networks compute alone, so results depend neither on
the number of threads, nor on scheduling, nor on ``batched``.

Made by ``gymnasium.make_vec("BasalGanglia-v0", num_envs=8)`` (the registered
``vector_entry_point``) or directly. Sub-environments autoreset on the step after their episode
ends (:attr:`gymnasium.vector.AutoresetMode.NEXT_STEP`, Gymnasium's default), or on the same step
with ``autoreset_mode="same_step"`` (the final observation and info then go into ``info``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from bci.checks import ensure_int
from stimulation.errors import PlantParameterError
from stimulation.plant.batch import NetworkBatch
from stimulation.plant.env import BasalGangliaEnv
from stimulation.plant.record import PlantRecord
from stimulation.pulses import PulseTrain

_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}


class BasalGangliaVectorEnv(VectorEnv[NDArray[np.float32], NDArray[np.float32], NDArray[Any]]):
    """``num_envs`` basal-ganglia environments stepped in parallel threads.

    Parameters
    ----------
    num_envs : int
        Number of independent networks.
    n_threads : int or None
        Worker threads (default: the number of CPUs, at most ``num_envs``); 1 steps them in turn.
    autoreset_mode : {"next_step", "same_step"} or AutoresetMode
        When a finished sub-environment is reset (module docstring).
    batched : bool
        Integrate the networks of each thread's group in one compiled call (module docstring);
        False steps every env on its own.
    **env_kwargs
        Arguments of :class:`~stimulation.plant.env.BasalGangliaEnv`, the same for every network.
    """

    def __init__(
        self,
        num_envs: int = 1,
        n_threads: int | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        batched: bool = True,
        **env_kwargs: Any,
    ) -> None:
        self.num_envs = ensure_int(num_envs, "num_envs", minimum=1, error=PlantParameterError)
        threads = (os.cpu_count() or 1) if n_threads is None else n_threads
        self.n_threads = min(
            ensure_int(threads, "n_threads", minimum=1, error=PlantParameterError), self.num_envs
        )
        if isinstance(autoreset_mode, str):
            if autoreset_mode not in _MODES:
                options = ", ".join(repr(m) for m in _MODES)
                raise PlantParameterError(
                    f"Invalid value for the 'autoreset_mode' parameter. Allowed values are "
                    f"{options}, but got {autoreset_mode!r} instead."
                )
            autoreset_mode = _MODES[autoreset_mode]
        if autoreset_mode not in _MODES.values():
            raise PlantParameterError(
                f"Invalid value for the 'autoreset_mode' parameter: {autoreset_mode!r} is not "
                "supported (next_step or same_step)."
            )
        self.autoreset_mode = autoreset_mode
        env_kwargs.pop("max_episode_steps", None)  # the env truncates at its own episode_s
        self.envs = [BasalGangliaEnv(**env_kwargs) for _ in range(self.num_envs)]
        first = self.envs[0]
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, self.num_envs)
        self.action_space = batch_space(first.action_space, self.num_envs)
        self.metadata = {"autoreset_mode": autoreset_mode, "render_modes": []}
        self.render_mode = None
        self._pool = (
            ThreadPoolExecutor(self.n_threads, thread_name_prefix="plant-env")
            if self.n_threads > 1
            else None
        )
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._needs_reset = True
        self.batched = bool(batched)
        size = -(-self.num_envs // self.n_threads)
        self._groups = [
            list(range(lo, min(lo + size, self.num_envs))) for lo in range(0, self.num_envs, size)
        ]
        self._batches = (
            [NetworkBatch([self.envs[i].network for i in g]) for g in self._groups]
            if self.batched
            else []
        )

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self,
        *,
        seed: int | list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Reset every sub-environment; an int ``seed`` seeds them ``seed, seed + 1, ...``."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise PlantParameterError(
                    f"Invalid value for the 'seed' parameter: {len(seeds)} seeds for "
                    f"{self.num_envs} environments."
                )
        if seed is not None:
            self._np_random, self._np_random_seed = None, None
        resets = self._reset_envs(list(range(self.num_envs)), seeds, options)
        results = [resets[i] for i in range(self.num_envs)]
        self._autoreset[:] = False
        self._needs_reset = False
        infos: dict[str, Any] = {}
        for i, (_, info) in enumerate(results):
            infos = self._add_info(infos, info, i)
        return np.stack([obs for obs, _ in results]), infos

    def step(
        self, actions: Any
    ) -> tuple[
        NDArray[np.float32],
        NDArray[np.float64],
        NDArray[np.bool_],
        NDArray[np.bool_],
        dict[str, Any],
    ]:
        """Step every sub-environment with its row of ``actions`` (shape ``(num_envs, n)``)."""
        acts = np.asarray(actions)
        if acts.shape[:1] != (self.num_envs,):
            raise PlantParameterError(
                f"Invalid value for the 'actions' parameter: expected one row per environment, "
                f"shape ({self.num_envs}, ...), but got {acts.shape} instead."
            )
        if self._needs_reset:
            raise PlantParameterError("Call reset() before step().")
        # validate every action before any network moves, so a bad row changes nothing
        trains: list[PulseTrain | None] = [
            None if self._autoreset[i] else self.envs[i].action_to_train(acts[i])
            for i in range(self.num_envs)
        ]
        same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        stepping = [i for i in range(self.num_envs) if not self._autoreset[i]]
        results: list[Any] = [None] * self.num_envs

        def one(i: int) -> None:
            train, env = cast(PulseTrain, trains[i]), self.envs[i]
            results[i] = env.observe_step(train, env.integrate_step(train))

        if self.batched:

            def group(g: int) -> None:
                for i, rec in self._step_batch(g, trains).items():
                    results[i] = self.envs[i].observe_step(cast(PulseTrain, trains[i]), rec)

            self._map(group, range(len(self._groups)))
        else:
            self._map(one, stepping)
        # resets: the envs autoresetting now, and with same_step those that just finished
        finished = [i for i in stepping if results[i][2] or results[i][3]] if same_step else []
        to_reset = [i for i in range(self.num_envs) if self._autoreset[i]] + finished
        resets = self._reset_envs(to_reset, [None] * self.num_envs, None)
        for i, (obs, info) in resets.items():
            if self._autoreset[i]:
                results[i] = (obs, 0.0, False, False, info)
            else:
                _, reward, terminated, truncated, final_info = results[i]
                info = {**info, "final_obs": results[i][0], "final_info": final_info}
                results[i] = (obs, reward, terminated, truncated, info)
        infos: dict[str, Any] = {}
        for i, res in enumerate(results):
            infos = self._add_info(infos, res[4], i)
        obs = np.stack([r[0] for r in results])
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminated = np.array([r[2] for r in results], dtype=np.bool_)
        truncated = np.array([r[3] for r in results], dtype=np.bool_)
        if not same_step:
            self._autoreset = terminated | truncated
        return obs, rewards, terminated, truncated, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a method (or read an attribute) of every sub-environment."""
        out = []
        for env in self.envs:
            attr = getattr(env, name)
            out.append(attr(*args, **kwargs) if callable(attr) else attr)
        return tuple(out)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """An attribute of every sub-environment."""
        return tuple(getattr(env, name) for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool = None
        for env in self.envs:
            env.close()

    # ------------------------------------------------------------------ internals
    def _step_batch(self, g: int, trains: list[PulseTrain | None]) -> dict[int, PlantRecord]:
        """Integrate the networks of group ``g`` that step (not autoreset) in one call: env
        index -> the record of its network, for the env's
        :meth:`~stimulation.plant.env.BasalGangliaEnv.observe_step`."""
        group = self._groups[g]
        stepping = [i for i in group if trains[i] is not None]
        if not stepping:
            return {}
        batch = (
            self._batches[g]
            if len(stepping) == len(group)
            else NetworkBatch([self.envs[i].network for i in stepping])
        )
        period = self.envs[stepping[0]].control_period_s
        step_trains = [t for t in (trains[i] for i in stepping) if t is not None]
        records = batch.step(period, step_trains)
        return dict(zip(stepping, records, strict=True))

    def _reset_envs(
        self, indices: list[int], seeds: list[int | None], options: dict[str, Any] | None
    ) -> dict[int, tuple[Any, dict[str, Any]]]:
        """Reset the envs ``indices`` (env ``i`` with ``seeds[i]``). Batched: the warm-ups of a
        group are integrated in one call, between each env's ``begin_reset`` and
        ``observe_reset`` (the two halves of its ``reset``)."""
        if not indices:
            return {}
        if not self.batched:
            done = self._map(lambda i: self.envs[i].reset(seed=seeds[i], options=options), indices)
            return dict(zip(indices, done, strict=True))
        chosen = set(indices)
        out: dict[int, tuple[Any, dict[str, Any]]] = {}

        def group(g: int) -> None:
            members = [i for i in self._groups[g] if i in chosen]
            by_duration: dict[float, list[int]] = {}
            for i in members:
                by_duration.setdefault(self.envs[i].begin_reset(seed=seeds[i]), []).append(i)
            for duration, envs in by_duration.items():
                batch = (
                    self._batches[g]
                    if len(envs) == len(self._groups[g])
                    else NetworkBatch([self.envs[i].network for i in envs])
                )
                records = batch.step(duration, [self.envs[i].warmup_train for i in envs])
                for i, rec in zip(envs, records, strict=True):
                    out[i] = self.envs[i].observe_reset(rec)

        self._map(group, range(len(self._groups)))
        return {i: out[i] for i in indices}

    def _map(self, fn: Any, items: Any) -> list[Any]:
        if self._pool is None:
            return [fn(i) for i in items]
        return list(self._pool.map(fn, items))
