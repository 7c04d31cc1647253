"""Benchmark the basal-ganglia plant: speed against the numpy oracle, and the So 2012 science.

Three parts, all in one run:

- **speed**: the compiled model (:class:`stimulation.plant.BasalGangliaNetwork`) and the plain-numpy
  implementation of the same equations (:class:`stimulation.plant.reference.ReferenceNetwork`, the
  correctness oracle), each on the same seed, side by side as wall seconds per simulated second and
  their ratio, for 10 and 100 cells per nucleus. Both are checked to give the same spike trains on
  the oracle's (short) window. The real-time factor is simulated seconds per wall second on one
  core (the compiled loop is single-threaded). Profile rows time the kernel's vectorised cell
  updates alone against a whole step, to say what limits the speed.
- **batched speed**: ``B`` networks of 10 cells (B = 1, 2, 8), each run separately (one compiled
  call per network, each a batch of one) against one :class:`~stimulation.plant.batch.
  NetworkBatch` call (their cells side by side in the vector lanes), same seeds, same run: wall
  seconds per simulated network-second and their ratio, the spike trains checked equal bit for
  bit. The profile row times the vectorised cell updates of ``8 x 10`` lanes alone against a
  batched step.
- **science** (So, Kent & Grill 2012): over ``--seeds`` (default 1-5), 4 s simulated with the first
  2 s discarded: thalamic error index (EI) and GPi relative beta (13-30 Hz over 4-100 Hz) in the
  healthy and Parkinsonian states, and Parkinsonian with STN DBS (300 uA/cm2, 0.3 ms) at 130 and
  20 Hz; the issue's acceptance checks on the seed means.
- **frequency sweep**: EI and GPi beta against STN DBS frequency (0, 20, 40, 80, 130, 180 Hz), seed
  means and SDs, drawn as a PNG (matplotlib Agg) like So 2012's frequency-response figure.

Never fails on timing. Usage::

    .venv/bin/python benchmarks/bench_plant.py --json OUT.json [--figure OUT.png]
    .venv/bin/python benchmarks/bench_plant.py --quick      # 2 seeds, shorter reference runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from stimulation import PulseTrain
from stimulation.plant import BasalGangliaNetwork, PlantRecord, _cells
from stimulation.plant.batch import NetworkBatch
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.reference import ReferenceNetwork

SWEEP_HZ = (0.0, 20.0, 40.0, 80.0, 130.0, 180.0)
DBS_UA_CM2, DBS_PW_US = 300.0, 300.0
DURATION_S, DISCARD_S = 4.0, 2.0


def _wall(fn: Any, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _max_spike_diff(a: PlantRecord, b: PlantRecord) -> tuple[bool, float, int]:
    same_counts, worst, n = True, 0.0, 0
    for nu in NUCLEI:
        for x, y in zip(a.spike_times[nu], b.spike_times[nu], strict=True):
            if x.size != y.size:
                same_counts = False
                continue
            n += x.size
            if x.size:
                worst = max(worst, float(np.abs(x - y).max()))
    return same_counts, worst, n


@njit(error_model="numpy")
def _cell_updates(n_cells: int, n_steps: int) -> float:  # pragma: no cover - numba
    """The four vectorised nucleus updates of the kernel alone, on a network at rest."""
    n_pad = ((n_cells + 7) // 8) * 8
    th, stn = np.full((3, n_pad), 0.5), np.full((8, n_pad), 0.3)
    gpe, gpi = np.full((6, n_pad), 0.3), np.full((7, n_pad), 0.3)
    th[0], stn[0], gpe[0], gpi[0] = -65.0, -60.0, -62.0, -63.0
    th2, stn2, gpe2, gpi2 = th.copy(), stn.copy(), gpe.copy(), gpi.copy()
    drive, isyn, iapp = np.zeros((6, n_pad)), np.zeros((4, n_pad)), np.full((3, n_pad), 20.0)
    ext = np.zeros((4, n_pad))
    for _ in range(n_steps):
        _cells.th_update(th, th2, drive[0], isyn[0], ext[0], 0.01, n_pad)
        _cells.stn_update(stn, stn2, drive[1], iapp[0], isyn[1], ext[1], 0.01, n_pad)
        _cells.gp_update(
            gpe,
            gpe2,
            drive[2],
            drive[3],
            0.3,
            0.0,
            1.0,
            -85.0,
            iapp[1],
            isyn[2],
            ext[2],
            0.01,
            n_pad,
            True,
        )
        _cells.gp_update(
            gpi,
            gpi2,
            drive[4],
            drive[5],
            0.3,
            0.0,
            1.0,
            -85.0,
            iapp[2],
            isyn[3],
            ext[3],
            0.01,
            n_pad,
            False,
        )
        th, th2, stn, stn2, gpe, gpe2, gpi, gpi2 = th2, th, stn2, stn, gpe2, gpe, gpi2, gpi
    return th[0, 0] + stn[0, 0] + gpe[0, 0] + gpi[0, 0]


def speed(n_cells: int, fast_s: float, ref_s: float, repeats: int) -> dict[str, Any]:
    """Wall time per simulated second, compiled vs numpy, same seed, same spike trains."""
    BasalGangliaNetwork(cells_per_nucleus=n_cells).run(0.001)  # compile / load the cache
    fast_wall = _wall(
        lambda: BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=1).run(fast_s), repeats
    )
    t0 = time.perf_counter()
    slow_rec = ReferenceNetwork(cells_per_nucleus=n_cells, seed=1).run(ref_s)
    ref_wall = time.perf_counter() - t0
    fast_rec = BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=1).run(ref_s)
    same, worst, n_spikes = _max_spike_diff(fast_rec, slow_rec)
    fast_per_s, ref_per_s = fast_wall / fast_s, ref_wall / ref_s
    return {
        "n_cells": n_cells,
        "compiled_wall_per_sim_s": fast_per_s,
        "numpy_wall_per_sim_s": ref_per_s,
        "speedup_vs_numpy": ref_per_s / fast_per_s,
        "real_time_factor": 1.0 / fast_per_s,
        "simulated_s": {"compiled": fast_s, "numpy": ref_s},
        "oracle_same_spike_counts": same,
        "oracle_max_spike_time_diff_s": worst,
        "oracle_spikes_compared": n_spikes,
    }


def profile(n_cells: int, repeats: int) -> dict[str, Any]:
    """Share of a step spent in the vectorised cell updates (the rest: spike tests, synaptic
    drives, LFP sums, pulse bookkeeping, the Python call)."""
    n_steps = 20000
    _cell_updates(n_cells, 10)
    updates = _wall(lambda: _cell_updates(n_cells, n_steps), repeats) / n_steps
    BasalGangliaNetwork(cells_per_nucleus=n_cells).run(0.001)
    step = _wall(lambda: BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=1).run(0.2), repeats)
    per_step = step / n_steps
    return {
        "n_cells": n_cells,
        "us_per_step": per_step * 1e6,
        "cell_updates_us_per_step": updates * 1e6,
        "cell_updates_share": updates / per_step,
        "ns_per_cell_update": updates / (4 * n_cells) * 1e9,
    }


def batch_speed(n_cells: int, n_nets: int, sim_s: float, repeats: int) -> dict[str, Any]:
    """Per-network wall time per simulated second: separate calls vs one batched call."""
    dbs = PulseTrain(DBS_UA_CM2, 130.0, DBS_PW_US)
    NetworkBatch([BasalGangliaNetwork(cells_per_nucleus=n_cells)]).run(0.001)  # compile / load

    def separate() -> list[PlantRecord]:
        nets = [BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=s) for s in range(n_nets)]
        return [net.run(sim_s, dbs=dbs) for net in nets]

    def batched() -> list[PlantRecord]:
        nets = [BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=s) for s in range(n_nets)]
        return NetworkBatch(nets).run(sim_s, [dbs] * n_nets)

    sep_wall, bat_wall = math.inf, math.inf
    for _ in range(repeats):  # interleaved, so a change in machine load hits both
        sep_wall = min(sep_wall, _wall(separate, 1))
        bat_wall = min(bat_wall, _wall(batched, 1))
    same = True
    for a, b in zip(separate(), batched(), strict=True):
        same_counts, worst, _ = _max_spike_diff(a, b)
        same = same and same_counts and worst == 0.0
    sep, bat = sep_wall / (n_nets * sim_s), bat_wall / (n_nets * sim_s)
    return {
        "n_cells": n_cells,
        "n_networks": n_nets,
        "separate_wall_per_net_s": sep,
        "batched_wall_per_net_s": bat,
        "batched_speedup": sep / bat,
        "batched_real_time_factor": 1.0 / bat,
        "bit_identical": same,
    }


def batch_profile(n_cells: int, n_nets: int, repeats: int) -> dict[str, Any]:
    """Share of a batched step spent in the vectorised cell updates of all its lanes."""
    n_steps, lanes = 20000, n_cells * n_nets
    _cell_updates(lanes, 10)
    updates = _wall(lambda: _cell_updates(lanes, n_steps), repeats) / n_steps
    nets = [BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=s) for s in range(n_nets)]
    batch = NetworkBatch(nets)
    batch.run(0.001)
    per_step = _wall(lambda: batch.run(0.2), repeats) / n_steps
    return {
        "n_cells": n_cells,
        "n_networks": n_nets,
        "us_per_step": per_step * 1e6,
        "cell_updates_us_per_step": updates * 1e6,
        "cell_updates_share": updates / per_step,
        "ns_per_cell_update": updates / (4 * lanes) * 1e9,
    }


def run_condition(state: str, freq: float, seed: int, dt_ms: float = 0.01) -> dict[str, Any]:
    dbs = None if freq == 0.0 else PulseTrain(DBS_UA_CM2, freq, DBS_PW_US)
    rec = BasalGangliaNetwork(state=state, seed=seed, dt_ms=dt_ms).run(DURATION_S, dbs=dbs)
    return {
        "ei": rec.error_index(DISCARD_S),
        "gpi_beta": rec.beta_power("gpi", DISCARD_S),
        "stn_beta": rec.beta_power("stn", DISCARD_S),
        "rates_hz": rec.firing_rates(DISCARD_S),
        "gpi_synchrony": rec.synchrony("gpi", DISCARD_S),
    }


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def science(seeds: list[int]) -> dict[str, Any]:
    conditions = {"healthy": ("healthy", 0.0), "pd": ("pd", 0.0)}
    sweep = {f"pd_dbs{int(f)}": ("pd", f) for f in SWEEP_HZ if f > 0}
    out: dict[str, Any] = {}
    for name, (state, freq) in {**conditions, **sweep}.items():
        runs = [run_condition(state, freq, seed) for seed in seeds]
        out[name] = {
            "state": state,
            "dbs_hz": freq,
            "ei": _mean_sd([r["ei"] for r in runs]),
            "gpi_beta": _mean_sd([r["gpi_beta"] for r in runs]),
            "stn_beta": _mean_sd([r["stn_beta"] for r in runs]),
            "rates_hz": {nu: statistics.fmean(r["rates_hz"][nu] for r in runs) for nu in NUCLEI},
            "gpi_synchrony": statistics.fmean(r["gpi_synchrony"] for r in runs),
            "per_seed": {"ei": [r["ei"] for r in runs], "gpi_beta": [r["gpi_beta"] for r in runs]},
        }
    ei = {k: v["ei"][0] for k, v in out.items()}
    beta = {k: v["gpi_beta"][0] for k, v in out.items()}
    out["checks"] = {
        "ei_healthy_below_0.1": ei["healthy"] < 0.1,
        "ei_pd_above_0.4": ei["pd"] > 0.4,
        "ei_dbs130_below_half_pd": ei["pd_dbs130"] < 0.5 * ei["pd"],
        "ei_dbs20_not_below_half_pd": ei["pd_dbs20"] >= 0.5 * ei["pd"],
        "gpi_beta_pd_at_least_3x_healthy": beta["pd"] >= 3.0 * beta["healthy"],
    }
    return out


DT_CONDITIONS = {
    "healthy": ("healthy", 0.0),
    "pd": ("pd", 0.0),
    "pd_dbs130": ("pd", 130.0),
    "pd_dbs20": ("pd", 20.0),
}


def dt_comparison(seeds: list[int], dts: list[float]) -> dict[str, Any]:
    """The science table at each integration step, side by side, with the wall time per
    simulated second (the larger step is accepted only if the table still holds)."""
    out: dict[str, Any] = {}
    BasalGangliaNetwork(cells_per_nucleus=10).run(0.001)
    for dt in dts:
        rows: dict[str, Any] = {}
        t0 = time.perf_counter()
        for name, (state, freq) in DT_CONDITIONS.items():
            runs = [run_condition(state, freq, seed, dt) for seed in seeds]
            rows[name] = {
                "ei": [r["ei"] for r in runs],
                "gpi_beta": [r["gpi_beta"] for r in runs],
                "rates_hz": {
                    nu: statistics.fmean(r["rates_hz"][nu] for r in runs) for nu in NUCLEI
                },
            }
        wall = time.perf_counter() - t0
        rows["wall_per_sim_s"] = wall / (len(DT_CONDITIONS) * len(seeds) * DURATION_S)
        out[f"{dt:g}"] = rows
    return out


def print_dt_comparison(cmp: dict[str, Any], seeds: list[int]) -> None:
    dts = list(cmp)
    print(
        f"\nScience table by integration step (seeds {seeds}, {DURATION_S:g} s, {DISCARD_S:g} s "
        "discarded; per-seed values)"
    )
    for name in DT_CONDITIONS:
        for dt in dts:
            r = cmp[dt][name]
            ei = " ".join(f"{v:.3f}" for v in r["ei"])
            beta = " ".join(f"{v:.3f}" for v in r["gpi_beta"])
            rates = "/".join(f"{r['rates_hz'][nu]:.1f}" for nu in NUCLEI)
            print(
                f"{name:>10} dt {dt:>5} ms | EI {statistics.fmean(r['ei']):.3f} [{ei}] | GPi beta "
                f"{statistics.fmean(r['gpi_beta']):.3f} [{beta}] | rates {rates}"
            )
    for dt in dts:
        print(f"dt {dt} ms: {cmp[dt]['wall_per_sim_s']:.3f} s wall per simulated s (10 cells)")


def figure(sci: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = list(SWEEP_HZ)
    keys = ["pd" if f == 0 else f"pd_dbs{int(f)}" for f in freqs]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for ax, metric, label in (
        (axes[0], "ei", "thalamic error index"),
        (axes[1], "gpi_beta", "GPi relative beta power (13-30 Hz)"),
    ):
        mean = [sci[k][metric][0] for k in keys]
        sd = [sci[k][metric][1] for k in keys]
        ax.errorbar(freqs, mean, yerr=sd, marker="o", capsize=3, label="Parkinsonian + STN DBS")
        ax.axhline(sci["healthy"][metric][0], color="tab:green", ls="--", label="healthy")
        ax.axhline(sci["pd"][metric][0], color="tab:red", ls=":", label="Parkinsonian, DBS off")
        ax.set_xlabel("DBS frequency (Hz); 300 uA/cm2, 0.3 ms")
        ax.set_ylabel(label)
        ax.set_xticks(freqs)
    axes[0].legend(fontsize=8)
    fig.suptitle("Basal-ganglia plant (Rubin & Terman 2004 / So et al. 2012), seed means +- SD")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--figure", type=Path, help="PNG of the frequency sweep")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--quick", action="store_true", help="2 seeds, shorter reference runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--dt-compare",
        type=float,
        nargs="+",
        metavar="DT_MS",
        help="only the science table at these integration steps (ms), side by side",
    )
    args = parser.parse_args()
    if args.dt_compare:
        cmp = dt_comparison(args.seeds, args.dt_compare)
        print_dt_comparison(cmp, args.seeds)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"dt_comparison": cmp}, indent=2))
        return
    seeds = args.seeds[:2] if args.quick else args.seeds
    ref10, ref100 = (0.05, 0.01) if args.quick else (0.2, 0.03)
    figure_path = args.figure or (
        args.json.with_suffix(".png") if args.json else Path("bench_plant_sweep.png")
    )

    t_start = time.perf_counter()
    load_before = os.getloadavg()
    rows = [speed(10, 2.0, ref10, args.repeats), speed(100, 0.2, ref100, args.repeats)]
    prof = [profile(10, args.repeats), profile(100, args.repeats)]
    batch_rows = [batch_speed(10, b, 0.5, args.repeats) for b in (1, 2, 8)]
    batch_prof = batch_profile(10, 8, args.repeats)
    sci = science(seeds)
    figure(sci, figure_path)
    load_after = os.getloadavg()

    print(
        f"\nSpeed (one core; load average {load_before[0]:.2f} -> {load_after[0]:.2f}, "
        f"{os.cpu_count()} CPUs)"
    )
    print(
        f"{'cells':>6} {'compiled s/s':>13} {'numpy s/s':>10} {'speedup':>8} {'x real time':>12}"
        f" {'oracle':>22}"
    )
    for r in rows:
        oracle = (
            f"same, max {r['oracle_max_spike_time_diff_s']:.1e} s"
            if r["oracle_same_spike_counts"]
            else "DIFFERENT spike counts"
        )
        print(
            f"{r['n_cells']:>6} {r['compiled_wall_per_sim_s']:>13.3f} "
            f"{r['numpy_wall_per_sim_s']:>10.2f} {r['speedup_vs_numpy']:>7.0f}x "
            f"{r['real_time_factor']:>11.2f}x {oracle:>22}"
        )
    for p in prof:
        print(
            f"profile ({p['n_cells']} cells): {p['us_per_step']:.2f} us per step, of which the "
            f"vectorised cell updates {p['cell_updates_us_per_step']:.2f} us "
            f"({100 * p['cell_updates_share']:.0f}%, {p['ns_per_cell_update']:.1f} ns per cell)"
        )
    print(
        f"\nBatched networks ({batch_rows[0]['n_cells']} cells each, 0.5 s of 130 Hz DBS; per "
        "network, same run)"
    )
    print(
        f"{'networks':>8} {'separate s/s':>13} {'batched s/s':>12} {'speedup':>8} "
        f"{'x real time':>12} {'spikes':>14}"
    )
    for r in batch_rows:
        print(
            f"{r['n_networks']:>8} {r['separate_wall_per_net_s']:>13.3f} "
            f"{r['batched_wall_per_net_s']:>12.3f} {r['batched_speedup']:>7.2f}x "
            f"{r['batched_real_time_factor']:>11.2f}x "
            f"{'bit-identical' if r['bit_identical'] else 'DIFFERENT':>14}"
        )
    p = batch_prof
    print(
        f"profile (batch of {p['n_networks']} x {p['n_cells']} cells): {p['us_per_step']:.2f} us per "
        f"step, of which the vectorised cell updates {p['cell_updates_us_per_step']:.2f} us "
        f"({100 * p['cell_updates_share']:.0f}%, {p['ns_per_cell_update']:.1f} ns per cell)"
    )

    print(
        f"\nScience, seeds {seeds}, {DURATION_S:g} s with {DISCARD_S:g} s discarded "
        f"(So 2012 DBS: {DBS_UA_CM2:g} uA/cm2, {DBS_PW_US:g} us, into STN)"
    )
    print(
        f"{'condition':>14} {'EI':>13} {'GPi beta':>13} {'STN beta':>9} "
        f"{'rates TH/STN/GPe/GPi (Hz)':>27}"
    )
    for name, v in sci.items():
        if name == "checks":
            continue
        rates = "/".join(f"{v['rates_hz'][nu]:.1f}" for nu in NUCLEI)
        print(
            f"{name:>14} {v['ei'][0]:>6.3f}+-{v['ei'][1]:.3f} {v['gpi_beta'][0]:>6.3f}+-"
            f"{v['gpi_beta'][1]:.3f} {v['stn_beta'][0]:>9.3f} {rates:>27}"
        )
    for check, ok in sci["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {check}")
    print(f"figure: {figure_path}   (total {time.perf_counter() - t_start:.0f} s)")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "machine": {
                        "platform": platform.platform(),
                        "processor": platform.processor(),
                        "cpus": os.cpu_count(),
                        "load_avg_before": load_before,
                        "load_avg_after": load_after,
                    },
                    "speed": rows,
                    "profile": prof,
                    "batched": batch_rows,
                    "batched_profile": batch_prof,
                    "science": sci,
                    "seeds": seeds,
                    "figure": str(figure_path),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
