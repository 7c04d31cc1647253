"""DecoderStage in a pipeline, the decoded LSL outlet, and the symptom decoder's feeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bci.errors import StageCompatibilityError
from bci.features import SpikeBinner
from bci.stream import BinnedChunk, SpikeChunk, StreamSpec, empty_spikes, stage_from_dict
from bci.synthesis.motor import MotorSource, simulate_reaching
from decoders import DecoderError, DecoderStage, WienerDecoder, load
from decoders.errors import ModelFileError
from decoders.symptom import SymptomDecoder


@pytest.fixture(scope="module")
def wiener():
    d = simulate_reaching(n_units=12, duration_s=120.0, seed=31)
    return WienerDecoder().fit(d.counts, d.velocity, output_names=["vx", "vy"],
                               output_units=["cm/s", "cm/s"])  # fmt: skip


def test_stage_decodes_chunk_by_chunk_like_predict(wiener, tmp_path):
    path = wiener.save(tmp_path / "w.npz")
    stage = stage_from_dict({"stage": "decoder", "params": {"model": str(path)}})
    spec = stage.prepare(StreamSpec("binned", 12, 50.0))
    assert spec.kind == "state" and spec.channel_names == ("vx", "vy") and spec.unit == "cm/s"
    X = simulate_reaching(n_units=12, duration_s=10.0, seed=32).counts
    outs, first = [], 0
    for n in (1, 7, 100, 3, 389):
        out = stage.process(BinnedChunk(X[first : first + n], first, 0.02))
        outs.append(out.values)
        np.testing.assert_allclose(out.t, (first + 1 + np.arange(n)) * 0.02)
        first += n
    np.testing.assert_allclose(np.vstack(outs), wiener.predict(X), atol=1e-5)
    assert stage.to_dict()["params"]["model"] == str(path)


def test_stage_refuses_a_stream_that_does_not_fit(wiener):
    stage = DecoderStage(wiener)
    with pytest.raises(
        StageCompatibilityError, match="trained on 12 units, but the binned stream has 13"
    ):
        stage.prepare(StreamSpec("binned", 13, 50.0))
    with pytest.raises(
        StageCompatibilityError, match="20 ms bins, but the stream's bins are 10 ms"
    ):
        stage.prepare(StreamSpec("binned", 12, 100.0))
    with pytest.raises(StageCompatibilityError, match="binned"):
        stage.prepare(StreamSpec("signal", 12, 30000.0))


def test_decoded_outlet_carries_labels_and_units(wiener):
    pylsl = pytest.importorskip("pylsl")
    from decoders import DecodedOutlet

    out = DecodedOutlet(wiener, name="decoded-test", source_id="decoded-test-1")
    info = out.outlet.outlet.get_info()
    ch = info.desc().child("channels").child("channel")
    assert ch.child_value("label") == "vx" and ch.child_value("unit") == "cm/s"
    assert info.channel_count() == 2 and info.nominal_srate() == pytest.approx(50.0)
    del pylsl


def test_online_path_matches_offline_decoding():
    """Live-source chunks -> ground-truth spikes -> SpikeBinner -> DecoderStage == predict."""
    seed = 33
    train = simulate_reaching(n_units=16, duration_s=120.0, seed=seed)
    dec = WienerDecoder().fit(train.counts, train.velocity)
    src = MotorSource(n_units=16, seed=seed, noise_uv=2.0)
    binner = SpikeBinner(bin_s=0.02, n_units=16)
    binner.prepare(StreamSpec("spikes", 16, src.sfreq))
    stage = DecoderStage(dec)
    stage.prepare(binner.output_spec)
    values = []
    for _ in range(100):  # 100 chunks of 10 ms: 1 s
        _, spikes = src.read(300)
        chunk = SpikeChunk(spikes, src.next_sample - 300, src.next_sample - 1, src.sfreq)
        binned = binner.process(chunk)
        if binned is not None:
            values.append(stage.process(binned).values)
    online = np.vstack(values)
    offline = dec.predict(train.counts[: len(online)])
    np.testing.assert_allclose(online, offline, atol=1e-4)
    assert empty_spikes(0).size == 0


def _beta_like_sessions(n_sessions: int, seed: int):
    """Units sharing a 20-Hz oscillation whose depth (the 'symptom') wanders."""
    rng = np.random.default_rng(seed)
    X, Y = [], []
    for _ in range(n_sessions):
        n_units = int(rng.integers(6, 12))
        n = 4000
        depth = np.clip(np.cumsum(rng.normal(0, 0.03, n)), -1, 1) * 0.5 + 0.5
        t = np.arange(n) * 0.005
        rate = 100 * (1 + depth * np.sin(2 * np.pi * 20 * t))[:, None] * np.ones(n_units)
        X.append(rng.poisson(rate * 0.005).astype(float))
        Y.append(depth[:, None])
    return X, Y


def test_symptom_decoder_tracks_a_synchronised_rhythm_and_ignores_unit_order(tmp_path):
    X, Y = _beta_like_sessions(4, 1)
    dec = SymptomDecoder().fit(X, Y)
    Xt, Yt = _beta_like_sessions(1, 2)
    est = dec.predict(Xt[0])[:, 0]
    assert np.corrcoef(est[50:], Yt[0][50:, 0])[0, 1] > 0.5
    shuffled = Xt[0][:, ::-1]
    np.testing.assert_allclose(dec.predict(shuffled)[:, 0], est, atol=1e-9)
    dec.reset()
    stepped = np.array([dec.step(x)[0] for x in Xt[0][:120]])
    np.testing.assert_allclose(stepped, est[:120], atol=1e-5)
    # the spike-time path (env training) gives the same number as the binned path (runner)
    t_stop = 120 * 0.005
    times = [(np.flatnonzero(Xt[0][:120, u]) + 0.5) * 0.005 for u in range(Xt[0].shape[1])]
    binned = (Xt[0][:120] > 0).astype(float)
    dec.reset()
    y_bins = dec.step_bins(binned)[0]
    assert dec.estimate_from_spike_times(times, t_stop) == pytest.approx(float(y_bins), abs=1e-5)
    back = load(dec.save(tmp_path / "sym.npz"))
    np.testing.assert_allclose(back.predict(Xt[0])[:, 0], est, atol=1e-9)
    stage = DecoderStage(back)
    assert stage.prepare(StreamSpec("binned", 3, 200.0)).channel_names == ("gpi_beta",)
    dec.reset()
    dec.step(np.zeros(5))
    with pytest.raises(DecoderError, match="reset"):
        dec.step(np.zeros(6))


def test_shipped_symptom_model_loads_without_torch_and_says_how_it_was_made():
    import subprocess
    import sys

    from decoders.symptom import DEFAULT_MODEL

    dec = SymptomDecoder.load(DEFAULT_MODEL)
    assert "bench_symptom_decoder.py" in dec.provenance["command"]
    assert dec.provenance["wall_s"] > 0 and dec.provenance["train_seeds"]
    assert dec.info.output_names == ("gpi_beta",) and dec.bin_s == 0.005
    code = (
        "import sys, numpy as np; from decoders.symptom import SymptomDecoder, DEFAULT_MODEL; "
        "d = SymptomDecoder.load(DEFAULT_MODEL); d.step_bins(np.ones((60, 7))); "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_symptom_model_with_another_feature_set_is_refused_by_name(tmp_path):
    X, Y = _beta_like_sessions(2, 1)
    path = SymptomDecoder().fit(X, Y).save(tmp_path / "sym.npz")
    with np.load(path) as z:
        entries = {k: z[k] for k in z.files}
    for key in ("a_f_mean", "a_f_std"):  # a model of the first release: 7 features
        entries[key] = entries[key][:7]
    old = tmp_path / "old.npz"
    np.savez(old, **entries)
    with pytest.raises(ModelFileError, match="7 features.*log_power_per_spike_75_100hz"):
        load(old)


def test_shipped_state_model_estimates_the_parkinsonian_state_under_its_own_name(tmp_path):
    from decoders.symptom import STATE_MODEL

    dec = SymptomDecoder.load(STATE_MODEL)
    assert "train_state_decoder.py" in dec.provenance["command"]
    assert dec.provenance["nucleus"] == "gpe" and dec.provenance["train_seeds"]
    assert dec.info.output_names == ("pd_state",) and dec.info.output_units == ("probability",)
    stage = DecoderStage(load(dec.save(tmp_path / "state.npz")))
    assert stage.prepare(StreamSpec("binned", 8, 200.0)).channel_names == ("pd_state",)
    # a symptom model saved before models named their output still reads as the GPi beta
    X, Y = _beta_like_sessions(2, 1)
    path = SymptomDecoder().fit(X, Y).save(tmp_path / "sym.npz")
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    meta = json.loads(str(entries["decoders"]))
    for key in ("output", "output_unit"):
        del meta["params"][key]
    entries["decoders"] = np.array(json.dumps(meta))
    old = tmp_path / "unnamed.npz"
    np.savez(old, **entries)
    assert load(old).info.output_names == ("gpi_beta",)
