"""Train the shipped symptom decoder and measure how it tracks the true GPi beta on held-out seeds.

Usage: ``python benchmarks/bench_symptom_decoder.py --json OUT [--train-seeds 0 1 ... 11]
[--test-seeds 100 101 102 103 104 105] [--alpha 1e4] [--no-sort | --sort-test-only]
[--save decoders/models/symptom_gpi_beta.npz] [--dump DIR]``

Each seed is a 30-s session of ``BasalGanglia-v0``'s network (10 cells per nucleus) after a 1-s
unstimulated warm-up: 10 s DBS off, 10 s on at one drawn setting, 10 s switching between off and
drawn settings every 0.5-2 s. Settings are drawn over the range a controller uses: 0.5-2.5 mA
(60-300 uA/cm2), 60-180 Hz, 300 us. The plant changes with the seed, in turn: stationary
Parkinsonian, stationary healthy, fluctuating (healthy <-> Parkinsonian, the env's
``plant="fluctuating"``), and so does the integration step (0.025 ms, the env's; 0.01 ms, the
network's default). At each 5-ms step the true symptom is the GPi relative beta over the last
0.25 s (:class:`stimulation.plant.monitor.BiomarkerMonitor`, the env's ``symptom``). The probe
(:class:`stimulation.plant.probe.VirtualProbe`, the bridge's default: 8 of the 10 STN cells,
16 contacts) renders the voltage, which :func:`bci.sorting.sort_recording` sorts through the
online path (artifact blanking with the pulse onsets, templates learnt on the first 8 s, DBS off).

The decoder is fitted on the training seeds' counts: the probed cells' true spikes (as the env
gives them) and, unless ``--sort-test-only`` or ``--no-sort``, the online sorter's units.
Reported per held-out seed and feed: R2 and Pearson r of the estimate against the true beta
(full windows only) per DBS condition, in the healthy and in the Parkinsonian state (the plant's
truth), over all bins, and the R2 of both averaged causally over 1 s (the slow symptom).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from decoders.symptom import SymptomDecoder
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.monitor import BiomarkerMonitor
from stimulation.plant.probe import VirtualProbe

BIN_S = 0.005
DBS_AMPLITUDE = 300.0
CONDITIONS = ("off", "on", "switching")
#: Plant of each seed, in turn (the env's stationary plants and the fluctuating one).
PLANTS = (("pd", "stationary"), ("healthy", "stationary"), ("pd", "fluctuating"))
#: Integration step of each seed, in turn: the env's (0.025 ms) and the network's default.
DT_MS = (0.025, 0.01)
#: DBS settings drawn for "on" blocks: 0.5-2.5 mA (60-300 uA/cm2), 60-180 Hz, 300 us.
AMPLITUDE_RANGE = (60.0, 300.0)
FREQUENCY_RANGE_HZ = (60.0, 180.0)


@dataclass
class Session:
    counts_true: npt.NDArray[np.float64]  # (n_bins, n_probe_cells) from the plant's spikes
    counts_sorted: npt.NDArray[np.float64] | None  # (n_bins, n_sorted_units)
    beta: npt.NDArray[np.float64]  # (n_bins,) true GPi beta at each bin's end
    dbs_on: npt.NDArray[np.bool_]  # (n_bins,)
    condition: npt.NDArray[np.int64]  # index into CONDITIONS
    pd_state: npt.NDArray[np.int64]  # (n_bins,) 1 Parkinsonian, 0 healthy (the plant's truth)
    plant: str  # "pd", "healthy" or "fluctuating"


def schedule(
    condition: str, n_bins: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Amplitude (uA/cm2) and frequency (Hz) of every bin of a segment: off; on at one drawn
    setting; or switching between off and drawn settings in blocks of 0.5-2 s."""
    amp, freq = np.zeros(n_bins), np.full(n_bins, 130.0)

    def draw() -> tuple[float, float]:
        return float(rng.uniform(*AMPLITUDE_RANGE)), float(rng.uniform(*FREQUENCY_RANGE_HZ))

    if condition == "on":
        amp[:], freq[:] = draw()
    elif condition == "switching":
        i, on = 0, bool(rng.integers(2))
        while i < n_bins:
            n = int(rng.uniform(0.5, 2.0) / BIN_S)
            if on:
                amp[i : i + n], freq[i : i + n] = draw()
            on = not on
            i += n
    return amp, freq


