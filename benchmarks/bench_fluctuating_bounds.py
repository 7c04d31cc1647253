"""What any controller could reach on the fluctuating plant: bounds from controllers that know
the plant's true state, and how much of that state the loop's decoder can see.

Issue 11's fluctuating goal asks an adaptive controller for the relief of the best constant
setting at no more than 70% of its energy. This script measures whether that is possible at all,
and what it takes, on the same held-out seeds, settle and scoring as
:func:`stimulation.controllers.evaluate` (same limiter, energy and error index):

1. **Oracle gate**: stimulate at ``A`` mA / ``f`` Hz exactly while the plant is Parkinsonian (the
   env's true state, known one control period late) and not otherwise; then the same with the
   state known ``--delay-ms`` late (a perfect detector with the decoder's window).
2. **Probe and hold** with a perfect detector that works only while stimulation is off: off until
   the plant has been Parkinsonian for ``--delay-ms`` with stimulation off, then on for
   ``--hold-s`` seconds, then off again to look (Little et al. 2013's minimum on-time).
3. **What the decoder sees**: the STN symptom decoder's output (``symptom_source="decoder"``)
   against the true state, with stimulation off and at constant settings (AUC; 0.5 = blind, and values
   below 0.5 mean the output falls in the Parkinsonian state).

Each bound is compared with the cheapest constant setting of ``bench_controllers``' grid that
reaches at least its relief. Prints one table; ``--json OUT`` writes the rows.

    .venv/bin/python benchmarks/bench_fluctuating_bounds.py --json benchmarks/results/bounds.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from bench_controllers import CONTINUOUS_GRID

from bci.stream.chunks import StimCommand
from stimulation.controllers import evaluate
from stimulation.controllers.evaluate import (
    EVALUATION_LIMITS,
    _env_kwargs,
    command_to_action,
    relative_energy,
)
from stimulation.plant.record import PlantRecord
from stimulation.safety import SafetyLimiter


def run_policy(
    policy: str,
    seeds: list[int],
    duration_s: float,
    settle_s: float,
    dt_ms: float,
    amplitude_ma: float,
    frequency_hz: float,
    delay: int,
    hold: int,
) -> dict[str, Any]:
    """Run an oracle policy ("gate" or "probe", module docstring) on the fluctuating plant."""
    from stimulation.plant.vector_env import BasalGangliaVectorEnv

    period = 0.02
    n_settle, n_score = round(settle_s / period), round(duration_s / period)
    kwargs = _env_kwargs(EVALUATION_LIMITS, "fluctuating", {"dt_ms": dt_ms})
    kwargs["control_period_s"] = period
    kwargs["episode_s"] = (n_settle + n_score + 1) * period
    n = len(seeds)
    venv = BasalGangliaVectorEnv(num_envs=n, n_threads=1, **kwargs)
    try:
        venv.reset(seed=list[int | None](seeds))
        limiters = [SafetyLimiter(EVALUATION_LIMITS) for _ in seeds]
        for limiter in limiters:
            limiter.reset(now=-period)
        truth: list[list[int]] = [[0] * (delay + 1) for _ in seeds]
        on = [0] * n
        held = [0] * n  # periods on (probe) / off (since the last switch off)
        records: list[list[PlantRecord]] = [[] for _ in seeds]
        energy = np.zeros((n, n_score))
        for k in range(n_settle + n_score):
            t = k * period
            actions = np.zeros((n, 2), dtype=np.float32)
            for i in range(n):
                if policy == "gate":
                    on[i] = truth[i][-1 - delay]
                else:  # probe and hold: look only while off
                    held[i] += 1
                    if on[i] and held[i] >= hold:
                        on[i], held[i] = 0, 0
                    elif not on[i] and held[i] > delay and all(truth[i][-1 - delay :]):
                        on[i], held[i] = 1, 0
                command = StimCommand(amplitude_ma * on[i], frequency_hz, 300.0, t, "oracle", k)
                out = limiters[i].apply(command, t)
                actions[i] = command_to_action(out, EVALUATION_LIMITS)
                if k >= n_settle:
                    energy[i, k - n_settle] = relative_energy(
                        out.amplitude_ma, out.frequency_hz, out.pulse_width_us
                    )
            _, _, _, _, info = venv.step(actions)
            for i in range(n):
                truth[i].append(int(info["pd_state"][i]))
                record = venv.envs[i].record
                if k >= n_settle and record is not None:
                    records[i].append(record)
    finally:
        venv.close()
    ei = [float(PlantRecord.concatenate(r).error_index()) for r in records]
    return {"error_index": ei, "energy": energy.mean(axis=1).tolist()}


def visibility(seeds: list[int], duration_s: float, dt_ms: float) -> list[dict[str, Any]]:
    """AUC of the decoded symptom for the true state, off and at constant settings."""
    from sklearn.metrics import roc_auc_score

    rows = []
    settings: list[tuple[str, dict[str, Any]]] = [("off", {}), *[("continuous", {"amplitude_ma": a, "frequency_hz": 100.0})
                               for a in (1.0, 1.33, 1.67, 2.0)],
                ("continuous", {"amplitude_ma": 2.5, "frequency_hz": 130.0})]  # fmt: skip
    for name, params in settings:
        out = evaluate(
            name, seeds, duration_s, "fluctuating", traces=True, env_kwargs={"dt_ms": dt_ms},
            **params,
        )  # fmt: skip
        auc = []
        for r in out:
            y = r["trace"]["pd_state"] > 0.5
            auc.append(float(roc_auc_score(y, r["trace"]["beta"])) if 0 < y.mean() < 1 else None)
        rows.append({"setting": name, **params, "auc_per_seed": auc})
        print(f"  decoder vs state, {name} {params}: AUC {auc}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=1.5)
    parser.add_argument("--dt-ms", type=float, default=0.025)
    parser.add_argument("--amplitude-ma", type=float, default=1.67)
    parser.add_argument("--frequency-hz", type=float, default=100.0)
    parser.add_argument("--delay-ms", type=float, default=240.0)
    parser.add_argument("--hold-s", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    common = (args.seeds, args.duration, args.settle, args.dt_ms)
    setting = (args.amplitude_ma, args.frequency_hz)
    delay = round(args.delay_ms / 20.0)
    off = evaluate(
        "off", args.seeds, args.duration, "fluctuating", env_kwargs={"dt_ms": args.dt_ms}
    )
    ei_off = float(np.mean([r["error_index"] for r in off]))
    grid = []
    for params in CONTINUOUS_GRID:
        rows = evaluate(
            "continuous", args.seeds, args.duration, "fluctuating",
            env_kwargs={"dt_ms": args.dt_ms}, **params,
        )  # fmt: skip
        grid.append({**params, "error_index": float(np.mean([r["error_index"] for r in rows])),
                     "energy": rows[0]["energy"]})  # fmt: skip
    policies = [("oracle gate, state 1 period late", "gate", 0, 0),
                (f"oracle gate, state {args.delay_ms:g} ms late", "gate", delay, 0)]  # fmt: skip
    policies += [
        (f"probe and hold {h:g} s, off-only detector {args.delay_ms:g} ms", "probe", delay,
         round(h / 0.02))
        for h in args.hold_s
    ]  # fmt: skip
    results = []
    print(f"fluctuating plant, seeds {args.seeds}, {args.duration:g} s; EI off {ei_off:.3f}")
    print(f"{'policy':52s} {'EI':>6s} {'energy':>7s} {'cheapest constant':>22s} {'ratio':>6s}")
    for label, policy, d, h in policies:
        out = run_policy(policy, *common, *setting, d, h)
        ei, energy = float(np.mean(out["error_index"])), float(np.mean(out["energy"]))
        reaching = [g for g in grid if g["error_index"] <= ei + 1e-12]
        cheapest = min(reaching, key=lambda g: g["energy"]) if reaching else None
        ratio = energy / cheapest["energy"] if cheapest else float("nan")
        name = (
            f"{cheapest['amplitude_ma']:g} mA {cheapest['frequency_hz']:g} Hz" if cheapest else "-"
        )
        print(f"{label:52s} {ei:6.3f} {energy:7.3f} {name:>22s} {ratio:6.2f}", flush=True)
        results.append({"policy": label, **out, "mean_error_index": ei, "mean_energy": energy,
                        "cheapest_constant": cheapest, "energy_ratio": ratio})  # fmt: skip
    seen = visibility(args.seeds, args.duration, args.dt_ms)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"seeds": args.seeds, "duration_s": args.duration, "ei_off": ei_off,
                   "grid": grid, "bounds": results, "decoder_visibility": seen}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
