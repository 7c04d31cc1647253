"""Train the shipped symptom decoder and measure how it tracks the true GPi beta on held-out seeds.

Usage: ``python benchmarks/bench_symptom_decoder.py --json OUT [--train-seeds 0 1 2 3 4 5 6 7]
[--test-seeds 100 101 102] [--save decoders/models/symptom_gpi_beta.npz]``

Each seed is a 30-s plant session (10 s DBS off, 10 s on, 10 s switching). The decoder is fitted on the training seeds' counts from both feeds (the
probe cells' true spikes, as the env gives them, and the online sorter's units), so one model
serves the controller's training and the runner. Reported per held-out seed, feed and condition:
R2 and Pearson correlation of the estimate against the true beta (full windows only), and the R2
of both averaged causally over 1 s (the slow symptom a controller integrates).

A session of ``BasalGanglia-v0``'s network (Parkinsonian, 10 cells per nucleus) runs in 5-ms
steps with DBS off, on (So et al. 2012 STN-DBS: 300 uA/cm2, 130 Hz, 300 us) or switching, after a
1-s unstimulated warm-up. At each step the true symptom is the GPi relative beta over the last
0.25 s (:class:`stimulation.plant.monitor.BiomarkerMonitor`, the env's ``symptom``). The probe
(:class:`stimulation.plant.probe.VirtualProbe`, the bridge's default: 8 of the 10 STN cells,
16 contacts) renders the voltage, which :func:`bci.sorting.sort_recording` sorts through the
online path (artifact blanking with the pulse onsets, templates learnt on the first seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from decoders.symptom import SymptomDecoder
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.monitor import BiomarkerMonitor
from stimulation.plant.probe import VirtualProbe

BIN_S = 0.005
DBS_AMPLITUDE = 300.0
CONDITIONS = ("off", "on", "switching")


@dataclass
class Session:
    counts_true: npt.NDArray[np.float64]  # (n_bins, n_probe_cells) from the plant's spikes
    counts_sorted: npt.NDArray[np.float64] | None  # (n_bins, n_sorted_units)
    beta: npt.NDArray[np.float64]  # (n_bins,) true GPi beta at each bin's end
    dbs_on: npt.NDArray[np.bool_]  # (n_bins,)
    condition: npt.NDArray[np.int64]  # index into CONDITIONS


def schedule(condition: str, n_bins: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    if condition == "off":
        return np.zeros(n_bins, bool)
    if condition == "on":
        return np.ones(n_bins, bool)
    # switching: on/off blocks of 0.5-2 s
    out = np.zeros(n_bins, bool)
    i, state = 0, bool(rng.integers(2))
    while i < n_bins:
        n = int(rng.uniform(0.5, 2.0) / BIN_S)
        out[i : i + n] = state
        state = not state
        i += n
    return out


def simulate(
    seed: int,
    segments: tuple[tuple[str, float], ...] = (("off", 10.0), ("on", 10.0), ("switching", 10.0)),
    sort: bool = True,
    nucleus: str = "stn",
) -> Session:
    rng = np.random.default_rng(seed)
    net = BasalGangliaNetwork(state="pd", cells_per_nucleus=10, seed=seed)
    mon = BiomarkerMonitor(net.lfp_sfreq, 0.25)
    probe = VirtualProbe(10, nucleus, n_units=8, n_channels=16, seed=seed)
    warm = net.step(1.0, 0.0)
    mon.update(warm)
    probe.calibrate_lfp(warm)
    probe.reset(net.t_s)
    on = np.concatenate([schedule(c, int(round(d / BIN_S)), rng) for c, d in segments])
    cond = np.concatenate(
        [np.full(int(round(d / BIN_S)), CONDITIONS.index(c)) for c, d in segments]
    )
    n_bins = on.size
    counts = np.zeros((n_bins, probe.n_units))
    beta = np.zeros(n_bins)
    traces, pulses = [], []
    for k in range(n_bins):
        amp = DBS_AMPLITUDE if on[k] else 0.0
        rec = net.step(BIN_S, amp)
        mon.update(rec)
        b = mon.beta_power("gpi")
        beta[k] = b if np.isfinite(b) else 0.0
        for u, cell in enumerate(probe.cells):
            counts[k, u] = len(rec.spike_times[nucleus][int(cell)])
        if sort:
            chunk = probe.feed(rec, amp)
            traces.append(chunk.data)
            pulses.append(chunk.pulse_samples)
    sorted_counts = None
    if sort:
        from bci.sorting import sort_recording

        x = np.concatenate(traces)
        p = np.concatenate(pulses)
        spikes = sort_recording(
            x, probe.sfreq, probe.positions, calibration_s=8.0, pulses=p if p.size else None
        )
        spikes = spikes[spikes["unit_index"] >= 0]
        n_units = int(spikes["unit_index"].max()) + 1 if spikes.size else 1
        sorted_counts = np.zeros((n_bins, n_units))
        idx = (spikes["sample_index"] // int(round(BIN_S * probe.sfreq))).astype(np.int64)
        keep = idx < n_bins
        np.add.at(sorted_counts, (idx[keep], spikes["unit_index"][keep]), 1)
    return Session(counts, sorted_counts, beta, on, cond)


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
    X: list[np.ndarray] = []
    Y: list[np.ndarray] = []
    for sess in train:
        for counts in (sess.counts_true, sess.counts_sorted):
            assert counts is not None  # simulate() sorts by default
            X.append(counts)
            Y.append(sess.beta[:, None])
    dec = SymptomDecoder().fit(X, Y)
    results = []
    for s in args.test_seeds:
        sess = simulate(s)
        for feed, counts in (("true", sess.counts_true), ("sorted", sess.counts_sorted)):
            assert counts is not None
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
    print(
        f"{'seed':>5} {'feed':>7} "
        + " ".join(f"{c:>16}" for c in (*CONDITIONS, "all"))
        + "  all, 1-s means"
    )
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
