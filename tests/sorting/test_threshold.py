"""ThresholdCrossings: BrainGate-style multi-unit crossings, exact across chunk boundaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bci.errors import ConfigError, StageCompatibilityError
from bci.features import SpikeBinner
from bci.preprocessing import BandPass
from bci.sorting.threshold import ThresholdCrossings
from bci.stream import SignalChunk, SpikeChunk, StreamSpec, stage_from_dict
from bci.synthesis import GroundTruthRecording, generate_recording

SFREQ = 30_000.0
WINDOW = int(0.4e-3 * SFREQ)  # 0.4 ms: the spike-time tolerance for a causal online detector


@pytest.fixture(scope="module")
def rec() -> GroundTruthRecording:
    return generate_recording(
        n_channels=16,
        n_units=6,
        duration_s=4.0,
        seed=3,
        noise_uv=5.0,
        amplitude_uv=(60.0, 250.0),
        firing_rates_hz=(10.0, 20.0),
    )


@pytest.fixture(scope="module")
def filtered(rec: GroundTruthRecording) -> np.ndarray:
    bp = BandPass()
    bp.prepare(StreamSpec("signal", rec.n_channels, rec.sfreq))
    return bp.process(SignalChunk(rec.traces, 0, rec.sfreq, np.zeros(rec.n_samples))).data


def chunk_of(data: np.ndarray, start: int, gap_before: int = 0) -> SignalChunk:
    return SignalChunk(
        np.ascontiguousarray(data, dtype=np.float32),
        start,
        SFREQ,
        np.arange(start, start + len(data)) / SFREQ,
        gap_before=gap_before,
    )


def run_chunks(stage: ThresholdCrossings, data: np.ndarray, edges: np.ndarray) -> list[SpikeChunk]:
    outs = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        out = stage.process(chunk_of(data[a:b], int(a)))
        if out is not None:
            outs.append(out)
    return outs


def reference_crossings(
    x: np.ndarray, thr: np.ndarray, start: int, refractory: int
) -> list[np.ndarray]:
    """Per-channel crossing samples by the definition, on the whole array at once."""
    below = x < thr
    above = x >= thr
    onset = np.zeros_like(below)
    onset[1:] = below[1:] & above[:-1]
    onset[:start] = False
    trains = []
    for c in range(x.shape[1]):
        kept: list[int] = []
        for t in np.flatnonzero(onset[:, c]):
            if not kept or t - kept[-1] >= refractory:
                kept.append(int(t))
        trains.append(np.array(kept, dtype=np.int64))
    return trains


def test_finds_big_units_within_the_delay_corrected_window(rec: GroundTruthRecording) -> None:
    for high_hz in (6000.0, 3000.0):  # trough delays 0.34 and 1.7 samples
        bp = BandPass(high_hz=high_hz)
        tc = ThresholdCrossings(calibration_s=1.0)
        spec = tc.prepare(bp.prepare(StreamSpec("signal", rec.n_channels, rec.sfreq)))
        assert spec.kind == "spikes" and spec.n_channels == rec.n_channels
        assert spec.corrected_delay_samples == round(bp.group_delay_samples)
        outs = [o for c, _ in rec.iter_chunks(30) if (o := tc.process(bp.process(c)))]
        spikes = np.concatenate([o.spikes for o in outs])
        assert np.all(spikes["unit_index"] == spikes["channel_index"])
        troughs = -rec.templates.min(axis=(1, 2))
        for unit, (train, channel) in enumerate(
            zip(rec.spike_trains(), rec.peak_channels, strict=True)
        ):
            if troughs[unit] < 10 * rec.noise_uv:
                continue
            train = train[train >= rec.sfreq * 1.0 + WINDOW]  # after calibration
            found = np.sort(spikes["sample_index"][spikes["channel_index"] == channel])
            i = np.clip(np.searchsorted(found, train), 1, len(found) - 1)
            nearest = np.minimum(np.abs(found[i] - train), np.abs(found[i - 1] - train))
            assert len(train) > 20
            assert np.mean(nearest <= WINDOW) >= 0.95, (high_hz, unit)


def test_group_delay_from_upstream_spec_shifts_times_and_span(filtered: np.ndarray) -> None:
    thr = np.full(filtered.shape[1], -30.0)
    plain = ThresholdCrossings(thresholds=thr)
    plain.prepare(StreamSpec("signal", filtered.shape[1], SFREQ))
    delayed = ThresholdCrossings(thresholds=thr)
    spec = delayed.prepare(StreamSpec("signal", filtered.shape[1], SFREQ, group_delay_samples=10.3))
    assert spec.corrected_delay_samples == 10
    assert spec.group_delay_samples == pytest.approx(0.3)
    edges = np.arange(3000, 30001, 300)
    a = run_chunks(plain, filtered, edges)
    b = run_chunks(delayed, filtered, edges)
    assert sum(o.n_spikes for o in a) > 50
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(y.spikes["sample_index"], x.spikes["sample_index"] - 10)
        assert (y.first_sample, y.last_sample) == (x.first_sample - 10, x.last_sample - 10)


@pytest.mark.parametrize("chunking", ["1ms", "10ms", "37", "1", "random"])
def test_chunked_output_identical_to_one_piece(filtered: np.ndarray, chunking: str) -> None:
    x = filtered[: int(2.5 * SFREQ)]
    n = len(x)
    if chunking == "random":
        rng = np.random.default_rng(0)
        edges = np.r_[0, np.sort(rng.choice(np.arange(1, n), 400, replace=False)), n]
    else:
        step = {"1ms": 30, "10ms": 300, "37": 37, "1": 1}[chunking]
        if step == 1:
            x, n = x[: int(0.5 * SFREQ)], int(0.5 * SFREQ)
        edges = np.r_[np.arange(0, n, step), n]
    cal = int(0.2 * SFREQ)
    whole = ThresholdCrossings(calibration_s=0.2)
    one = whole.process(chunk_of(x, 0))
    assert one is not None
    chunked = ThresholdCrossings(calibration_s=0.2)
    outs = run_chunks(chunked, x, edges)
    got = np.concatenate([o.spikes for o in outs])
    np.testing.assert_array_equal(got, one.spikes)
    # spans tile the post-calibration stream without gaps or overlaps
    assert outs[0].first_sample == cal and outs[-1].last_sample == n - 1
    assert all(b.first_sample == a.last_sample + 1 for a, b in zip(outs, outs[1:], strict=False))
    # and the spikes are the crossings by definition
    thr = chunked.thresholds_
    assert thr is not None
    expected = reference_crossings(x, thr, cal, refractory=30)
    assert sum(len(t) for t in expected) > 30
    for c, train in enumerate(expected):
        np.testing.assert_array_equal(got["sample_index"][got["channel_index"] == c], train)


def test_calibration_emits_nothing_and_says_so(filtered: np.ndarray) -> None:
    tc = ThresholdCrossings(calibration_s=0.1)
    spec = tc.prepare(StreamSpec("signal", filtered.shape[1], SFREQ))
    assert spec.kind == "spikes" and not tc.is_calibrated
    assert tc.process(chunk_of(filtered[:1000], 0)) is None
    status = tc.status
    assert status["calibrated"] is False
    assert status["calibration_progress"] == pytest.approx(1 / 3)
    assert tc.thresholds_ is None
    assert tc.process(chunk_of(filtered[1000:2999], 1000)) is None
    out = tc.process(chunk_of(filtered[2999:4000], 2999))
    assert out is not None and (out.first_sample, out.last_sample) == (3000, 3999)
    assert tc.status["calibrated"] is True
    rms = np.sqrt(np.mean(filtered[:3000].astype(np.float64) ** 2, axis=0))
    np.testing.assert_allclose(tc.thresholds_, -4.5 * rms, rtol=1e-6)
    fitted = ThresholdCrossings(threshold_rms=-4.5).fit(filtered[:3000])
    np.testing.assert_allclose(fitted.thresholds_, tc.thresholds_, rtol=1e-6)
    # reset keeps learned thresholds; recalibrate forgets them
    tc.reset()
    assert tc.is_calibrated
    tc.recalibrate()
    assert not tc.is_calibrated and tc.process(chunk_of(filtered[4000:4100], 4000)) is None


def step_signal(n: int, dips: list[int], width: int = 3) -> np.ndarray:
    """One channel at 0 with dips to -100 for ``width`` samples at ``dips``."""
    x = np.zeros((n, 1), np.float32)
    for d in dips:
        x[d : d + width] = -100.0
    return x


@pytest.mark.parametrize("split", [None, 50, 62])
def test_refractory_respected_across_chunks(split: int | None) -> None:
    # dips 15 samples (0.5 ms) apart, then one exactly 30 samples (1 ms) after the last accepted
    x = step_signal(200, [40, 55, 70, 100, 120])
    tc = ThresholdCrossings(thresholds=[-50.0], refractory_ms=1.0)
    edges = np.array([0, 200] if split is None else [0, split, 200])
    got = np.concatenate([o.spikes["sample_index"] for o in run_chunks(tc, x, edges)])
    np.testing.assert_array_equal(got, [40, 70, 100])
    short = ThresholdCrossings(thresholds=[-50.0], refractory_ms=0.3)
    got = np.concatenate([o.spikes["sample_index"] for o in run_chunks(short, x, edges)])
    np.testing.assert_array_equal(got, [40, 55, 70, 100, 120])


def test_crossing_on_a_chunk_boundary_found_once() -> None:
    x = step_signal(100, [50], width=10)
    tc = ThresholdCrossings(thresholds=[-50.0])
    for split in range(45, 62):
        tc.reset()
        outs = run_chunks(tc, x, np.array([0, split, 100]))
        got = np.concatenate([o.spikes for o in outs])
        assert got["sample_index"].tolist() == [50], split
        assert got["amplitude"].tolist() == [-100.0]


def test_nan_samples_flagged_never_crossings() -> None:
    x = np.zeros((120, 3), np.float32)
    x[20:25, :] = np.nan  # whole rows missing
    x[25:28, 0] = -100.0  # below threshold right after the NaN: predecessor unknown
    x[60:63, 1] = -100.0  # an ordinary crossing
    x[90, 2] = np.nan
    x[91:94, 2] = -100.0
    tc = ThresholdCrossings(thresholds=[-50.0] * 3)
    outs = run_chunks(tc, x, np.array([0, 22, 60, 91, 120]))
    spikes = np.concatenate([o.spikes for o in outs])
    assert spikes["sample_index"].tolist() == [60] and spikes["channel_index"].tolist() == [1]
    status = tc.status
    assert status["nan_samples"] == 5 * 3 + 1
    assert status["channels_with_nan"] == [0, 1, 2]
    np.testing.assert_array_equal(tc.nan_samples, [5, 5, 6])


def test_nan_through_bandpass_and_calibration(filtered: np.ndarray) -> None:
    x = filtered[:6000].copy()
    x[100:200] = np.nan  # during calibration: left out of the RMS
    x[:, 3] = np.nan  # a dead channel: no threshold, never crosses
    tc = ThresholdCrossings(calibration_s=0.1)
    outs = run_chunks(tc, x, np.arange(0, 6001, 30))
    spikes = np.concatenate([o.spikes for o in outs])
    assert 3 not in spikes["channel_index"]
    assert tc.status["channels_without_threshold"] == [3]
    finite = np.delete(np.arange(3000), np.arange(100, 200))
    rms = np.sqrt(np.mean(x[finite, 0].astype(np.float64) ** 2))
    assert tc.thresholds_ is not None
    assert tc.thresholds_[0] == pytest.approx(-4.5 * rms, rel=1e-6)


def test_gap_disarms_the_first_sample() -> None:
    x = step_signal(60, [30])
    tc = ThresholdCrossings(thresholds=[-50.0])
    assert tc.process(chunk_of(x[:30], 0)).n_spikes == 0
    out = tc.process(chunk_of(x[30:], 40, gap_before=10))
    assert out is not None and out.n_spikes == 0


def test_wrong_channel_count_refused_naming_both(filtered: np.ndarray) -> None:
    tc = ThresholdCrossings(thresholds=[-30.0] * 4)
    with pytest.raises(StageCompatibilityError, match=r"4 channels.*5 channels"):
        tc.prepare(StreamSpec("signal", 5, SFREQ))
    tc = ThresholdCrossings(calibration_s=0.01)
    tc.prepare(StreamSpec("signal", 16, SFREQ))
    with pytest.raises(StageCompatibilityError, match=r"16 channels.*8 channels"):
        tc.process(chunk_of(filtered[:30, :8], 0))
    with pytest.raises(StageCompatibilityError, match="accepts signal"):
        tc.prepare(StreamSpec("spikes", 16, SFREQ))


def test_bad_parameters_refused() -> None:
    with pytest.raises(ConfigError, match="threshold_rms"):
        ThresholdCrossings(threshold_rms=4.5)
    with pytest.raises(ConfigError, match="thresholds"):
        ThresholdCrossings(thresholds=[-30.0, 5.0])
    with pytest.raises(ConfigError, match="calibration_s"):
        ThresholdCrossings(calibration_s=0.0)
    with pytest.raises(ConfigError, match="traces"):
        ThresholdCrossings().fit(np.zeros(10))


def test_to_dict_round_trip(filtered: np.ndarray) -> None:
    tc = ThresholdCrossings(
        threshold_rms=-3.5, calibration_s=0.2, refractory_ms=0.5, thresholds=None
    )
    description = json.loads(json.dumps(tc.to_dict()))
    assert description["stage"] == "threshold_crossings"
    rebuilt = stage_from_dict(description)
    assert isinstance(rebuilt, ThresholdCrossings) and rebuilt.params == tc.params
    given = ThresholdCrossings(thresholds=np.full(16, -25.0))
    again = stage_from_dict(json.loads(json.dumps(given.to_dict())))
    edges = np.arange(0, 12001, 300)
    for a, b in [(tc, rebuilt), (given, again)]:
        x = np.concatenate([o.spikes for o in run_chunks(a, filtered, edges)])
        y = np.concatenate([o.spikes for o in run_chunks(b, filtered, edges)])
        assert len(x) > 0
        np.testing.assert_array_equal(x, y)


def test_output_bins_with_spike_binner(filtered: np.ndarray) -> None:
    tc = ThresholdCrossings(calibration_s=0.5)
    binner = SpikeBinner(0.02, n_units=filtered.shape[1])
    binner.prepare(tc.prepare(StreamSpec("signal", filtered.shape[1], SFREQ)))
    n_spikes, counts = 0, []
    for start in range(0, int(2 * SFREQ), 30):
        out = tc.process(chunk_of(filtered[start : start + 30], start))
        if out is None:
            continue
        n_spikes += out.n_spikes
        binned = binner.process(out)
        if binned is not None:
            counts.append(binned.counts)
    total = np.vstack(counts)
    assert total.shape == (75, filtered.shape[1])  # 1.5 s after calibration, 20 ms bins
    assert total.sum() == n_spikes > 0


@pytest.mark.parametrize("split", [None, 299, 300, 301])
def test_crossing_on_the_first_sample_after_calibration(split: int | None) -> None:
    x = np.where(np.arange(400) % 2 == 0, 1.0, -1.0).astype(np.float32)[:, None]  # RMS 1
    x[299] = 0.0
    x[300:303] = -10.0
    tc = ThresholdCrossings(calibration_s=0.01)  # 300 samples
    edges = np.array([0, 400] if split is None else [0, split, 400])
    outs = run_chunks(tc, x, edges)
    assert tc.thresholds_ is not None
    assert tc.thresholds_[0] == pytest.approx(-4.5 * np.sqrt(np.mean(x[:300] ** 2)))
    assert np.concatenate([o.spikes["sample_index"] for o in outs]).tolist() == [300]
