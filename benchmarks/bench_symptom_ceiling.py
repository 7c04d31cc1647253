"""How well can spikes track the symptom at all? Upper bounds for the symptom decoder.

Usage: ``python benchmarks/bench_symptom_ceiling.py --json OUT [--train-seeds 0 1 2 3 4 5]
[--test-seeds 100 101 102 103 104 105]``

The sessions of the issue's goal (``BasalGanglia-v0``'s Parkinsonian network, stationary,
10 cells per nucleus, 30 s: 10 s DBS off, 10 s So-2012 STN-DBS, 10 s switching every 0.5-2 s;
target: the GPi relative beta over the last 0.25 s at every 5-ms step), but no probe and no
sorter: every decoder here is fed the TRUE spike times of the plant's cells at 1-ms resolution
(more than the loop has), and is fitted on the training seeds and scored on held-out seeds. The
decoders are offline upper bounds, not online code (the physical reconstruction is fitted with
zero-phase filters):

- ``shipped``: the shipped symptom model on the 8 STN cells of the bridge's default probe
  (5-ms counts, as in the loop but without sorting losses);
- ``spectral <cells>``: ridge regression on the log power of the pooled spike count in 17 bands
  (4-500 Hz) and its log rate, over the target's own 0.25-s window, per nucleus of ``<cells>``
  (a flexible, order-free decoder; "probe 8" = the 8 cells a :class:`VirtualProbe` in that
  nucleus records);
- ``physical <cells>``: the model's own LFP proxy rebuilt from spikes: GPi cell ``j`` receives
  ``0.15 v_j s_STN + 0.5 (v_j + 85) s_GPe`` from its two STN and two GPe cells (the ring
  connectivity of :func:`stimulation.plant.inputs.connectivity`); ``s_STN`` is the alpha synapse
  (5 ms) of STN spikes, ``s_GPe`` a 25-ms exponential of GPe spikes, and ``v_j`` is represented
  by indicator functions of the time since GPi cell ``j``'s last spike. The regressors (their
  sums over cells and products) are fitted by least squares to the GPi LFP proxy, once in the
  4-100 Hz band and once in the beta band; the estimate is the rebuilt beta power over the
  rebuilt 4-100 Hz power in the window. ``all`` uses every STN, GPe and GPi cell; the partial
  variants keep only what the named cells give.

Printed: R2 / Pearson r against the true beta per held-out seed (first 0.25 s left out), and R2
per condition (off, on, switching) for each decoder.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from bench_symptom_decoder import BIN_S, CONDITIONS
from scipy.signal import butter, get_window, lfilter, sosfiltfilt

from decoders.symptom import DEFAULT_MODEL, SymptomDecoder
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.monitor import BiomarkerMonitor
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.probe import VirtualProbe

F64 = npt.NDArray[np.float64]
MS = 0.001
WINDOW_MS = 250
HOP_MS = int(round(BIN_S / MS))
N_CELLS = 10
EDGES_HZ = (4, 8, 13, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 130, 160, 200, 300, 500)
PHASE_EDGES_MS = (0, 1, 2, 3, 4, 6, 8, 10, 13, 16, 10**6)


DBS_AMPLITUDE = 300.0  # So et al. 2012's STN-DBS (uA/cm2), 130 Hz, 300 us


def schedule(condition: str, n_bins: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """DBS on/off of every bin: off, on, or switching in blocks of 0.5-2 s."""
    if condition in ("off", "on"):
        return np.full(n_bins, condition == "on")
    out = np.zeros(n_bins, bool)
    i, state = 0, bool(rng.integers(2))
    while i < n_bins:
        n = int(rng.uniform(0.5, 2.0) / BIN_S)
        out[i : i + n] = state
        state = not state
        i += n
    return out


def simulate(seed: int) -> dict[str, Any]:
    """1-ms spike counts of every cell ``(n_ms, 4, N_CELLS)``, the GPi LFP proxy (1 kHz), the
    true beta and the condition at every 5-ms step."""
    segments = (("off", 10.0), ("on", 10.0), ("switching", 10.0))
    rng = np.random.default_rng(seed)
    net = BasalGangliaNetwork(state="pd", cells_per_nucleus=N_CELLS, seed=seed)
    mon = BiomarkerMonitor(net.lfp_sfreq, 0.25)
    mon.update(net.step(1.0, 0.0))
    on = np.concatenate([schedule(c, int(round(d / BIN_S)), rng) for c, d in segments])
    cond = np.concatenate(
        [np.full(int(round(d / BIN_S)), CONDITIONS.index(c)) for c, d in segments]
    )
    n = on.size
    counts = np.zeros((n * HOP_MS, len(NUCLEI), N_CELLS), np.int8)
    beta = np.zeros(n)
    lfp = []
    for k in range(n):
        rec = net.step(BIN_S, DBS_AMPLITUDE if on[k] else 0.0)
        mon.update(rec)
        b = mon.beta_power("gpi")
        beta[k] = b if np.isfinite(b) else 0.0
        for i, nu in enumerate(NUCLEI):
            for c in range(N_CELLS):
                t = np.asarray(rec.spike_times[nu][c])
                j = np.clip(np.floor((t - rec.t_start_s) / MS + 1e-9).astype(int), 0, HOP_MS - 1)
                np.add.at(counts[k * HOP_MS : (k + 1) * HOP_MS, i, c], j, 1)
        lfp.append(np.asarray(rec.lfp["gpi"], np.float64))
    return {"counts": counts, "lfp": np.concatenate(lfp), "beta": beta, "cond": cond}


def window_spectra(x: F64) -> tuple[F64, F64]:
    """Power spectra of the 0.25-s window of ``x`` (1 kHz) ending at every 5-ms step (Hann,
    mean removed, as the biomarker)."""
    n = len(x) // HOP_MS
    pad = np.concatenate([np.zeros(WINDOW_MS), np.asarray(x, np.float64)])
    ends = (np.arange(n) + 1) * HOP_MS
    w = pad[ends[:, None] + np.arange(WINDOW_MS)[None, :]]
    w = w - w.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(get_window("hann", WINDOW_MS) * w, axis=1)
    return np.fft.rfftfreq(WINDOW_MS, MS), spec.real**2 + spec.imag**2


def spectral_features(pooled: F64) -> F64:
    f, p = window_spectra(pooled)
    cols = [
        np.log(p[:, (f >= lo) & (f < hi)].sum(axis=1) + 1e-3)
        for lo, hi in zip(EDGES_HZ[:-1], EDGES_HZ[1:], strict=True)
    ]
    c = np.concatenate([[0.0], np.cumsum(pooled)])
    ends = (np.arange(len(pooled) // HOP_MS) + 1) * HOP_MS
    cols.append(np.log1p((c[ends] - c[np.maximum(ends - WINDOW_MS, 0)]) / WINDOW_MS))
    return np.stack(cols, axis=1)


def probe_cells(seed: int, nucleus: str) -> list[int]:
    """The cells the bridge's default probe (8 units, 16 contacts) records in ``nucleus``."""
    return [
        int(c) for c in VirtualProbe(N_CELLS, nucleus, n_units=8, n_channels=16, seed=seed).cells
    ]


