"""BasalGangliaEnv: Gymnasium contract, reward terms, episodes, seeding, bad actions, DBS effect."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import stimulation  # noqa: F401  (registers BasalGanglia-v0)
from stimulation.errors import PlantParameterError, StimulationError
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.actions import ActionMap, stimulation_energy
from stimulation.plant.env import BasalGangliaEnv
from stimulation.plant.parameters import NUCLEI
from stimulation.safety import model_amplitude_ua_cm2

SMALL: dict[str, Any] = {"cells_per_nucleus": 6, "warmup_s": 0.25, "episode_s": 0.2}


def test_registration_is_lazy_and_make_passes_check_env() -> None:
    code = (
        "import sys, gymnasium, stimulation\n"
        "assert 'BasalGanglia-v0' in gymnasium.registry\n"
        "assert 'numba' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
        "assert 'stimulation.plant.network' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    env = gym.make("BasalGanglia-v0", **SMALL)
    check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"observation": "spikes", "bin_s": 0.005},
        {"control_frequency": True, "symptom": "error_index", "features": ("error_index",)},
        {"plant": "fluctuating", "biphasic": True, "amplitude_ma_at_full_action": 2.0},
    ],
)
def test_other_configurations_pass_check_env(kwargs: dict[str, Any]) -> None:
    env = gym.make("BasalGanglia-v0", **SMALL, **kwargs)
    check_env(env.unwrapped)


def test_reward_is_the_sum_of_its_terms_in_info() -> None:
    env = BasalGangliaEnv(**SMALL, energy_weight=0.5)
    env.reset(seed=3)
    _, reward, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
    # 0.5 x 3 mA = 1.5 mA = 180 uA/cm2 at 130 Hz, 300 us: (1.5 / 2.5)^2 of So 2012's setting
    assert info["energy"] == pytest.approx(0.36)
    assert info["reward_energy"] == pytest.approx(-0.5 * 0.36)
    assert info["reward_symptom"] == pytest.approx(-info["symptom"])
    assert reward == pytest.approx(info["reward_symptom"] + info["reward_energy"])
    assert info["amplitude_ma"] == pytest.approx(1.5) and info["frequency_hz"] == 130.0
    assert info["amplitude_ua_cm2"] == pytest.approx(180.0) and info["pulse_width_us"] == 300.0
    assert 0.0 < info["symptom"] < 1.0 and info["symptom"] == info["beta"]
    assert not terminated and not truncated


def test_episode_truncates_at_its_length_and_never_terminates() -> None:
    env = BasalGangliaEnv(**{**SMALL, "episode_s": 0.1})
    env.reset(seed=0)
    flags = [env.step(np.zeros(1, np.float32))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(PlantParameterError, match="reset"):
        env.step(np.zeros(1, np.float32))
    obs, _ = env.reset()
    assert obs in env.observation_space


def test_seeded_reset_reproduces_the_episode_and_seeds_differ() -> None:
    env = BasalGangliaEnv(**SMALL)

    def episode(seed: int | None) -> list[np.ndarray]:
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in (0.0, 1.0, 0.3):
            out.append(env.step(np.array([a], np.float32))[0])
        return out

    first, again, other = episode(11), episode(11), episode(12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    unseeded = episode(None)  # continues the seeded stream: a new network, not the same one
    assert not np.array_equal(unseeded[0], first[0])


@pytest.mark.parametrize(
    "action",
    [[np.nan], [-0.1], [1.5], [0.2, 0.3], "loud", [np.inf]],
)
def test_bad_actions_raise_and_change_nothing(action: object) -> None:
    env = BasalGangliaEnv(**SMALL)
    env.reset(seed=0)
    t = env.network.t_s
    with pytest.raises(PlantParameterError, match="'action'"):
        env.step(action)
    assert env.network.t_s == t


def test_bad_configuration_names_the_parameter() -> None:
    with pytest.raises(PlantParameterError, match="Allowed values are 'biomarkers', 'spikes'"):
        BasalGangliaEnv(observation="lfp")
    with pytest.raises(PlantParameterError, match="'features'"):
        BasalGangliaEnv(features=("beta_cortex",))
    with pytest.raises(PlantParameterError, match="bin_s"):
        BasalGangliaEnv(observation="spikes", bin_s=0.003)
    with pytest.raises(StimulationError, match="shorter than the period"):
        # 2.5 ms pulses cannot run at the top of a 10-500 Hz frequency range
        BasalGangliaEnv(
            control_frequency=True, frequency_range_hz=(10.0, 500.0), pulse_width_us=2500
        )


def test_frequency_action_sets_the_rate_and_the_energy_follows() -> None:
    env = BasalGangliaEnv(**SMALL, control_frequency=True, frequency_range_hz=(10.0, 200.0))
    env.reset(seed=0)
    info_lo = env.step(np.array([1.0, 0.0], np.float32))[4]
    info_hi = env.step(np.array([1.0, 1.0], np.float32))[4]
    assert info_lo["frequency_hz"] == pytest.approx(10.0)
    assert info_hi["frequency_hz"] == pytest.approx(200.0)
    assert info_hi["energy"] == pytest.approx((3.0 / 2.5) ** 2 * 200.0 / 130.0)
    assert info_hi["n_pulses"] == 4  # 20 ms at 200 Hz


def test_spike_observation_counts_the_recorded_cells() -> None:
    env = BasalGangliaEnv(**SMALL, observation="spikes", recorded_nuclei=("stn", "gpi"))
    env.reset(seed=2)
    total = 0.0
    for _ in range(5):
        obs = env.step(np.array([1.0], np.float32))[0]
        rec = env.record
        assert rec is not None
        n = env.cells_per_nucleus
        assert obs.shape == (4, 2 * n)
        for j, nucleus in enumerate(("stn", "gpi")):
            expected = [len(s) for s in rec.spike_times[nucleus]]
            np.testing.assert_array_equal(obs[:, j * n : (j + 1) * n].sum(axis=0), expected)
        total += float(obs.sum())
    assert total > 0


def test_dbs_at_130_hz_lowers_the_symptom_and_the_error_index() -> None:
    # So et al. (2012): 300 uA/cm2 (2.5 mA), 300 us, 130 Hz STN DBS restores thalamic relay (error index);
    # here it also suppresses GPi beta within the 0.25-s window. Scored over the second half of
    # 1-s episodes, once the window holds only stimulated (or only unstimulated) activity.
    env = BasalGangliaEnv(
        cells_per_nucleus=10, warmup_s=0.5, episode_s=1.0, amplitude_ma_at_full_action=2.5
    )
    off: list[np.ndarray] = []
    on: list[np.ndarray] = []
    for seed in (0, 1, 2):
        for a, out in ((0.0, off), (1.0, on)):
            env.reset(seed=seed)
            rows = []
            for _ in range(env.n_steps_per_episode):
                info = env.step(np.array([a], np.float32))[4]
                rows.append((info["symptom"], info["error_index"]))
            out.append(np.mean(rows[len(rows) // 2 :], axis=0))
    off_a, on_a = np.array(off), np.array(on)
    assert np.all(on_a < off_a), (off_a, on_a)  # every seed, both measures
    assert on_a[:, 0].mean() < 0.5 * off_a[:, 0].mean(), (off_a, on_a)


def test_integrate_then_observe_is_step_and_refuses_a_foreign_record() -> None:
    whole, split = BasalGangliaEnv(**SMALL), BasalGangliaEnv(**SMALL)
    with pytest.raises(PlantParameterError, match="reset"):
        split.integrate_step(split.action_to_train([0.5]))
    whole.reset(seed=8)
    split.reset(seed=8)
    rng = np.random.default_rng(0)
    for _ in range(whole.n_steps_per_episode):
        action = rng.uniform(0.0, 1.0, size=1).astype(np.float32)
        obs, reward, terminated, truncated, info = whole.step(action)
        train = split.action_to_train(action)
        o, r, te, tr, i = split.observe_step(train, split.integrate_step(train))
        np.testing.assert_array_equal(obs, o)
        assert (reward, terminated, truncated) == (r, te, tr) and info == i
    with pytest.raises(PlantParameterError, match="reset"):  # the episode is over
        split.observe_step(train, split.record)  # type: ignore[arg-type]
    split.reset(seed=8)
    other = BasalGangliaEnv(**SMALL)
    other.reset(seed=8)
    other.step(np.array([0.0], dtype=np.float32))
    foreign = other.integrate_step(train)  # one period later than split's network
    with pytest.raises(PlantParameterError, match="not consecutive"):
        split.observe_step(train, foreign)


@pytest.mark.parametrize("second", [np.nan, -np.inf, 1.0001, -0.0001])
def test_a_bad_frequency_entry_is_refused(second: float) -> None:
    env = BasalGangliaEnv(**SMALL, control_frequency=True)
    assert env.action_to_train([1.0, 1.0]).frequency_hz == env.frequency_range_hz[1]
    with pytest.raises(PlantParameterError, match="'action'"):
        env.action_to_train([0.5, second])


def test_reset_in_two_halves_equals_reset_and_checks_its_record() -> None:
    whole, split = BasalGangliaEnv(**SMALL), BasalGangliaEnv(**SMALL)
    whole.reset(seed=1)
    assert whole.record is not None
    with pytest.raises(PlantParameterError, match="begin_reset"):
        split.observe_reset(whole.record)
    obs, info = whole.reset(seed=3)
    duration = split.begin_reset(seed=3)
    assert duration == SMALL["warmup_s"]
    with pytest.raises(PlantParameterError, match="reset"):  # not ready before the warm-up
        split.step(np.array([0.5], dtype=np.float32))
    other = BasalGangliaEnv(**SMALL)
    other.begin_reset(seed=3)
    other.network.step(0.02, 0.0)  # a record that is not a warm-up from t = 0
    with pytest.raises(PlantParameterError, match="warm-up record"):
        split.observe_reset(other.network.step(duration, 0.0))
    w = split.warmup_train
    warm = split.network.step(duration, w.amplitude, w.frequency_hz, w.pulse_width_us)
    o, i = split.observe_reset(warm)
    np.testing.assert_array_equal(obs, o)
    assert info == i
    action = np.array([0.3], dtype=np.float32)
    np.testing.assert_array_equal(whole.step(action)[0], split.step(action)[0])


@pytest.mark.parametrize("control_frequency", [False, True])
def test_equivalent_device_settings_give_identical_observations_and_rewards(
    control_frequency: bool,
) -> None:
    """The action scale is only a scale: 0.5 of 2.5 mA and 0.25 of 5 mA are the same 1.25 mA."""
    a = BasalGangliaEnv(
        **SMALL, amplitude_ma_at_full_action=2.5, control_frequency=control_frequency
    )
    b = BasalGangliaEnv(
        **SMALL, amplitude_ma_at_full_action=5.0, control_frequency=control_frequency
    )
    obs_a, _ = a.reset(seed=4)
    obs_b, _ = b.reset(seed=4)
    np.testing.assert_array_equal(obs_a, obs_b)
    rng = np.random.default_rng(0)
    for _ in range(10):
        amp = float(rng.integers(0, 9)) / 16  # exact in float32, as is its double
        rate = [float(rng.integers(0, 9)) / 8] if control_frequency else []
        out_a = a.step(np.array([2 * amp, *rate], np.float32))
        out_b = b.step(np.array([amp, *rate], np.float32))
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert out_a[1] == out_b[1]
        assert out_a[4]["amplitude_ma"] == out_b[4]["amplitude_ma"] == 2.5 * 2 * amp


def test_the_device_amplitude_reaches_the_plant_through_the_safety_mapping() -> None:
    """Action a -> a x 3 mA -> model_amplitude_ua_cm2 (120 uA/cm2 per mA): the env's network gets
    exactly what a network of the same seed stepped directly in model units gets."""
    env = BasalGangliaEnv(**{**SMALL, "warmup_s": 0.04})
    _, info = env.reset(seed=9)
    net = BasalGangliaNetwork(
        cells_per_nucleus=SMALL["cells_per_nucleus"],
        seed=info["network_seed"],
        dt_ms=env.network.dt_ms,
    )
    net.step(0.04, 0.0)
    for a in (0.25, 0.5, 1.0, 0.0):
        _, _, _, _, info = env.step(np.array([a], np.float32))
        expected = net.step(0.02, model_amplitude_ua_cm2(a * 3.0))
        assert info["amplitude_ua_cm2"] == 360.0 * a
        rec = env.record
        assert rec is not None
        for nu in NUCLEI:
            for x, y in zip(rec.spike_times[nu], expected.spike_times[nu], strict=True):
                np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(rec.dbs_pulse_times, expected.dbs_pulse_times)


def test_energy_is_one_at_so_2012_setting_and_counts_biphasic_phases() -> None:
    for biphasic, expected in ((False, 1.0), (True, 2.0)):
        env = BasalGangliaEnv(**SMALL, biphasic=biphasic)
        setting = env.action_to_setting([2.5 / 3.0])
        assert setting.amplitude_ma == pytest.approx(2.5)
        assert setting.train.amplitude == pytest.approx(300.0)
        assert stimulation_energy(setting.train) == pytest.approx(expected)
    action_map = ActionMap(control_frequency=True, frequency_range_hz=(10.0, 210.0))
    np.testing.assert_allclose(action_map.action_for(1.5, 110.0), [0.5, 0.5])
    back = action_map.setting(action_map.action_for(1.5, 110.0))
    assert (back.amplitude_ma, back.frequency_hz) == pytest.approx((1.5, 110.0))
    with pytest.raises(PlantParameterError, match="amplitude_ma_at_full_action"):
        BasalGangliaEnv(amplitude_ma_at_full_action=0.0)
