"""The RL spiking controller: torch and numpy actors agree; a short TD3 run trains, saves,
exports and reloads; model files fail with a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bci.stream import get_stage_class
from stimulation.controllers import ControllerConfigError, evaluate
from stimulation.controllers.rl_snn import RLSNNController
from stimulation.controllers.snn_actor import SpikingActorWeights

torch = pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")


def test_the_numpy_actor_gives_the_torch_actors_actions() -> None:
    from stimulation.controllers.spiking_policy import PopSpikingActorNet

    torch.manual_seed(3)
    net = PopSpikingActorNet(3, 2, obs_range=(0.0, 1.5), n_pop=8, hidden=(32, 32)).double()
    with torch.no_grad():  # larger weights than at init, so many neurons spike
        for layer in net.layers:
            layer.weight.mul_(4.0)
    x = torch.rand(256, 3, dtype=torch.float64) * 1.5
    expected = net(x).detach().numpy()
    got = net.export().forward(x.numpy())
    assert np.abs(expected).max() > 0.1  # the actor does something
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.export().forward(x.numpy()[0]), expected[0], atol=1e-12)


def test_a_short_td3_run_trains_saves_exports_and_reloads(tmp_path: Path) -> None:
    from stimulation.controllers.training import TrainConfig, train

    config = TrainConfig(
        total_steps=240,
        n_envs=2,
        plant="stationary",
        episode_s=0.6,
        learning_starts=60,
        batch_size=32,
        gradient_steps=1,
        critic_arch=(32, 32),
        hidden=(16,),
        n_pop=4,
        n_out=4,
        substeps=3,
        log_every=60,
        checkpoint_every=120,
        memory_tau_s=0.5,
    )
    weights = train(config, tmp_path, command="test", progress=False)
    assert (tmp_path / "actor.npz").exists() and (tmp_path / "curve.png").exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "actor_120.npz",
        "actor_240.npz",
    ]
    rows = (tmp_path / "curve.csv").read_text().splitlines()
    assert rows[0] == "steps,wall_s,reward,symptom,energy" and len(rows) == 5
    assert weights.meta["steps"] == 240 and weights.meta["command"] == "test"
    assert weights.meta["wall_s"] > 0 and weights.meta["seed"] == 0
    # it observed the symptom decoder's output, its previous action and its memory
    assert weights.meta["symptom_source"] == "decoder" and weights.meta["memory_tau_s"] == 0.5
    assert weights.n_obs == 4

    reloaded = SpikingActorWeights.load(tmp_path / "actor.npz")
    obs = np.random.default_rng(0).uniform(0, 1.5, (50, 4))
    np.testing.assert_array_equal(reloaded.forward(obs), weights.forward(obs))
    # the trained actor drives the plant as a registered controller, through the limiter
    assert get_stage_class("rl_snn") is RLSNNController
    ctl = RLSNNController(model=tmp_path / "actor.npz", source_id="rl")
    command = ctl.act([0.1])
    assert 0.0 <= command.amplitude_ma <= 3.0 and 10.0 <= command.frequency_hz <= 250.0
    row = evaluate(ctl, [7], duration_s=0.2, settle_s=0.0)[0]
    assert 0.0 <= row["mean_amplitude_ma"] <= 3.0 and np.isfinite(row["error_index"])


def test_an_amplitude_only_actor_on_the_decoded_state_stimulates_at_its_rate(
    tmp_path: Path,
) -> None:
    from bci.errors import StageCompatibilityError
    from bci.stream import StreamSpec
    from stimulation.controllers.training import TrainConfig, train

    config = TrainConfig(
        total_steps=80, n_envs=2, plant="fluctuating", episode_s=0.4, learning_starts=40,
        batch_size=16, gradient_steps=1, critic_arch=(16,), hidden=(8,), n_pop=4, n_out=4,
        substeps=2, log_every=40, checkpoint_every=80, symptom_source="state",
        symptom_scale=1.0, control_frequency=False, frequency_hz=100.0,
    )  # fmt: skip
    weights = train(config, tmp_path, command="test", progress=False)
    assert weights.n_actions == 1 and weights.meta["symptom_source"] == "state"
    assert "Parkinsonian state" in weights.meta["observation"][0]
    ctl = RLSNNController(model=tmp_path / "actor.npz")
    assert ctl.act([0.9]).frequency_hz == 100.0
    # online it must be fed the quantity it was trained on, by name
    ctl.prepare(StreamSpec("state", 1, 200.0, channel_names=("pd_state",)))
    with pytest.raises(StageCompatibilityError, match="trained on the decoded 'pd_state'"):
        ctl.prepare(StreamSpec("state", 1, 200.0, channel_names=("gpi_beta",)))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "Cannot read"),
        (b"not a zip file at all", "Cannot read"),
    ],
)
def test_bad_actor_files_say_what_is_wrong(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "actor.npz"
    path.write_bytes(content)
    with pytest.raises(ControllerConfigError, match=match):
        SpikingActorWeights.load(path)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ControllerConfigError, match="header|not a spiking actor"):
        SpikingActorWeights.load(other)
    with pytest.raises(ControllerConfigError, match="Cannot read"):
        SpikingActorWeights.load(tmp_path)


def test_the_actor_exports_to_nir_and_runs_in_the_decoders_runtime(tmp_path: Path) -> None:
    import nir

    from decoders.runtime import SpikingRuntime
    from decoders.snn.network import from_nir
    from stimulation.controllers.spiking_policy import PopSpikingActorNet

    torch.manual_seed(5)
    net = PopSpikingActorNet(3, 2, obs_range=(0.0, 1.5), n_pop=8, hidden=(32,)).double()
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(4.0)
    weights = net.export()
    path = weights.export_nir(tmp_path / "actor.nir", period_s=0.02)
    graph = nir.read(str(path))
    runtime = SpikingRuntime(from_nir(graph, 0.02 / weights.substeps))
    obs = np.random.default_rng(1).uniform(0.0, 1.5, (200, 3))
    ours = weights.forward(obs)
    theirs = np.tanh([runtime.step(a) for a in weights.encode(obs)])
    # float32 against float64: a membrane within rounding of its threshold may flip one spike
    close = np.all(np.abs(theirs - ours) < 1e-4, axis=1)
    assert close.mean() >= 0.98 and np.abs(ours).max() > 0.1


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"symptom_source": "lfp"}, "symptom_source"),
        ({"memory_tau_s": -1.0}, "memory_tau_s"),
        ({"memory_tau_s": "abc"}, "memory_tau_s"),
        ({"energy_weight": float("nan")}, "energy_weight"),
        ({"total_steps": 0}, "total_steps"),
        ({"plant": "wobbly"}, "plant"),
        ({"hidden": []}, "hidden"),
        ({"control_frequency": "yes"}, "control_frequency"),
        ({"frequency_hz": 0.0}, "frequency_hz"),
    ],
)
def test_bad_training_settings_are_named_before_anything_is_built(
    values: dict[str, object], match: str
) -> None:
    from stimulation.controllers.training import TrainConfig

    with pytest.raises(ControllerConfigError, match=match):
        TrainConfig.from_dict(values)
