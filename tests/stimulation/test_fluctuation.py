"""The fluctuating plant: Parkinsonian severity that comes and goes, seeded, with the protocol's
statistics, and Parkinsonian periods that are worse than healthy ones."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import stimulation  # noqa: F401 - registers BasalGanglia-v0
from stimulation import PulseTrain
from stimulation.errors import PlantParameterError
from stimulation.plant import BasalGangliaNetwork, Fluctuation, biomarkers
from stimulation.plant.batch import NetworkBatch
from stimulation.plant.env import BasalGangliaEnv
from stimulation.plant.fluctuation import SeverityProcess
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.vector_env import BasalGangliaVectorEnv

DT_MS = 0.01


def _dwells(params: Fluctuation, seed: int, total_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Lengths (s) and states of the complete dwells of a process over ``total_s``."""
    process = SeverityProcess(np.random.default_rng(seed), DT_MS, params, start_pd=True)
    k1 = round(total_s * 1e3 / DT_MS)
    switches = process.switches(k1)
    starts = np.array([k for k, _ in switches], dtype=np.float64) * DT_MS * 1e-3
    states = np.array([pd for _, pd in switches])
    return np.diff(starts), states[:-1]


@pytest.mark.parametrize(
    "params", [Fluctuation(), Fluctuation(mean_dwell_healthy_s=1.0, mean_dwell_pd_s=3.0)]
)
def test_dwell_times_are_exponential_with_the_configured_means(params: Fluctuation) -> None:
    lengths, states = _dwells(params, seed=11, total_s=4000.0)
    assert lengths.size > 1000
    for pd, mean_s in ((0, params.mean_dwell_healthy_s), (1, params.mean_dwell_pd_s)):
        d = lengths[states == pd]
        se = mean_s / np.sqrt(d.size)
        assert abs(d.mean() - mean_s) < 4 * se
        assert d.std() / d.mean() == pytest.approx(1.0, abs=0.12)  # exponential: CV 1
        assert np.median(d) == pytest.approx(mean_s * np.log(2.0), rel=0.15)
    assert np.all(states[1:] != states[:-1])  # states alternate
    pd_time = lengths[states == 1].sum() / lengths.sum()
    assert pd_time == pytest.approx(params.pd_fraction, abs=0.05)


