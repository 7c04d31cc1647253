"""BandPass: chunked == one piece, causality, attenuation, group delay, NaN, bad input; CommonReference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from bci.errors import BCIError, StageCompatibilityError
from bci.preprocessing import BandPass, CommonReference
from bci.preprocessing.filters import spike_template
from bci.stream import Pipeline, SignalChunk, StreamSpec, stage_from_dict

SFREQ = 30_000.0


def chunk(data: np.ndarray, first: int = 0) -> SignalChunk:
    data = np.ascontiguousarray(data, dtype=np.float32)
    return SignalChunk(data, first, SFREQ, np.arange(first, first + len(data)) / SFREQ)


def run_chunked(stage, data: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    out, start = [], 0
    for size in sizes:
        res = stage.process(chunk(data[start : start + size], start))
        out.append(res.data)
        start += size
    return np.vstack(out)


def random_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    cuts = np.sort(rng.choice(np.arange(1, n), size=50, replace=False))
    return np.diff(np.r_[0, cuts, n])


def test_chunked_equals_one_piece() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, size=(20_000, 6)).astype(np.float32)
    bp = BandPass()
    bp.prepare(StreamSpec("signal", 6, SFREQ))
    chunked = run_chunked(bp, x, random_sizes(rng, len(x)))
    reference = signal.sosfilt(bp.sos, x.astype(np.float64), axis=0).astype(np.float32)
    np.testing.assert_array_equal(chunked, reference)


def test_causal_impulse() -> None:
    x = np.zeros((3000, 2), np.float32)
    x[1000, 0] = 1.0
    y = BandPass().process(chunk(x)).data
    assert np.all(y[:1000] == 0.0)
    assert np.all(y[:, 1] == 0.0)
    assert abs(y[1000, 0]) > 0


@pytest.mark.parametrize(("freq_hz", "passes"), [(10.0, False), (1500.0, True), (14000.0, False)])
def test_pass_and_stop_band(freq_hz: float, passes: bool) -> None:
    t = np.arange(int(SFREQ)) / SFREQ
    x = np.sin(2 * np.pi * freq_hz * t)[:, None].astype(np.float32)
    y = BandPass(300.0, 6000.0, order=2).process(chunk(x)).data[int(SFREQ) // 2 :, 0]
    gain = np.sqrt(2) * y.std()
    if passes:
        assert 0.95 < gain < 1.05
    else:
        assert gain < 0.01  # at least 40 dB down, as a 4-pole band-pass gives here


def test_group_delay_in_spec_and_accumulated() -> None:
    bp = BandPass(300.0, 3000.0)
    spec = bp.prepare(StreamSpec("signal", 2, SFREQ, group_delay_samples=2.0))
    assert spec.group_delay_samples == pytest.approx(2.0 + bp.group_delay_samples)
    assert bp.group_delay_samples > 0.5


@pytest.mark.parametrize("band", [(300.0, 6000.0), (300.0, 3000.0), (500.0, 2000.0)])
def test_group_delay_predicts_filtered_trough(band: tuple[float, float]) -> None:
    bp = BandPass(*band)
    bp.prepare(StreamSpec("signal", 1, SFREQ))
    spike = spike_template(SFREQ)
    x = np.zeros(6000)
    trough = 3000
    x[trough - len(spike) // 2 : trough - len(spike) // 2 + len(spike)] = 80 * spike
    rng = np.random.default_rng(1)
    y = bp.process(chunk(x[:, None] + rng.normal(0, 0.5, (6000, 1)))).data[:, 0]
    found = int(np.argmin(y))
    assert abs(found - (trough + bp.group_delay_samples)) <= 1.0


def test_nan_rows_flagged_and_state_recovers() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 10, size=(9000, 3)).astype(np.float32)
    x[3000:3100, 1] = np.nan
    bp = BandPass()
    y = run_chunked(bp, x, np.full(30, 300))
    assert np.isnan(y[3000:3100, 1]).all()
    assert np.isfinite(np.delete(y, np.s_[3000:3100], axis=0)).all()
    assert np.isfinite(y[:, [0, 2]]).all()
    # channels without NaN are filtered exactly as without the gap
    clean = BandPass().process(chunk(np.nan_to_num(x))).data
    np.testing.assert_array_equal(y[:, 0], clean[:, 0])


def test_an_infinite_sample_does_not_poison_the_filter_state() -> None:
    """An amplifier that sends +-inf (a saturated or broken channel) for a moment: the output is
    NaN there, like a missing sample, and finite again right after (an IIR state that took an
    inf would stay non-finite for good, and the loop would decode nothing from that channel)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 10, size=(9000, 2)).astype(np.float32)
    x[3000:3100, 1] = np.inf
    x[3050, 1] = -np.inf
    y = run_chunked(BandPass(), x, np.full(30, 300))
    assert np.isnan(y[3000:3100, 1]).all()
    assert np.isfinite(np.delete(y, np.s_[3000:3100], axis=0)).all()