def physical_regressors(counts: npt.NDArray[Any], use: dict[str, list[int]]) -> F64:
    """Regressors of the GPi LFP proxy from the spikes of the cells in ``use`` (see the module
    docstring); cells left out contribute nothing."""
    c = counts.astype(np.float64)
    t = np.arange(60.0)
    mask = {nu: np.isin(np.arange(N_CELLS), use.get(nu, [])) for nu in ("stn", "gpe", "gpi")}
    s_stn = lfilter((t / 5.0) * np.exp(1.0 - t / 5.0), [1.0], c[:, 1] * mask["stn"], axis=0)
    s_gpe = lfilter(np.exp(-t / 25.0), [1.0], c[:, 2] * mask["gpe"], axis=0)
    j = np.arange(N_CELLS)
    # GPi cell j: STN cells j, j-1; GPe cells j+1, j-2 (inputs.PROJECTIONS)
    de = 0.5 * (s_stn[:, j] + s_stn[:, (j - 1) % N_CELLS])
    di = 0.5 * (s_gpe[:, (j + 1) % N_CELLS] + s_gpe[:, (j - 2) % N_CELLS])
    cols = [de.sum(axis=1), di.sum(axis=1)]
    gpi = np.flatnonzero(mask["gpi"])
    if gpi.size:
        g = c[:, 3][:, gpi]
        since = np.zeros_like(g)
        last = np.full(gpi.size, -1e6)
        for k in range(len(g)):
            last = np.where(g[k] > 0, k, last)
            since[k] = k - last
        for lo, hi in zip(PHASE_EDGES_MS[:-1], PHASE_EDGES_MS[1:], strict=True):
            ph = ((since >= lo) & (since < hi)).astype(np.float64)
            cols += [ph.sum(axis=1), (ph * de[:, gpi]).sum(axis=1), (ph * di[:, gpi]).sum(axis=1)]
    return np.stack(cols, axis=1)