def test_severity_ramps_between_dwells_and_does_not_depend_on_how_a_run_is_split() -> None:
    params = Fluctuation(mean_dwell_healthy_s=0.3, mean_dwell_pd_s=0.3, ramp_s=0.1)
    whole = SeverityProcess(np.random.default_rng(5), DT_MS, params, start_pd=False)
    pieces = SeverityProcess(np.random.default_rng(5), DT_MS, params, start_pd=False)
    k1 = 300_000  # 3 s
    values = whole.values(0, k1)
    bounds = [0, 1, 777, 20_000, 20_001, 150_000, k1]
    split = np.concatenate(
        [pieces.values(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    np.testing.assert_array_equal(values, split)
    assert values.min() >= 0.0 and values.max() <= 1.0
    # a full ramp takes ramp_s: the steepest change per step is dt / ramp_s
    assert np.abs(np.diff(values)).max() == pytest.approx(DT_MS / 100.0, rel=1e-9)
    switches = whole.switches(k1)
    assert len(switches) > 4
    for k, pd in switches[1:]:
        assert whole.state_at(k)[0] == pd
        # the severity heads towards the new state from its switch on
        assert (values[k] - values[k - 1]) * (1 if pd else -1) > 0
    assert {0.0, 1.0} <= set(np.round(values, 12))  # dwells long enough to reach both ends


def test_applied_currents_follow_the_state_and_the_seed_fixes_the_switches() -> None:
    kwargs: dict[str, Any] = {"plant": "fluctuating", "seed": 3, "cells_per_nucleus": 4}
    net = BasalGangliaNetwork(**kwargs)
    stationary = BasalGangliaNetwork(seed=3, cells_per_nucleus=4)
    # the same initial conditions and cortical pulses as the stationary network of the seed
    np.testing.assert_array_equal(net.variables.th, stationary.variables.th)
    rec = net.run(4.0)
    np.testing.assert_array_equal(rec.cortex_pulse_times, stationary.run(4.0).cortex_pulse_times)
    switches = net.state_switches()
    assert switches[0] == (0.0, 1) and len(switches) >= 2
    again = BasalGangliaNetwork(**kwargs)
    for piece in (0.7, 2.3, 1.0):
        again.run(piece)
    assert again.state_switches() == switches
    pd, severity = net.pd_state
    assert pd in (0, 1)
    # the stationary networks of the seed hold the healthy and Parkinsonian currents (the same
    # GPe offsets): the fluctuating one is between them, at its severity
    healthy = BasalGangliaNetwork(state="healthy", seed=3, cells_per_nucleus=4).variables.iapp
    parkinsonian = stationary.variables.iapp
    expected = healthy + severity * (parkinsonian - healthy)
    np.testing.assert_allclose(net.variables.iapp, expected, rtol=0, atol=1e-9)
    other = BasalGangliaNetwork(**{**kwargs, "seed": 4})
    other.run(4.0)
    assert other.state_switches() != switches


def test_a_batch_of_fluctuating_networks_equals_each_alone() -> None:
    def nets() -> list[BasalGangliaNetwork]:
        fast = Fluctuation(mean_dwell_healthy_s=0.05, mean_dwell_pd_s=0.05, ramp_s=0.02)
        return [
            BasalGangliaNetwork(plant="fluctuating", seed=1, cells_per_nucleus=3, fluctuation=fast),
            BasalGangliaNetwork(seed=2, cells_per_nucleus=3),
            BasalGangliaNetwork(plant="fluctuating", seed=3, cells_per_nucleus=3, state="healthy"),
        ]

    alone, together = nets(), nets()
    batch = NetworkBatch(together)
    train = PulseTrain(150.0, 130.0, 300.0)
    for _ in range(10):
        records = batch.step(0.03, [train] * 3)
        for net, rec in zip(alone, records, strict=True):
            expected = net.step(0.03, 150.0)
            for nu in NUCLEI:
                for x, y in zip(expected.spike_times[nu], rec.spike_times[nu], strict=True):
                    np.testing.assert_array_equal(x, y)
                np.testing.assert_array_equal(expected.lfp[nu], rec.lfp[nu])
    assert len(together[0].state_switches()) > 2


def _per_state_windows(
    net: BasalGangliaNetwork, duration_s: float, settle_s: float = 0.5, window_s: float = 0.5
) -> dict[int, list[tuple[float, float]]]:
    """(error index, GPi relative beta) of each window lying in one dwell, ``settle_s`` after its
    switch: by the nominal state of that dwell."""
    rec = net.run(duration_s)
    switches = net.state_switches()
    starts = [t for t, _ in switches] + [duration_s]
    out: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
    for (t_switch, pd), t_end in zip(switches, starts[1:], strict=True):
        t0 = t_switch + settle_s
        while t0 + window_s <= t_end:
            t1 = t0 + window_s
            th = [c[(c >= t0) & (c < t1)] for c in rec.spike_times["th"]]
            ei = biomarkers.error_index(th, rec.cortex_pulse_times, t0, t1)
            i0 = round((t0 - rec.lfp_t_start_s) * rec.lfp_sfreq)
            lfp = rec.lfp["gpi"][i0 : i0 + round(window_s * rec.lfp_sfreq)].astype(np.float64)
            beta = biomarkers.relative_beta_power(lfp, rec.lfp_sfreq, segment_s=window_s)
            out[pd].append((ei, beta))
            t0 = t1
    return out


def test_parkinsonian_periods_are_worse_than_healthy_ones() -> None:
    """So 2012's healthy vs Parkinsonian contrast, within one fluctuating run (20 s, seed 1):
    the thalamic error index and the GPi beta of windows in Parkinsonian dwells exceed those of
    windows in healthy dwells."""
    windows = _per_state_windows(BasalGangliaNetwork(plant="fluctuating", seed=1), 20.0)
    healthy, pd = np.array(windows[0]), np.array(windows[1])
    assert len(healthy) >= 5 and len(pd) >= 5
    ei_h, ei_pd = np.nanmean(healthy[:, 0]), np.nanmean(pd[:, 0])
    beta_h, beta_pd = np.nanmean(healthy[:, 1]), np.nanmean(pd[:, 1])
    # the stationary plant's contrast (README: EI 0.008 vs 0.40, GPi beta 0.024 vs 0.118)
    assert ei_h < 0.1 and ei_pd > 0.25 and ei_pd > 5 * ei_h
    assert beta_pd > 2 * beta_h


def test_env_reports_the_true_state_in_info_only() -> None:
    env = gym.make("BasalGanglia-v0", plant="fluctuating", episode_s=3.0, warmup_s=0.1)
    stationary = BasalGangliaEnv()
    assert env.observation_space == stationary.observation_space
    obs, info = env.reset(seed=7)
    assert env.observation_space.contains(obs)
    states, severities = [info["pd_state"]], [info["severity"]]
    for _ in range(150):
        obs, _, _, truncated, info = env.step(np.array([0.0], np.float32))
        states.append(info["pd_state"])
        severities.append(info["severity"])
    assert set(states) == {0, 1}  # 3 s with 2-s mean dwells: this seed switches
    assert all(0.0 <= s <= 1.0 for s in severities)
    assert truncated
    _, info = stationary.reset(seed=7)
    assert (info["pd_state"], info["severity"]) == (1, 1.0)
    env.close()


def test_vector_env_runs_fluctuating_plants_batched_as_unbatched() -> None:
    kwargs: dict[str, Any] = {
        "plant": "fluctuating",
        "episode_s": 0.2,
        "warmup_s": 0.05,
        "cells_per_nucleus": 3,
    }
    fluct = Fluctuation(mean_dwell_healthy_s=0.05, mean_dwell_pd_s=0.05)
    batched = BasalGangliaVectorEnv(2, n_threads=1, batched=True, fluctuation=fluct, **kwargs)
    plain = BasalGangliaVectorEnv(2, n_threads=1, batched=False, fluctuation=fluct, **kwargs)
    for venv in (batched, plain):
        venv.reset(seed=3)
    action = np.full((2, 1), 0.5, np.float32)
    for _ in range(8):
        out_b, out_p = batched.step(action), plain.step(action)
        np.testing.assert_array_equal(out_b[0], out_p[0])
        np.testing.assert_array_equal(out_b[1], out_p[1])
        np.testing.assert_array_equal(out_b[4]["severity"], out_p[4]["severity"])
    batched.close()
    plain.close()


def test_bad_plant_arguments_are_refused() -> None:
    with pytest.raises(PlantParameterError, match="'plant'"):
        BasalGangliaNetwork(plant="drifting")
    with pytest.raises(PlantParameterError, match="'mean_dwell_pd_s'"):
        Fluctuation(mean_dwell_pd_s=0.0)
    with pytest.raises(PlantParameterError, match="'ramp_s'"):
        Fluctuation(ramp_s=-1.0)
    with pytest.raises(PlantParameterError, match="'fluctuation'"):
        BasalGangliaNetwork(plant="fluctuating", fluctuation={"ramp_s": 0.1})  # type: ignore[arg-type]


def test_snapshot_restore_replays_a_fluctuating_network() -> None:
    fast = Fluctuation(mean_dwell_healthy_s=0.03, mean_dwell_pd_s=0.03, ramp_s=0.01)
    net = BasalGangliaNetwork(plant="fluctuating", seed=5, cells_per_nucleus=3, fluctuation=fast)
    net.run(0.05)
    snap = net.snapshot()
    first = net.run(0.3)
    switches = net.state_switches()
    other = BasalGangliaNetwork(plant="fluctuating", seed=6, cells_per_nucleus=3, fluctuation=fast)
    other.restore(snap)  # another seed's network takes the whole state, severity process included
    again = other.run(0.3)
    assert other.state_switches() == switches and len(switches) > 3
    for nu in NUCLEI:
        for x, y in zip(first.spike_times[nu], again.spike_times[nu], strict=True):
            np.testing.assert_array_equal(x, y)
