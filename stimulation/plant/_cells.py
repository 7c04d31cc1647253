"""The cell updates of the basal-ganglia network: one forward-Euler step of every cell of a nucleus.

Used by the integration loop of :mod:`stimulation.plant._kernel` (one network, or a batch of
networks laid side by side). Each function is a branch-free loop over the lanes of its state
arrays (columns: cells, of one network or of several) that LLVM vectorises (AVX-512 on the
machines measured: 8 cells per instruction); the external current of each lane (cortical pulses
into TH, DBS into its target) comes as an array, so that lanes of different networks can receive
different pulses in the same loop.

Speed: the step is dominated by exponentials and divisions (about 23 and 27 per cell of each of
the four nuclei). These keep it fast:

- the exponential is the vectorisable ``_exp`` (libm's ``exp`` is a call that blocks
  vectorisation);
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

from numba import njit

from stimulation.plant._vexp import vexp as _exp
from stimulation.plant.parameters import (
    E_GPE_STN,
    E_GPI_TH,
    G_GPE_STN,
    G_GPI_TH,
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
)

# Jump of z = ds/dt at a presynaptic spike: peak / (tau * exp(-1)) (So 2012's u * dt).
KICK_STN = SYN_PEAK_STN / (SYN_TAU_MS * math.exp(-1.0))
KICK_GPI = SYN_PEAK_GPI / (SYN_TAU_MS * math.exp(-1.0))
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


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def th_update(old, new, drive, isyn, i_ext, dt, n_pad):  # pragma: no cover - numba
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
        new[0, j] = v + dt * (-i_l - i_k - i_na - i_t - i_syn + i_ext[j])
        # h' = (h_inf - h) / tau_h, r' = (r_inf - r) / tau_r, one division each
        new[1, j] = h + dt * ((1.0 - h * d_h) * num_tau_h / (d_h * d_b))
        new[2, j] = r + dt * ((1.0 - r * d_r) / (d_r * tau_r))
        isyn[j] = i_syn


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def stn_update(old, new, drive, iapp, isyn, i_ext, dt, n_pad):  # pragma: no cover - numba
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
        new[0, j] = v + dt * (-i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn + iapp[j] + i_ext[j])
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
def gp_update(
    old, new, drive_e, drive_i, g_e, e_e, g_i, e_i, iapp, isyn, i_ext, dt, n_pad, is_gpe
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
            -i_l - i_k - i_na - i_t - i_ca - i_ahp - i_syn_e - i_syn_i + iapp[j] + i_ext[j]
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
