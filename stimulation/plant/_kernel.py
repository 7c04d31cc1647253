"""The compiled integration loop of the basal-ganglia network (numba, forward Euler).

One call integrates all cells of the four nuclei over many time steps with every state variable in
preallocated arrays; spikes go into preallocated buffers and the LFP proxy is decimated on the fly.
The equations are written out in :mod:`stimulation.plant.network` (the public docstring) and again,
independently, in plain numpy in :mod:`stimulation.plant.reference` (the correctness oracle).

State layout (rows of the per-nucleus state arrays, columns are cells):

- ``th``:  v, h, r
- ``stn``: v, n, h, r, c, ca, s, z
- ``gpe``: v, n, h, r, ca, s
- ``gpi``: v, n, h, r, ca, s, z

``s`` is the synaptic variable a cell sends to its targets; for STN and GPi it is an alpha function
and ``z = ds/dt``, for GPe first-order kinetics (So et al. 2012, ModelDB 141699).

Speed: the exponentials dominate. Sigmoids that share a slope share one ``exp`` (for instance the
GPe/GPi ``r_inf``, ``a_inf``, ``s_inf`` and the GPe synaptic ``H_inf`` all have slope 2 mV, so they
are one ``exp`` times constants); this is the same arithmetic up to rounding (the numpy oracle
computes every sigmoid separately and the tests check both give the same spike trains).
"""

from __future__ import annotations

import math

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
    GP_ECA,
    GP_EK,
    GP_EL,
    GP_ENA,
    GP_EPS_CA,
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
    GPE_SYN_ALPHA,
    GPE_SYN_BETA,
    GPE_SYN_THETA,
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
    SYN_PEAK_GPI,
    SYN_PEAK_STN,
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

# Jump of z = ds/dt at a presynaptic spike: peak / (tau * exp(-1)) (So 2012's u * dt).
_KICK_STN = SYN_PEAK_STN / (SYN_TAU_MS * math.exp(-1.0))
_KICK_GPI = SYN_PEAK_GPI / (SYN_TAU_MS * math.exp(-1.0))
_TWO_OVER_TAU = 2.0 / SYN_TAU_MS
_INV_TAU2 = 1.0 / (SYN_TAU_MS * SYN_TAU_MS)
_B_INF_OFFSET = 1.0 / (1.0 + math.exp(0.4 / 0.1))  # b_inf(0) = 0 (Terman 2002)

# exp((v + a) / k) = exp((v + b) / k) * exp((a - b) / k): constants for the shared exponentials.
_TH_R_OVER_H = math.exp((84.0 - 41.0) / 4.0)  # r_inf uses (v+84)/4, h_inf (v+41)/4
_STN_C_OVER_N = math.exp(-(20.0 - 32.0) / 8.0)  # c_inf exp(-(v+20)/8) = n's exp(-(v+32)/8) * this
_GP_H_OVER_T = math.exp((58.0 - 40.0) / 12.0)  # h_inf exp((v+58)/12) = tau's exp((v+40)/12) * this
# slope-2 sigmoids of GPe/GPi from e2 = exp(-(v + 57) / 2) (a_inf):
_GP_S_FROM_A = math.exp(-(35.0 - 57.0) / 2.0)  # s_inf: exp(-(v+35)/2) = e2 * this
_GP_R_FROM_A = math.exp((70.0 - 57.0) / 2.0)  # r_inf: exp((v+70)/2) = this / e2
_GP_H_FROM_A = math.exp(GPE_SYN_THETA / 2.0)  # H_inf(v - 20): exp(-(v+37)/2) = e2 * this

# Reciprocals, so that the loop multiplies instead of dividing by constants (same value up to
# rounding; divisions are, with the exponentials, what the loop spends its time on).
_R7, _R6_2, _R18, _R10_5 = 1.0 / 7.0, 1.0 / 6.2, 1.0 / 18.0, 1.0 / 10.5
_R15, _R3_1, _R7_8, _R26, _R3, _R2_2 = (
    1.0 / 15.0,
    1.0 / 3.1,
    1.0 / 7.8,
    1.0 / 26.0,
    1.0 / 3.0,
    1.0 / 2.2,
)
_R12, _R14, _R_GP_TAU_R = 1.0 / 12.0, 1.0 / 14.0, 1.0 / GP_TAU_R

