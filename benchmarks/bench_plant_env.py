"""Benchmark ``BasalGanglia-v0`` throughput: env-seconds simulated per wall second.

Side by side, in one run, on the same machine load:

- **network.run**: the bare :class:`~stimulation.plant.BasalGangliaNetwork` integrating the same
  simulated time in one call (the ceiling of one core: no control loop, no biomarkers);
- **single env**: one :class:`~stimulation.plant.env.BasalGangliaEnv` stepped in a loop (20-ms
  control periods, random normalised amplitudes);
- **gymnasium SyncVectorEnv**: ``--num-envs`` envs stepped in turn in one thread (the peer without
  parallelism);
- **gymnasium AsyncVectorEnv**: ``--num-envs`` envs, one worker process each (the peer with
  parallelism: pickled actions/observations through pipes);
- **ours, BasalGangliaVectorEnv, unbatched**: ``--num-envs`` envs on ``--threads`` threads in one
  process, each network integrated by its own kernel call (``batched=False``; the numba kernel
  releases the GIL);
- **ours, BasalGangliaVectorEnv, batched**: the same, with the networks of each thread's group
  integrated side by side in one kernel call (``batched=True``, the default; bit-identical
  results).

Throughput = ``num_envs x steps x control_period / wall time`` of the timed steps (resets and
warm-up excluded; episodes are long enough not to end inside the timing). Every configuration runs
at each ``--dt-ms`` (default 0.01 ms, So et al. 2012's step and the network's default, and
0.025 ms, the env's default, at which ``bench_plant.py --dt-compare`` shows the science table
holding; README). The target of issue 4 is 50 env-s per wall s for the vectorised env on 2 cores.
A second table times what reinforcement learning sees: whole episodes (``--episode-s``, default
1 s) with the default 0.5-s warm-up of every reset, autoreset included, for the vectorised env
unbatched and batched (resets are batched too), in env-seconds of episode per wall second.
Prints a table with ratios to the single env of the same ``dt``, and the env-seconds per CPU-second
of this process with its CPU-per-wall ratio (how many cores it got: on a shared machine the wall
rate of a threaded run is capped by the cores left to it, the per-CPU rate much less so);
For the batched vector env it also prints the share of the process CPU spent outside
:meth:`~stimulation.plant.batch.NetworkBatch.step` (the environments' Python: biomarker monitor,
observation, reward, info, and the vector env's own bookkeeping), measured in the same run by
timing each ``NetworkBatch.step`` call with the worker thread's CPU clock.
``--json OUT`` writes the numbers. Never fails on timing.

    .venv/bin/python benchmarks/bench_plant_env.py            # full run (about 1 min)
    .venv/bin/python benchmarks/bench_plant_env.py --quick    # short run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import stimulation  # noqa: F401  (registers BasalGanglia-v0)
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.batch import NetworkBatch
from stimulation.plant.env import BasalGangliaEnv
from stimulation.plant.vector_env import BasalGangliaVectorEnv

PERIOD_S = 0.02
TARGET = 50.0


def _env_kwargs(dt_ms: float, cells: int, sim_s: float) -> dict[str, Any]:
    return {
        "cells_per_nucleus": cells,
        "dt_ms": dt_ms,
        "warmup_s": 0.1,
        "episode_s": sim_s + 1.0,  # no episode ends inside the timing
        "control_period_s": PERIOD_S,
    }


Timing = tuple[float, float, float]  # env-seconds, wall seconds, CPU seconds of this process


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def _time_network(dt_ms: float, cells: int, sim_s: float) -> Timing:
    net = BasalGangliaNetwork("pd", cells, seed=0, dt_ms=dt_ms)
    net.run(0.05)
    t = _clock()
    net.run(sim_s)
    return (sim_s, *_since(t))


def _time_single(dt_ms: float, cells: int, sim_s: float) -> Timing:
    env = BasalGangliaEnv(**_env_kwargs(dt_ms, cells, sim_s))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = int(round(sim_s / PERIOD_S))
    actions = rng.uniform(0, 1, size=(n, 1)).astype(np.float32)
    t = _clock()
    for a in actions:
        env.step(a)
    return (n * PERIOD_S, *_since(t))


def _time_vector(venv: Any, num_envs: int, sim_s: float) -> Timing:
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    n = int(round(sim_s / PERIOD_S))
    actions = rng.uniform(0, 1, size=(n, num_envs, 1)).astype(np.float32)
    venv.step(actions[0])  # workers warm
    t = _clock()
    for a in actions[1:]:
        venv.step(a)
    wall, cpu = _since(t)
    venv.close()
    return num_envs * (n - 1) * PERIOD_S, wall, cpu


class _IntegrationClock:
    """Sums the CPU time the worker threads spend in :meth:`NetworkBatch.step` (the compiled
    integration and its bookkeeping) while installed, so the rest of the process CPU is the
    Python of the environments (monitor, observation, reward, info, vector env)."""

    def __init__(self) -> None:
        self.cpu_s: list[float] = []
        self._original = NetworkBatch.step

    def __enter__(self) -> _IntegrationClock:
        original, spent = self._original, self.cpu_s

        def timed(batch: NetworkBatch, *args: Any, **kwargs: Any) -> Any:
            t = time.thread_time()
            try:
                return original(batch, *args, **kwargs)
            finally:
                spent.append(time.thread_time() - t)  # list.append: thread-safe

        NetworkBatch.step = timed  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        NetworkBatch.step = self._original  # type: ignore[method-assign]


def _time_episodes(batched: bool, dt_ms: float, args: argparse.Namespace) -> Timing:
    """Two episodes per env from reset, autoreset step included, resets and warm-ups timed."""
    venv = BasalGangliaVectorEnv(
        args.num_envs,
        n_threads=args.threads,
        batched=batched,
        cells_per_nucleus=args.cells,
        dt_ms=dt_ms,
        episode_s=args.episode_s,
        warmup_s=0.5,
        control_period_s=PERIOD_S,
    )
    n_per_episode = int(round(args.episode_s / PERIOD_S))
    actions = np.random.default_rng(0).uniform(0, 1, size=(2 * n_per_episode + 1, args.num_envs, 1))
    t = _clock()
    venv.reset(seed=0)
    for a in actions.astype(np.float32):
        venv.step(a)
    wall, cpu = _since(t)
    venv.close()
    return args.num_envs * 2 * n_per_episode * PERIOD_S, wall, cpu


CONFIGS: tuple[str, ...] = (
    "network.run (1 core, no env)",
    "single env",
    "gymnasium SyncVectorEnv",
    "gymnasium AsyncVectorEnv",
    "ours: BasalGangliaVectorEnv, unbatched",
    "ours: BasalGangliaVectorEnv, batched",
)


def _measure(config: str, dt_ms: float, args: argparse.Namespace) -> Timing:
    scale = dt_ms / 0.01  # larger steps: simulate longer for about the same wall time
    sim1 = args.sim_s * scale
    simv = sim1 * 2 / args.num_envs
    kw = _env_kwargs(dt_ms, args.cells, simv)
    if config == CONFIGS[0]:
        return _time_network(dt_ms, args.cells, sim1)
    if config == CONFIGS[1]:
        return _time_single(dt_ms, args.cells, sim1)
    venv: gym.vector.VectorEnv[Any, Any, Any]
    if config in CONFIGS[4:]:
        batched = config == CONFIGS[5]
        venv = BasalGangliaVectorEnv(args.num_envs, n_threads=args.threads, batched=batched, **kw)
        if batched:
            with _IntegrationClock() as clock:
                timing = _time_vector(venv, args.num_envs, simv)
            # the warm-up step is outside the timing: drop its calls (one per group)
            integration = sum(clock.cpu_s[len(venv._groups) :])
            _OUTSIDE[dt_ms].append(1.0 - integration / timing[2])
            return timing
    else:
        mode = "sync" if config == CONFIGS[2] else "async"
        venv = gym.make_vec("BasalGanglia-v0", args.num_envs, vectorization_mode=mode, **kw)
    return _time_vector(venv, args.num_envs, simv)


#: dt -> per round, the share of the batched vector env's CPU outside NetworkBatch.step
_OUTSIDE: dict[float, list[float]] = {}


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    _OUTSIDE.clear()
    _OUTSIDE.update((dt, []) for dt in args.dt_ms)
    timings: dict[tuple[float, str], list[Timing]] = {}
    for r in range(args.rounds):
        # alternate the order between rounds so a change in machine load hits every config
        order = CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS))
        for dt_ms in args.dt_ms:
            for config in order:
                timings.setdefault((dt_ms, config), []).append(_measure(config, dt_ms, args))
    rows: list[dict[str, Any]] = []
    for dt_ms in args.dt_ms:
        single = timings[(dt_ms, "single env")]
        base = float(np.median([e / w for e, w, _ in single]))
        for config in CONFIGS:
            values = timings[(dt_ms, config)]
            rate = float(np.median([e / w for e, w, _ in values]))
            # worker processes' CPU is not this process': no CPU figure for AsyncVectorEnv
            async_ = "Async" in config
            per_cpu = float("nan") if async_ else float(np.median([e / c for e, _, c in values]))
            cpu_wall = float("nan") if async_ else float(np.median([c / w for _, w, c in values]))
            label = f"{config} ({args.threads} thr)" if config in CONFIGS[4:] else config
            rows.append(
                {
                    "dt_ms": dt_ms,
                    "config": label,
                    "num_envs": args.num_envs if "Vector" in config else 1,
                    "env_s_per_s": rate,
                    "env_s_per_cpu_s": per_cpu,
                    "cpu_per_wall": cpu_wall,
                    "rounds": [list(v) for v in values],
                    "ratio_to_single": rate / base,
                }
            )
    episodes: list[dict[str, Any]] = []
    for dt_ms in args.dt_ms:
        runs: dict[bool, list[Timing]] = {False: [], True: []}
        for r in range(args.rounds):
            for batched in (False, True) if r % 2 == 0 else (True, False):
                runs[batched].append(_time_episodes(batched, dt_ms, args))
        ep_rate = {b: float(np.median([e / w for e, w, _ in v])) for b, v in runs.items()}
        ep_cpu = {b: float(np.median([e / c for e, _, c in v])) for b, v in runs.items()}
        episodes.append(
            {
                "dt_ms": dt_ms,
                "unbatched_env_s_per_s": ep_rate[False],
                "batched_env_s_per_s": ep_rate[True],
                "unbatched_env_s_per_cpu_s": ep_cpu[False],
                "batched_env_s_per_cpu_s": ep_cpu[True],
                "batched_over_unbatched": ep_rate[True] / ep_rate[False],
                "rounds": {str(b): [list(x) for x in v] for b, v in runs.items()},
            }
        )
    speedup = {}
    for dt_ms in args.dt_ms:
        by = {r["config"].split(" (")[0]: r for r in rows if r["dt_ms"] == dt_ms}
        old, new = by[CONFIGS[4]], by[CONFIGS[5]]
        speedup[str(dt_ms)] = {
            "wall": new["env_s_per_s"] / old["env_s_per_s"],
            "per_cpu": new["env_s_per_cpu_s"] / old["env_s_per_cpu_s"],
        }
    return {
        "rows": rows,
        "batched_over_unbatched": speedup,
        "batched_cpu_share_outside_integration": {
            str(dt): float(np.median(v)) for dt, v in _OUTSIDE.items()
        },
        "episodes": episodes,
        "episode_s": args.episode_s,
        "cells_per_nucleus": args.cells,
        "num_envs": args.num_envs,
        "threads": args.threads,
        "control_period_s": PERIOD_S,
        "target_env_s_per_s": TARGET,
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "platform": platform.platform(),
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nBasalGanglia-v0 throughput: {result['cells_per_nucleus']} cells per nucleus, "
        f"{result['control_period_s'] * 1e3:g}-ms steps, {result['num_envs']} envs, "
        f"{result['cpu_count']} CPUs, load {result['load_before'][0]:.2f} -> "
        f"{result['load_after'][0]:.2f} (1-min avg)"
    )
    head = (
        f"{'dt (ms)':>7} | {'configuration':<46} | {'envs':>4} | {'env-s / s':>9} | "
        f"{'x single':>8} | {'env-s / CPU-s':>13} | {'CPU / wall':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        na = np.isnan(r["env_s_per_cpu_s"])
        per_cpu = "n/a" if na else f"{r['env_s_per_cpu_s']:.2f}"
        cpu_wall = "n/a" if na else f"{r['cpu_per_wall']:.2f}"
        print(
            f"{r['dt_ms']:>7g} | {r['config']:<46} | {r['num_envs']:>4} | "
            f"{r['env_s_per_s']:>9.2f} | {r['ratio_to_single']:>8.2f} | {per_cpu:>13} | "
            f"{cpu_wall:>10}"
        )
    for dt_ms, ratio in result["batched_over_unbatched"].items():
        print(
            f"dt {dt_ms} ms: batched / unbatched vector env = {ratio['wall']:.2f}x per wall s, "
            f"{ratio['per_cpu']:.2f}x per CPU s (same run)"
        )
    for dt_ms, share in result["batched_cpu_share_outside_integration"].items():
        print(
            f"dt {dt_ms} ms: batched vector env, CPU outside the batch integration "
            f"(env and vector-env Python): {100 * share:.1f}%"
        )
    print(
        f"\nWhole episodes ({result['episode_s']:g} s after a 0.5-s warm-up per reset, autoreset, "
        f"{result['num_envs']} envs, {result['threads']} threads; env-s of episode per s)"
    )
    print(
        f"{'dt (ms)':>7} | {'unbatched':>9} | {'batched':>9} | {'batched/unbatched':>17} | "
        f"{'per CPU-s: unbatched':>20} | {'batched':>8}"
    )
    for e in result["episodes"]:
        print(
            f"{e['dt_ms']:>7g} | {e['unbatched_env_s_per_s']:>9.2f} | "
            f"{e['batched_env_s_per_s']:>9.2f} | {e['batched_over_unbatched']:>16.2f}x | "
            f"{e['unbatched_env_s_per_cpu_s']:>20.2f} | {e['batched_env_s_per_cpu_s']:>8.2f}"
        )
    print(f"target: {result['target_env_s_per_s']:g} env-s / s for the vectorised env on 2 cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--dt-ms", type=float, nargs="+", default=[0.01, 0.025])
    parser.add_argument("--sim-s", type=float, default=2.0, help="Simulated s per env at dt 0.01.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--episode-s", type=float, default=1.0, help="Episode length (s).")
    parser.add_argument("--quick", action="store_true", help="One short round.")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args = parser.parse_args()
    if args.quick:
        args.sim_s, args.rounds, args.episode_s = 0.5, 1, 0.2
    result = run(args)
    print_table(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
