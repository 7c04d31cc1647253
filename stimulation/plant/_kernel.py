"""The compiled integration loops of the basal-ganglia network (numba, forward Euler).

One call integrates all cells of the four nuclei over many time steps with every state variable in
preallocated arrays; spikes go into preallocated buffers and the LFP proxy is decimated on the fly.
The equations are written out in :mod:`stimulation.plant.network` (the public docstring), coded for
speed in :mod:`stimulation.plant._cells` (the per-nucleus cell updates, shared by both loops here)
and again, independently, in plain numpy in :mod:`stimulation.plant.reference` (the correctness
oracle).

- :func:`integrate` advances one network; its cells are padded to a multiple of 8 lanes (an
  AVX-512 vector of doubles) with copies of cell 0 that are never recorded.
- :func:`stimulation.plant._kernel_batch.integrate_batch` advances ``B`` independent networks of
  the same size in one call (their cells side by side in the lanes); it shares
  :func:`update_all` with :func:`integrate`.

State layout (rows of the per-nucleus state arrays, columns are cells):

- ``th``:  v, h, r
- ``stn``: v, n, h, r, c, ca, s, z
- ``gpe``: v, n, h, r, ca, s
- ``gpi``: v, n, h, r, ca, s, z

``s`` is the synaptic variable a cell sends to its targets; for STN and GPi it is an alpha function
and ``z = ds/dt``, for GPe first-order kinetics (So et al. 2012, ModelDB 141699).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stimulation.plant._cells import KICK_GPI, KICK_STN, gp_update, stn_update, th_update
from stimulation.plant.parameters import (
    E_GPE_GPE,
    E_GPE_GPI,
    E_STN_GPE,
    E_STN_GPI,
    G_GPE_GPE,
    G_GPE_GPI,
    G_STN_GPE,
    G_STN_GPI,
    SPIKE_THRESHOLD_MV,
    TH_SPIKE_THRESHOLD_MV,
)

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
def update_all(
    th_a, stn_a, gpe_a, gpi_a, th_b, stn_b, gpe_b, gpi_b, drive, iapp, isyn, ext, dt
):  # pragma: no cover - numba
    """One step of every lane of the four nuclei (reads ``*_a``, writes ``*_b``)."""
    n_lanes = th_a.shape[1]
    th_update(th_a, th_b, drive[0], isyn[0], ext[0], dt, n_lanes)
    stn_update(stn_a, stn_b, drive[1], iapp[0], isyn[1], ext[1], dt, n_lanes)
    gp_update(
        gpe_a,
        gpe_b,
        drive[2],
        drive[3],
        G_STN_GPE,
        E_STN_GPE,
        G_GPE_GPE,
        E_GPE_GPE,
        iapp[1],
        isyn[2],
        ext[2],
        dt,
        n_lanes,
        True,
    )
    gp_update(
        gpi_a,
        gpi_b,
        drive[4],
        drive[5],
        G_STN_GPI,
        E_STN_GPI,
        G_GPE_GPI,
        E_GPE_GPI,
        iapp[2],
        isyn[3],
        ext[3],
        dt,
        n_lanes,
        False,
    )


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
    # external current of each lane: row 0 cortical pulses into TH, rows 1-3 DBS into STN/GPe/GPi
    ext = np.zeros((4, n_pad))
    ext_smc = 0.0
    ext_dbs = 0.0
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
        if i_smc != ext_smc:
            ext_smc = i_smc
            for j in range(n_pad):
                ext[0, j] = i_smc
        if i_dbs != ext_dbs:
            ext_dbs = i_dbs
            for j in range(n_pad):
                ext[1 + dbs_target, j] = i_dbs
        update_all(
            th_a, stn_a, gpe_a, gpi_a, th_b, stn_b, gpe_b, gpi_b, drive, iapp_p, isyn, ext, dt
        )
        # ------------------------------------------------------------ spikes, synaptic kicks
        _spikes(th_a, th_b, TH_SPIKE_THRESHOLD_MV, 0, k, dt, n, buf_cell, buf_time, counts)
        if _spikes(stn_a, stn_b, SPIKE_THRESHOLD_MV, 1, k, dt, n, buf_cell, buf_time, counts):
            _kick(stn_a, stn_b, SPIKE_THRESHOLD_MV, 7, KICK_STN, n)
        _spikes(gpe_a, gpe_b, SPIKE_THRESHOLD_MV, 2, k, dt, n, buf_cell, buf_time, counts)
        if _spikes(gpi_a, gpi_b, SPIKE_THRESHOLD_MV, 3, k, dt, n, buf_cell, buf_time, counts):
            _kick(gpi_a, gpi_b, SPIKE_THRESHOLD_MV, 6, KICK_GPI, n)
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