DBS_STN, DBS_GPE, DBS_GPI = 0, 1, 2


_EXP_CAP = 200.0  # exp(200) ~ 7e86: products of three stay finite, 1 / (1 + e) is already 0


@njit(cache=True, nogil=True, inline="always")
def _exp(x):  # pragma: no cover - numba
    """``exp`` with the argument capped, so that the merged fractions below never form inf / inf
    at absurd voltages (the sigmoids are 0 or 1 to double precision long before the cap)."""
    return math.exp(x if x < _EXP_CAP else _EXP_CAP)


@njit(cache=True, nogil=True, error_model="numpy")
def _record_spike(buf_cell, buf_time, counts, nucleus, cell, t_ms):  # pragma: no cover - numba
    i = counts[nucleus]
    buf_cell[nucleus, i] = cell
    buf_time[nucleus, i] = t_ms
    counts[nucleus] = i + 1


@njit(cache=True, nogil=True, error_model="numpy")
def integrate(  # noqa: PLR0913, PLR0915 - one flat compiled loop on purpose
    th,
    stn,
    gpe,
    gpi,
    iapp,
    pre,
    dt,
    k0,
    n_steps,
    smc_onsets,
    smc_width,
    smc_amplitude,
    dbs_onsets,
    dbs_amps,
    dbs_pw,
    dbs_gap,
    dbs_biphasic,
    dbs_target,
    decim,
    lfp_acc,
    lfp_out,
    buf_cell,
    buf_time,
    counts,
):  # pragma: no cover - compiled by numba
    """Advance the network ``n_steps`` steps of ``dt`` ms from global step ``k0``.

    Parameters (all arrays are modified in place where they hold state)
    ----------
    th, stn, gpe, gpi : float64 arrays (n_vars, n)
        State (layout in the module docstring).
    iapp : float64 array (3, n)
        Applied current of STN, GPe, GPi cells (uA/cm2).
    pre : int64 array (5, n, 2)
        Presynaptic cells of each cell for GPe->STN, STN->GPe, GPe->GPe, STN->GPi, GPe->GPi.
    dt : float
        Time step (ms). Step ``k`` goes from ``k * dt`` to ``(k + 1) * dt``.
    k0, n_steps : int
        First global step and number of steps.
    smc_onsets : int64 array
        Global step of each cortical pulse onset (sorted); the pulse is on for steps
        ``onset <= k < onset + smc_width``. May start before ``k0`` (a pulse in progress).
    dbs_onsets, dbs_amps, dbs_pw, dbs_gap, dbs_biphasic : arrays
        DBS pulses: onset step, amplitude (uA/cm2), phase width and interphase gap (steps),
        biphasic flag (a negative phase follows after the gap).
    dbs_target : int
        0 STN, 1 GPe, 2 GPi.
    decim : int
        Steps per LFP sample; a sample is emitted after each step ``k`` with ``(k + 1) % decim == 0``.
    lfp_acc, lfp_out : float64 arrays (4,), (4, m)
        Running sums of the current LFP sample, and the output samples.
    buf_cell, buf_time, counts : arrays (4, cap), (4, cap), (4,)
        Spike buffers per nucleus (cell index, time in ms) and their fill counts.

    Returns
    -------
    (steps_done, n_lfp) : (int, int)
        Stops early (``steps_done < n_steps``) when a spike buffer has fewer free slots than cells,
        so the caller can drain the buffers and call again.
    """
    n = th.shape[1]
    cap = buf_cell.shape[1]
    n_lfp = 0
    i_smc_ptr = -1
    i_dbs_ptr = -1
    n_smc = smc_onsets.shape[0]
    n_dbs = dbs_onsets.shape[0]
    # synaptic variables at the start of the step (every current uses these)
    s_stn = stn[6].copy()
    s_gpe = gpe[5].copy()
    s_gpi = gpi[5].copy()
    for step in range(n_steps):
        for nu in range(4):
            if counts[nu] + n > cap:
                return step, n_lfp
        k = k0 + step
        # ------------------------------------------------------------ inputs
        while i_smc_ptr + 1 < n_smc and smc_onsets[i_smc_ptr + 1] <= k:
            i_smc_ptr += 1
        i_smc = 0.0
        if i_smc_ptr >= 0 and k - smc_onsets[i_smc_ptr] < smc_width:
            i_smc = smc_amplitude
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
                if 0 <= second < pw:
                    i_dbs = -dbs_amps[i_dbs_ptr]
        dbs_stn = i_dbs if dbs_target == DBS_STN else 0.0
        dbs_gpe = i_dbs if dbs_target == DBS_GPE else 0.0
        dbs_gpi = i_dbs if dbs_target == DBS_GPI else 0.0

        lfp_th = 0.0
        lfp_stn = 0.0
        lfp_gpe = 0.0
        lfp_gpi = 0.0
        # ------------------------------------------------------------ thalamus
        for j in range(n):
            v = th[0, j]
            h = th[1, j]
            r = th[2, j]
            d_m = 1.0 + _exp(-(v + 37.0) * _R7)  # m_inf = 1 / d_m
            d_p = 1.0 + _exp(-(v + 60.0) * _R6_2)  # p_inf = 1 / d_p
            e_h = _exp((v + 41.0) * 0.25)
            d_h = 1.0 + e_h  # h_inf = 1 / d_h
            d_r = 1.0 + e_h * _TH_R_OVER_H  # r_inf = 1 / d_r
            d_b = 1.0 + _exp(-(v + 23.0) * 0.2)
            # 1 / tau_h = 0.128 exp(-(v+46)/18) + 4 / d_b
            num_tau_h = 0.128 * _exp(-(v + 46.0) * _R18) * d_b + 4.0
            tau_r = 0.15 * (28.0 + _exp(-(v + 25.0) * _R10_5))
            kk = 0.75 * (1.0 - h)
            i_l = TH_GL * (v - TH_EL)
            i_na = TH_GNA * h * (v - TH_ENA) / (d_m * d_m * d_m)
            i_k = TH_GK * (kk * kk * kk * kk) * (v - TH_EK)
            i_t = TH_GT * r * (v - TH_ET) / (d_p * d_p)
            i_syn = G_GPI_TH * (v - E_GPI_TH) * s_gpi[j]
            v_new = v + dt * (-i_l - i_k - i_na - i_t - i_syn + i_smc)
            th[0, j] = v_new
            # h' = (h_inf - h) / tau_h, r' = (r_inf - r) / tau_r, one division each
            th[1, j] = h + dt * ((1.0 - h * d_h) * num_tau_h / (d_h * d_b))
            th[2, j] = r + dt * ((1.0 - r * d_r) / (d_r * tau_r))
            lfp_th += i_syn
            if v < TH_SPIKE_THRESHOLD_MV < v_new:
                _record_spike(
                    buf_cell,
                    buf_time,
                    counts,
                    0,
                    j,
                    (k + (TH_SPIKE_THRESHOLD_MV - v) / (v_new - v)) * dt,
                )
        # ------------------------------------------------------------ STN
        for j in range(n):
            v = stn[0, j]
            nn = stn[1, j]
            h = stn[2, j]
            r = stn[3, j]
            cc = stn[4, j]
            ca = stn[5, j]
            s = stn[6, j]
            z = stn[7, j]
            e_n = _exp(-(v + 32.0) * 0.125)
            e80 = _exp((v + 80.0) * _R26)
            d_m = 1.0 + _exp(-(v + 30.0) * _R15)  # m_inf = 1 / d_m
            d_h = 1.0 + _exp((v + 39.0) * _R3_1)  # h_inf = 1 / d_h
            d_n = 1.0 + e_n
            d_r = 1.0 + _exp((v + 67.0) * 0.5)
            d_a = 1.0 + _exp(-(v + 63.0) * _R7_8)
            b_inf = 1.0 / (1.0 + _exp(-(r - 0.4) * 10.0)) - _B_INF_OFFSET
            d_c = 1.0 + e_n * _STN_C_OVER_N
            # tau = a + b / (1 + e) written as (a (1 + e) + b) / (1 + e)
            d80 = 1.0 + e80
            e57 = 1.0 + _exp((v + 57.0) * _R3)
            e68 = 1.0 + _exp((v - 68.0) * _R2_2)
            i_l = STN_GL * (v - STN_EL)
            i_k = STN_GK * (nn * nn * nn * nn) * (v - STN_EK)
            i_na = STN_GNA * h * (v - STN_ENA) / (d_m * d_m * d_m)
            i_t = STN_GT * (b_inf * b_inf) * (v - STN_ECA) / (d_a * d_a * d_a)
            i_ca = STN_GCA * (cc * cc) * (v - STN_ECA)
            i_ahp = STN_GAHP * (v - STN_EK) * (ca / (ca + STN_K1))
            i_syn = 0.5 * (
                G_GPE_STN * (v - E_GPE_STN) * (s_gpe[pre[0, j, 0]] + s_gpe[pre[0, j, 1]])
            )
            v_new = v + dt * (-i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn + iapp[0, j] + dbs_stn)
            stn[0, j] = v_new
            stn[1, j] = nn + dt * (STN_PHI_N * (1.0 - nn * d_n) * d80 / (d_n * (d80 + 100.0)))
            stn[2, j] = h + dt * (STN_PHI_H * (1.0 - h * d_h) * e57 / (d_h * (e57 + 500.0)))
            stn[3, j] = r + dt * (STN_PHI_R * (1.0 - r * d_r) * e68 / (d_r * (7.1 * e68 + 17.5)))
            stn[4, j] = cc + dt * (STN_PHI_C * (1.0 - cc * d_c) * d80 / (d_c * (d80 + 10.0)))
            stn[5, j] = ca + dt * (STN_EPS_CA * (-i_ca - i_t - STN_KCA * ca))
            s_new = s + dt * z
            z_new = z + dt * (-_TWO_OVER_TAU * z - _INV_TAU2 * s_new)
            if v < SPIKE_THRESHOLD_MV < v_new:
                z_new += _KICK_STN
                _record_spike(
                    buf_cell,
                    buf_time,
                    counts,
                    1,
                    j,
                    (k + (SPIKE_THRESHOLD_MV - v) / (v_new - v)) * dt,
                )
            stn[6, j] = s_new
            stn[7, j] = z_new
            lfp_stn += i_syn
        # ------------------------------------------------------------ GPe (0) and GPi (1)
        for nucleus in range(2):
            for j in range(n):
                if nucleus == 0:
                    v = gpe[0, j]
                    nn = gpe[1, j]
                    h = gpe[2, j]
                    r = gpe[3, j]
                    ca = gpe[4, j]
                    i_syn_e = 0.5 * (
                        G_STN_GPE * (v - E_STN_GPE) * (s_stn[pre[1, j, 0]] + s_stn[pre[1, j, 1]])
                    )
                    i_syn_i = 0.5 * (
                        G_GPE_GPE * (v - E_GPE_GPE) * (s_gpe[pre[2, j, 0]] + s_gpe[pre[2, j, 1]])
                    )
                    i_ext = iapp[1, j] + dbs_gpe
                else:
                    v = gpi[0, j]
                    nn = gpi[1, j]
                    h = gpi[2, j]
                    r = gpi[3, j]
                    ca = gpi[4, j]
                    i_syn_e = 0.5 * (
                        G_STN_GPI * (v - E_STN_GPI) * (s_stn[pre[3, j, 0]] + s_stn[pre[3, j, 1]])
                    )
                    i_syn_i = 0.5 * (
                        G_GPE_GPI * (v - E_GPE_GPI) * (s_gpe[pre[4, j, 0]] + s_gpe[pre[4, j, 1]])
                    )
                    i_ext = iapp[2, j] + dbs_gpi
                e2 = _exp(-(v + 57.0) * 0.5)  # a_inf = 1 / (1 + e2)
                e12 = _exp((v + 40.0) * _R12)
                d_m = 1.0 + _exp(-(v + 37.0) * 0.1)
                d_h = 1.0 + e12 * _GP_H_OVER_T
                d_n = 1.0 + _exp(-(v + 50.0) * _R14)
                d_a = 1.0 + e2
                d_s = 1.0 + e2 * _GP_S_FROM_A
                # tau_n = tau_h = 0.05 + 0.27 / (1 + e12) = (0.32 + 0.05 e12) / (1 + e12)
                d12 = 1.0 + e12
                den_tau = 0.05 * d12 + 0.27
                i_l = GP_GL * (v - GP_EL)
                i_k = GP_GK * (nn * nn * nn * nn) * (v - GP_EK)
                i_na = GP_GNA * h * (v - GP_ENA) / (d_m * d_m * d_m)
                i_t = GP_GT * r * (v - GP_ECA) / (d_a * d_a * d_a)
                i_ca = GP_GCA * (v - GP_ECA) / (d_s * d_s)
                i_ahp = GP_GAHP * (v - GP_EK) * (ca / (ca + GP_K1))
                v_new = v + dt * (
                    -i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn_e - i_syn_i + i_ext
                )
                n_new = nn + dt * (GP_PHI_N * (1.0 - nn * d_n) * d12 / (d_n * den_tau))
                h_new = h + dt * (GP_PHI_H * (1.0 - h * d_h) * d12 / (d_h * den_tau))
                # r_inf = 1 / (1 + exp((v + 70) / 2)) = e2 / (e2 + exp(13 / 2))
                r_new = r + dt * (GP_PHI_R * (e2 / (e2 + _GP_R_FROM_A) - r) * _R_GP_TAU_R)
                ca_new = ca + dt * (GP_EPS_CA * (-i_ca - i_t - GP_KCA * ca))
                spiked = v < SPIKE_THRESHOLD_MV < v_new
                if spiked:
                    _record_spike(
                        buf_cell,
                        buf_time,
                        counts,
                        2 + nucleus,
                        j,
                        (k + (SPIKE_THRESHOLD_MV - v) / (v_new - v)) * dt,
                    )
                if nucleus == 0:
                    s = gpe[5, j]
                    h_syn = 1.0 / (1.0 + e2 * _GP_H_FROM_A)
                    gpe[0, j] = v_new
                    gpe[1, j] = n_new
                    gpe[2, j] = h_new
                    gpe[3, j] = r_new
                    gpe[4, j] = ca_new
                    gpe[5, j] = s + dt * (GPE_SYN_ALPHA * (1.0 - s) * h_syn - GPE_SYN_BETA * s)
                    lfp_gpe += i_syn_e + i_syn_i
                else:
                    s = gpi[5, j]
                    z = gpi[6, j]
                    s_new = s + dt * z
                    z_new = z + dt * (-_TWO_OVER_TAU * z - _INV_TAU2 * s_new)
                    if spiked:
                        z_new += _KICK_GPI
                    gpi[0, j] = v_new
                    gpi[1, j] = n_new
                    gpi[2, j] = h_new
                    gpi[3, j] = r_new
                    gpi[4, j] = ca_new
                    gpi[5, j] = s_new
                    gpi[6, j] = z_new
                    lfp_gpi += i_syn_e + i_syn_i
        for j in range(n):
            s_stn[j] = stn[6, j]
            s_gpe[j] = gpe[5, j]
            s_gpi[j] = gpi[5, j]
        # ------------------------------------------------------------ LFP proxy, decimated
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
