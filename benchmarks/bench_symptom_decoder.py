"""Train the shipped symptom decoder and measure how it tracks the true GPi beta on held-out seeds.

Usage: ``python benchmarks/bench_symptom_decoder.py --json OUT [--train-seeds 0 1 2 3 4 5]
[--test-seeds 100 101 102] [--save decoders/models/symptom_gpi_beta.npz]``

Each seed is a 30-s plant session (10 s DBS off, 10 s on, 10 s switching; see
``symptom_sessions.py``). The decoder is fitted on the training seeds' counts from both feeds (the
probe cells' true spikes, as the env gives them, and the online sorter's units), so one model
serves the controller's training and the runner. Reported per held-out seed, feed and condition:
R2 and Pearson correlation of the estimate against the true beta (full windows only), and the R2
of both averaged causally over 1 s (the slow symptom a controller integrates).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from symptom_sessions import CONDITIONS, simulate  # noqa: E402

from decoders.symptom import SymptomDecoder  # noqa: E402


def r2(y: np.ndarray, p: np.ndarray) -> float:
    return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))


def causal_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean over the last ``n`` values (fewer at the start)."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    i = np.arange(len(x))
    lo = np.maximum(0, i + 1 - n)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--save", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    train = []
    for s in args.train_seeds:
        train.append(simulate(s))
        print(f"train seed {s} simulated ({time.perf_counter() - t0:.0f} s)", flush=True)
    X, Y = [], []
    for sess in train:
        for counts in (sess.counts_true, sess.counts_sorted):
            X.append(counts)
            Y.append(sess.beta[:, None])
    dec = SymptomDecoder().fit(X, Y)
    results = []
    for s in args.test_seeds:
        sess = simulate(s)
        for feed, counts in (("true", sess.counts_true), ("sorted", sess.counts_sorted)):
            est = dec.predict(counts)[:, 0]
            full = np.arange(len(est)) >= dec.n_window
            row = {"seed": s, "feed": feed, "n_units": int(counts.shape[1])}
            # the slow symptom: both averaged causally over 1 s (200 bins)
            k = np.arange(len(est)) >= 200
            row["r2_all_1s"] = r2(causal_mean(sess.beta, 200)[k], causal_mean(est, 200)[k])
            for ci, cname in enumerate((*CONDITIONS, "all")):
                m = full & ((sess.condition == ci) if cname != "all" else True)
                row[f"r2_{cname}"] = r2(sess.beta[m], est[m])
                row[f"corr_{cname}"] = float(np.corrcoef(sess.beta[m], est[m])[0, 1])
            results.append(row)
            print(json.dumps(row), flush=True)
    wall = time.perf_counter() - t0
    print(f"{'seed':>5} {'feed':>7} " + " ".join(f"{c:>16}" for c in (*CONDITIONS, "all")) + "  all, 1-s means")
    for row in results:
        cells = " ".join(
            f"{row[f'r2_{c}']:7.2f}/{row[f'corr_{c}']:5.2f}   " for c in (*CONDITIONS, "all")
        )
        print(f"{row['seed']:>5} {row['feed']:>7} {cells}  {row['r2_all_1s']:6.2f}   (R2/corr)")
    if args.save is not None:
        dec.provenance = {
            "command": "python benchmarks/bench_symptom_decoder.py " + " ".join(sys.argv[1:]),
            "train_seeds": args.train_seeds,
            "wall_s": round(wall, 1),
        }
        args.save.parent.mkdir(parents=True, exist_ok=True)
        dec.save(args.save)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
