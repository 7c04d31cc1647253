"""Decoders on synthetic reaching: accuracy, footprint, sparsity, synaptic operations, speed.

Usage: ``python benchmarks/bench_decoders.py --json OUT [--seeds 1 2 3] [--duration 600]``

Task: 96 cosine-tuned units (:func:`bci.synthesis.motor.simulate_reaching`, random targets),
10 minutes, 20-ms bins, hand velocity (vx, vy); trained on the first 80%, scored on the last 20%
(R2 per output and their mean), three seeds. Per decoder: R2 (mean, min and max over seeds),
footprint (parameters x 4 bytes, float32), activation sparsity and effective synaptic operations
per bin (MACs and ACs, NeuroBench's definitions, counted by :mod:`decoders.runtime`), and
per-bin inference time (p50/p99) of the numpy path; for the spiking decoders also the plain-torch
step of the same network, side by side in one run. The runtime timing of a 96-256-2 LIF network
is measured separately (the issue's speed goal).

When NeuroBench is installed (the ``bench`` extra: ``make bench`` installs it without its
dependencies, see ``benchmarks/_neurobench.py``), its own metric classes (``Footprint``,
``ActivationSparsity``, ``SynapticOperations``, ``R2``) measure every decoder except the Kalman
filter (no layers it can hook) on the first ``--neurobench-bins`` test bins, beside our counts on
the same bins, in a second table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import _neurobench
import numpy as np

from bci.synthesis.motor import simulate_reaching
from decoders import KalmanDecoder, WienerDecoder
from decoders.ann import GRUDecoder, MLPDecoder
from decoders.runtime import SpikingRuntime
from decoders.snn.decoder import ConvertedSNNDecoder, RecurrentSNNDecoder, SNNDecoder


def r2(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)


def time_steps(step: Any, X: np.ndarray, n: int = 2000) -> tuple[float, float]:
    """p50 and p99 wall time (us) of ``step(x)`` over ``n`` bins."""
    ts = np.empty(n)
    for i in range(n):
        x = X[i % len(X)]
        t = time.perf_counter()
        step(x)
        ts[i] = time.perf_counter() - t
    return float(np.percentile(ts, 50) * 1e6), float(np.percentile(ts, 99) * 1e6)


def torch_step_fn(dec: Any) -> Any:
    """A plain-torch single-bin step of a spiking decoder's network (batch 1, no autograd)."""
    import torch

    torch.set_num_threads(1)
    net = dec.net
    lay = net.layers[0]
    w = torch.as_tensor(lay.w_in)
    b = torch.as_tensor(lay.b_in)
    wr = None if lay.w_rec is None else torch.as_tensor(lay.w_rec)
    beta, thr = torch.as_tensor(lay.beta), torch.as_tensor(lay.threshold)
    wo, bo, bout = (torch.as_tensor(a) for a in (net.w_out, net.b_out, net.beta_out))
    state = {"v": torch.zeros(lay.n_neurons), "s": torch.zeros(lay.n_neurons), "y": torch.zeros(2)}

    @torch.no_grad()
    def step(x: np.ndarray) -> Any:
        cur = torch.mv(w, torch.from_numpy(x)) + b
        if wr is not None:
            cur += torch.mv(wr, state["s"])
        v = beta * state["v"] + cur
        s = (v > thr).float()
        state["v"], state["s"] = v * (1 - s), s
        state["y"] = bout * state["y"] + torch.mv(wo, s) + bo
        return state["y"]

    return step


def neurobench_row(dec: Any, X: np.ndarray, Y: np.ndarray) -> dict[str, Any] | None:
    """NeuroBench's numbers for ``dec`` on ``(X, Y)`` beside ours on the same bins (None when
    NeuroBench is not installed or cannot hook the decoder)."""
    if _neurobench.available() is None:
        return None
    try:
        nb = _neurobench.measure(dec, X, Y)
    except TypeError:  # the Kalman filter
        return None
    if hasattr(dec, "count_ops"):
        ops = dec.count_ops(X)
        ours = {"macs": ops.macs_per_bin, "acs": ops.acs_per_bin, "dense": ops.dense / ops.bins}
        ours["sparsity"] = ops.activation_sparsity
    else:
        ours = {"macs": dec.synaptic_ops["macs"], "acs": 0.0, "dense": dec.synaptic_ops["macs"]}
    return {"neurobench": nb, "ours": ours}


