"""Train the shipped motor velocity decoder on recorded runs of ``motor_decoding``, then score it
online on held-out seeds.

    nice -n 10 .venv/bin/python benchmarks/train_motor_decoder.py --ship \\
        --json benchmarks/results/motor_decoder.json

1. **Record** one run of ``sessions/motor_decoding.yaml`` per training seed, without its decoder
   (``bci run motor_decoding --set decoder=null --set seed=S --set duration_s=D``): the synthetic
   motor cortex (the session's ``population_seed``, so the same 96 neurons, during other
   movements with other spikes and noise) over LSL in real time, through the session's own
   band-pass, common reference, threshold crossings; the recording keeps the crossings
   (``<run>-spikes``) and the hand kinematics.
2. **Train** the decoder (:func:`decoders.recorded.fit_on_runs`, what ``bci train-decoder RUNS
   --target kinematics:vx,vy --units 96`` does) on 20-ms counts of those crossings, column ``u`` =
   channel ``u`` as the session's ``spike_binner`` lays them out. With ``--ship`` the model goes
   to ``decoders/models/motor_velocity_snn.nir`` with this command, the seeds and the wall time
   in its metadata.
3. **Score online**: ``bci run motor_decoding --set seed=S`` with the model, for each held-out
   seed (the session's own seed 3 among them), real time over LSL; R2 and Pearson r of the
   decoded velocity against the true one, from the run's recording
   (:func:`decoders.recorded.online_tracking`). Beside it, offline: the same model on the
   recorded crossings of that run (:func:`decoders.recorded.session_arrays`) and on the true
   spike counts of the same seed (:func:`bci.synthesis.motor.simulate_reaching`).

Recordings are large (96 channels at 30 kHz: ~0.6 GB a minute); they go under ``--runs-root``
(git-ignored ``sessions/runs/`` by default) and are deleted after use unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from decoders.recorded import make_decoder, online_tracking, r2_score, run_arrays, session_arrays

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "decoders" / "models" / "motor_velocity_snn.nir"
SESSION = "motor_decoding"
N_UNITS = 96
POPULATION_SEED = 3
BIN_S = 0.02
TARGET, CHANNELS = "kinematics", ["vx", "vy"]


def run_session(runs_root: Path, *overrides: str, timeout_s: float = 1800.0) -> Path:
    """``bci run motor_decoding --set ...`` in a child process; return its run folder."""
    args = [sys.executable, "-m", "bci.cli.main", "run", SESSION, "--quiet"]
    args += ["--runs-root", str(runs_root)]
    for o in overrides:
        args += ["--set", o]
    print("$ " + " ".join(shlex.quote(a) for a in args[2:]), flush=True)
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=os.environ)
    if out.returncode != 0:
        raise SystemExit(f"run failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    folder = next(
        (
            line.split(":", 1)[1].strip()
            for line in out.stdout.splitlines()
            if line.startswith("Run folder:")
        ),
        None,
    )
    if folder is None:
        raise SystemExit(f"no run folder in the output:\n{out.stdout}")
    print(out.stdout.strip().splitlines()[0], flush=True)
    return Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--train-duration-s", type=float, default=180.0)
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[3, 21, 22, 23, 24])
    parser.add_argument("--test-duration-s", type=float, default=30.0)
    parser.add_argument("--decoder", default="snn")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument(
        "--runs-root", type=Path, default=ROOT / "sessions" / "runs" / "motor_training"
    )
    parser.add_argument("--out", type=Path, default=None, help="model file (default: a temp path)")
    parser.add_argument("--ship", action="store_true", help=f"write the model to {MODEL}")
    parser.add_argument("--train-runs", type=Path, nargs="*", default=None,
                        help="train on these run folders instead of recording new ones")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the recordings")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = MODEL if args.ship else (args.out or args.runs_root / "motor_velocity.nir")
    args.runs_root.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    t0 = time.perf_counter()

    runs = list(args.train_runs or [])
    if not runs:
        for seed in args.train_seeds:
            runs.append(
                run_session(
                    args.runs_root,
                    "decoder=null",
                    f"seed={seed}",
                    f"duration_s={args.train_duration_s:g}",
                    "recording.nix=false",
                )  # fmt: skip
            )
    t_rec = time.perf_counter() - t0
    t1 = time.perf_counter()
    X, Y, names, units = run_arrays(runs, TARGET, CHANNELS, BIN_S, n_units=N_UNITS)
    dec = make_decoder(args.decoder, args.seed)
    dec.fit(X, Y, bin_s=BIN_S, output_names=names, output_units=units)
    t_fit = time.perf_counter() - t1
    wiener = make_decoder("wiener", args.seed)  # the classic baseline on the same bins
    wiener.fit(X, Y, bin_s=BIN_S, output_names=names, output_units=units)
    recorded = [json.loads((Path(r) / "summary.json").read_text()) for r in runs]
    dec.provenance = {
        "command": command,
        "recorded_by": f"bci run {SESSION} --set decoder=null --set seed=S --set duration_s=D "
        "--set recording.nix=false",
        "train_seeds": [int(s["seed"]) for s in recorded],
        "train_durations_s": [float(s["duration_s"]) for s in recorded],
        "population_seed": POPULATION_SEED,
        "training_seed": args.seed,
        "train_bins": int(X.shape[0]),
        "wall_s": round(time.perf_counter() - t0, 1),
        "record_wall_s": round(t_rec, 1),
        "fit_wall_s": round(t_fit, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    dec.save(out)
    print(f"Trained {args.decoder} on {dec.provenance['train_bins']} bins in {t_fit:.0f} s "
          f"(recording {t_rec:.0f} s); saved {out}", flush=True)  # fmt: skip

    from bci.synthesis.motor import simulate_reaching
    from decoders import load

    rows: list[dict[str, Any]] = []
    for seed in args.test_seeds:
        run = run_session(
            args.runs_root, f"seed={seed}", f"duration_s={args.test_duration_s:g}",
            f"decoder.model={out.resolve()}", "recording.nix=false",
        )  # fmt: skip
        online = online_tracking(run, TARGET, CHANNELS)
        summary = json.loads((run / "summary.json").read_text())["decoder_tracking"]
        model = load(out)
        Xr, Yr, _, _ = session_arrays(run, TARGET, CHANNELS, BIN_S, n_units=N_UNITS)
        model.reset()
        pred = model.predict(Xr)
        k = int(1.0 / BIN_S)  # the same settling second as online
        truth = simulate_reaching(N_UNITS, args.test_duration_s, BIN_S, seed=seed,
                                  population_seed=POPULATION_SEED)  # fmt: skip
        model.reset()
        pred_gt = model.predict(truth.counts)
        row = {
            "seed": seed,
            "online": online,
            "summary_r2": [summary["outputs"][c]["r2"] for c in CHANNELS],
            "wiener_offline_crossings_r2": r2_score(Yr[k:], wiener.predict(Xr)[k:]),
            "offline_crossings_r2": r2_score(Yr[k:], pred[k:]),
            "offline_true_spikes_r2": r2_score(truth.velocity[k:], pred_gt[k:]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(run)
    if not args.keep and not args.train_runs:
        for run in runs:
            shutil.rmtree(run)

    print(f"\n{'seed':>5} {'online R2 vx/vy':>16} {'online r vx/vy':>16} {'offline R2':>11} "
          f"{'true spikes':>12} {'Wiener':>7}   (offline: R2 mean of vx, vy)")  # fmt: skip
    for row in rows:
        on = row["online"]
        print(
            f"{row['seed']:>5} {on['r2'][0]:7.3f}/{on['r2'][1]:6.3f}   {on['r'][0]:7.3f}/{on['r'][1]:6.3f}"
            f"  {np.mean(row['offline_crossings_r2']):11.3f} {np.mean(row['offline_true_spikes_r2']):12.3f}"
            f" {np.mean(row['wiener_offline_crossings_r2']):7.3f}"
        )  # fmt: skip
    mean_r2 = [float(np.mean(r["online"]["r2"])) for r in rows]
    print(f"online R2 (mean of vx, vy): min {min(mean_r2):.3f}, max {max(mean_r2):.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": str(out), "provenance": dec.provenance,
                                         "results": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