def simulate(
    seed: int,
    segments: tuple[tuple[str, float], ...] = (("off", 10.0), ("on", 10.0), ("switching", 10.0)),
    sort: bool = True,
    nucleus: str = "stn",
) -> Session:
    rng = np.random.default_rng(seed)
    state, kind = PLANTS[seed % len(PLANTS)]
    plant = "fluctuating" if kind == "fluctuating" else state
    net = BasalGangliaNetwork(
        state=state, cells_per_nucleus=10, seed=seed, dt_ms=DT_MS[seed % 2], plant=kind
    )
    mon = BiomarkerMonitor(net.lfp_sfreq, 0.25)
    probe = VirtualProbe(10, nucleus, n_units=8, n_channels=16, seed=seed)
    warm = net.step(1.0, 0.0)
    mon.update(warm)
    probe.calibrate_lfp(warm)
    probe.reset(net.t_s)
    plan = [schedule(c, int(round(d / BIN_S)), rng) for c, d in segments]
    amps = np.concatenate([a for a, _ in plan])
    freqs = np.concatenate([f for _, f in plan])
    cond = np.concatenate(
        [np.full(int(round(d / BIN_S)), CONDITIONS.index(c)) for c, d in segments]
    )
    n_bins = amps.size
    counts = np.zeros((n_bins, probe.n_units))
    beta = np.zeros(n_bins)
    pd_state = np.zeros(n_bins, np.int64)
    traces, pulses = [], []
    for k in range(n_bins):
        rec = net.step(BIN_S, float(amps[k]), float(freqs[k]))
        mon.update(rec)
        b = mon.beta_power("gpi")
        beta[k] = b if np.isfinite(b) else 0.0
        pd_state[k] = net.pd_state[0]
        for u, cell in enumerate(probe.cells):
            counts[k, u] = len(rec.spike_times[nucleus][int(cell)])
        if sort:
            chunk = probe.feed(rec, float(amps[k]))
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
    return Session(counts, sorted_counts, beta, amps > 0, cond, pd_state, plant)


def r2(y: np.ndarray, p: np.ndarray) -> float:
    return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))


def causal_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean over the last ``n`` values (fewer at the start)."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    i = np.arange(len(x))
    lo = np.maximum(0, i + 1 - n)
    return (c[i + 1] - c[lo]) / (i + 1 - lo)


