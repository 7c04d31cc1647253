"""Plant sessions for the symptom decoder: probe spikes (true and online-sorted) and true GPi beta.

A session of ``BasalGanglia-v0``'s network (Parkinsonian, 10 cells per nucleus) runs in 5-ms
steps with DBS off, on (So et al. 2012 STN-DBS: 300 uA/cm2, 130 Hz, 300 us) or switching, after a
1-s unstimulated warm-up. At each step the true symptom is the GPi relative beta over the last
0.25 s (:class:`stimulation.plant.monitor.BiomarkerMonitor`, the env's ``symptom``). The probe
(:class:`stimulation.plant.probe.VirtualProbe`, the bridge's default: 8 of the 10 STN cells,
16 contacts) renders the voltage, which :func:`bci.sorting.sort_recording` sorts through the
online path (artifact blanking with the pulse onsets, templates learnt on the first seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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
        b = (spikes["sample_index"] // int(round(BIN_S * probe.sfreq))).astype(np.int64)
        keep = b < n_bins
        np.add.at(sorted_counts, (b[keep], spikes["unit_index"][keep]), 1)
    return Session(counts, sorted_counts, beta, on, cond)
