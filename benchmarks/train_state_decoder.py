"""Train the shipped Parkinsonian-state decoder and score it on held-out seeds.

Usage: ``python benchmarks/train_state_decoder.py [--train-seeds 0 ... 11] [--test-seeds 100
... 105] [--alpha 10] [--save decoders/models/state_gpe.npz] [--json OUT]``

Why a second decoder: the STN probe of the closed-loop sessions is blind under stimulation (at
therapeutic amplitudes its cells fire 0.2-0.75 ms after each pulse, under the artifact, so the
loop sees almost none of their spikes), and the windowed GPi beta it estimates hardly separates
the fluctuating plant's two states. In So et al. (2012)'s model the Parkinsonian state is the
applied currents, and the GPe's changes most (21 -> 8 uA/cm2; Rubin & Terman 2004's increased
striatal inhibition of GPe): GPe cells fire at about half their healthy rate, with or without
DBS. A probe in the GPe (recordings from the pallidum in closed loop: Rosin et al. 2011, Neuron
72:370, MPTP primates) therefore sees the state while stimulation is on.

The sessions are those of ``bench_symptom_decoder.py`` (30 s per seed: 10 s DBS off, 10 s on at a
drawn setting, 10 s switching; the plant cycles with the seed through stationary Parkinsonian,
stationary healthy and fluctuating; the integration step alternates 0.025 / 0.01 ms), with the
probe (8 of 10 cells, 16 contacts) in the GPe. The decoder is :class:`decoders.symptom.
SymptomDecoder`'s order-free features of the pooled spikes over 0.25 s, read out by ridge
regression as the plant's state (0 healthy, 1 Parkinsonian), fitted on the probed cells' true
spikes and on the online sorter's units of the training seeds. Reported per held-out seed and
feed: the AUC of the estimate for the true state (a fluctuating seed has both states; stationary
seeds are pooled per feed), and the accuracy of ``estimate > 0.5`` with DBS off and on.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_symptom_decoder import Session, simulate

from decoders.symptom import STATE_MODEL, SymptomDecoder
from stimulation.controllers.observation import STATE_NUCLEUS


def _auc(state: np.ndarray, score: np.ndarray) -> float:
    """Probability that a Parkinsonian bin scores above a healthy one (ties count half)."""
    pos, neg = score[state == 1], score[state == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    both = np.concatenate([pos, neg])
    for v in np.unique(both):  # average ranks of ties
        tie = both == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def score(dec: SymptomDecoder, sess: Session, feed: str) -> dict[str, Any] | None:
    """Estimates on one held-out session (full windows only): AUC and accuracy off/on."""
    counts = sess.counts_true if feed == "true" else sess.counts_sorted
    if counts is None:
        return None
    est = dec.predict(counts)[:, 0]
    keep = np.arange(est.size) >= dec.n_window
    out: dict[str, Any] = {"feed": feed, "plant": sess.plant, "estimate": est[keep].tolist()}
    out["state"] = sess.pd_state[keep].tolist()
    out["dbs_on"] = sess.dbs_on[keep].tolist()
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AUC and accuracy of ``estimate > 0.5`` over the rows' bins, all / DBS off / DBS on."""
    est = np.concatenate([r["estimate"] for r in rows])
    state = np.concatenate([r["state"] for r in rows]).astype(int)
    on = np.concatenate([r["dbs_on"] for r in rows]).astype(bool)
    res: dict[str, Any] = {}
    for name, mask in (("all", np.ones_like(on)), ("off", ~on), ("on", on)):
        res[f"auc_{name}"] = _auc(state[mask], est[mask])
        res[f"accuracy_{name}"] = float(np.mean((est[mask] > 0.5) == (state[mask] == 1)))
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=list(range(12)))
    parser.add_argument("--test-seeds", type=int, nargs="+", default=list(range(100, 106)))
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument(
        "--save", type=Path, default=None, help=f"write the model here (shipped: {STATE_MODEL})"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    args = parser.parse_args()
    t0 = time.perf_counter()
    X, Y = [], []
    for seed in args.train_seeds:
        sess = simulate(seed, nucleus=STATE_NUCLEUS)
        for counts in (sess.counts_true, sess.counts_sorted):
            if counts is not None:
                X.append(counts)
                Y.append(sess.pd_state.astype(np.float64)[:, None])
        print(f"train seed {seed} ({sess.plant}) simulated", flush=True)
    dec = SymptomDecoder(alpha=args.alpha, output="pd_state", output_unit="probability")
    dec.fit(X, Y)
    wall = time.perf_counter() - t0
    print(f"fitted on {len(args.train_seeds)} seeds in {wall:.0f} s", flush=True)
    results: dict[str, Any] = {"train_seeds": args.train_seeds, "alpha": args.alpha, "seeds": []}
    per_feed: dict[str, list[dict[str, Any]]] = {"true": [], "sorted": []}
    print(f"{'seed':>5} {'plant':>12} {'feed':>7} {'AUC':>6} {'AUC off':>8} {'AUC on':>7} "
          f"{'acc off':>8} {'acc on':>7}")  # fmt: skip
    for seed in args.test_seeds:
        sess = simulate(seed, nucleus=STATE_NUCLEUS)
        for feed in ("true", "sorted"):
            row = score(dec, sess, feed)
            if row is None:
                continue
            per_feed[feed].append(row)
            s = summarise([row])
            results["seeds"].append({"seed": seed, "plant": sess.plant, "feed": feed, **s})
            print(f"{seed:>5} {sess.plant:>12} {feed:>7} {s['auc_all']:>6.3f} "
                  f"{s['auc_off']:>8.3f} {s['auc_on']:>7.3f} {s['accuracy_off']:>8.3f} "
                  f"{s['accuracy_on']:>7.3f}")  # fmt: skip
    for feed, rows in per_feed.items():
        if rows:
            s = summarise(rows)
            results[f"pooled_{feed}"] = s
            print(f"pooled {feed}: AUC {s['auc_all']:.3f} (off {s['auc_off']:.3f}, on "
                  f"{s['auc_on']:.3f}); accuracy off {s['accuracy_off']:.3f}, on "
                  f"{s['accuracy_on']:.3f}")  # fmt: skip
    if args.save is not None:
        dec.provenance = {
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "train_seeds": args.train_seeds,
            "wall_s": round(wall, 1),
            "nucleus": STATE_NUCLEUS,
        }
        args.save.parent.mkdir(parents=True, exist_ok=True)
        dec.save(args.save)
        print(f"saved {args.save}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
