"""NetworkBatch: B networks in one compiled call give bit for bit what each gives alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stimulation import PulseTrain
from stimulation.errors import PlantParameterError
from stimulation.plant import BasalGangliaNetwork, PlantRecord
from stimulation.plant.batch import NetworkBatch
from stimulation.plant.parameters import NUCLEI

CONFIGS: list[dict[str, Any]] = [
    {"state": "pd", "seed": 1, "dbs_target": "stn"},
    {"state": "healthy", "seed": 2, "dbs_target": "gpi"},
    {"state": "pd", "seed": 3, "dbs_target": "gpe"},
]


def assert_identical(a: PlantRecord, b: PlantRecord) -> int:
    """Same spike trains, LFP, pulses and times, bit for bit; returns the number of spikes."""
    n_spikes = 0
    for nu in NUCLEI:
        for x, y in zip(a.spike_times[nu], b.spike_times[nu], strict=True):
            np.testing.assert_array_equal(x, y)
            n_spikes += x.size
        np.testing.assert_array_equal(a.lfp[nu], b.lfp[nu])
    np.testing.assert_array_equal(a.cortex_pulse_times, b.cortex_pulse_times)
    np.testing.assert_array_equal(a.dbs_pulse_times, b.dbs_pulse_times)
    assert (a.t_start_s, a.t_stop_s, a.lfp_t_start_s) == (b.t_start_s, b.t_stop_s, b.lfp_t_start_s)
    return n_spikes


def pairs(n_cells: int) -> tuple[list[BasalGangliaNetwork], list[BasalGangliaNetwork]]:
    alone = [BasalGangliaNetwork(cells_per_nucleus=n_cells, **c) for c in CONFIGS]
    batched = [BasalGangliaNetwork(cells_per_nucleus=n_cells, **c) for c in CONFIGS]
    # clocks at different steps (and LFP sample phases) before the batch starts
    for i, (x, y) in enumerate(zip(alone, batched, strict=True)):
        x.run(0.00137 * (i + 1))
        y.run(0.00137 * (i + 1))
    return alone, batched


def test_batched_run_gives_the_spike_trains_of_separate_networks() -> None:
    alone, batched = pairs(5)
    dbs = [PulseTrain(300.0, 130.0, 300.0), None, PulseTrain(200.0, 80.0, 100.0)]
    records = NetworkBatch(batched).run(0.2, dbs)
    n_spikes = 0
    for net, train, rec in zip(alone, dbs, records, strict=True):
        n_spikes += assert_identical(net.run(0.2, dbs=train), rec)
    assert n_spikes > 200
    for x, y in zip(alone, batched, strict=True):
        np.testing.assert_array_equal(x.variables.stn, y.variables.stn)
        assert x.t_s == y.t_s


def test_batched_closed_loop_steps_match_separate_steps() -> None:
    alone, batched = pairs(4)
    batch = NetworkBatch(batched)
    rng = np.random.default_rng(0)
    for _ in range(12):
        trains = [
            PulseTrain(float(rng.uniform(0, 300)), float(rng.uniform(50, 180)), 300.0),
            PulseTrain(0.0, 130.0, 300.0),
            PulseTrain(150.0, float(rng.uniform(50, 180)), 100.0, "biphasic", 50.0),
        ]
        records = batch.step(0.02, trains)
        for net, t, rec in zip(alone, trains, records, strict=True):
            biphasic = t.waveform == "biphasic"
            expected = net.step(
                0.02, t.amplitude, t.frequency_hz, t.pulse_width_us, biphasic, t.interphase_us
            )
            assert_identical(expected, rec)


def test_full_spike_buffers_are_drained_between_calls() -> None:
    """Tiny spike buffers force many kernel calls per run; the result must not change."""
    reference = [BasalGangliaNetwork(cells_per_nucleus=3, seed=s) for s in (4, 5)]
    nets = [BasalGangliaNetwork(cells_per_nucleus=3, seed=s) for s in (4, 5)]
    batch = NetworkBatch(nets, spike_capacity=7)
    records = batch.run(0.1)
    assert (
        sum(
            assert_identical(net.run(0.1), rec) for net, rec in zip(reference, records, strict=True)
        )
        > 50
    )


def test_batch_rejects_mismatched_networks_and_trains() -> None:
    with pytest.raises(PlantParameterError, match="same cells_per_nucleus"):
        NetworkBatch([BasalGangliaNetwork(cells_per_nucleus=3), BasalGangliaNetwork()])
    net = BasalGangliaNetwork(cells_per_nucleus=2)
    with pytest.raises(PlantParameterError, match="appears twice"):
        NetworkBatch([net, net])
    with pytest.raises(PlantParameterError, match="'networks'"):
        NetworkBatch([])
    batch = NetworkBatch([net, BasalGangliaNetwork(cells_per_nucleus=2, seed=1)])
    with pytest.raises(PlantParameterError, match="1 pulse trains for 2 networks"):
        batch.step(0.02, [PulseTrain(1.0, 130.0, 300.0)])
    with pytest.raises(PlantParameterError, match="'trains'"):
        batch.step(0.02, [PulseTrain(1.0, 130.0, 300.0), None])  # type: ignore[list-item]
    assert net.t_s == 0.0  # nothing moved