class Physical:
    """The rebuilt LFP proxy's relative beta (fitted once per band, see the module docstring)."""

    def __init__(self, use: Callable[[int], dict[str, list[int]]]) -> None:
        self.use = use
        self.total = butter(4, [4, 100], "bandpass", fs=1 / MS, output="sos")
        self.beta = butter(4, [13, 30], "bandpass", fs=1 / MS, output="sos")

    def fit(self, sessions: dict[int, dict[str, Any]], seeds: list[int]) -> Physical:
        self.w = {}
        for name, sos in (("total", self.total), ("beta", self.beta)):
            G: Any = 0.0
            h: Any = 0.0
            for s in seeds:
                X = sosfiltfilt(
                    sos, physical_regressors(sessions[s]["counts"], self.use(s)), axis=0
                )
                y = sosfiltfilt(sos, sessions[s]["lfp"])
                X, y = X[1000:], y[1000:]  # filter edges
                G, h = G + X.T @ X, h + X.T @ y
            ridge = 1e-3 * np.trace(G) / len(G) * np.eye(len(G))
            self.w[name] = np.linalg.solve(G + ridge, h)
        return self

    def predict(self, sess: dict[str, Any], seed: int) -> F64:
        X = physical_regressors(sess["counts"], self.use(seed))
        f, p_tot = window_spectra(X @ self.w["total"])
        _, p_beta = window_spectra(X @ self.w["beta"])
        band, total = (f >= 13) & (f <= 30), (f >= 4) & (f <= 100)
        beta = p_beta[:, band].sum(axis=1)
        rest = p_tot[:, total].sum(axis=1) - p_tot[:, band].sum(axis=1)
        return np.asarray(beta / np.maximum(beta + rest, 1e-30))


class Spectral:
    """Ridge on the windowed log band powers of the pooled counts of each nucleus' cells."""

    def __init__(self, use: Callable[[int], dict[str, list[int]]], alpha: float = 10.0) -> None:
        self.use, self.alpha = use, alpha

    def features(self, sess: dict[str, Any], seed: int) -> F64:
        cols = []
        for nu, cells in self.use(seed).items():
            pooled = sess["counts"][:, NUCLEI.index(nu)][:, cells].sum(axis=1)
            cols.append(spectral_features(pooled.astype(np.float64)))
        return np.hstack(cols)

    def fit(self, sessions: dict[int, dict[str, Any]], seeds: list[int]) -> Spectral:
        F = np.vstack([self.features(sessions[s], s)[50:] for s in seeds])
        y = np.concatenate([sessions[s]["beta"][50:] for s in seeds])
        self.m, self.sd = F.mean(axis=0), F.std(axis=0) + 1e-9
        Z = (F - self.m) / self.sd
        self.y0 = y.mean()
        self.w = np.linalg.solve(Z.T @ Z + self.alpha * np.eye(Z.shape[1]), Z.T @ (y - self.y0))
        return self

    def predict(self, sess: dict[str, Any], seed: int) -> F64:
        return np.asarray((self.features(sess, seed) - self.m) / self.sd @ self.w + self.y0)


