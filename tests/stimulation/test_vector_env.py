"""BasalGangliaVectorEnv: same results as the single envs, autoreset, make_vec, bad actions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import stimulation  # noqa: F401  (registers BasalGanglia-v0)
from stimulation.errors import PlantParameterError
from stimulation.plant.env import BasalGangliaEnv
from stimulation.plant.vector_env import BasalGangliaVectorEnv
from stimulation.pulses import PulseTrain

SMALL: dict[str, Any] = {
    "cells_per_nucleus": 5,
    "warmup_s": 0.1,
    "episode_s": 0.06,
}  # 3 steps per episode


def test_threads_give_the_same_results_as_single_envs() -> None:
    actions = np.array([[0.0], [1.0], [0.4]], dtype=np.float32)
    venv = BasalGangliaVectorEnv(3, n_threads=2, **SMALL)
    obs, infos = venv.reset(seed=5)
    assert obs.shape[0] == 3 and obs.shape[1:] == venv.single_observation_space.shape
    assert obs in venv.observation_space
    singles = [BasalGangliaEnv(**SMALL) for _ in range(3)]
    expected = [env.reset(seed=5 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(expected))
    for _ in range(2):
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, info = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert rewards[i] == r and terminated[i] == te and truncated[i] == tr
            assert infos["energy"][i] == info["energy"] and infos["_energy"][i]
    venv.close()


def test_make_vec_autoresets_on_the_next_step() -> None:
    venv = gym.make_vec("BasalGanglia-v0", num_envs=2, **SMALL)
    assert isinstance(venv.unwrapped, BasalGangliaVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    venv.reset(seed=0)
    a = np.ones((2, 1), dtype=np.float32)
    truncs = [venv.step(a)[3].tolist() for _ in range(3)]
    assert truncs == [[False, False], [False, False], [True, True]]
    obs, rewards, terminated, truncated, infos = venv.step(a)  # the reset step
    np.testing.assert_array_equal(rewards, 0.0)
    assert not truncated.any() and not terminated.any()
    assert infos["t_s"].tolist() == [0.0, 0.0] and "energy" not in infos
    assert not venv.step(a)[3].any()  # a new episode has started
    venv.close()


def test_same_step_autoreset_returns_the_final_observation_in_info() -> None:
    venv = BasalGangliaVectorEnv(2, n_threads=1, autoreset_mode="same_step", **SMALL)
    venv.reset(seed=1)
    a = np.zeros((2, 1), dtype=np.float32)
    for _ in range(2):
        venv.step(a)
    obs, _, _, truncated, infos = venv.step(a)
    assert truncated.all()
    assert infos["_final_obs"].all() and infos["final_obs"][0].shape == obs[0].shape
    assert infos["t_s"].tolist() == [0.0, 0.0]  # obs and info already from the new episode
    assert not venv.step(a)[3].any()
    venv.close()


def test_one_bad_action_row_raises_and_no_network_moves() -> None:
    venv = BasalGangliaVectorEnv(2, n_threads=2, **SMALL)
    venv.reset(seed=0)
    times = [env.network.t_s for env in venv.envs]
    with pytest.raises(PlantParameterError, match="'action'"):
        venv.step(np.array([[0.5], [np.nan]], dtype=np.float32))
    with pytest.raises(PlantParameterError, match="'actions'"):
        venv.step(np.zeros((3, 1), dtype=np.float32))
    assert [env.network.t_s for env in venv.envs] == times
    with pytest.raises(PlantParameterError, match="autoreset_mode"):
        BasalGangliaVectorEnv(2, autoreset_mode="whenever", **SMALL)
    venv.close()


@pytest.mark.parametrize(("n_threads", "mode"), [(1, "next_step"), (2, "same_step")])
def test_batched_and_unbatched_envs_give_identical_episodes(n_threads: int, mode: str) -> None:
    kwargs = {
        **SMALL,
        "episode_s": 0.04,
        "biphasic": True,
        "control_frequency": True,
        "autoreset_mode": mode,
    }
    batched = BasalGangliaVectorEnv(3, n_threads=n_threads, **kwargs)
    plain = BasalGangliaVectorEnv(3, n_threads=n_threads, batched=False, **kwargs)
    assert batched.batched and not plain.batched
    obs_b, _ = batched.reset(seed=11)
    obs_p, _ = plain.reset(seed=11)
    np.testing.assert_array_equal(obs_b, obs_p)
    rng = np.random.default_rng(3)
    for _ in range(5):  # two episodes and the autoreset step between them
        actions = rng.uniform(0.0, 1.0, size=(3, 2)).astype(np.float32)
        out_b, out_p = batched.step(actions), plain.step(actions)
        for x, y in zip(out_b[:4], out_p[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        assert out_b[4].keys() == out_p[4].keys()
        for key in out_b[4]:
            if key == "final_info":
                continue
            x, y = out_b[4][key], out_p[4][key]
            if key == "final_obs":  # object arrays of observations
                x, y = np.stack(list(x)), np.stack(list(y))
            np.testing.assert_array_equal(x, y)
    batched.close()
    plain.close()


def test_a_group_where_only_some_envs_step_is_integrated_without_the_others() -> None:
    venv = BasalGangliaVectorEnv(3, n_threads=1, **SMALL)
    singles = [BasalGangliaEnv(**SMALL) for _ in range(3)]
    venv.reset(seed=2)
    for i, env in enumerate(singles):
        env.reset(seed=2 + i)
    venv._autoreset[1] = True  # env 1 resets on this step, envs 0 and 2 step in a batch of two
    a = np.full((3, 1), 0.7, dtype=np.float32)
    obs, rewards, _, _, infos = venv.step(a)
    for i in (0, 2):
        o, r, _, _, _ = singles[i].step(a[i])
        np.testing.assert_array_equal(obs[i], o)
        assert rewards[i] == r
    assert infos["t_s"][1] == 0.0 and rewards[1] == 0.0
    venv.close()


def test_step_before_reset_raises_and_no_network_moves() -> None:
    venv = BasalGangliaVectorEnv(2, n_threads=1, **SMALL)
    with pytest.raises(PlantParameterError, match="reset"):
        venv.step(np.zeros((2, 1), dtype=np.float32))
    assert [env.network.t_s for env in venv.envs] == [0.0, 0.0]
    venv.close()


@pytest.mark.parametrize("batched", [True, False])
def test_all_features_and_error_index_symptom_match_single_envs(
    batched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stimulation.plant.monitor import FEATURES

    kwargs = {**SMALL, "episode_s": 0.1, "features": FEATURES, "symptom": "error_index"}
    kwargs["window_s"] = 0.1
    venv = BasalGangliaVectorEnv(2, n_threads=2, batched=batched, **kwargs)
    singles = [BasalGangliaEnv(**kwargs) for _ in range(2)]
    obs, _ = venv.reset(seed=21)
    np.testing.assert_array_equal(
        obs, np.stack([e.reset(seed=21 + i)[0] for i, e in enumerate(singles)])
    )
    calls: list[int] = []
    original = BasalGangliaEnv.action_to_train

    def counted(self: BasalGangliaEnv, action: Any) -> PulseTrain:
        calls.append(1)
        return original(self, action)

    # each action is validated once per step, not once more inside the env's step
    monkeypatch.setattr(BasalGangliaEnv, "action_to_train", counted)
    rng = np.random.default_rng(4)
    for _ in range(5):
        actions = rng.uniform(0.0, 1.0, size=(2, 1)).astype(np.float32)
        obs, rewards, _, _, infos = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, _, _, info = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert rewards[i] == r and infos["error_index"][i] == info["error_index"]
    assert len(calls) == 2 * 5 * 2  # the vector env's and the single envs' steps
    venv.close()
