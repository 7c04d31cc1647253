"""Several basal-ganglia networks integrated together in one compiled call.

:class:`NetworkBatch` steps ``B`` independent :class:`~stimulation.plant.BasalGangliaNetwork`
instances of the same size, time step and LFP rate with one call of
:func:`stimulation.plant._kernel_batch.integrate_batch`: their cells lie side by side in the vector
lanes (8 networks of 10 cells fill 80 lanes of AVX-512 vectors, where 8 separate calls compute
8 x 16 padded lanes) and the per-call overhead is paid once per batch. Each network keeps its own
state, seed, step counter, cortical pulses and DBS schedule, and comes out exactly as if it had
been stepped alone: the same spike trains bit for bit (tested), the same records, the same state.
The networks stay ordinary objects (``snapshot``, ``reset``, ``run`` work on each as before); the
batch copies their state into its lanes before each call and back after it.

Used by :class:`~stimulation.plant.vector_env.BasalGangliaVectorEnv` (``batched=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stimulation.errors import PlantParameterError
from stimulation.plant import _kernel_batch
from stimulation.plant.inputs import DbsPulses, connectivity
from stimulation.plant.network import (
    TARGET_CODES,
    BasalGangliaNetwork,
    SpikeChunk,
    drain,
)
from stimulation.plant.parameters import NUCLEI, SMC_AMPLITUDE
from stimulation.plant.record import PlantRecord
from stimulation.pulses import PulseTrain

_LANES = 8  # doubles per AVX-512 vector


class NetworkBatch:
    """Step ``B`` networks of the same configuration together, one compiled call per step.

    Parameters
    ----------
    networks : sequence of BasalGangliaNetwork
        At least one; all with the same ``n_cells``, ``dt_ms`` and ``lfp_sfreq`` (state, seed and
        DBS target may differ). The batch holds references: the networks it steps are these.

    Examples
    --------
    >>> nets = [BasalGangliaNetwork(seed=s) for s in range(8)]
    >>> batch = NetworkBatch(nets)
    >>> records = batch.step(0.02, [PulseTrain(300.0, 130.0, 300.0)] * 8)  # doctest: +SKIP
    """

    def __init__(self, networks: Sequence[BasalGangliaNetwork]) -> None:
        nets = list(networks)
        if not nets or not all(isinstance(net, BasalGangliaNetwork) for net in nets):
            raise PlantParameterError(
                "Invalid value for the 'networks' parameter: expected a non-empty sequence of "
                "BasalGangliaNetwork."
            )
        first = nets[0]
        config = (first.n_cells, first.dt_ms, first.lfp_sfreq)
        for net in nets[1:]:
            if (net.n_cells, net.dt_ms, net.lfp_sfreq) != config:
                raise PlantParameterError(
                    "Invalid value for the 'networks' parameter: every network of a batch needs "
                    f"the same cells_per_nucleus, dt_ms and lfp_sfreq, but got {config} and "
                    f"{(net.n_cells, net.dt_ms, net.lfp_sfreq)}."
                )
        if len({id(net) for net in nets}) != len(nets):
            raise PlantParameterError(
                "Invalid value for the 'networks' parameter: a network appears twice."
            )
        self.networks = nets
        n = first.n_cells
        n_b = len(nets)
        self._n = n
        self._n_real = n * n_b
        n_lanes = -(-self._n_real // _LANES) * _LANES
        ring = connectivity(n)
        self._pre = np.concatenate([ring + b * n for b in range(n_b)], axis=1)
        self._th = np.zeros((3, n_lanes))
        self._stn = np.zeros((8, n_lanes))
        self._gpe = np.zeros((6, n_lanes))
        self._gpi = np.zeros((7, n_lanes))
        self._iapp = np.zeros((3, n_lanes))
        self._padding_set = False
        cap = 256 * n + 1024
        self._buf_cell = np.zeros((n_b, 4, cap), dtype=np.int64)
        self._buf_time = np.zeros((n_b, 4, cap), dtype=np.float64)
        self._counts = np.zeros((n_b, 4), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.networks)

    # ------------------------------------------------------------------ public
    def step(self, duration_s: float, trains: Sequence[PulseTrain]) -> list[PlantRecord]:
        """:meth:`BasalGangliaNetwork.step` of every network, network ``b`` with ``trains[b]``
        (its amplitude, frequency, pulse width, waveform and interphase gap).

        Returns
        -------
        list of PlantRecord
            One per network, equal to what its own ``step`` would have returned.
        """
        trains = self._check_trains(trains, allow_none=False)
        return self._step(self.networks[0]._n_steps(duration_s), trains)

    def _step(self, n_steps: int, trains: list[PulseTrain]) -> list[PlantRecord]:
        new = [
            net._step_schedule(n_steps, train)
            for net, train in zip(self.networks, trains, strict=True)
        ]
        return self._integrate(n_steps, new)

    def run(
        self, duration_s: float, dbs: Sequence[PulseTrain | None] | None = None
    ) -> list[PlantRecord]:
        """:meth:`BasalGangliaNetwork.run` of every network (``dbs[b]`` for network ``b``; None:
        no stimulation anywhere)."""
        trains = self._check_trains(
            [None] * len(self.networks) if dbs is None else dbs, allow_none=True
        )
        n_steps = self.networks[0]._n_steps(duration_s)
        new = []
        for net, train in zip(self.networks, trains, strict=True):
            new.append(net._run_schedule(n_steps, train))
        return self._integrate(n_steps, new)

    # ------------------------------------------------------------------ internals
    def _check_trains(self, trains: Sequence[PulseTrain | None], allow_none: bool) -> list[Any]:
        out = list(trains)
        if len(out) != len(self.networks):
            raise PlantParameterError(
                f"Invalid value for the 'trains' parameter: {len(out)} pulse trains for "
                f"{len(self.networks)} networks."
            )
        for train in out:
            if not (isinstance(train, PulseTrain) or (allow_none and train is None)):
                raise PlantParameterError(
                    "Invalid value for the 'trains' parameter: expected PulseTrain"
                    f"{' or None' if allow_none else ''} items, but got {type(train).__name__}."
                )
        return out

    def _gather(self) -> None:
        n_real = self._n_real
        nets = self.networks
        for name, work in (
            ("_th", self._th),
            ("_stn", self._stn),
            ("_gpe", self._gpe),
            ("_gpi", self._gpi),
            ("_iapp", self._iapp),
        ):
            np.concatenate([getattr(net, name) for net in nets], axis=1, out=work[:, :n_real])
        if not self._padding_set:
            # padding lanes: copies of lane 0 with no input; nothing reads them
            for work in (self._th, self._stn, self._gpe, self._gpi, self._iapp):
                work[:, n_real:] = work[:, :1]
            self._padding_set = True

    def _scatter(self) -> None:
        n = self._n
        for b, net in enumerate(self.networks):
            lo, hi = b * n, (b + 1) * n
            np.copyto(net._th, self._th[:, lo:hi])
            np.copyto(net._stn, self._stn[:, lo:hi])
            np.copyto(net._gpe, self._gpe[:, lo:hi])
            np.copyto(net._gpi, self._gpi[:, lo:hi])

    def _grouped_spikes(self) -> list[dict[str, list[NDArray[np.float64]]] | None]:
        """Each network's spike times per cell, from the buffers of one kernel call."""
        times, bounds = _kernel_batch.group_spikes(
            self._buf_cell, self._buf_time, self._counts, self._n
        )
        out: list[dict[str, list[NDArray[np.float64]]] | None] = []
        for b, edges in enumerate(bounds.tolist()):
            out.append(
                {
                    name: [times[b, nu, e[i] : e[i + 1]] for i in range(self._n)]
                    for nu, (name, e) in enumerate(zip(NUCLEI, edges, strict=True))
                }
            )
        return out

    def _integrate(self, n_steps: int, new_dbs: list[DbsPulses]) -> list[PlantRecord]:
        nets = self.networks
        n_b = len(nets)
        inputs = [net._inputs(n_steps, new) for net, new in zip(nets, new_dbs, strict=True)]
        dbs = [x[0] for x in inputs]
        smc_kernel = [x[1] for x in inputs]
        smc = np.concatenate(smc_kernel)
        smc_bounds = _bounds([x.size for x in smc_kernel])
        dbs_bounds = _bounds([len(d) for d in dbs])
        dbs_all = DbsPulses(
            np.concatenate([d.onsets for d in dbs]),
            np.concatenate([d.amps for d in dbs]),
            np.concatenate([d.pw for d in dbs]),
            np.concatenate([d.gap for d in dbs]),
            np.concatenate([d.biphasic for d in dbs]),
        )
        targets = np.array([TARGET_CODES[net.dbs_target] for net in nets], dtype=np.int64)
        k0 = np.array([net._k for net in nets], dtype=np.int64)
        decim = nets[0]._decim
        lfp_acc = np.stack([net._lfp_acc for net in nets])
        lfp_out = np.empty((n_b, 4, n_steps // decim + 1))
        n_lfp = np.zeros(n_b, dtype=np.int64)
        chunks: list[list[SpikeChunk]] = [[] for _ in nets]
        grouped: list[dict[str, list[NDArray[np.float64]]] | None] = [None] * n_b
        self._gather()
        done = 0
        while done < n_steps:
            self._counts[:] = 0
            done += _kernel_batch.integrate_batch(
                self._th,
                self._stn,
                self._gpe,
                self._gpi,
                self._iapp,
                self._pre,
                self._n,
                nets[0].dt_ms,
                k0 + done,
                n_steps - done,
                smc,
                smc_bounds,
                nets[0]._smc.width_steps,
                SMC_AMPLITUDE,
                dbs_all.onsets,
                dbs_all.amps,
                dbs_all.pw,
                dbs_all.gap,
                dbs_all.biphasic,
                dbs_bounds,
                targets,
                decim,
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
                    chunks[b].append(drain(self._buf_cell[b], self._buf_time[b], self._counts[b]))
        self._scatter()
        records = []
        error: PlantParameterError | None = None
        for b, net in enumerate(nets):
            net._lfp_acc[:] = lfp_acc[b]
            try:
                records.append(
                    net._finish(
                        n_steps,
                        new_dbs[b],
                        dbs[b],
                        inputs[b][2],
                        chunks[b],
                        lfp_out[b, :, : n_lfp[b]],
                        grouped[b],
                    )
                )
            except PlantParameterError as err:  # diverged: finish the others, then raise
                error = err if error is None else error
        if error is not None:
            raise error
        return records


def _bounds(sizes: list[int]) -> NDArray[np.int64]:
    out = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out