def test_wrong_channel_count_names_both() -> None:
    bp = BandPass()
    bp.prepare(StreamSpec("signal", 4, SFREQ))
    with pytest.raises(StageCompatibilityError, match="4 channels.*3 channels"):
        bp.process(chunk(np.zeros((10, 3))))


def test_bad_parameters() -> None:
    with pytest.raises(BCIError, match="Nyquist"):
        BandPass(300.0, 20_000.0).prepare(StreamSpec("signal", 1, SFREQ))
    with pytest.raises(BCIError, match="ftype"):
        BandPass(ftype="sinc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low_hz"):
        BandPass(low_hz=-1.0)


def test_to_dict_round_trip() -> None:
    for stage in (
        BandPass(250.0, 5000.0, order=3, ftype="bessel"),
        CommonReference("average", [0, 2]),
    ):
        rebuilt = stage_from_dict(stage.to_dict())
        assert type(rebuilt) is type(stage)
        assert rebuilt.to_dict() == stage.to_dict()


def test_median_reference_removes_common_mode() -> None:
    rng = np.random.default_rng(3)
    common = 100 * np.sin(np.linspace(0, 20, 4000))[:, None]
    own = rng.normal(0, 1, (4000, 16))
    y = CommonReference("median").process(chunk(common + own)).data
    assert np.abs(np.corrcoef(y[:, 0], common[:, 0])[0, 1]) < 0.1
    assert y.std() < 1.5


def test_median_reference_ignores_one_spiking_channel() -> None:
    x = np.zeros((10, 8), np.float32)
    x[5, 3] = -500.0
    y = CommonReference("median").process(chunk(x)).data
    assert y[5, 3] == -500.0 and np.all(np.delete(y, 3, axis=1) == 0.0)
    y_avg = CommonReference("average").process(chunk(x)).data
    assert y_avg[5, 0] == pytest.approx(500.0 / 8)


def test_reference_channel_subset_and_checks() -> None:
    x = np.tile(np.array([1.0, 2.0, 3.0, 100.0], np.float32), (5, 1))
    y = CommonReference("average", channels=[0, 1, 2]).process(chunk(x)).data
    np.testing.assert_allclose(y[0], [-1.0, 0.0, 1.0, 98.0])
    with pytest.raises(StageCompatibilityError, match="channel 7"):
        CommonReference(channels=[7]).prepare(StreamSpec("signal", 4, SFREQ))


def test_in_a_pipeline() -> None:
    pipe = Pipeline([CommonReference(), BandPass()])
    spec = pipe.prepare(StreamSpec("signal", 4, SFREQ))
    assert spec.group_delay_samples > 0
    out = pipe.process(chunk(np.random.default_rng(4).normal(size=(300, 4))))
    assert out.data.shape == (300, 4)


@pytest.mark.parametrize(
    ("low_hz", "high_hz", "ftype", "freq_hz", "passes"),
    [
        (300.0, None, "butter", 10.0, False),
        (300.0, None, "butter", 10_000.0, True),
        (None, 3000.0, "butter", 10_000.0, False),
        (None, 3000.0, "bessel", 200.0, True),
    ],
)
def test_high_and_low_pass_only(low_hz, high_hz, ftype, freq_hz, passes) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(int(SFREQ)) / SFREQ
    x = np.sin(2 * np.pi * freq_hz * t)[:, None].astype(np.float32)
    y = BandPass(low_hz, high_hz, order=4, ftype=ftype).process(chunk(x)).data[15_000:, 0]
    gain = np.sqrt(2) * y.std()
    assert (0.9 < gain < 1.1) if passes else (gain < 0.02)
