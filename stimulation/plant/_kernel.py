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

Speed: the step is dominated by exponentials and divisions (about 23 and 27 per cell of each of
the four nuclei). These keep it fast:

- each nucleus is updated by a branch-free loop over its cells (``_th_update``, ``_stn_update``,
  ``_gp_update``) that LLVM vectorises (AVX-512 on the machines measured: 8 cells per
  instruction); the state is padded to a multiple of 8 cells for that, the spike tests and the
  synaptic kicks follow in short scalar loops, and the exponential is the vectorisable ``_exp``
  (libm's ``exp`` is a call that blocks vectorisation);
- sigmoids that share a slope share one ``exp`` (the GPe/GPi ``r_inf``, ``a_inf``, ``s_inf`` and
  the GPe synaptic ``H_inf`` all have slope 2 mV);
- constant divisors are reciprocals, and each gate update ``(x_inf - x) / tau`` with
  ``x_inf = 1 / (1 + e)`` and ``tau = a + b / (1 + e')`` is one fraction (one division, not three);
  multiplications and additions may fuse (``fastmath={"contract"}``: FMA, no other fast-math
  licence).

All of this is the same arithmetic up to rounding: the numpy oracle
(:mod:`stimulation.plant.reference`) computes every sigmoid separately with numpy's ``exp`` and
divides where this module multiplies, and the tests check that both give the same spike trains.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stimulation.plant._vexp import vexp as _exp
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


_LANES = 8  # doubles per AVX-512 vector: state arrays are padded to a multiple of this


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _record_spike(buf_cell, buf_time, counts, nucleus, cell, t_ms):  # pragma: no cover - numba
    i = counts[nucleus]
    buf_cell[nucleus, i] = cell
    buf_time[nucleus, i] = t_ms
    counts[nucleus] = i + 1


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _padded(state, n_pad):  # pragma: no cover - numba
    """A copy of ``state`` with columns added up to ``n_pad``: copies of cell 0 that receive no
    synaptic input, feed no synapse and are never recorded (they only fill the last vector)."""
    out = np.empty((state.shape[0], n_pad))
    n = state.shape[1]
    for row in range(state.shape[0]):
        for j in range(n_pad):
            out[row, j] = state[row, j if j < n else 0]
    return out


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _unpad(work, state):  # pragma: no cover - numba
    for row in range(state.shape[0]):
        for j in range(state.shape[1]):
            state[row, j] = work[row, j]


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _th_update(old, new, drive, isyn, i_smc, dt, n_pad):  # pragma: no cover - numba
    """Thalamocortical cells, one forward-Euler step of every (padded) cell: no branches, so LLVM
    vectorises it. Rows of old/new: v, h, r; ``drive`` is s of the GPi cell of each cell."""
    for j in range(n_pad):
        v = old[0, j]
        h = old[1, j]
        r = old[2, j]
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
        i_syn = G_GPI_TH * (v - E_GPI_TH) * drive[j]
        new[0, j] = v + dt * (-i_l - i_k - i_na - i_t - i_syn + i_smc)
        # h' = (h_inf - h) / tau_h, r' = (r_inf - r) / tau_r, one division each
        new[1, j] = h + dt * ((1.0 - h * d_h) * num_tau_h / (d_h * d_b))
        new[2, j] = r + dt * ((1.0 - r * d_r) / (d_r * tau_r))
        isyn[j] = i_syn


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _stn_update(old, new, drive, iapp, isyn, i_dbs, dt, n_pad):  # pragma: no cover - numba
    """STN cells (rows v, n, h, r, c, ca, s, z); ``drive`` is the summed s of the two GPe cells.
    The spike kick of z is added afterwards (it needs the crossing test)."""
    for j in range(n_pad):
        v = old[0, j]
        nn = old[1, j]
        h = old[2, j]
        r = old[3, j]
        cc = old[4, j]
        ca = old[5, j]
        s = old[6, j]
        z = old[7, j]
        e_n = _exp(-(v + 32.0) * 0.125)
        d_m = 1.0 + _exp(-(v + 30.0) * _R15)  # m_inf = 1 / d_m
        d_h = 1.0 + _exp((v + 39.0) * _R3_1)  # h_inf = 1 / d_h
        d_n = 1.0 + e_n
        d_r = 1.0 + _exp((v + 67.0) * 0.5)
        d_a = 1.0 + _exp(-(v + 63.0) * _R7_8)
        b_inf = 1.0 / (1.0 + _exp(-(r - 0.4) * 10.0)) - _B_INF_OFFSET
        d_c = 1.0 + e_n * _STN_C_OVER_N
        # tau = a + b / (1 + e) written as (a (1 + e) + b) / (1 + e)
        d80 = 1.0 + _exp((v + 80.0) * _R26)
        e57 = 1.0 + _exp((v + 57.0) * _R3)
        e68 = 1.0 + _exp((v - 68.0) * _R2_2)
        i_l = STN_GL * (v - STN_EL)
        i_k = STN_GK * (nn * nn * nn * nn) * (v - STN_EK)
        i_na = STN_GNA * h * (v - STN_ENA) / (d_m * d_m * d_m)
        i_t = STN_GT * (b_inf * b_inf) * (v - STN_ECA) / (d_a * d_a * d_a)
        i_ca = STN_GCA * (cc * cc) * (v - STN_ECA)
        i_ahp = STN_GAHP * (v - STN_EK) * (ca / (ca + STN_K1))
        i_syn = 0.5 * (G_GPE_STN * (v - E_GPE_STN) * drive[j])
        new[0, j] = v + dt * (-i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn + iapp[j] + i_dbs)
        new[1, j] = nn + dt * (STN_PHI_N * (1.0 - nn * d_n) * d80 / (d_n * (d80 + 100.0)))
        new[2, j] = h + dt * (STN_PHI_H * (1.0 - h * d_h) * e57 / (d_h * (e57 + 500.0)))
        new[3, j] = r + dt * (STN_PHI_R * (1.0 - r * d_r) * e68 / (d_r * (7.1 * e68 + 17.5)))
        new[4, j] = cc + dt * (STN_PHI_C * (1.0 - cc * d_c) * d80 / (d_c * (d80 + 10.0)))
        new[5, j] = ca + dt * (STN_EPS_CA * (-i_ca - i_t - STN_KCA * ca))
        s_new = s + dt * z
        new[6, j] = s_new
        new[7, j] = z + dt * (-_TWO_OVER_TAU * z - _INV_TAU2 * s_new)
        isyn[j] = i_syn


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _gp_update(
    old, new, drive_e, drive_i, g_e, e_e, g_i, e_i, iapp, isyn, i_dbs, dt, n_pad, is_gpe
):  # pragma: no cover - numba
    """GPe or GPi cells (rows v, n, h, r, ca, s[, z]); ``drive_e``/``drive_i`` are the summed s of
    the two STN and the two GPe cells. GPe's synapse is first order, GPi's an alpha function
    (its spike kick is added afterwards)."""
    for j in range(n_pad):
        v = old[0, j]
        nn = old[1, j]
        h = old[2, j]
        r = old[3, j]
        ca = old[4, j]
        s = old[5, j]
        i_syn_e = 0.5 * (g_e * (v - e_e) * drive_e[j])
        i_syn_i = 0.5 * (g_i * (v - e_i) * drive_i[j])
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
        new[0, j] = v + dt * (
            -i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn_e - i_syn_i + iapp[j] + i_dbs
        )
        new[1, j] = nn + dt * (GP_PHI_N * (1.0 - nn * d_n) * d12 / (d_n * den_tau))
        new[2, j] = h + dt * (GP_PHI_H * (1.0 - h * d_h) * d12 / (d_h * den_tau))
        # r_inf = 1 / (1 + exp((v + 70) / 2)) = e2 / (e2 + exp(13 / 2))
        new[3, j] = r + dt * (GP_PHI_R * (e2 / (e2 + _GP_R_FROM_A) - r) * _R_GP_TAU_R)
        new[4, j] = ca + dt * (GP_EPS_CA * (-i_ca - i_t - GP_KCA * ca))
        if is_gpe:
            # s' = alpha (1 - s) H_inf(v - theta) - beta s, H_inf(v - 20) = 1 / (1 + e2 e^10)
            h_syn = 1.0 / (1.0 + e2 * _GP_H_FROM_A)
            new[5, j] = s + dt * (GPE_SYN_ALPHA * (1.0 - s) * h_syn - GPE_SYN_BETA * s)
        else:
            z = old[6, j]
            s_new = s + dt * z
            new[5, j] = s_new
            new[6, j] = z + dt * (-_TWO_OVER_TAU * z - _INV_TAU2 * s_new)
        isyn[j] = i_syn_e + i_syn_i


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _spikes(old, new, threshold, nucleus, k, dt, n, buf_cell, buf_time, counts):  # pragma: no cover
    """Record the upward crossings of ``threshold`` by v (row 0) between ``old`` and ``new`` at
    their linearly interpolated time (ms); returns how many cells crossed."""
    fired = 0
    for j in range(n):
        v = old[0, j]
        v_new = new[0, j]
        if v < threshold < v_new:
            _record_spike(
                buf_cell, buf_time, counts, nucleus, j, (k + (threshold - v) / (v_new - v)) * dt
            )
            fired += 1
    return fired


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _kick(old, new, threshold, z_row, kick, n):  # pragma: no cover - numba
    for j in range(n):
        if old[0, j] < threshold < new[0, j]:
            new[z_row, j] += kick


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
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
    n_pad = ((n + _LANES - 1) // _LANES) * _LANES
    cap = buf_cell.shape[1]
    n_lfp = 0
    i_smc_ptr = -1
    i_dbs_ptr = -1
    n_smc = smc_onsets.shape[0]
    n_dbs = dbs_onsets.shape[0]
    # padded working copies, double-buffered: each step reads ``a`` and writes ``b``
    th_a, stn_a, gpe_a, gpi_a = (
        _padded(th, n_pad),
        _padded(stn, n_pad),
        _padded(gpe, n_pad),
        _padded(gpi, n_pad),
    )
    th_b, stn_b, gpe_b, gpi_b = th_a.copy(), stn_a.copy(), gpe_a.copy(), gpi_a.copy()
    iapp_p = _padded(iapp, n_pad)
    # synaptic drive of each cell (sums of presynaptic s; 0 for padding cells)
    drive = np.zeros((6, n_pad))
    isyn = np.zeros((4, n_pad))
    done = n_steps
    for step in range(n_steps):
        full = False
        for nu in range(4):
            if counts[nu] + n > cap:
                full = True
        if full:
            done = step
            break
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
        # ------------------------------------------------------------ synaptic drives (start of step)
        for j in range(n):
            drive[0, j] = gpi_a[5, j]
            drive[1, j] = gpe_a[5, pre[0, j, 0]] + gpe_a[5, pre[0, j, 1]]
            drive[2, j] = stn_a[6, pre[1, j, 0]] + stn_a[6, pre[1, j, 1]]
            drive[3, j] = gpe_a[5, pre[2, j, 0]] + gpe_a[5, pre[2, j, 1]]
            drive[4, j] = stn_a[6, pre[3, j, 0]] + stn_a[6, pre[3, j, 1]]
            drive[5, j] = gpe_a[5, pre[4, j, 0]] + gpe_a[5, pre[4, j, 1]]
        # ------------------------------------------------------------ all cells, vectorised
        _th_update(th_a, th_b, drive[0], isyn[0], i_smc, dt, n_pad)
        _stn_update(
            stn_a,
            stn_b,
            drive[1],
            iapp_p[0],
            isyn[1],
            i_dbs if dbs_target == DBS_STN else 0.0,
            dt,
            n_pad,
        )
        _gp_update(
            gpe_a,
            gpe_b,
            drive[2],
            drive[3],
            G_STN_GPE,
            E_STN_GPE,
            G_GPE_GPE,
            E_GPE_GPE,
            iapp_p[1],
            isyn[2],
            i_dbs if dbs_target == DBS_GPE else 0.0,
            dt,
            n_pad,
            True,
        )
        _gp_update(
            gpi_a,
            gpi_b,
            drive[4],
            drive[5],
            G_STN_GPI,
            E_STN_GPI,
            G_GPE_GPI,
            E_GPE_GPI,
            iapp_p[2],
            isyn[3],
            i_dbs if dbs_target == DBS_GPI else 0.0,
            dt,
            n_pad,
            False,
        )
        # ------------------------------------------------------------ spikes, synaptic kicks
        _spikes(th_a, th_b, TH_SPIKE_THRESHOLD_MV, 0, k, dt, n, buf_cell, buf_time, counts)
        if _spikes(stn_a, stn_b, SPIKE_THRESHOLD_MV, 1, k, dt, n, buf_cell, buf_time, counts):
            _kick(stn_a, stn_b, SPIKE_THRESHOLD_MV, 7, _KICK_STN, n)
        _spikes(gpe_a, gpe_b, SPIKE_THRESHOLD_MV, 2, k, dt, n, buf_cell, buf_time, counts)
        if _spikes(gpi_a, gpi_b, SPIKE_THRESHOLD_MV, 3, k, dt, n, buf_cell, buf_time, counts):
            _kick(gpi_a, gpi_b, SPIKE_THRESHOLD_MV, 6, _KICK_GPI, n)
        th_a, th_b = th_b, th_a
        stn_a, stn_b = stn_b, stn_a
        gpe_a, gpe_b = gpe_b, gpe_a
        gpi_a, gpi_b = gpi_b, gpi_a
        # ------------------------------------------------------------ LFP proxy, decimated
        for nu in range(4):
            total = 0.0
            for j in range(n):
                total += isyn[nu, j]
            lfp_acc[nu] += total
        if (k + 1) % decim == 0:
            for nu in range(4):
                lfp_out[nu, n_lfp] = lfp_acc[nu] / decim
                lfp_acc[nu] = 0.0
            n_lfp += 1
    _unpad(th_a, th)
    _unpad(stn_a, stn)
    _unpad(gpe_a, gpe)
    _unpad(gpi_a, gpi)
    return done, n_lfp