def bench_seed(
    seed: int, duration_s: float, quick: bool, nb_bins: int = 1000
) -> list[dict[str, Any]]:
    data = simulate_reaching(96, duration_s, 0.02, seed=seed)
    X, Y = data.counts, data.velocity
    n = int(0.8 * len(X))
    Xtr, Ytr, Xte, Yte = X[:n], Y[:n], X[n:], Y[n:]
    epochs = 3 if quick else 40
    mlp = MLPDecoder(seed=seed, epochs=epochs)
    decoders: list[tuple[str, Any]] = [
        ("Wiener (5 lags)", WienerDecoder()),
        ("Kalman", KalmanDecoder()),
        ("ANN: MLP 480-256-2", mlp),
        ("ANN: GRU 96-64-2", GRUDecoder(seed=seed, epochs=epochs)),
        ("SNN: ANN-converted IF, 16 steps", None),
        ("SNN: LIF 96-64-2 (SNN2-like)", SNNDecoder(seed=seed, epochs=epochs)),
        ("SNN: recurrent LIF 96-64r-2", RecurrentSNNDecoder(seed=seed, epochs=epochs)),
    ]
    rows = []
    for name, dec in decoders:
        if dec is None:
            dec = ConvertedSNNDecoder(mlp=mlp, substeps=16)
        t0 = time.perf_counter()
        dec.fit(Xtr, Ytr, output_names=["vx", "vy"], output_units=["cm/s", "cm/s"])
        fit_s = time.perf_counter() - t0
        pred = dec.predict(Xte)
        scores = r2(Yte, pred)
        row: dict[str, Any] = {
            "seed": seed,
            "decoder": name,
            "r2_vx": float(scores[0]),
            "r2_vy": float(scores[1]),
            "r2": float(scores.mean()),
            "fit_s": fit_s,
        }
        if hasattr(dec, "count_ops"):
            ops = dec.count_ops(Xte[:3000])
            row.update(
                macs=ops.macs_per_bin,
                acs=ops.acs_per_bin,
                sparsity=ops.activation_sparsity,
                params=dec.n_parameters,
            )
        else:
            row.update(macs=dec.synaptic_ops["macs"], acs=0.0)  # no activations: no sparsity
            _, arrays = dec._state()
            row["params"] = int(sum(np.asarray(a).size for a in arrays.values()))
        row["footprint_bytes"] = 4 * row["params"]
        nb = neurobench_row(dec, Xte[:nb_bins], Yte[:nb_bins])
        if nb is not None:
            row["neurobench"], row["ours_nb_bins"] = nb["neurobench"], nb["ours"]
        dec.reset()
        row["numpy_p50_us"], row["numpy_p99_us"] = time_steps(dec.step, Xte)
        if hasattr(dec, "net") and dec.net.substeps == 1:
            rt = dec.runtime
            Xn = dec.norm.x(Xte).astype(np.float32)
            rt.reset()
            row["runtime_p50_us"], row["runtime_p99_us"] = time_steps(rt.step, Xn)
            row["torch_p50_us"], row["torch_p99_us"] = time_steps(torch_step_fn(dec), Xn)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_runtime_96_256_2() -> dict[str, float]:
    """The speed goal: one bin of a 96-256-2 LIF network, numpy runtime vs plain torch."""
    from decoders.training import build_spiking_module

    module = build_spiking_module(96, (256,), 2, False, seed=0)
    net = module.export()

    class Holder:
        pass

    h = Holder()
    h.net = net  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    X = rng.poisson(0.3, size=(2000, 96)).astype(np.float32)
    rt = SpikingRuntime(net)
    out = {}
    out["numpy_p50_us"], out["numpy_p99_us"] = time_steps(rt.step, X, 5000)
    out["torch_p50_us"], out["torch_p99_us"] = time_steps(torch_step_fn(h), X, 5000)
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for name in dict.fromkeys(r["decoder"] for r in rows):
        rs = [r for r in rows if r["decoder"] == name]
        entry: dict[str, Any] = {"decoder": name}
        for key in ("r2", "r2_vx", "r2_vy"):
            v = np.array([r[key] for r in rs])
            entry[key] = float(v.mean())
            entry[f"{key}_min"], entry[f"{key}_max"] = float(v.min()), float(v.max())
        for key in ("macs", "acs", "sparsity", "footprint_bytes", "numpy_p50_us", "numpy_p99_us",
                    "torch_p50_us", "torch_p99_us", "fit_s"):  # fmt: skip
            vals = [r[key] for r in rs if key in r]
            if vals:
                entry[key] = float(np.mean(vals))
        for src, prefix in (("neurobench", "nb_"), ("ours_nb_bins", "ours_")):
            got = [r[src] for r in rs if src in r]
            for key in got[0] if got else ():
                if key != "version":
                    entry[prefix + key] = float(np.mean([g[key] for g in got]))
            if prefix == "nb_" and got:
                entry["nb_max_abs_diff"] = float(np.max([g["max_abs_diff"] for g in got]))
        table.append(entry)
    return table


