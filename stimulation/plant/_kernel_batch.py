"""The compiled integration loop of a batch of basal-ganglia networks (numba, forward Euler).

:func:`integrate_batch` advances ``B`` independent networks of the same size in one call: their
cells lie side by side in the vector lanes (8 networks of 10 cells fill 80 lanes, where 8 separate
calls of :func:`stimulation.plant._kernel.integrate` fill 8 x 16 padded lanes), each with its own
state, step counter, cortical pulses and DBS schedule. Every lane computes what it would compute
alone, with the same cell updates (:func:`stimulation.plant._kernel.update_all`) in the same
order, so a batch gives bit for bit the spike trains of its networks run one by one (tested in
``tests/stimulation/test_batch.py``). State layout as in :mod:`stimulation.plant._kernel`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stimulation.plant._cells import KICK_GPI, KICK_STN
from stimulation.plant._kernel import update_all
from stimulation.plant.parameters import SPIKE_THRESHOLD_MV, TH_SPIKE_THRESHOLD_MV


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _pulse_current(onsets, lo, hi, ptr, k, width, amplitude):  # pragma: no cover - numba
    """Advance ``ptr`` (index into ``onsets[lo:hi]``) to the last onset <= k; the cortical
    current at step ``k`` and the new pointer."""
    while lo + ptr + 1 < hi and onsets[lo + ptr + 1] <= k:
        ptr += 1
    if ptr >= 0 and k - onsets[lo + ptr] < width:
        return amplitude, ptr
    return 0.0, ptr


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _dbs_current(onsets, amps, pw, gap, biphasic, lo, hi, ptr, k):  # pragma: no cover - numba
    """Like ``_pulse_current`` for the DBS schedule ``[lo, hi)`` (one network's pulses)."""
    while lo + ptr + 1 < hi and onsets[lo + ptr + 1] <= k:
        ptr += 1
    i_dbs = 0.0
    if ptr >= 0:
        i = lo + ptr
        phase = k - onsets[i]
        if phase < pw[i]:
            i_dbs = amps[i]
        elif biphasic[i] != 0:
            second = phase - pw[i] - gap[i]
            if 0 <= second < pw[i]:
                i_dbs = -amps[i]
    return i_dbs, ptr


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def integrate_batch(  # noqa: PLR0913, PLR0915 - one flat compiled loop on purpose
    th,
    stn,
    gpe,
    gpi,
    iapp,
    pre,
    n,
    dt,
    k0,
    n_steps,
    smc_onsets,
    smc_bounds,
    smc_width,
    smc_amplitude,
    dbs_onsets,
    dbs_amps,
    dbs_pw,
    dbs_gap,
    dbs_biphasic,
    dbs_bounds,
    dbs_target,
    decim,
    lfp_acc,
    lfp_out,
    n_lfp,
    buf_cell,
    buf_time,
    counts,
):  # pragma: no cover - compiled by numba
    """Advance ``B`` networks of ``n`` cells each ``n_steps`` steps of ``dt`` ms.

    Network ``b`` owns lanes ``b * n`` to ``(b + 1) * n - 1`` of the state arrays; further lanes
    (up to a multiple of 8) are padding that nothing reads. Arguments as in
    :func:`stimulation.plant._kernel.integrate`,
    except:

    Parameters
    ----------
    th, stn, gpe, gpi : float64 arrays (n_vars, n_lanes)
        State of all networks side by side, ``n_lanes >= B * n``; modified in place.
    iapp : float64 array (3, n_lanes)
        Applied currents, laid out the same way.
    pre : int64 array (5, B * n, 2)
        Presynaptic lanes (each network's ring connectivity shifted to its lanes).
    n : int
        Cells per nucleus of each network.
    k0 : int64 array (B,)
        First global step of each network.
    smc_onsets, smc_bounds : int64 arrays
        Every network's cortical onsets (as in :func:`integrate`) one after the other; network
        ``b``'s are ``smc_onsets[smc_bounds[b]:smc_bounds[b + 1]]``.
    dbs_onsets, dbs_amps, dbs_pw, dbs_gap, dbs_biphasic, dbs_bounds : arrays
        The DBS schedules, concatenated the same way.
    dbs_target : int64 array (B,)
        Target nucleus of each network (0 STN, 1 GPe, 2 GPi).
    lfp_acc, lfp_out, n_lfp : float64 (B, 4), float64 (B, 4, m), int64 (B,)
        Running LFP sums, output samples, and the samples written so far per network (network
        ``b`` writes its next sample at ``lfp_out[b, :, n_lfp[b]]`` and counts it).
    buf_cell, buf_time, counts : arrays (B, 4, cap), (B, 4, cap), (B, 4)
        Spike buffers per network and nucleus.

    Returns
    -------
    int
        Steps done: fewer than ``n_steps`` when a network's spike buffer has fewer free slots than
        cells (drain and call again).
    """
    n_b = k0.shape[0]
    n_real = n_b * n
    n_lanes = th.shape[1]
    cap = buf_cell.shape[2]
    smc_ptr = np.full(n_b, -1, dtype=np.int64)
    dbs_ptr = np.full(n_b, -1, dtype=np.int64)
    th_b, stn_b, gpe_b, gpi_b = th.copy(), stn.copy(), gpe.copy(), gpi.copy()
    th_a, stn_a, gpe_a, gpi_a = th, stn, gpe, gpi
    drive = np.zeros((6, n_lanes))
    isyn = np.zeros((4, n_lanes))
    ext = np.zeros((4, n_lanes))
    ext_smc = np.zeros(n_b)
    ext_dbs = np.zeros(n_b)
    totals = np.zeros(n_b)
    phase = np.empty(n_b, dtype=np.int64)  # k % decim of each network's current step
    for b in range(n_b):
        phase[b] = k0[b] % decim
    next_check = 0
    done = n_steps
    for step in range(n_steps):
        if step == next_check:
            # each step adds at most n spikes per nucleus: ``room`` more steps are safe
            room = cap
            for b in range(n_b):
                for nu in range(4):
                    room = min(room, (cap - counts[b, nu]) // n)
            if room == 0:
                done = step
                break
            next_check = step + room
        # ------------------------------------------------------------ inputs of each network
        for b in range(n_b):
            k = k0[b] + step
            i_smc, ptr = _pulse_current(
                smc_onsets,
                smc_bounds[b],
                smc_bounds[b + 1],
                smc_ptr[b],
                k,
                smc_width,
                smc_amplitude,
            )
            smc_ptr[b] = ptr
            i_dbs, ptr = _dbs_current(
                dbs_onsets,
                dbs_amps,
                dbs_pw,
                dbs_gap,
                dbs_biphasic,
                dbs_bounds[b],
                dbs_bounds[b + 1],
                dbs_ptr[b],
                k,
            )
            dbs_ptr[b] = ptr
            if i_smc != ext_smc[b]:
                ext_smc[b] = i_smc
                for j in range(b * n, (b + 1) * n):
                    ext[0, j] = i_smc
            if i_dbs != ext_dbs[b]:
                ext_dbs[b] = i_dbs
                row = 1 + dbs_target[b]
                for j in range(b * n, (b + 1) * n):
                    ext[row, j] = i_dbs
        # ------------------------------------------------------------ synaptic drives (start of step)
        for j in range(n_real):
            drive[0, j] = gpi_a[5, j]
            drive[1, j] = gpe_a[5, pre[0, j, 0]] + gpe_a[5, pre[0, j, 1]]
            drive[2, j] = stn_a[6, pre[1, j, 0]] + stn_a[6, pre[1, j, 1]]
            drive[3, j] = gpe_a[5, pre[2, j, 0]] + gpe_a[5, pre[2, j, 1]]
            drive[4, j] = stn_a[6, pre[3, j, 0]] + stn_a[6, pre[3, j, 1]]
            drive[5, j] = gpe_a[5, pre[4, j, 0]] + gpe_a[5, pre[4, j, 1]]
        # ------------------------------------------------------------ all lanes, vectorised
        update_all(th_a, stn_a, gpe_a, gpi_a, th_b, stn_b, gpe_b, gpi_b, drive, iapp, isyn, ext, dt)
        # ------------------------------------------------------------ spikes, synaptic kicks
        # (a crossing is rare: one vectorised test of all lanes of a nucleus first)
        if _any_crossing(th_a, th_b, TH_SPIKE_THRESHOLD_MV, n_real):
            for b in range(n_b):
                _spikes_lanes(
                    th_a,
                    th_b,
                    TH_SPIKE_THRESHOLD_MV,
                    -1,
                    0.0,
                    b * n,
                    n,
                    k0[b] + step,
                    dt,
                    buf_cell[b, 0],
                    buf_time[b, 0],
                    counts[b],
                    0,
                )
        if _any_crossing(stn_a, stn_b, SPIKE_THRESHOLD_MV, n_real):
            for b in range(n_b):
                _spikes_lanes(
                    stn_a,
                    stn_b,
                    SPIKE_THRESHOLD_MV,
                    7,
                    KICK_STN,
                    b * n,
                    n,
                    k0[b] + step,
                    dt,
                    buf_cell[b, 1],
                    buf_time[b, 1],
                    counts[b],
                    1,
                )
        if _any_crossing(gpe_a, gpe_b, SPIKE_THRESHOLD_MV, n_real):
            for b in range(n_b):
                _spikes_lanes(
                    gpe_a,
                    gpe_b,
                    SPIKE_THRESHOLD_MV,
                    -1,
                    0.0,
                    b * n,
                    n,
                    k0[b] + step,
                    dt,
                    buf_cell[b, 2],
                    buf_time[b, 2],
                    counts[b],
                    2,
                )
        if _any_crossing(gpi_a, gpi_b, SPIKE_THRESHOLD_MV, n_real):
            for b in range(n_b):
                _spikes_lanes(
                    gpi_a,
                    gpi_b,
                    SPIKE_THRESHOLD_MV,
                    6,
                    KICK_GPI,
                    b * n,
                    n,
                    k0[b] + step,
                    dt,
                    buf_cell[b, 3],
                    buf_time[b, 3],
                    counts[b],
                    3,
                )
        th_a, th_b = th_b, th_a
        stn_a, stn_b = stn_b, stn_a
        gpe_a, gpe_b = gpe_b, gpe_a
        gpi_a, gpi_b = gpi_b, gpi_a
        # ------------------------------------------------------------ LFP proxy, decimated
        # each network's sum in cell order, the networks interleaved (independent chains)
        for nu in range(4):
            for b in range(n_b):
                totals[b] = 0.0
            for j in range(n):
                for b in range(n_b):
                    totals[b] += isyn[nu, b * n + j]
            for b in range(n_b):
                lfp_acc[b, nu] += totals[b]
        for b in range(n_b):
            phase[b] += 1
            if phase[b] == decim:  # (k + 1) % decim == 0
                phase[b] = 0
                m = n_lfp[b]
                for nu in range(4):
                    lfp_out[b, nu, m] = lfp_acc[b, nu] / decim
                    lfp_acc[b, nu] = 0.0
                n_lfp[b] = m + 1
    if done % 2 == 1:  # an odd number of steps: the last state is in the scratch arrays
        th[:, :] = th_a
        stn[:, :] = stn_a
        gpe[:, :] = gpe_a
        gpi[:, :] = gpi_a
    return done


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _any_crossing(old, new, threshold, n):  # pragma: no cover - numba
    """Whether v (row 0) of any of the first ``n`` lanes crosses ``threshold`` upwards
    (branch-free, so it vectorises)."""
    count = 0
    for j in range(n):
        count += (old[0, j] < threshold) & (threshold < new[0, j])
    return count > 0


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _spikes_lanes(
    old, new, threshold, z_row, kick, lo, n, k, dt, buf_cell, buf_time, counts, nucleus
):  # pragma: no cover - numba
    """Record the upward threshold crossings of lanes ``lo .. lo + n - 1`` (as cells 0 .. n-1)
    at their interpolated times (ms), and kick z (``z_row`` >= 0) of the cells that fired."""
    i = counts[nucleus]
    for j in range(n):
        v = old[0, lo + j]
        v_new = new[0, lo + j]
        if v < threshold < v_new:
            buf_cell[i] = j
            buf_time[i] = (k + (threshold - v) / (v_new - v)) * dt
            i += 1
            if z_row >= 0:
                new[z_row, lo + j] += kick
    counts[nucleus] = i


@njit(cache=True, nogil=True, error_model="numpy")
def group_spikes(buf_cell, buf_time, counts, n):  # pragma: no cover - numba
    """Spike times (s) of a batch's buffers grouped by cell, in time order within a cell.

    Parameters
    ----------
    buf_cell, buf_time, counts : arrays (B, 4, cap), (B, 4, cap), (B, 4)
        Spike buffers of :func:`integrate_batch` (cell index, time in ms) and their fill counts.
    n : int
        Cells per nucleus.

    Returns
    -------
    times, bounds : float64 (B, 4, max count), int64 (B, 4, n + 1)
        Cell ``i`` of nucleus ``nu`` of network ``b`` fired at
        ``times[b, nu, bounds[b, nu, i]:bounds[b, nu, i + 1]]`` (a stable counting sort; the
        times are ``ms * 1e-3`` as numpy computes them).
    """
    n_b = counts.shape[0]
    longest = 0
    for b in range(n_b):
        for nu in range(4):
            longest = max(longest, counts[b, nu])
    times = np.empty((n_b, 4, longest))
    bounds = np.zeros((n_b, 4, n + 1), dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)
    for b in range(n_b):
        for nu in range(4):
            c = counts[b, nu]
            for i in range(c):
                bounds[b, nu, buf_cell[b, nu, i] + 1] += 1
            for j in range(n):
                bounds[b, nu, j + 1] += bounds[b, nu, j]
                pos[j] = bounds[b, nu, j]
            for i in range(c):
                cell = buf_cell[b, nu, i]
                times[b, nu, pos[cell]] = buf_time[b, nu, i] * 1e-3
                pos[cell] += 1
    return times, bounds
