"""The basal-ganglia network in plain numpy: the correctness oracle of the compiled model.

The same equations as :mod:`stimulation.plant.network` (Rubin & Terman 2004 with the parameters of
So, Kent & Grill 2012, ModelDB 141699), written again from the sources, vectorised over cells and
stepped by a Python loop: every rate function is its own sigmoid (no shared exponentials), the
pulse currents are laid out as per-step arrays, and the synaptic projections use fancy indexing.
It takes the same seeded inputs (:mod:`stimulation.plant.inputs`), so for a seed it must give the
compiled model's spike trains; the tests and ``benchmarks/bench_plant.py`` check that, and the
benchmark measures the compiled model's speed against this one.

It is slow (tens of seconds of wall time per simulated second): use it on short runs only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from stimulation.errors import PlantParameterError
from stimulation.plant import parameters as p
from stimulation.plant.inputs import (
    CorticalPulses,
    DbsPulses,
    connectivity,
    initial_conditions,
    seed_streams,
    train_on_grid,
    train_onsets,
)
from stimulation.plant.record import PlantRecord
from stimulation.pulses import PulseTrain

Array = NDArray[np.float64]


def _boltz(v: Array, half: float, slope: float) -> Array:
    """``1 / (1 + exp(-(v - half) / slope))``; a negative slope gives a decreasing sigmoid."""
    return np.asarray(1.0 / (1.0 + np.exp(-(v - half) / slope)))


# --- thalamus (Rubin & Terman 2004, So 2012 gating/th_*.m) -----------------------------------------
def th_rates(v: Array) -> dict[str, Array]:
    return {
        "m_inf": _boltz(v, -37.0, 7.0),
        "h_inf": _boltz(v, -41.0, -4.0),
        "r_inf": _boltz(v, -84.0, -4.0),
        "p_inf": _boltz(v, -60.0, 6.2),
        "tau_h": 1.0
        / (0.128 * np.exp(-(v + 46.0) / 18.0) + 4.0 / (1.0 + np.exp(-(v + 23.0) / 5.0))),
        "tau_r": 0.15 * (28.0 + np.exp(-(v + 25.0) / 10.5)),
    }


# --- STN (Terman et al. 2002, So 2012 gating/stn_*.m) ---------------------------------------------
def stn_rates(v: Array, r: Array) -> dict[str, Array]:
    return {
        "m_inf": _boltz(v, -30.0, 15.0),
        "h_inf": _boltz(v, -39.0, -3.1),
        "n_inf": _boltz(v, -32.0, 8.0),
        "r_inf": _boltz(v, -67.0, -2.0),
        "a_inf": _boltz(v, -63.0, 7.8),
        "b_inf": _boltz(r, 0.4, 0.1) - 1.0 / (1.0 + math.exp(0.4 / 0.1)),
        "c_inf": _boltz(v, -20.0, 8.0),
        "tau_n": 1.0 + 100.0 / (1.0 + np.exp((v + 80.0) / 26.0)),
        "tau_h": 1.0 + 500.0 / (1.0 + np.exp((v + 57.0) / 3.0)),
        "tau_r": 7.1 + 17.5 / (1.0 + np.exp((v - 68.0) / 2.2)),
        "tau_c": 1.0 + 10.0 / (1.0 + np.exp((v + 80.0) / 26.0)),
    }


# --- GPe and GPi (Terman et al. 2002, So 2012 gating/gpe_*.m) -------------------------------------
def gp_rates(v: Array) -> dict[str, Array]:
    tau = 0.05 + 0.27 / (1.0 + np.exp((v + 40.0) / 12.0))
    return {
        "m_inf": _boltz(v, -37.0, 10.0),
        "h_inf": _boltz(v, -58.0, -12.0),
        "n_inf": _boltz(v, -50.0, 14.0),
        "r_inf": _boltz(v, -70.0, -2.0),
        "a_inf": _boltz(v, -57.0, 2.0),
        "s_inf": _boltz(v, -35.0, 2.0),
        "tau_n": tau,
        "tau_h": tau,
        # synaptic activation of GPe output, H_inf(v - theta_g) with H_inf(x) = sig((x + 57) / 2)
        "h_syn": _boltz(v - p.GPE_SYN_THETA, -57.0, 2.0),
    }


class ReferenceNetwork:
    """Plain-numpy twin of :class:`~stimulation.plant.BasalGangliaNetwork` (same arguments).

    Only :meth:`run` is provided. Spike times are upward crossings (TH -40 mV, others -10 mV)
    linearly interpolated between steps, as in the compiled model.
    """

    def __init__(
        self,
        state: str = "pd",
        cells_per_nucleus: int = 10,
        seed: int = 0,
        dbs_target: str = "stn",
        dt_ms: float = 0.01,
        lfp_sfreq: float = 1000.0,
    ) -> None:
        if state not in p.STATES or dbs_target not in p.DBS_TARGETS:
            raise PlantParameterError(f"Unknown state {state!r} or DBS target {dbs_target!r}.")
        self.n = int(cells_per_nucleus)
        self.dt = float(dt_ms)
        self.dbs_target = dbs_target
        self.lfp_sfreq = float(lfp_sfreq)
        self.decim = round(1000.0 / (lfp_sfreq * dt_ms))
        init_rng, smc_rng = seed_streams(seed)
        ic = initial_conditions(self.n, state, init_rng)
        self.th = {k: ic.th[i].copy() for i, k in enumerate(("v", "h", "r"))}
        self.stn = {
            k: ic.stn[i].copy() for i, k in enumerate(("v", "n", "h", "r", "c", "ca", "s", "z"))
        }
        self.gpe = {k: ic.gpe[i].copy() for i, k in enumerate(("v", "n", "h", "r", "ca", "s"))}
        self.gpi = {k: ic.gpi[i].copy() for i, k in enumerate(("v", "n", "h", "r", "ca", "s", "z"))}
        self.iapp_stn, self.iapp_gpe, self.iapp_gpi = ic.iapp
        pre = connectivity(self.n)
        self.pre = {
            name: pre[i]
            for i, name in enumerate(("gpe_stn", "stn_gpe", "gpe_gpe", "stn_gpi", "gpe_gpi"))
        }
        self.smc = CorticalPulses(smc_rng, self.dt)
        self.k = 0
        self.lfp_acc = np.zeros(4)
        self.dbs_pulses = DbsPulses.empty()

    # ------------------------------------------------------------------ inputs as per-step arrays
    def _smc_current(self, k0: int, k1: int) -> tuple[Array, NDArray[np.int64]]:
        for_kernel, new = self.smc.onsets(k0, k1)
        current = np.zeros(k1 - k0)
        for onset in for_kernel:
            lo, hi = max(onset, k0), min(onset + self.smc.width_steps, k1)
            current[lo - k0 : hi - k0] = p.SMC_AMPLITUDE
        return current, new

    def _dbs_current(self, k0: int, k1: int) -> Array:
        current = np.zeros(k1 - k0)
        d = self.dbs_pulses
        for i in range(len(d)):
            phases = [(int(d.onsets[i]), d.amps[i])]
            if d.biphasic[i]:
                phases.append((int(d.onsets[i] + d.pw[i] + d.gap[i]), -d.amps[i]))
            for start, amp in phases:
                lo, hi = max(start, k0), min(start + int(d.pw[i]), k1)
                if hi > lo:
                    current[lo - k0 : hi - k0] = amp
        return current

    # ------------------------------------------------------------------ integration
    def run(self, duration_s: float, dbs: PulseTrain | None = None) -> PlantRecord:
        """Simulate ``duration_s`` seconds (forward Euler, one Python iteration per step)."""
        n_steps = round(duration_s * 1e3 / self.dt)
        if n_steps < 1:
            raise PlantParameterError(f"duration_s too short: {duration_s}")
        k0, k1 = self.k, self.k + n_steps
        new = DbsPulses.empty()
        if dbs is not None and dbs.amplitude > 0.0:
            new = train_on_grid(dbs, train_onsets(dbs, k0, k1, self.dt), self.dt)
        self.dbs_pulses = DbsPulses.join(self.dbs_pulses, new)
        i_smc, smc_new = self._smc_current(k0, k1)
        i_dbs = self._dbs_current(k0, k1)
        zeros = np.zeros(k1 - k0)
        dbs_into = {t: (i_dbs if t == self.dbs_target else zeros) for t in p.DBS_TARGETS}
        spikes: list[list[list[float]]] = [[[] for _ in range(self.n)] for _ in range(4)]
        lfp: list[list[float]] = [[] for _ in range(4)]
        for step in range(n_steps):
            k = k0 + step
            syn = self._step(
                i_smc[step],
                dbs_into["stn"][step],
                dbs_into["gpe"][step],
                dbs_into["gpi"][step],
                k,
                spikes,
            )
            self.lfp_acc += syn
            if (k + 1) % self.decim == 0:
                for nu in range(4):
                    lfp[nu].append(self.lfp_acc[nu] / self.decim)
                self.lfp_acc[:] = 0.0
        self.k = k1
        dt_s = self.dt * 1e-3
        first_end = (k0 // self.decim + 1) * self.decim
        return PlantRecord(
            t_start_s=k0 * dt_s,
            t_stop_s=k1 * dt_s,
            spike_times={
                name: [np.asarray(cell, dtype=np.float64) * 1e-3 for cell in spikes[nu]]
                for nu, name in enumerate(p.NUCLEI)
            },
            cortex_pulse_times=smc_new.astype(np.float64) * dt_s,
            dbs_pulse_times=new.onsets.astype(np.float64) * dt_s,
            lfp={name: np.asarray(lfp[nu], dtype=np.float32) for nu, name in enumerate(p.NUCLEI)},
            lfp_sfreq=self.lfp_sfreq,
            lfp_t_start_s=(first_end - self.decim) * dt_s,
        )

    def _spikes(
        self, v: Array, v_new: Array, threshold: float, k: int, out: list[list[float]]
    ) -> NDArray[np.bool_]:
        crossed = (v < threshold) & (v_new > threshold)
        for j in np.flatnonzero(crossed):
            out[j].append((k + (threshold - v[j]) / (v_new[j] - v[j])) * self.dt)
        return crossed

    def _step(
        self,
        i_smc: float,
        d_stn: float,
        d_gpe: float,
        d_gpi: float,
        k: int,
        spikes: list[list[list[float]]],
    ) -> Array:
        dt = self.dt
        th, stn, gpe, gpi = self.th, self.stn, self.gpe, self.gpi
        s_stn, s_gpe, s_gpi = stn["s"].copy(), gpe["s"].copy(), gpi["s"].copy()

        def pair(s: Array, name: str) -> Array:
            idx = self.pre[name]
            return np.asarray(s[idx[:, 0]] + s[idx[:, 1]])

        # thalamus
        v = th["v"]
        x = th_rates(v)
        i_syn_th = p.G_GPI_TH * (v - p.E_GPI_TH) * s_gpi
        i_ion = (
            p.TH_GL * (v - p.TH_EL)
            + p.TH_GK * (0.75 * (1.0 - th["h"])) ** 4 * (v - p.TH_EK)
            + p.TH_GNA * x["m_inf"] ** 3 * th["h"] * (v - p.TH_ENA)
            + p.TH_GT * x["p_inf"] ** 2 * th["r"] * (v - p.TH_ET)
        )
        v_new = v + dt * (-i_ion - i_syn_th + i_smc)
        th["h"] = th["h"] + dt * (x["h_inf"] - th["h"]) / x["tau_h"]
        th["r"] = th["r"] + dt * (x["r_inf"] - th["r"]) / x["tau_r"]
        self._spikes(v, v_new, p.TH_SPIKE_THRESHOLD_MV, k, spikes[0])
        th["v"] = v_new

        # STN
        v = stn["v"]
        x = stn_rates(v, stn["r"])
        i_syn_stn = 0.5 * p.G_GPE_STN * (v - p.E_GPE_STN) * pair(s_gpe, "gpe_stn")
        i_t = p.STN_GT * x["a_inf"] ** 3 * x["b_inf"] ** 2 * (v - p.STN_ECA)
        i_ca = p.STN_GCA * stn["c"] ** 2 * (v - p.STN_ECA)
        i_ion = (
            p.STN_GL * (v - p.STN_EL)
            + p.STN_GK * stn["n"] ** 4 * (v - p.STN_EK)
            + p.STN_GNA * x["m_inf"] ** 3 * stn["h"] * (v - p.STN_ENA)
            + i_t
            + i_ca
            + p.STN_GAHP * (v - p.STN_EK) * stn["ca"] / (stn["ca"] + p.STN_K1)
        )
        v_new = v + dt * (-i_ion - i_syn_stn + self.iapp_stn + d_stn)
        stn["n"] = stn["n"] + dt * p.STN_PHI_N * (x["n_inf"] - stn["n"]) / x["tau_n"]
        stn["h"] = stn["h"] + dt * p.STN_PHI_H * (x["h_inf"] - stn["h"]) / x["tau_h"]
        stn["r"] = stn["r"] + dt * p.STN_PHI_R * (x["r_inf"] - stn["r"]) / x["tau_r"]
        stn["c"] = stn["c"] + dt * p.STN_PHI_C * (x["c_inf"] - stn["c"]) / x["tau_c"]
        stn["ca"] = stn["ca"] + dt * p.STN_EPS_CA * (-i_ca - i_t - p.STN_KCA * stn["ca"])
        fired = self._spikes(v, v_new, p.SPIKE_THRESHOLD_MV, k, spikes[1])
        self._alpha(stn, fired, p.SYN_PEAK_STN)
        stn["v"] = v_new

        # GPe, GPi
        lfp_gp = []
        for nu, (cells, e_name, i_name, g_e, e_e, g_i, e_i, i_app, d_ext) in enumerate(
            (
                (
                    gpe,
                    "stn_gpe",
                    "gpe_gpe",
                    p.G_STN_GPE,
                    p.E_STN_GPE,
                    p.G_GPE_GPE,
                    p.E_GPE_GPE,
                    self.iapp_gpe,
                    d_gpe,
                ),
                (
                    gpi,
                    "stn_gpi",
                    "gpe_gpi",
                    p.G_STN_GPI,
                    p.E_STN_GPI,
                    p.G_GPE_GPI,
                    p.E_GPE_GPI,
                    self.iapp_gpi,
                    d_gpi,
                ),
            )
        ):
            v = cells["v"]
            x = gp_rates(v)
            i_syn_e = 0.5 * g_e * (v - e_e) * pair(s_stn, e_name)
            i_syn_i = 0.5 * g_i * (v - e_i) * pair(s_gpe, i_name)
            i_t = p.GP_GT * x["a_inf"] ** 3 * cells["r"] * (v - p.GP_ECA)
            i_ca = p.GP_GCA * x["s_inf"] ** 2 * (v - p.GP_ECA)
            i_ion = (
                p.GP_GL * (v - p.GP_EL)
                + p.GP_GK * cells["n"] ** 4 * (v - p.GP_EK)
                + p.GP_GNA * x["m_inf"] ** 3 * cells["h"] * (v - p.GP_ENA)
                + i_t
                + i_ca
                + p.GP_GAHP * (v - p.GP_EK) * cells["ca"] / (cells["ca"] + p.GP_K1)
            )
            v_new = v + dt * (-i_ion - i_syn_e - i_syn_i + i_app + d_ext)
            cells["n"] = cells["n"] + dt * p.GP_PHI_N * (x["n_inf"] - cells["n"]) / x["tau_n"]
            cells["h"] = cells["h"] + dt * p.GP_PHI_H * (x["h_inf"] - cells["h"]) / x["tau_h"]
            cells["r"] = cells["r"] + dt * p.GP_PHI_R * (x["r_inf"] - cells["r"]) / p.GP_TAU_R
            cells["ca"] = cells["ca"] + dt * p.GP_EPS_CA * (-i_ca - i_t - p.GP_KCA * cells["ca"])
            fired = self._spikes(v, v_new, p.SPIKE_THRESHOLD_MV, k, spikes[2 + nu])
            if nu == 0:
                s = cells["s"]
                cells["s"] = s + dt * (
                    p.GPE_SYN_ALPHA * (1.0 - s) * x["h_syn"] - p.GPE_SYN_BETA * s
                )
            else:
                self._alpha(cells, fired, p.SYN_PEAK_GPI)
            cells["v"] = v_new
            lfp_gp.append(float(np.sum(i_syn_e + i_syn_i)))
        return np.array([i_syn_th.sum(), i_syn_stn.sum(), lfp_gp[0], lfp_gp[1]])

    def _alpha(self, cells: dict[str, Array], fired: NDArray[np.bool_], peak: float) -> None:
        """Alpha synapse of So 2012: s += dt z; z += dt (-2 z / tau - s / tau^2), z kicked by
        peak e / tau at each spike (the update of z uses the new s, as in BGnetwork.m)."""
        tau = p.SYN_TAU_MS
        cells["s"] = cells["s"] + self.dt * cells["z"]
        cells["z"] = cells["z"] + self.dt * (-2.0 / tau * cells["z"] - cells["s"] / tau**2)
        cells["z"] = cells["z"] + np.where(fired, peak / (tau * math.exp(-1.0)), 0.0)
