"""The compiled integration loop of the basal-ganglia network (numba, forward Euler).

:func:`integrate` advances ``B >= 1`` independent networks of ``n`` cells each over many time
steps in one call, with every state variable in preallocated arrays: the cells of all networks lie
side by side in the vector lanes (network ``b`` owns lanes ``b * n`` to ``(b + 1) * n - 1``; the
lanes are padded to a multiple of 8, an AVX-512 vector of doubles, with copies of lane 0 that
nothing reads). Each network has its own step counter, cortical pulses, DBS schedule and, for a
fluctuating plant, its own applied-current schedule, and every lane computes what it would
compute alone, so a batch gives bit for bit the spike trains of its networks run one by one.
Spikes go into preallocated buffers and the LFP proxy is decimated on the fly.

The equations are written out in :mod:`stimulation.plant.network` (the public docstring), coded for
speed in :mod:`stimulation.plant._cells` (the per-nucleus cell updates) and again, independently,
in plain numpy in :mod:`stimulation.plant.reference` (the correctness oracle). The Python side
(gathering networks into lanes, draining the spike buffers) is
:class:`stimulation.plant.integrator.LaneIntegrator`.

State layout (rows of the per-nucleus state arrays, columns are lanes):

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


#: Doubles per AVX-512 vector: lane arrays are padded to a multiple of this.
LANES = 8


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
def integrate(  # noqa: PLR0913, PLR0915 - one flat compiled loop on purpose
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
    severity,
    severity_bounds,
    severity_first,
    iapp_healthy,
    iapp_shift,
    decim,
    lfp_acc,
    lfp_out,
    n_lfp,
    buf_cell,
    buf_time,
    counts,
):  # pragma: no cover - compiled by numba
    """Advance ``B`` networks of ``n`` cells each ``n_steps`` steps of ``dt`` ms.

    Every array that holds state is modified in place.

    Parameters
    ----------
    th, stn, gpe, gpi : float64 arrays (n_vars, n_lanes)
        State of all networks side by side (layout in the module docstring), ``n_lanes >= B * n``.
    iapp : float64 array (3, n_lanes)
        Applied current of STN, GPe, GPi cells (uA/cm2), laid out the same way.
    pre : int64 array (5, B * n, 2)
        Presynaptic lanes of each lane for GPe->STN, STN->GPe, GPe->GPe, STN->GPi, GPe->GPi
        (each network's ring connectivity shifted to its lanes).
    n : int
        Cells per nucleus of each network.
    dt : float
        Time step (ms). Step ``k`` goes from ``k * dt`` to ``(k + 1) * dt``.
    k0 : int64 array (B,)
        First global step of each network.
    n_steps : int
        Number of steps.
    smc_onsets, smc_bounds : int64 arrays
        Global step of each cortical pulse onset (sorted), every network's one after the other:
        network ``b``'s are ``smc_onsets[smc_bounds[b]:smc_bounds[b + 1]]``. A pulse is on for
        steps ``onset <= k < onset + smc_width`` and may start before ``k0`` (one in progress).
    smc_width : int
        Cortical pulse width (steps).
    smc_amplitude : float
        Cortical pulse amplitude (uA/cm2).
    dbs_onsets, dbs_amps, dbs_pw, dbs_gap, dbs_biphasic, dbs_bounds : arrays
        DBS pulses, concatenated the same way: onset step, amplitude (uA/cm2), phase width and
        interphase gap (steps), biphasic flag (a negative phase follows after the gap).
    dbs_target : int64 array (B,)
        Target nucleus of each network (0 STN, 1 GPe, 2 GPi).
    severity, severity_bounds : float64, int64 arrays
        Per-step Parkinsonian severity of the networks whose applied currents change (empty
        range: constant ``iapp``): at the step ``severity_first + step`` of the call,
        network ``b``'s lanes get
        ``iapp = iapp_healthy + severity[severity_bounds[b] + severity_first + step] * iapp_shift``.
    severity_first : int
        Index of this call's first step into each network's severity schedule.
    iapp_healthy, iapp_shift : float64 arrays (3, n_lanes)
        Healthy applied currents and the Parkinsonian minus healthy ones (uA/cm2).
    decim : int
        Steps per LFP sample; a sample is emitted after each step ``k`` with ``(k + 1) % decim == 0``.
    lfp_acc, lfp_out, n_lfp : float64 (B, 4), float64 (B, 4, m), int64 (B,)
        Running LFP sums, output samples, and the samples written so far per network (network
        ``b`` writes its next sample at ``lfp_out[b, :, n_lfp[b]]`` and counts it).
    buf_cell, buf_time, counts : arrays (B, 4, cap), (B, 4, cap), (B, 4)
        Spike buffers per network and nucleus (cell index, time in ms) and their fill counts.

    Returns
    -------
    int
        Steps done: fewer than ``n_steps`` when a network's spike buffer has fewer free slots than
        cells (drain the buffers and call again).
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
    sev_now = np.full(n_b, np.nan)
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
            if severity_bounds[b + 1] > severity_bounds[b]:
                s = severity[severity_bounds[b] + severity_first + step]
                if s != sev_now[b]:
                    sev_now[b] = s
                    for r in range(3):
                        for j in range(b * n, (b + 1) * n):
                            iapp[r, j] = iapp_healthy[r, j] + s * iapp_shift[r, j]
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
        _nucleus_spikes(
            th_a,
            th_b,
            TH_SPIKE_THRESHOLD_MV,
            -1,
            0.0,
            0,
            n,
            k0,
            step,
            dt,
            buf_cell,
            buf_time,
            counts,
        )
        _nucleus_spikes(
            stn_a,
            stn_b,
            SPIKE_THRESHOLD_MV,
            7,
            KICK_STN,
            1,
            n,
            k0,
            step,
            dt,
            buf_cell,
            buf_time,
            counts,
        )
        _nucleus_spikes(
            gpe_a,
            gpe_b,
            SPIKE_THRESHOLD_MV,
            -1,
            0.0,
            2,
            n,
            k0,
            step,
            dt,
            buf_cell,
            buf_time,
            counts,
        )
        _nucleus_spikes(
            gpi_a,
            gpi_b,
            SPIKE_THRESHOLD_MV,
            6,
            KICK_GPI,
            3,
            n,
            k0,
            step,
            dt,
            buf_cell,
            buf_time,
            counts,
        )
        th_a, th_b = th_b, th_a
        stn_a, stn_b = stn_b, stn_a
        gpe_a, gpe_b = gpe_b, gpe_a
        gpi_a, gpi_b = gpi_b, gpi_a
        # ------------------------------------------------------------ LFP proxy, decimated
        # each network's sum in cell order: in a register for one network, for several the
        # networks interleaved (independent chains); the same additions in the same order
        if n_b == 1:
            for nu in range(4):
                total = 0.0
                for j in range(n):
                    total += isyn[nu, j]
                lfp_acc[0, nu] += total
        else:
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


@njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"contract"})
def _nucleus_spikes(
    old, new, threshold, z_row, kick, nucleus, n, k0, step, dt, buf_cell, buf_time, counts
):  # pragma: no cover - numba
    """Record the spikes of one nucleus of every network in its buffers (and kick z, ``z_row``
    >= 0, of the cells that fired). A crossing is rare: one vectorised test of all lanes first."""
    n_b = k0.shape[0]
    if _any_crossing(old, new, threshold, n_b * n):
        for b in range(n_b):
            _spikes_lanes(
                old,
                new,
                threshold,
                z_row,
                kick,
                b * n,
                n,
                k0[b] + step,
                dt,
                buf_cell[b, nucleus],
                buf_time[b, nucleus],
                counts[b],
                nucleus,
            )


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
        Spike buffers of :func:`integrate` (cell index, time in ms) and their fill counts.
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
