"""Integrating networks in the vector lanes of the one compiled step loop.

:func:`stimulation.plant._kernel.integrate` advances ``B >= 1`` networks of the same size side by
side. :class:`LaneIntegrator` is its Python side, shared by a single
:class:`~stimulation.plant.BasalGangliaNetwork` (a batch of one) and by
:class:`~stimulation.plant.batch.NetworkBatch`: it copies the networks' :class:`NetworkState` into
its lanes, calls the loop (again after draining the spike buffers when they fill up), copies the
state back and returns each network's spikes and LFP samples. What a network integrates next (its
cortical pulses, DBS pulses and applied-current schedule over the interval) comes as an
:class:`Interval`, which the network plans (:meth:`BasalGangliaNetwork.plan_step`,
:meth:`~BasalGangliaNetwork.plan_run`) and, once integrated, turns into a record
(:meth:`~BasalGangliaNetwork.complete`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stimulation.errors import PlantParameterError
from stimulation.plant import _kernel
from stimulation.plant.inputs import DbsPulses, connectivity
from stimulation.plant.parameters import NUCLEI, SMC_AMPLITUDE

#: Spike times of one interval: nucleus -> one array per cell, in seconds, in time order.
SpikeTimes = dict[str, list[NDArray[np.float64]]]

#: Kernel code of each DBS target.
TARGET_CODES = {"stn": _kernel.DBS_STN, "gpe": _kernel.DBS_GPE, "gpi": _kernel.DBS_GPI}


@dataclass
class NetworkState:
    """The variables of one network that the compiled loop advances (modified in place).

    Rows of the state arrays as in :mod:`stimulation.plant._kernel`; columns are cells.
    """

    th: NDArray[np.float64]  # (3, n): v, h, r
    stn: NDArray[np.float64]  # (8, n): v, n, h, r, c, ca, s, z
    gpe: NDArray[np.float64]  # (6, n): v, n, h, r, ca, s
    gpi: NDArray[np.float64]  # (7, n): v, n, h, r, ca, s, z
    iapp: NDArray[np.float64]  # (3, n): STN, GPe, GPi applied currents (uA/cm2)
    lfp_acc: NDArray[np.float64]  # (4,): running sums of the LFP sample in progress

    def is_finite(self) -> bool:
        """Whether every membrane potential is finite (forward Euler has not diverged)."""
        return bool(
            np.isfinite(self.th[0]).all()
            and np.isfinite(self.stn[0]).all()
            and np.isfinite(self.gpe[0]).all()
            and np.isfinite(self.gpi[0]).all()
        )


@dataclass(frozen=True)
class Interval:
    """What one network integrates over its next ``n_steps`` steps from global step ``k0``.

    Attributes
    ----------
    k0, n_steps : int
        First global step and number of steps.
    target : int
        Kernel code of the DBS target (:data:`TARGET_CODES`).
    smc_width : int
        Cortical pulse width (steps).
    smc_onsets : int64 array
        Cortical onsets the loop needs (a pulse in progress at ``k0``, then the new ones).
    smc_new : int64 array
        The new cortical onsets (reported in the record).
    dbs : DbsPulses
        DBS pulses the loop needs (the one in progress, then the new ones).
    new_dbs : DbsPulses
        The new DBS pulses (reported in the record).
    severity : float64 array
        Parkinsonian severity at each of the ``n_steps`` steps (a fluctuating plant), or empty
        (the applied currents stay as they are).
    iapp_healthy, iapp_shift : float64 arrays (3, n) or None
        With ``severity``: the healthy applied currents and the Parkinsonian minus healthy ones.
    """

    k0: int
    n_steps: int
    target: int
    smc_width: int
    smc_onsets: NDArray[np.int64]
    smc_new: NDArray[np.int64]
    dbs: DbsPulses
    new_dbs: DbsPulses
    severity: NDArray[np.float64]
    iapp_healthy: NDArray[np.float64] | None = None
    iapp_shift: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class IntervalOutput:
    """Spikes and LFP samples of one network over one :class:`Interval`."""

    spike_times: SpikeTimes
    lfp: NDArray[np.float64]  # (4, m): TH, STN, GPe, GPi samples completed in the interval


class LaneIntegrator:
    """Integrate ``n_networks`` networks of ``n_cells`` cells per nucleus side by side.

    Parameters
    ----------
    n_cells : int
        Cells per nucleus of every network.
    n_networks : int
        Networks per call (their lanes are fixed: network ``b`` owns lanes ``b * n_cells`` to
        ``(b + 1) * n_cells - 1``).
    dt_ms : float
        Integration step (ms).
    steps_per_lfp_sample : int
        Steps averaged into one LFP sample.
    spike_capacity : int, optional
        Spike-buffer slots per network and nucleus (default ``256 n_cells + 1024``); the loop
        stops and is called again when a buffer could overflow, so a smaller value only makes
        more calls.
    """

    def __init__(
        self,
        n_cells: int,
        n_networks: int,
        dt_ms: float,
        steps_per_lfp_sample: int,
        spike_capacity: int | None = None,
    ) -> None:
        n, n_b = int(n_cells), int(n_networks)
        self.n_cells, self.n_networks = n, n_b
        self.dt_ms = float(dt_ms)
        self.decim = int(steps_per_lfp_sample)
        self._n_real = n * n_b
        n_lanes = -(-self._n_real // _kernel.LANES) * _kernel.LANES
        ring = connectivity(n)
        self._pre = np.concatenate([ring + b * n for b in range(n_b)], axis=1)
        self._th = np.zeros((3, n_lanes))
        self._stn = np.zeros((8, n_lanes))
        self._gpe = np.zeros((6, n_lanes))
        self._gpi = np.zeros((7, n_lanes))
        self._iapp = np.zeros((3, n_lanes))
        self._iapp_healthy = np.zeros((3, n_lanes))
        self._iapp_shift = np.zeros((3, n_lanes))
        cap = 256 * n + 1024 if spike_capacity is None else int(spike_capacity)
        if cap < n:
            raise PlantParameterError(
                f"Invalid value for the 'spike_capacity' parameter: at least n_cells ({n}), but got "
                f"{cap} instead."
            )
        self._buf_cell = np.zeros((n_b, 4, cap), dtype=np.int64)
        self._buf_time = np.zeros((n_b, 4, cap), dtype=np.float64)
        self._counts = np.zeros((n_b, 4), dtype=np.int64)

    def integrate(
        self, states: Sequence[NetworkState], intervals: Sequence[Interval]
    ) -> list[IntervalOutput]:
        """Advance network ``b`` (state ``states[b]``) over ``intervals[b]``; all intervals have
        the same ``n_steps``. The states are advanced in place; returns each network's output."""
        n_b = self.n_networks
        if len(states) != n_b or len(intervals) != n_b:
            raise PlantParameterError(f"Expected {n_b} network states and intervals.")
        n_steps = intervals[0].n_steps
        if any(iv.n_steps != n_steps for iv in intervals):
            raise PlantParameterError("Every interval of one call must have the same n_steps.")
        smc = np.concatenate([iv.smc_onsets for iv in intervals])
        smc_bounds = _bounds([iv.smc_onsets.size for iv in intervals])
        dbs = [iv.dbs for iv in intervals]
        dbs_bounds = _bounds([len(d) for d in dbs])
        dbs_all = DbsPulses(
            np.concatenate([d.onsets for d in dbs]),
            np.concatenate([d.amps for d in dbs]),
            np.concatenate([d.pw for d in dbs]),
            np.concatenate([d.gap for d in dbs]),
            np.concatenate([d.biphasic for d in dbs]),
        )
        severity = np.concatenate([iv.severity for iv in intervals])
        severity_bounds = _bounds([iv.severity.size for iv in intervals])
        targets = np.array([iv.target for iv in intervals], dtype=np.int64)
        k0 = np.array([iv.k0 for iv in intervals], dtype=np.int64)
        lfp_acc = np.stack([s.lfp_acc for s in states])
        lfp_out = np.empty((n_b, 4, n_steps // self.decim + 1))
        n_lfp = np.zeros(n_b, dtype=np.int64)
        chunks: list[list[_SpikeChunk]] = [[] for _ in range(n_b)]
        grouped: list[SpikeTimes] | None = None
        self._gather(states, intervals)
        done = 0
        while done < n_steps:
            self._counts[:] = 0
            done += _kernel.integrate(
                self._th,
                self._stn,
                self._gpe,
                self._gpi,
                self._iapp,
                self._pre,
                self.n_cells,
                self.dt_ms,
                k0 + done,
                n_steps - done,
                smc,
                smc_bounds,
                intervals[0].smc_width,
                SMC_AMPLITUDE,
                dbs_all.onsets,
                dbs_all.amps,
                dbs_all.pw,
                dbs_all.gap,
                dbs_all.biphasic,
                dbs_bounds,
                targets,
                severity,
                severity_bounds,
                done,
                self._iapp_healthy,
                self._iapp_shift,
                self.decim,
                lfp_acc,
                lfp_out,
                n_lfp,
                self._buf_cell,
                self._buf_time,
                self._counts,
            )
            if done == n_steps and not chunks[0]:  # all in one call: group in compiled code
                grouped = self._grouped_spikes()
            else:
                for b in range(n_b):
                    chunks[b].append(_drain(self._buf_cell[b], self._buf_time[b], self._counts[b]))
        self._scatter(states)
        out = []
        for b, state in enumerate(states):
            state.lfp_acc[:] = lfp_acc[b]
            spikes = grouped[b] if grouped is not None else self._spike_times(chunks[b])
            out.append(IntervalOutput(spikes, lfp_out[b, :, : n_lfp[b]]))
        return out

    # ------------------------------------------------------------------ internals
    def _gather(self, states: Sequence[NetworkState], intervals: Sequence[Interval]) -> None:
        n_real = self._n_real
        for name, work in (
            ("th", self._th),
            ("stn", self._stn),
            ("gpe", self._gpe),
            ("gpi", self._gpi),
            ("iapp", self._iapp),
        ):
            np.concatenate([getattr(s, name) for s in states], axis=1, out=work[:, :n_real])
            work[:, n_real:] = work[:, :1]  # padding: copies of lane 0 that nothing reads
        n = self.n_cells
        for b, iv in enumerate(intervals):
            if iv.severity.size:
                if iv.severity.size != iv.n_steps:
                    raise PlantParameterError("An interval's severity needs one value per step.")
                self._iapp_healthy[:, b * n : (b + 1) * n] = iv.iapp_healthy
                self._iapp_shift[:, b * n : (b + 1) * n] = iv.iapp_shift

    def _scatter(self, states: Sequence[NetworkState]) -> None:
        n = self.n_cells
        for b, state in enumerate(states):
            lo, hi = b * n, (b + 1) * n
            np.copyto(state.th, self._th[:, lo:hi])
            np.copyto(state.stn, self._stn[:, lo:hi])
            np.copyto(state.gpe, self._gpe[:, lo:hi])
            np.copyto(state.gpi, self._gpi[:, lo:hi])
            np.copyto(state.iapp, self._iapp[:, lo:hi])

    def _grouped_spikes(self) -> list[SpikeTimes]:
        """Each network's spike times per cell, from the buffers of one kernel call."""
        times, bounds = _kernel.group_spikes(
            self._buf_cell, self._buf_time, self._counts, self.n_cells
        )
        out: list[SpikeTimes] = []
        for b, edges in enumerate(bounds.tolist()):
            out.append(
                {
                    name: [times[b, nu, e[i] : e[i + 1]] for i in range(self.n_cells)]
                    for nu, (name, e) in enumerate(zip(NUCLEI, edges, strict=True))
                }
            )
        return out

    def _spike_times(self, chunks: list[_SpikeChunk]) -> SpikeTimes:
        """Spike times per cell from the buffers drained after several kernel calls."""
        spike_times = {}
        for nu, name in enumerate(NUCLEI):
            cell = np.concatenate([c[nu][0] for c in chunks])
            t_ms = np.concatenate([c[nu][1] for c in chunks])
            spike_times[name] = _split_by_cell(cell, t_ms * 1e-3, self.n_cells)
        return spike_times


#: One kernel call's spikes of one network: per nucleus, (cell indices, times in ms).
_SpikeChunk = list[tuple[NDArray[np.int64], NDArray[np.float64]]]


def _drain(
    buf_cell: NDArray[np.int64], buf_time: NDArray[np.float64], counts: NDArray[np.int64]
) -> _SpikeChunk:
    """Copy the filled part of a network's spike buffers (4, cap) out, nucleus by nucleus."""
    return [
        (buf_cell[nu, : counts[nu]].copy(), buf_time[nu, : counts[nu]].copy()) for nu in range(4)
    ]


def _split_by_cell(
    cell: NDArray[np.int64], t_s: NDArray[np.float64], n_cells: int
) -> list[NDArray[np.float64]]:
    """Spike times (in time order) of each of ``n_cells`` cells, from spikes in time order."""
    order = np.argsort(cell, kind="stable")
    bounds = np.searchsorted(cell[order], np.arange(n_cells + 1)).tolist()
    sorted_t = t_s[order]
    return [sorted_t[bounds[i] : bounds[i + 1]] for i in range(n_cells)]


def _bounds(sizes: list[int]) -> NDArray[np.int64]:
    out = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out