def print_neurobench(table: list[dict[str, Any]], n_bins: int) -> None:
    """NeuroBench's metrics beside ours (means over seeds, the first ``n_bins`` test bins)."""
    rows = [e for e in table if "nb_macs" in e]
    if not rows:
        print("NeuroBench is not installed: no NeuroBench columns (make bench installs it).")
        return
    print(
        f"NeuroBench {_neurobench.available()} metrics (its own code) vs ours, per bin, first "
        f"{n_bins} test bins, mean over seeds; R2 is NeuroBench's (mean of vx, vy) on those bins"
    )
    print(
        f"{'decoder':34} {'MACs NB/ours':>17} {'ACs NB/ours':>15} {'MACs+ACs NB/ours':>17} "
        f"{'dense NB/ours':>17} {'sparsity NB/ours':>17} {'bytes NB/ours':>17} {'R2 NB':>6} "
        f"{'|out-predict|':>13}"
    )
    for e in rows:
        tot_nb, tot_ours = e["nb_macs"] + e["nb_acs"], e["ours_macs"] + e["ours_acs"]
        sp = f"{e['nb_sparsity']:.3f}/" + (
            f"{e['ours_sparsity']:.3f}" if "ours_sparsity" in e else "-"
        )
        print(
            f"{e['decoder']:34} {e['nb_macs']:8.0f}/{e['ours_macs']:<8.0f} "
            f"{e['nb_acs']:7.0f}/{e['ours_acs']:<7.0f} {tot_nb:8.0f}/{tot_ours:<8.0f} "
            f"{e['nb_dense']:8.0f}/{e['ours_dense']:<8.0f} {sp:>17} "
            f"{e['nb_footprint_bytes']:8.0f}/{e['footprint_bytes']:<8.0f} {e['nb_r2']:6.3f} "
            f"{e['nb_max_abs_diff']:13.1e}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--quick", action="store_true", help="3 epochs (a smoke run)")
    ap.add_argument(
        "--neurobench-bins", type=int, default=1000, help="test bins NeuroBench measures"
    )
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        rows += bench_seed(seed, args.duration, args.quick, args.neurobench_bins)
    table = summarise(rows)
    speed = bench_runtime_96_256_2()
    head = f"{'decoder':34} {'R2 mean [min, max]':>22} {'MACs/bin':>9} {'ACs/bin':>8} {'sparsity':>8} {'bytes':>8} {'numpy p50/p99 us':>17} {'torch p50/p99 us':>17}"
    print(head)
    for e in table:
        torch_t = f"{e['torch_p50_us']:.0f}/{e['torch_p99_us']:.0f}" if "torch_p50_us" in e else "-"
        print(
            f"{e['decoder']:34} {e['r2']:6.3f} [{e['r2_min']:.3f}, {e['r2_max']:.3f}] "
            f"{e['macs']:9.0f} {e['acs']:8.0f} "
            + (f"{e['sparsity']:8.2f}" if "sparsity" in e else f"{'-':>8}")
            + f" {e['footprint_bytes']:8.0f} "
            f"{e['numpy_p50_us']:7.0f}/{e['numpy_p99_us']:<7.0f} {torch_t:>17}"
        )
    print(f"96-256-2 LIF, one bin: numpy runtime p50 {speed['numpy_p50_us']:.1f} us / p99 "
          f"{speed['numpy_p99_us']:.1f} us; plain torch p50 {speed['torch_p50_us']:.1f} / p99 "
          f"{speed['torch_p99_us']:.1f} us")  # fmt: skip
    print_neurobench(table, args.neurobench_bins)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"rows": rows, "table": table, "runtime_96_256_2": speed}, indent=1)
        )


if __name__ == "__main__":
    main()
