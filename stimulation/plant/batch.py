"""Several basal-ganglia networks integrated together in one compiled call.

:class:`NetworkBatch` steps ``B`` independent :class:`~stimulation.plant.BasalGangliaNetwork`
instances of the same size, time step and LFP rate with one call of
:func:`stimulation.plant._kernel.integrate` (the loop a single network runs as a batch of one):
their cells lie side by side in the vector lanes (8 networks of 10 cells fill 80 lanes of AVX-512
vectors, where 8 separate calls compute 8 x 16 padded lanes) and the per-call overhead is paid
once per batch. Each network keeps its own state, seed, step counter, cortical pulses, DBS
schedule and applied-current schedule, and comes out exactly as if it had been stepped alone: the
same spike trains bit for bit (tested), the same records, the same state. The networks stay
ordinary objects (``snapshot``, ``reset``, ``run`` work on each as before); the batch uses only
their public interval interface (:meth:`~stimulation.plant.BasalGangliaNetwork.plan_step`,
:meth:`~stimulation.plant.BasalGangliaNetwork.plan_run`,
:attr:`~stimulation.plant.BasalGangliaNetwork.variables`,
:meth:`~stimulation.plant.BasalGangliaNetwork.complete`) and a
:class:`~stimulation.plant.integrator.LaneIntegrator` that copies their state into its lanes
before each call and back after it.

Used by :class:`~stimulation.plant.vector_env.BasalGangliaVectorEnv` (``batched=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stimulation.errors import PlantParameterError
from stimulation.plant.integrator import Interval, LaneIntegrator
from stimulation.plant.network import BasalGangliaNetwork
from stimulation.plant.record import PlantRecord
from stimulation.pulses import PulseTrain


class NetworkBatch:
    """Step ``B`` networks of the same configuration together, one compiled call per step.

    Parameters
    ----------
    networks : sequence of BasalGangliaNetwork
        At least one; all with the same ``n_cells``, ``dt_ms`` and ``lfp_sfreq`` (state, seed,
        plant and DBS target may differ). The batch holds references: the networks it steps are
        these.
    spike_capacity : int, optional
        Spike-buffer slots per network and nucleus of one compiled call (see
        :class:`~stimulation.plant.integrator.LaneIntegrator`); only the number of calls depends
        on it.

    Examples
    --------
    >>> nets = [BasalGangliaNetwork(seed=s) for s in range(8)]
    >>> batch = NetworkBatch(nets)
    >>> records = batch.step(0.02, [PulseTrain(300.0, 130.0, 300.0)] * 8)  # doctest: +SKIP
    """

    def __init__(
        self, networks: Sequence[BasalGangliaNetwork], spike_capacity: int | None = None
    ) -> None:
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
        self._integrator = LaneIntegrator(
            first.n_cells, len(nets), first.dt_ms, first.steps_per_lfp_sample, spike_capacity
        )

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
        return self._integrate(
            [net.plan_step(duration_s, t) for net, t in zip(self.networks, trains, strict=True)]
        )

    def run(
        self, duration_s: float, dbs: Sequence[PulseTrain | None] | None = None
    ) -> list[PlantRecord]:
        """:meth:`BasalGangliaNetwork.run` of every network (``dbs[b]`` for network ``b``; None:
        no stimulation anywhere)."""
        trains = self._check_trains(
            [None] * len(self.networks) if dbs is None else dbs, allow_none=True
        )
        return self._integrate(
            [net.plan_run(duration_s, t) for net, t in zip(self.networks, trains, strict=True)]
        )

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

    def _integrate(self, intervals: list[Interval]) -> list[PlantRecord]:
        nets = self.networks
        outputs = self._integrator.integrate([net.variables for net in nets], intervals)
        records = []
        error: PlantParameterError | None = None
        for net, interval, output in zip(nets, intervals, outputs, strict=True):
            try:
                records.append(net.complete(interval, output))
            except PlantParameterError as err:  # diverged: finish the others, then raise
                error = err if error is None else error
        if error is not None:
            raise error
        return records
