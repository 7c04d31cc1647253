"""The compiled integration loop of the basal-ganglia network (numba, forward Euler).

One call integrates all cells of the four nuclei over many time steps with every state variable in
preallocated arrays; spikes go into preallocated buffers and the LFP proxy is decimated on the fly.
The equations are written out in :mod:`stimulation.plant.network` (the public docstring) and again,
independently, in plain numpy in :mod:`stimulation.plant.reference` (the correctness oracle).

State layout (rows of the per-nucleus state arrays, columns are cells):

- ``th``:  v, h, r
- ``stn``: v, n, h, r, c, ca, s, z
- ``gpe``: v, n, h, r, ca, s, z
- ``gpi``: v, n, h, r, ca, s, z

``s`` is the synaptic (alpha-function) variable a cell sends to its targets and ``z = ds/dt``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stimulation.plant.parameters import (
    E_GPE_GPE,
    E_GPE_GPI,
    E_GPE_STN,
    E_GPI_TH,
    E_STN_GPE,
    E_STN_GPI,
    G_GPE_GPE,
    G_GPE_GPI,
    G_GPE_STN,
    G_GPI_TH,
    G_STN_GPE,
    G_STN_GPI,
    GP_EK,
    GP_EL,
    GP_ENA,
    GP_EPS_CA,
    GP_ECA,
    GP_GAHP,
    GP_GCA,
    GP_GK,
    GP_GL,
    GP_GNA,
    GP_GT,
    GP_K1,
    GP_KCA,
    GP_PHI_H,
    GP_PHI_N,
    GP_PHI_R,
    GP_TAU_R,
    SPIKE_THRESHOLD_MV,
    STN_ECA,
    STN_EK,
    STN_EL,
    STN_ENA,
    STN_EPS_CA,
    STN_GAHP,
    STN_GCA,
    STN_GK,
    STN_GL,
    STN_GNA,
    STN_GT,
    STN_K1,
    STN_KCA,
    STN_PHI_C,
    STN_PHI_H,
    STN_PHI_N,
    STN_PHI_R,
    SYN_PEAK,
    SYN_PEAK_GPI,
    SYN_TAU_MS,
    TH_EK,
    TH_EL,
    TH_ENA,
    TH_ET,
    TH_GK,
    TH_GL,
    TH_GNA,
    TH_GT,
    TH_SPIKE_THRESHOLD_MV,
)

# Jump of z = ds/dt at a presynaptic spike, so that s(t) = peak * (t / tau) * exp(1 - t / tau).
_KICK = math.e / SYN_TAU_MS
_INV_TAU2 = 1.0 / (SYN_TAU_MS * SYN_TAU_MS)
_TWO_OVER_TAU = 2.0 / SYN_TAU_MS
_B_INF_OFFSET = 1.0 / (1.0 + math.exp(4.0))  # b_inf(0) in Rubin & Terman 2004

DBS_STN, DBS_GPE, DBS_GPI = 0, 1, 2


@njit(cache=True, fastmath=False, nogil=True)
def _record_spike(buf_cell, buf_time, counts, nucleus, cell, t_ms):  # pragma: no cover - numba
    i = counts[nucleus]
    buf_cell[nucleus, i] = cell
    buf_time[nucleus, i] = t_ms
    counts[nucleus] = i + 1


@njit(cache=True, fastmath=False, nogil=True)
def integrate(
    th, stn, gpe, gpi,
    iapp_stn, iapp_gpe, iapp_gpi,
    pre_gpe_stn, w_gpe_stn, pre_stn_gpe, w_stn_gpe, pre_gpe_gpe, w_gpe_gpe,
    pre_stn_gpi, w_stn_gpi, pre_gpe_gpi, w_gpe_gpi,
    dt, k0, n_steps,
    smc_onsets, smc_width, smc_amplitude,
    dbs_onsets, dbs_amps, dbs_pw, dbs_gap, dbs_biphasic, dbs_target,
    decim, lfp_acc, lfp_out,
    buf_cell, buf_time, counts,
):  # pragma: no cover - compiled by numba
    """Advance the network ``n_steps`` steps of ``dt`` ms from global step ``k0``.

    Returns ``(steps_done, n_lfp)``: stops early (``steps_done < n_steps``) when a spike buffer
    has fewer free slots than cells, so the caller can drain the buffers and call again.
    """
    n = th.shape[1]
    cap = buf_cell.shape[1]
    n_lfp = 0
    # synaptic drive of each postsynaptic cell, from the presynaptic s at the start of the step
    d_gpe_stn = np.empty(n)
    d_stn_gpe = np.empty(n)
    d_gpe_gpe = np.empty(n)
    d_stn_gpi = np.empty(n)
    d_gpe_gpi = np.empty(n)
    d_gpi_th = np.empty(n)
    i_smc_ptr = -1
    i_dbs_ptr = -1
    n_smc = smc_onsets.shape[0]
    n_dbs = dbs_onsets.shape[0]
    kpre = pre_gpe_stn.shape[1]
    for step in range(n_steps):
        for nu in range(4):
            if counts[nu] + n > cap:
                return step, n_lfp
        k = k0 + step
        t_ms = k * dt
        # cortical drive to the thalamus: the latest onset <= k decides
        while i_smc_ptr + 1 < n_smc and smc_onsets[i_smc_ptr + 1] <= k:
            i_smc_ptr += 1
        i_smc = 0.0
        if i_smc_ptr >= 0 and k - smc_onsets[i_smc_ptr] < smc_width:
            i_smc = smc_amplitude
        # DBS current into the target nucleus
        while i_dbs_ptr + 1 < n_dbs and dbs_onsets[i_dbs_ptr + 1] <= k:
            i_dbs_ptr += 1
        i_dbs = 0.0
        if i_dbs_ptr >= 0:
            phase = k - dbs_onsets[i_dbs_ptr]
            pw = dbs_pw[i_dbs_ptr]
            if phase < pw:
                i_dbs = dbs_amps[i_dbs_ptr]
            elif dbs_biphasic[i_dbs_ptr] != 0:
                second = phase - pw - dbs_gap[i_dbs_ptr]
                if second >= 0 and second < pw:
                    i_dbs = -dbs_amps[i_dbs_ptr]
        dbs_stn = i_dbs if dbs_target == DBS_STN else 0.0
        dbs_gpe = i_dbs if dbs_target == DBS_GPE else 0.0
        dbs_gpi = i_dbs if dbs_target == DBS_GPI else 0.0

        for j in range(n):
            a = 0.0
            b = 0.0
            c = 0.0
            d = 0.0
            e = 0.0
            for q in range(kpre):
                a += w_gpe_stn[j, q] * gpe[5, pre_gpe_stn[j, q]]
                b += w_stn_gpe[j, q] * stn[6, pre_stn_gpe[j, q]]
                c += w_gpe_gpe[j, q] * gpe[5, pre_gpe_gpe[j, q]]
                d += w_stn_gpi[j, q] * stn[6, pre_stn_gpi[j, q]]
                e += w_gpe_gpi[j, q] * gpe[5, pre_gpe_gpi[j, q]]
            d_gpe_stn[j] = a
            d_stn_gpe[j] = b
            d_gpe_gpe[j] = c
            d_stn_gpi[j] = d
            d_gpe_gpi[j] = e
            d_gpi_th[j] = gpi[5, j]

        lfp_th = 0.0
        lfp_stn = 0.0
        lfp_gpe = 0.0
        lfp_gpi = 0.0
        # ---------------------------------------------------------------- thalamus
        for j in range(n):
            v = th[0, j]
            h = th[1, j]
            r = th[2, j]
            m_inf = 1.0 / (1.0 + math.exp(-(v + 37.0) / 7.0))
            h_inf = 1.0 / (1.0 + math.exp((v + 41.0) / 4.0))
            r_inf = 1.0 / (1.0 + math.exp((v + 84.0) / 4.0))
            p_inf = 1.0 / (1.0 + math.exp(-(v + 60.0) / 6.2))
            tau_h = 1.0 / (
                0.128 * math.exp(-(v + 46.0) / 18.0) + 4.0 / (1.0 + math.exp(-(v + 23.0) / 5.0))
            )
            tau_r = 0.15 * (28.0 + math.exp(-(v + 25.0) / 10.5))
            i_l = TH_GL * (v - TH_EL)
            i_na = TH_GNA * m_inf * m_inf * m_inf * h * (v - TH_ENA)
            kk = 0.75 * (1.0 - h)
            i_k = TH_GK * kk * kk * kk * kk * (v - TH_EK)
            i_t = TH_GT * p_inf * p_inf * r * (v - TH_ET)
            i_syn = G_GPI_TH * d_gpi_th[j] * (v - E_GPI_TH)
            v_new = v + dt * (-i_l - i_na - i_k - i_t - i_syn + i_smc)
            th[0, j] = v_new
            th[1, j] = h + dt * (h_inf - h) / tau_h
            th[2, j] = r + dt * (r_inf - r) / tau_r
            lfp_th += i_syn
            if v < TH_SPIKE_THRESHOLD_MV <= v_new:
                _record_spike(
                    buf_cell, buf_time, counts, 0, j,
                    t_ms + dt * (TH_SPIKE_THRESHOLD_MV - v) / (v_new - v),
                )
        # ---------------------------------------------------------------- STN
        for j in range(n):
            v = stn[0, j]
            nn = stn[1, j]
            h = stn[2, j]
            r = stn[3, j]
            cc = stn[4, j]
            ca = stn[5, j]
            s = stn[6, j]
            z = stn[7, j]
            m_inf = 1.0 / (1.0 + math.exp(-(v + 30.0) / 15.0))
            h_inf = 1.0 / (1.0 + math.exp((v + 39.0) / 3.1))
            n_inf = 1.0 / (1.0 + math.exp(-(v + 32.0) / 8.0))
            r_inf = 1.0 / (1.0 + math.exp((v + 67.0) / 2.0))
            a_inf = 1.0 / (1.0 + math.exp(-(v + 63.0) / 7.8))
            b_inf = 1.0 / (1.0 + math.exp(-(r - 0.4) / 0.1)) - _B_INF_OFFSET
            c_inf = 1.0 / (1.0 + math.exp(-(v + 20.0) / 8.0))
            e80 = math.exp((v + 80.0) / 26.0)
            tau_n = 1.0 + 100.0 / (1.0 + e80)
            tau_c = 1.0 + 10.0 / (1.0 + e80)
            tau_h = 1.0 + 500.0 / (1.0 + math.exp((v + 57.0) / 3.0))
            tau_r = 7.1 + 17.5 / (1.0 + math.exp((v - 68.0) / 2.2))
            i_l = STN_GL * (v - STN_EL)
            i_k = STN_GK * nn * nn * nn * nn * (v - STN_EK)
            i_na = STN_GNA * m_inf * m_inf * m_inf * h * (v - STN_ENA)
            i_t = STN_GT * a_inf * a_inf * a_inf * b_inf * b_inf * (v - STN_ECA)
            i_ca = STN_GCA * cc * cc * (v - STN_ECA)
            i_ahp = STN_GAHP * (v - STN_EK) * ca / (ca + STN_K1)
            i_syn = G_GPE_STN * d_gpe_stn[j] * (v - E_GPE_STN)
            v_new = v + dt * (
                -i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn + iapp_stn[j] + dbs_stn
            )
            stn[0, j] = v_new
            stn[1, j] = nn + dt * STN_PHI_N * (n_inf - nn) / tau_n
            stn[2, j] = h + dt * STN_PHI_H * (h_inf - h) / tau_h
            stn[3, j] = r + dt * STN_PHI_R * (r_inf - r) / tau_r
            stn[4, j] = cc + dt * STN_PHI_C * (c_inf - cc) / tau_c
            stn[5, j] = ca + dt * STN_EPS_CA * (-i_ca - i_t - STN_KCA * ca)
            stn[6, j] = s + dt * z
            z_new = z + dt * (-_TWO_OVER_TAU * z - _INV_TAU2 * s)
            lfp_stn += i_syn
            if v < SPIKE_THRESHOLD_MV <= v_new:
                z_new += SYN_PEAK * _KICK
                _record_spike(
                    buf_cell, buf_time, counts, 1, j,
                    t_ms + dt * (SPIKE_THRESHOLD_MV - v) / (v_new - v),
                )
            stn[7, j] = z_new
        # ---------------------------------------------------------------- GPe and GPi
        for nucleus in range(2):
            for j in range(n):
                if nucleus == 0:
                    v = gpe[0, j]
                    nn = gpe[1, j]
                    h = gpe[2, j]
                    r = gpe[3, j]
                    ca = gpe[4, j]
                    s = gpe[5, j]
                    z = gpe[6, j]
                    i_syn_e = G_STN_GPE * d_stn_gpe[j] * (v - E_STN_GPE)
                    i_syn_i = G_GPE_GPE * d_gpe_gpe[j] * (v - E_GPE_GPE)
                    i_ext = iapp_gpe[j] + dbs_gpe
                    peak = SYN_PEAK
                else:
                    v = gpi[0, j]
                    nn = gpi[1, j]
                    h = gpi[2, j]
                    r = gpi[3, j]
                    ca = gpi[4, j]
                    s = gpi[5, j]
                    z = gpi[6, j]
                    i_syn_e = G_STN_GPI * d_stn_gpi[j] * (v - E_STN_GPI)
                    i_syn_i = G_GPE_GPI * d_gpe_gpi[j] * (v - E_GPE_GPI)
                    i_ext = iapp_gpi[j] + dbs_gpi
                    peak = SYN_PEAK_GPI
                m_inf = 1.0 / (1.0 + math.exp(-(v + 37.0) / 10.0))
                h_inf = 1.0 / (1.0 + math.exp((v + 58.0) / 12.0))
                n_inf = 1.0 / (1.0 + math.exp(-(v + 50.0) / 14.0))
                r_inf = 1.0 / (1.0 + math.exp((v + 70.0) / 2.0))
                a_inf = 1.0 / (1.0 + math.exp(-(v + 57.0) / 2.0))
                s_inf = 1.0 / (1.0 + math.exp(-(v + 35.0) / 2.0))
                tau_nh = 0.05 + 0.27 / (1.0 + math.exp((v + 40.0) / 12.0))
                i_l = GP_GL * (v - GP_EL)
                i_k = GP_GK * nn * nn * nn * nn * (v - GP_EK)
                i_na = GP_GNA * m_inf * m_inf * m_inf * h * (v - GP_ENA)
                i_t = GP_GT * a_inf * a_inf * a_inf * r * (v - GP_ECA)
                i_ca = GP_GCA * s_inf * s_inf * (v - GP_ECA)
                i_ahp = GP_GAHP * (v - GP_EK) * ca / (ca + GP_K1)
                v_new = v + dt * (
                    -i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn_e - i_syn_i + i_ext
                )
                n_new = nn + dt * GP_PHI_N * (n_inf - nn) / tau_nh
                h_new = h + dt * GP_PHI_H * (h_inf - h) / tau_nh
                r_new = r + dt * GP_PHI_R * (r_inf - r) / GP_TAU_R
                ca_new = ca + dt * GP_EPS_CA * (-i_ca - i_t - GP_KCA * ca)
                s_new = s + dt * z
                z_new = z + dt * (-_TWO_OVER_TAU * z - _INV_TAU2 * s)
                spiked = v < SPIKE_THRESHOLD_MV <= v_new
                if spiked:
                    z_new += peak * _KICK
                    _record_spike(
                        buf_cell, buf_time, counts, 2 + nucleus, j,
                        t_ms + dt * (SPIKE_THRESHOLD_MV - v) / (v_new - v),
                    )
                if nucleus == 0:
                    gpe[0, j] = v_new
                    gpe[1, j] = n_new
                    gpe[2, j] = h_new
                    gpe[3, j] = r_new
                    gpe[4, j] = ca_new
                    gpe[5, j] = s_new
                    gpe[6, j] = z_new
                    lfp_gpe += i_syn_e + i_syn_i
                else:
                    gpi[0, j] = v_new
                    gpi[1, j] = n_new
                    gpi[2, j] = h_new
                    gpi[3, j] = r_new
                    gpi[4, j] = ca_new
                    gpi[5, j] = s_new
                    gpi[6, j] = z_new
                    lfp_gpi += i_syn_e + i_syn_i
        # ---------------------------------------------------------------- LFP proxy, decimated
        lfp_acc[0] += lfp_th
        lfp_acc[1] += lfp_stn
        lfp_acc[2] += lfp_gpe
        lfp_acc[3] += lfp_gpi
        if (k + 1) % decim == 0:
            for nu in range(4):
                lfp_out[nu, n_lfp] = lfp_acc[nu] / decim
                lfp_acc[nu] = 0.0
            n_lfp += 1
    return n_steps, n_lfp
