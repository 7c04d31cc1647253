"""Wiener and Kalman decoders: they decode, step == predict, save/load, bad input named."""

from __future__ import annotations

import numpy as np
import pytest

from bci.synthesis.motor import simulate_reaching
from decoders import (
    DecoderError,
    KalmanDecoder,
    ModelFileError,
    NotFittedError,
    WienerDecoder,
    load,
)
from decoders.modelfile import FORMAT_VERSION


def r2(y, p):
    return 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)


@pytest.fixture(scope="module")
def reaching():
    d = simulate_reaching(n_units=40, duration_s=180.0, seed=11)
    n = int(0.8 * len(d.counts))
    return d.counts[:n], d.velocity[:n], d.counts[n:], d.velocity[n:]


@pytest.mark.parametrize("cls", [WienerDecoder, KalmanDecoder])
def test_decodes_held_out_velocity(cls, reaching):
    X, Y, Xt, Yt = reaching
    dec = cls().fit(X, Y)
    assert r2(Yt, dec.predict(Xt)).mean() > 0.4


@pytest.mark.parametrize("cls", [WienerDecoder, KalmanDecoder])
def test_stepping_equals_predict_and_reset_restarts(cls, reaching):
    X, Y, Xt, _ = reaching
    dec = cls().fit(X, Y)
    whole = dec.predict(Xt[:300])
    dec.reset()
    stepped = np.array([dec.step(x) for x in Xt[:300]])
    np.testing.assert_allclose(stepped, whole, atol=1e-9)
    dec.reset()
    np.testing.assert_allclose(dec.step(Xt[0]), whole[0], atol=1e-9)


@pytest.mark.parametrize("cls", [WienerDecoder, KalmanDecoder])
def test_save_load_round_trip(cls, reaching, tmp_path):
    X, Y, Xt, _ = reaching
    dec = cls().fit(X, Y, bin_s=0.02, output_names=["vx", "vy"], output_units=["cm/s", "cm/s"])
    path = dec.save(tmp_path / "model.npz")
    back = load(path)
    assert type(back) is cls
    assert back.info.output_names == ("vx", "vy") and back.info.bin_s == 0.02
    np.testing.assert_allclose(back.predict(Xt), dec.predict(Xt), atol=1e-12)
    assert type(cls.load(path)) is cls


def test_errors_name_the_mismatch(reaching, tmp_path):
    X, Y, Xt, _ = reaching
    with pytest.raises(NotFittedError, match="fit"):
        WienerDecoder().predict(Xt)
    dec = WienerDecoder().fit(X, Y)
    with pytest.raises(DecoderError, match="41 units, but the decoder was fitted on 40"):
        dec.step(np.zeros(41))
    with pytest.raises(DecoderError, match="39 columns"):
        dec.predict(Xt[:, :39])
    bad = Xt.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DecoderError, match="NaN"):
        dec.predict(bad)
    with pytest.raises(DecoderError, match="bins"):
        WienerDecoder().fit(X, Y[:-1])
    path = dec.save(tmp_path / "w.npz")
    with pytest.raises(ModelFileError, match="fitted on 40 units, but the stream has 96"):
        load(path, n_units=96)
    with pytest.raises(ModelFileError, match="KalmanDecoder"):
        KalmanDecoder.load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="not a decoder model file"):
        load(tmp_path / "junk.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFileError, match="corrupt"):
        load(tmp_path / "cut.npz")
    with pytest.raises(ModelFileError, match="Cannot read"):
        load(tmp_path / "missing.npz")


def test_newer_format_version_is_refused(reaching, tmp_path, monkeypatch):
    import decoders.modelfile as mf

    X, Y, _, _ = reaching
    monkeypatch.setattr(mf, "FORMAT_VERSION", FORMAT_VERSION + 1)
    path = WienerDecoder().fit(X, Y).save(tmp_path / "new.npz")
    monkeypatch.setattr(mf, "FORMAT_VERSION", FORMAT_VERSION)
    with pytest.raises(
        ModelFileError, match=f"format version {FORMAT_VERSION + 1}.*up to {FORMAT_VERSION}"
    ):
        load(path)