def score(beta: np.ndarray, est: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """R2 and Pearson r of ``est`` against ``beta`` on ``mask`` (NaN when too few bins)."""
    if mask.sum() < 100 or np.std(beta[mask]) == 0 or np.std(est[mask]) == 0:
        return float("nan"), float("nan")
    return r2(beta[mask], est[mask]), float(np.corrcoef(beta[mask], est[mask])[0, 1])


GROUPS = (*CONDITIONS, "healthy", "pd", "all")


def evaluate(dec: SymptomDecoder, sess: Session, seed: int, feed: str) -> dict[str, Any]:
    counts = sess.counts_true if feed == "true" else sess.counts_sorted
    assert counts is not None
    est = dec.predict(counts)[:, 0]
    full = np.arange(len(est)) >= dec.n_window
    row: dict[str, Any] = {"seed": seed, "plant": sess.plant, "feed": feed}
    row["n_units"] = int(counts.shape[1])
    # the slow symptom: both averaged causally over 1 s (200 bins)
    k = np.arange(len(est)) >= 200
    row["r2_all_1s"] = r2(causal_mean(sess.beta, 200)[k], causal_mean(est, 200)[k])
    masks = {c: sess.condition == i for i, c in enumerate(CONDITIONS)}
    masks.update(healthy=sess.pd_state == 0, pd=sess.pd_state == 1, all=np.ones_like(full))
    for name in GROUPS:
        row[f"r2_{name}"], row[f"corr_{name}"] = score(sess.beta, est, full & masks[name])
    row["mean_beta_healthy"] = float(sess.beta[full & masks["healthy"]].mean()) if (
        full & masks["healthy"]).any() else float("nan")  # fmt: skip
    row["mean_est_healthy"] = float(est[full & masks["healthy"]].mean()) if (
        full & masks["healthy"]).any() else float("nan")  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=list(range(12)))
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104, 105])
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument(
        "--no-sort", action="store_true", help="true spikes only (no probe voltage, no sorter)"
    )
    ap.add_argument(
        "--sort-test-only",
        action="store_true",
        help="fit on the true spikes only; sort the test sessions and score both feeds",
    )
    ap.add_argument("--alpha", type=float, default=1e4, help="ridge penalty of the read-out")
    ap.add_argument(
        "--dump", type=Path, default=None, help="save each test session's counts and beta (npz)"
    )
    args = ap.parse_args()
    sort = not args.no_sort
    feeds = ("true", "sorted") if sort else ("true",)
    train_feeds = ("true",) if args.sort_test_only else feeds
    t0 = time.perf_counter()
    X: list[np.ndarray] = []
    Y: list[np.ndarray] = []
    for s in args.train_seeds:
        sess = simulate(s, sort=sort and not args.sort_test_only)
        for feed in train_feeds:
            X.append(sess.counts_true if feed == "true" else sess.counts_sorted)  # type: ignore[arg-type]
            Y.append(sess.beta[:, None])
        print(
            f"train seed {s} ({sess.plant}) simulated ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    dec = SymptomDecoder(alpha=args.alpha).fit(X, Y)
    fit_wall = time.perf_counter() - t0
    results = []
    for s in args.test_seeds:
        sess = simulate(s, sort=sort)
        if args.dump is not None:
            args.dump.mkdir(parents=True, exist_ok=True)
            np.savez(
                args.dump / f"seed{s}.npz", counts_true=sess.counts_true, beta=sess.beta,
                condition=sess.condition, pd_state=sess.pd_state, plant=sess.plant,
                **({"counts_sorted": sess.counts_sorted} if sort else {}),
            )  # fmt: skip
        for feed in feeds:
            row = evaluate(dec, sess, s, feed)
            results.append(row)
            print(json.dumps(row), flush=True)
    wall = time.perf_counter() - t0
    print(
        f"{'seed':>5} {'plant':>11} {'feed':>7} "
        + " ".join(f"{c:>13}" for c in GROUPS)
        + "  all, 1-s means   (R2/r)"
    )
    for row in results:
        cells = " ".join(f"{row[f'r2_{c}']:6.2f}/{row[f'corr_{c}']:5.2f}" for c in GROUPS)
        print(
            f"{row['seed']:>5} {row['plant']:>11} {row['feed']:>7} {cells}  {row['r2_all_1s']:6.2f}"
        )
    for feed in feeds:
        r2s = np.array([row["r2_all"] for row in results if row["feed"] == feed])
        print(f"{feed}: R2 (all) mean {r2s.mean():.2f}, min {r2s.min():.2f}, max {r2s.max():.2f}")
    if args.save is not None:
        dec.provenance = {
            "command": "python benchmarks/bench_symptom_decoder.py " + " ".join(sys.argv[1:]),
            "train_seeds": args.train_seeds,
            "feeds": list(train_feeds),
            "wall_s": round(fit_wall, 1),
        }
        args.save.parent.mkdir(parents=True, exist_ok=True)
        dec.save(args.save)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