class Shipped:
    """The shipped symptom model on the default STN probe's cells, 5-ms counts."""

    def __init__(self) -> None:
        self.dec = SymptomDecoder.load(DEFAULT_MODEL)

    def fit(self, sessions: dict[int, dict[str, Any]], seeds: list[int]) -> Shipped:
        return self

    def predict(self, sess: dict[str, Any], seed: int) -> F64:
        c = sess["counts"][:, NUCLEI.index("stn")][:, probe_cells(seed, "stn")]
        c5 = c.reshape(-1, HOP_MS, c.shape[1]).sum(axis=1).astype(np.float64)
        return np.asarray(self.dec.predict(c5)[:, 0])


ALL = list(range(N_CELLS))


def decoders() -> list[tuple[str, Any]]:
    return [
        ("shipped model, STN probe 8 (5 ms)", Shipped()),
        ("spectral, STN probe 8", Spectral(lambda s: {"stn": probe_cells(s, "stn")})),
        ("spectral, STN all 10", Spectral(lambda s: {"stn": ALL})),
        ("spectral, GPi probe 8", Spectral(lambda s: {"gpi": probe_cells(s, "gpi")})),
        ("spectral, GPi all 10", Spectral(lambda s: {"gpi": ALL})),
        ("spectral, STN+GPe+GPi all 30", Spectral(lambda s: {"stn": ALL, "gpe": ALL, "gpi": ALL})),
        ("physical, STN probe 8", Physical(lambda s: {"stn": probe_cells(s, "stn")})),
        ("physical, GPi all 10", Physical(lambda s: {"gpi": ALL})),
        (
            "physical, STN probe 8 + GPi probe 8",
            Physical(lambda s: {"stn": probe_cells(s, "stn"), "gpi": probe_cells(s, "gpi")}),
        ),
        ("physical, STN+GPe all 20", Physical(lambda s: {"stn": ALL, "gpe": ALL})),
        ("physical, STN+GPe+GPi all 30", Physical(lambda s: {"stn": ALL, "gpe": ALL, "gpi": ALL})),
    ]


def score(beta: F64, est: F64, cond: npt.NDArray[Any]) -> dict[str, float]:
    def r2(m: Any) -> float:
        y, p = beta[m], est[m]
        return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))

    full = np.arange(len(beta)) >= WINDOW_MS // HOP_MS
    row = {"r2": r2(full), "r": float(np.corrcoef(beta[full], est[full])[0, 1])}
    for ci, cname in enumerate(CONDITIONS):
        m = full & (cond == ci)
        row[f"r2_{cname}"] = r2(m)
        row[f"r_{cname}"] = float(np.corrcoef(beta[m], est[m])[0, 1])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--test-seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104, 105])
    args = ap.parse_args()
    t0 = time.perf_counter()
    sessions = {}
    for s in [*args.train_seeds, *args.test_seeds]:
        sessions[s] = simulate(s)
        print(f"seed {s} simulated ({time.perf_counter() - t0:.0f} s)", flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    for name, dec in decoders():
        dec.fit(sessions, args.train_seeds)
        rows = []
        for s in args.test_seeds:
            sess = sessions[s]
            rows.append({"seed": s, **score(sess["beta"], dec.predict(sess, s), sess["cond"])})
        results[name] = rows
        print(json.dumps({"decoder": name, "rows": rows}), flush=True)
    seeds = " ".join(f"{s:>10}" for s in args.test_seeds)
    print(f"\nR2/r per held-out seed (all 30 s); R2 min..max per condition\n{'decoder':38} {seeds}"
          f"  {'off':>11} {'on':>11} {'switching':>11}")  # fmt: skip
    for name, rows in results.items():
        cells = " ".join(f"{r['r2']:5.2f}/{r['r']:4.2f}" for r in rows)
        cond = " ".join(
            f"{min(r[f'r2_{c}'] for r in rows):5.2f}..{max(r[f'r2_{c}'] for r in rows):<4.2f}"
            for c in CONDITIONS
        )
        print(f"{name:38} {cells}  {cond}")
    wall = time.perf_counter() - t0
    print(f"wall {wall:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
