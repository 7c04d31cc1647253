"""Spiking decoders: training beats the baselines, NIR round trip, numpy runtime == torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bci.synthesis.motor import simulate_reaching  # noqa: E402
from decoders import KalmanDecoder, ModelFileError, load  # noqa: E402
from decoders.ann import MLPDecoder  # noqa: E402
from decoders.runtime import SpikingRuntime  # noqa: E402
from decoders.snn.decoder import (  # noqa: E402
    ConvertedSNNDecoder,
    RecurrentSNNDecoder,
    SNNDecoder,
)
from decoders.training import build_spiking_module  # noqa: E402


def r2(y, p):
    return float((1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)).mean())


@pytest.fixture(scope="module")
def reaching():
    d = simulate_reaching(n_units=48, duration_s=240.0, seed=21)
    n = int(0.8 * len(d.counts))
    return d.counts[:n], d.velocity[:n], d.counts[n:], d.velocity[n:]


@pytest.fixture(scope="module")
def trained(reaching):
    X, Y, _, _ = reaching
    return SNNDecoder(epochs=12, seed=1).fit(X, Y, output_names=["vx", "vy"])


def test_snn_decodes_better_than_kalman(trained, reaching):
    X, Y, Xt, Yt = reaching
    kalman = r2(Yt, KalmanDecoder().fit(X, Y).predict(Xt))
    snn = r2(Yt, trained.predict(Xt))
    assert snn > kalman
    assert trained.report.best_epoch <= trained.report.epochs


def test_training_is_seeded(reaching):
    X, Y, Xt, _ = reaching
    a = RecurrentSNNDecoder(hidden=(16,), epochs=2, seed=3).fit(X[:3000], Y[:3000])
    b = RecurrentSNNDecoder(hidden=(16,), epochs=2, seed=3).fit(X[:3000], Y[:3000])
    np.testing.assert_array_equal(a.predict(Xt[:200]), b.predict(Xt[:200]))


@pytest.mark.parametrize("recurrent", [False, True])
def test_numpy_runtime_has_the_torch_models_spikes_and_outputs(recurrent):
    rng = np.random.default_rng(0)
    module = build_spiking_module(96, (256,), 2, recurrent, seed=4)
    with torch.no_grad():  # a trained-looking network: larger input weights, so it spikes
        module.fc[0].weight.mul_(4.0)
    x = rng.poisson(0.3, size=(400, 96)).astype(np.float32)
    module.record = True
    with torch.no_grad():
        out, _ = module(torch.as_tensor(x)[None])
    torch_spikes = torch.stack(module.recorded[0], dim=1)[0].numpy()
    rt = SpikingRuntime(module.export())
    y, spikes, _ = rt.run(x)
    assert torch_spikes.sum() > 100  # the comparison means something
    np.testing.assert_array_equal(spikes[0], torch_spikes)
    np.testing.assert_allclose(y, out[0].numpy(), atol=1e-5)


def test_nir_round_trip_and_stepping(trained, reaching, tmp_path):
    import nir

    _, _, Xt, _ = reaching
    path = trained.save(tmp_path / "snn.nir")
    graph = nir.read(path)  # a plain NIR graph any NIR tool can read
    assert isinstance(graph.nodes["lif0"], nir.LIF)
    assert graph.nodes["lif0"].tau.shape == (64,)  # per-neuron parameters
    back = load(path)
    assert type(back) is SNNDecoder and back.info.output_names == ("vx", "vy")
    np.testing.assert_allclose(back.predict(Xt), trained.predict(Xt), atol=1e-6)
    back.reset()
    stepped = np.array([back.step(x) for x in Xt[:300]])
    np.testing.assert_allclose(stepped, trained.predict(Xt[:300]), atol=1e-6)
    with pytest.raises(ModelFileError, match="fitted on 48 units, but the stream has 96"):
        load(path, n_units=96)
    (tmp_path / "cut.nir").write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="corrupt"):
        load(tmp_path / "cut.nir")


def test_recurrent_round_trip(reaching, tmp_path):
    X, Y, Xt, _ = reaching
    dec = RecurrentSNNDecoder(hidden=(24,), epochs=2, seed=2).fit(X, Y)
    back = load(dec.save(tmp_path / "rsnn.nir"))
    assert back.net.layers[0].w_rec is not None
    np.testing.assert_allclose(back.predict(Xt), dec.predict(Xt), atol=1e-6)


def test_converted_snn_follows_its_ann(reaching, tmp_path):
    X, Y, Xt, Yt = reaching
    mlp = MLPDecoder(epochs=6, seed=0).fit(X, Y)
    conv = ConvertedSNNDecoder(mlp=mlp, substeps=32).fit(X, Y)
    assert r2(Yt, conv.predict(Xt)) > r2(Yt, mlp.predict(Xt)) - 0.05
    back = load(conv.save(tmp_path / "conv.nir"))
    assert back.net.layers[0].reset == "subtract"
    np.testing.assert_allclose(back.predict(Xt[:200]), conv.predict(Xt[:200]), atol=1e-6)
    ops = conv.count_ops(Xt[:200])
    assert ops.acs_per_bin > 0 and 0.0 < ops.activation_sparsity < 1.0


def test_gru_baseline_numpy_equals_torch_training_and_round_trips(reaching, tmp_path):
    from decoders.ann import GRUDecoder

    X, Y, Xt, Yt = reaching
    gru = GRUDecoder(hidden=32, epochs=8, seed=0).fit(X, Y)
    assert r2(Yt, gru.predict(Xt)) > 0.3
    back = load(gru.save(tmp_path / "gru.npz"))
    np.testing.assert_allclose(back.predict(Xt), gru.predict(Xt), atol=1e-9)
    gru.reset()
    stepped = np.array([gru.step(x) for x in Xt[:100]])
    np.testing.assert_allclose(stepped, gru.predict(Xt[:100]), atol=1e-9)
    # the numpy gates are PyTorch's: same outputs as the torch GRU the weights came from
    g = torch.nn.GRU(48, 32, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            key = {"weight_ih_l0": "w_ih", "weight_hh_l0": "w_hh", "bias_ih_l0": "b_ih",
                   "bias_hh_l0": "b_hh"}[name]  # fmt: skip
            getattr(g, name).copy_(torch.as_tensor(getattr(gru, key), dtype=torch.float32))
        xn = gru.norm.x(Xt[:50])
        h, _ = g(torch.as_tensor(xn, dtype=torch.float32)[None])
    gru.reset()
    ours = np.array([gru._gru_step(x).copy() for x in xn])
    np.testing.assert_allclose(ours, h[0].numpy(), atol=1e-5)
