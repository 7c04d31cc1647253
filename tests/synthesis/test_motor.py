"""The synthetic motor cortex: tuning, refractoriness, chunk independence, and a live source."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bci.errors import ConfigError
from bci.synthesis.motor import (
    MotorSource,
    ReachingTrajectory,
    make_motor_units,
    simulate_reaching,
)


def test_reaches_hit_their_targets_and_velocity_is_the_derivative_of_position():
    traj = ReachingTrajectory("center_out", seed=3, radius_cm=10.0)
    t = np.arange(0, 20, 0.001)
    pos, vel = traj.state(t)
    radius = np.hypot(pos[:, 0], pos[:, 1])
    assert radius.max() == pytest.approx(10.0, abs=1e-6)  # centre-out never overshoots
    assert radius.min() == pytest.approx(0.0, abs=1e-9)
    num = np.gradient(pos, 0.001, axis=0)
    assert np.abs(num[1:-1] - vel[1:-1]).max() < 0.05 * np.abs(vel).max()


def test_units_fire_more_when_moving_along_their_preferred_direction():
    data = simulate_reaching(n_units=30, duration_s=120.0, seed=2, task="random")
    units = data.units
    d = np.column_stack(
        [np.cos(units.preferred_direction_rad), np.sin(units.preferred_direction_rad)]
    )
    proj = data.velocity @ d.T  # (n_bins, n_units)
    # counts lead the movement by 50-150 ms: compare with the velocity 100 ms (5 bins) later
    r = [np.corrcoef(proj[5:, u], data.counts[:-5, u])[0, 1] for u in range(30)]
    assert np.median(r) > 0.08
    assert min(r) > 0.0
    lag0 = [np.corrcoef(proj[:, u], data.counts[:, u])[0, 1] for u in range(30)]
    assert np.median(r) > np.median(lag0)


def test_refractory_period_and_mean_rate():
    data = simulate_reaching(n_units=5, duration_s=60.0, bin_s=0.001, seed=4, refractory_ms=3.0)
    for u in range(5):
        spikes = np.flatnonzero(data.counts[:, u])
        assert np.diff(spikes).min() >= 3  # no two spikes closer than 3 ms (1-ms bins)
    rate = data.counts.sum(axis=0) / 60.0
    assert (rate > 1.0).all() and (rate < 60.0).all()


def test_same_seed_same_session_different_seed_different():
    a = simulate_reaching(n_units=8, duration_s=10.0, seed=5)
    b = simulate_reaching(n_units=8, duration_s=10.0, seed=5)
    c = simulate_reaching(n_units=8, duration_s=10.0, seed=6)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert not np.array_equal(a.counts, c.counts)


def test_population_seed_keeps_the_neurons_and_changes_the_session():
    own = simulate_reaching(n_units=8, duration_s=10.0, seed=5)
    same = simulate_reaching(n_units=8, duration_s=10.0, seed=5, population_seed=5)
    np.testing.assert_array_equal(own.counts, same.counts)  # population_seed == seed: as before
    other_day = simulate_reaching(n_units=8, duration_s=10.0, seed=9, population_seed=5)
    for field in ("preferred_direction_rad", "baseline_hz", "modulation_hz", "lead_s"):
        np.testing.assert_array_equal(getattr(other_day.units, field), getattr(own.units, field))
    assert not np.array_equal(other_day.velocity, own.velocity)  # other movements
    assert not np.array_equal(other_day.counts, own.counts)
    unrelated = simulate_reaching(n_units=8, duration_s=10.0, seed=9)
    assert not np.array_equal(
        unrelated.units.preferred_direction_rad, own.units.preferred_direction_rad
    )
    live = MotorSource(n_units=8, seed=9, population_seed=5)
    np.testing.assert_array_equal(
        live.motor_units.preferred_direction_rad, own.units.preferred_direction_rad
    )
    np.testing.assert_allclose(live.velocity(0, 50, 0.02), other_day.velocity[:50])


def test_live_source_spikes_match_offline_session_whatever_the_chunking():
    src = MotorSource(n_units=6, seed=7, noise_uv=2.0)
    spikes = []
    for n in (300, 7, 1500, 30000, 12345, 1000):
        _, s = src.read(n)
        spikes.append(s)
    truth = np.concatenate(spikes)
    n_samples = src.next_sample
    offline = simulate_reaching(n_units=6, duration_s=1.0, bin_s=0.02, seed=7)
    counts = np.zeros_like(offline.counts)
    sel = truth["sample_index"] < 30000
    np.add.at(counts, (truth["sample_index"][sel] // 600, truth["unit_index"][sel]), 1)
    np.testing.assert_array_equal(counts, offline.counts)
    assert n_samples == 30000 + 7 + 1500 + 12345 + 1000 + 300
    # one unit next to each contact: a unit's spikes peak on its own channel
    assert (src.peak_channels == np.arange(6)).all()
    np.testing.assert_allclose(src.velocity(0, 50, 0.02), offline.velocity[:50])


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="task"):
        ReachingTrajectory("zigzag")
    with pytest.raises(ConfigError, match="modulation_hz"):
        make_motor_units(4, modulation_hz=(5.0, 1.0))
    with pytest.raises(ConfigError, match="duration_s"):
        simulate_reaching(duration_s=0.0)


def test_kinematics_stream_carries_the_velocity_of_the_voltage_stream(source_id):
    pylsl = pytest.importorskip("pylsl")
    from bci.synthesis.motor import bin_velocity
    from bci.synthesis.motor_stream import KinematicsPublisher
    from bci.synthesis.publisher import SyntheticPublisher

    src = MotorSource(n_units=4, seed=9, noise_uv=2.0)
    pub = SyntheticPublisher(src, name="motor-kin-test", source_id=source_id,
                             channel_format="float32", chunk_ms=10.0, ground_truth=False)  # fmt: skip
    kin = KinematicsPublisher(src, "motor-kin-test-kinematics", 100.0, source_id)
    info = pylsl.resolve_byprop("source_id", f"{source_id}-kinematics", timeout=5.0)[0]
    inlet = pylsl.StreamInlet(info)
    ch = inlet.info().desc().child("channels").child("channel")
    assert ch.child_value("label") == "vx" and ch.child_value("unit") == "cm/s"
    inlet.open_stream(timeout=5.0)
    pub.run(0.5, on_chunk=lambda data, spikes: kin.advance(pub, len(data)))
    rows, stamps = [], []
    deadline = time.monotonic() + 5.0
    while len(rows) < 50 and time.monotonic() < deadline:
        data, ts = inlet.pull_chunk(timeout=0.2)
        rows += data
        stamps += ts
    pub.close()
    rows = np.asarray(rows)
    assert rows.shape == (50, 4)
    np.testing.assert_allclose(
        rows[:, :2], bin_velocity(src.trajectory, 0, 50, 0.01), rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(np.diff(stamps), 0.01, atol=1e-3)
