"""BasalGangliaNetwork: the API the environment relies on, determinism, continuity, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci import BCIError
from stimulation import PlantParameterError, PulseTrain
from stimulation.plant import BasalGangliaNetwork, PlantRecord
from stimulation.plant.parameters import NUCLEI


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    """Compile (or load from numba's cache) the kernel once for the module."""
    BasalGangliaNetwork(cells_per_nucleus=2).run(0.001)


def assert_same_spikes(a: PlantRecord, b: PlantRecord) -> None:
    for nu in NUCLEI:
        assert len(a.spike_times[nu]) == len(b.spike_times[nu])
        for x, y in zip(a.spike_times[nu], b.spike_times[nu], strict=True):
            np.testing.assert_array_equal(x, y)


def test_run_returns_a_record_of_the_interval() -> None:
    net = BasalGangliaNetwork(state="pd", cells_per_nucleus=10, seed=0)
    rec = net.run(0.5)
    assert (rec.t_start_s, rec.t_stop_s) == (0.0, pytest.approx(0.5))
    assert net.t_s == pytest.approx(0.5)
    assert net.n_cells == rec.n_cells == 10
    assert net.state == "pd"
    for nu in NUCLEI:
        assert len(rec.spike_times[nu]) == 10
        for spikes in rec.spike_times[nu]:
            assert np.all(np.diff(spikes) > 0)
            assert np.all((spikes >= 0.0) & (spikes < 0.5))
        assert rec.lfp[nu].shape == (500,)
        assert np.isfinite(rec.lfp[nu]).all()
    # 14 Hz cortical drive; pallidal cells fire tens of Hz
    assert 3 <= rec.cortex_pulse_times.size <= 12
    assert rec.dbs_pulse_times.size == 0
    assert rec.firing_rates()["gpi"] > 20.0
    rec2 = net.run(0.25)
    assert rec2.t_start_s == pytest.approx(0.5)
    assert all(np.all(s >= 0.5) for s in rec2.spike_times["gpe"])


def test_same_seed_same_spikes_other_seed_other_spikes() -> None:
    a = BasalGangliaNetwork(seed=3).run(0.3)
    b = BasalGangliaNetwork(seed=3).run(0.3)
    c = BasalGangliaNetwork(seed=4).run(0.3)
    assert_same_spikes(a, b)
    np.testing.assert_array_equal(a.lfp["gpi"], b.lfp["gpi"])
    assert not np.array_equal(a.lfp["gpi"], c.lfp["gpi"])


def test_split_runs_equal_one_run_even_mid_pulse() -> None:
    dbs = PulseTrain(300.0, frequency_hz=130.0, pulse_width_us=300.0)
    whole = BasalGangliaNetwork(seed=2).run(0.5, dbs=dbs)
    net = BasalGangliaNetwork(seed=2)
    # 0.3001 s is 0.1 ms into the DBS pulse that starts at 39 / 130 Hz = 0.3 s
    parts = [net.run(0.3001, dbs=dbs), net.run(0.1999, dbs=dbs)]
    joined = PlantRecord.concatenate(parts)
    assert_same_spikes(whole, joined)
    np.testing.assert_array_equal(whole.cortex_pulse_times, joined.cortex_pulse_times)
    np.testing.assert_allclose(whole.dbs_pulse_times, joined.dbs_pulse_times)
    assert whole.dbs_pulse_times.size == 65
    # LFP samples are averages over whole sample periods, carried across the split
    np.testing.assert_allclose(whole.lfp["stn"], joined.lfp["stn"], rtol=1e-6)


def test_closed_loop_steps_keep_the_pulse_phase() -> None:
    dbs = PulseTrain(300.0, frequency_hz=130.0, pulse_width_us=300.0)
    reference = BasalGangliaNetwork(seed=1).run(0.4, dbs=dbs)
    net = BasalGangliaNetwork(seed=1)
    steps = [net.step(0.02, 300.0, frequency_hz=130.0, pulse_width_us=300.0) for _ in range(20)]
    joined = PlantRecord.concatenate(steps)
    np.testing.assert_allclose(joined.dbs_pulse_times, reference.dbs_pulse_times)
    assert_same_spikes(joined, reference)


def test_zero_amplitude_steps_keep_the_clock_running() -> None:
    net = BasalGangliaNetwork(seed=1)
    first = net.step(0.02, 300.0, frequency_hz=100.0)
    off = net.step(0.0155, 0.0, frequency_hz=100.0)
    on = net.step(0.02, 300.0, frequency_hz=100.0)
    np.testing.assert_allclose(first.dbs_pulse_times, [0.0, 0.01])
    assert off.dbs_pulse_times.size == 0
    # the clock ran on through the pause: pulses at 0.04, 0.05 (not at the step start, 0.0355)
    np.testing.assert_allclose(on.dbs_pulse_times, [0.04, 0.05])


def test_stimulation_reaches_the_chosen_target() -> None:
    rates: dict[str, dict[str, float]] = {}
    for target in ("stn", "gpe", "gpi"):
        net = BasalGangliaNetwork(seed=1, dbs_target=target)
        assert net.dbs_target == target
        rates[target] = net.run(0.5, dbs=PulseTrain(300.0, 130.0, 300.0)).firing_rates(0.1)
    # each target fires (at least) once per 130 Hz pulse
    for target in ("stn", "gpe", "gpi"):
        assert rates[target][target] >= 128.0
    # GPi stimulation silences nothing upstream: STN is not driven to 130 Hz
    assert rates["gpi"]["stn"] < 60.0


def test_biphasic_pulses_are_delivered() -> None:
    mono = BasalGangliaNetwork(seed=1).step(0.2, 300.0, biphasic=False)
    bi = BasalGangliaNetwork(seed=1).step(0.2, 300.0, biphasic=True, interphase_us=50.0)
    np.testing.assert_allclose(mono.dbs_pulse_times, bi.dbs_pulse_times)
    assert not np.array_equal(mono.lfp["stn"], bi.lfp["stn"])


@pytest.mark.parametrize("n_cells", [1, 2, 3, 100])
def test_any_network_size_runs(n_cells: int) -> None:
    rec = BasalGangliaNetwork(cells_per_nucleus=n_cells, seed=0).run(0.05)
    assert rec.n_cells == n_cells
    assert all(len(rec.spike_times[nu]) == n_cells for nu in NUCLEI)
    assert sum(s.size for s in rec.spike_times["gpe"]) > 0


def test_reset_and_snapshot_restore() -> None:
    net = BasalGangliaNetwork(seed=5)
    first = net.run(0.1)
    net.reset()
    assert net.t_s == 0.0
    assert_same_spikes(first, net.run(0.1))
    snap = net.snapshot()
    after = net.run(0.1, dbs=PulseTrain(200.0, 130.0, 300.0))
    net.restore(snap)
    assert net.t_s == pytest.approx(0.1)
    assert_same_spikes(after, net.run(0.1, dbs=PulseTrain(200.0, 130.0, 300.0)))
    net.reset(seed=6)
    assert net.seed == 6
    other = net.run(0.1)
    assert not np.array_equal(other.lfp["gpe"], first.lfp["gpe"])


def test_lfp_samples_keep_their_time_grid_across_odd_steps() -> None:
    net = BasalGangliaNetwork(seed=1, lfp_sfreq=1000.0)
    a = net.step(0.0205, 0.0)
    b = net.step(0.0205, 0.0)
    assert a.lfp["gpi"].size == 20
    assert b.lfp_t_start_s == pytest.approx(0.020)  # its first sample covers 20-21 ms
    assert b.lfp["gpi"].size == 21
    assert BasalGangliaNetwork(seed=1, dt_ms=0.025, lfp_sfreq=2000.0).run(0.01).lfp["th"].size == 20


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"state": "parkinson"}, "state"),
        ({"cells_per_nucleus": 0}, "cells_per_nucleus"),
        ({"cells_per_nucleus": 2.5}, "cells_per_nucleus"),
        ({"seed": -1}, "seed"),
        ({"dbs_target": "thalamus"}, "dbs_target"),
        ({"dt_ms": 0.2}, "dt_ms"),
        ({"dt_ms": float("nan")}, "dt_ms"),
        ({"lfp_sfreq": 3000.0}, "lfp_sfreq"),
        ({"lfp_sfreq": -1.0}, "lfp_sfreq"),
    ],
)
def test_bad_configuration_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(PlantParameterError, match=match) as info:
        BasalGangliaNetwork(**kwargs)
    assert isinstance(info.value, BCIError)


def test_bad_run_and_step_requests_raise() -> None:
    net = BasalGangliaNetwork(cells_per_nucleus=2)
    for duration in (0.0, -1.0, float("nan"), 1e-9):
        with pytest.raises(PlantParameterError, match="duration_s"):
            net.run(duration)
    for amplitude in (-1.0, float("nan"), float("inf")):
        with pytest.raises(PlantParameterError, match="amplitude"):
            net.step(0.02, amplitude)
    with pytest.raises(PlantParameterError, match="frequency_hz"):
        net.step(0.02, 100.0, frequency_hz=0.0)
    with pytest.raises(PlantParameterError, match="shorter than the period"):
        net.step(0.02, 100.0, frequency_hz=5000.0, pulse_width_us=300.0)
    with pytest.raises(PlantParameterError, match="PulseTrain"):
        net.run(0.02, dbs=130.0)  # type: ignore[arg-type]
    with pytest.raises(PlantParameterError, match="seed"):
        net.reset(seed=-3)
    assert net.t_s == 0.0  # nothing ran
    assert math.isfinite(net.run(0.001).t_stop_s)
