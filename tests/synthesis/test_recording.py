"""generate_recording: determinism, spike trains, spatial templates, noise, LFP, artifacts, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, stats

from bci import BCIError, ConfigError
from bci.stream.chunks import SPIKE_DTYPE
from bci.synthesis import GroundTruthRecording, generate_recording, make_probe

SFREQ = 30000.0


def test_same_seed_same_recording_other_seed_other_recording() -> None:
    a = generate_recording(n_channels=8, n_units=4, duration_s=0.5, seed=3)
    b = generate_recording(n_channels=8, n_units=4, duration_s=0.5, seed=3)
    c = generate_recording(n_channels=8, n_units=4, duration_s=0.5, seed=4)
    np.testing.assert_array_equal(a.traces, b.traces)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(a.templates, b.templates)
    assert not np.array_equal(a.traces, c.traces)
    assert not np.array_equal(a.unit_positions, c.unit_positions)


def test_recording_shapes_and_ground_truth_fields() -> None:
    rec = generate_recording(n_channels=16, n_units=5, duration_s=1.0, seed=0)
    assert isinstance(rec, GroundTruthRecording)
    assert rec.traces.dtype == np.float32 and rec.traces.shape == (30000, 16)
    assert rec.spikes.dtype == SPIKE_DTYPE
    assert np.all(np.diff(rec.spikes["sample_index"]) >= 0)
    assert rec.templates.dtype == np.float32 and rec.templates.shape[0] == 5
    assert rec.templates.shape[2] == 16
    # 3 ms templates with the trough at 1 ms (a third of the template)
    assert rec.templates.shape[1] == 90 and rec.trough_offset == 30
    assert rec.unit_positions.shape == (5, 3)
    assert np.all((rec.unit_positions[:, 2] >= 10) & (rec.unit_positions[:, 2] <= 50))
    np.testing.assert_array_equal(rec.positions, make_probe(16))
    np.testing.assert_array_equal(
        rec.spikes["channel_index"], rec.peak_channels[rec.spikes["unit_index"]]
    )
    trains = rec.spike_trains()
    assert len(trains) == 5 and sum(len(t) for t in trains) == len(rec.spikes)
    assert rec.artifact_samples.dtype == np.int64 and rec.artifact_samples.size == 0


def test_refractory_period_is_respected_even_at_high_rates() -> None:
    rec = generate_recording(
        n_channels=4,
        n_units=3,
        duration_s=5.0,
        seed=1,
        firing_rates_hz=[150.0, 200.0, 300.0],
        refractory_ms=3.0,
        noise_uv=0.0,
    )
    for train in rec.spike_trains():
        assert len(train) > 500
        assert np.diff(train).min() >= 3.0e-3 * SFREQ


def test_poisson_rates_match_the_requested_rates() -> None:
    rates = np.array([5.0, 20.0, 40.0])
    rec = generate_recording(
        n_channels=4, n_units=3, duration_s=20.0, seed=2, firing_rates_hz=rates, noise_uv=0.0
    )
    counts = np.array([len(t) for t in rec.spike_trains()])
    expected = rates * 20.0
    # Poisson: SD of a count is sqrt(mean); 4 SD bounds
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))
    isi = np.diff(rec.spike_trains()[1]) / SFREQ
    cv = isi.std() / isi.mean()
    assert 0.85 < cv < 1.1  # near 1, as a Poisson process with a short dead time


def test_amplitude_falls_off_with_distance_and_peak_channel_is_nearest() -> None:
    rec = generate_recording(n_channels=32, n_units=12, duration_s=0.1, seed=5, noise_uv=0.0)
    contacts = np.column_stack([rec.positions, np.zeros(32)])
    for u in range(rec.n_units):
        d = np.linalg.norm(contacts - rec.unit_positions[u], axis=1)
        amp = np.abs(rec.templates[u]).max(axis=0)
        assert rec.peak_channels[u] == np.argmin(d)
        rho = stats.spearmanr(d, amp).statistic
        assert rho < -0.95
        far = d > d.min() + 100.0
        if far.any():
            assert amp[far].max() < 0.25 * amp.max()


def test_templates_look_like_extracellular_spikes() -> None:
    rec = generate_recording(n_channels=8, n_units=6, duration_s=0.1, seed=6, noise_uv=0.0)
    for u, ch in enumerate(rec.peak_channels):
        w = rec.templates[u, :, ch]
        assert np.argmin(w) == rec.trough_offset  # trough at the trough sample
        assert w.min() < 0 < w.max() < -w.min()  # negative trough, smaller positive peak
        t_peak_ms = (np.argmax(w[rec.trough_offset :])) / SFREQ * 1e3
        assert 0.2 <= t_peak_ms <= 0.7  # trough-to-peak of a few tenths of a ms
        assert -w.min() >= 50.0 - 1e-3 and -w.min() <= 200.0 + 1e-3


def test_spike_amplitude_is_the_trough_on_the_peak_channel() -> None:
    rec = generate_recording(
        n_channels=8, n_units=1, duration_s=2.0, seed=7, noise_uv=0.0, firing_rates_hz=[5.0]
    )
    s = rec.spikes
    isolated = np.diff(s["sample_index"], prepend=-1000, append=10**9)
    ok = (isolated[:-1] > 100) & (isolated[1:] > 100) & (s["sample_index"] >= rec.trough_offset)
    values = rec.traces[s["sample_index"][ok], s["channel_index"][ok]]
    np.testing.assert_allclose(values, s["amplitude"][ok], rtol=1e-5, atol=1e-3)
    # amplitudes jitter a little around the template's trough
    assert 0.0 < np.std(s["amplitude"]) / abs(np.mean(s["amplitude"])) < 0.1


def test_given_spike_times_are_honoured() -> None:
    times = [np.array([0.010, 0.100, 0.2501]), np.array([0.050]), np.array([])]
    rec = generate_recording(n_channels=8, duration_s=0.3, seed=0, spike_times=times, noise_uv=0.0)
    assert rec.n_units == 3
    trains = rec.spike_trains()
    for u in range(3):
        np.testing.assert_array_equal(trains[u], np.round(times[u] * SFREQ).astype(np.int64))
    # the voltage holds the spikes there, and nothing else
    assert rec.traces[300, rec.peak_channels[0]] == pytest.approx(
        rec.spikes["amplitude"][0], rel=1e-5
    )
    assert np.all(rec.traces[8000:9000] == 0.0)


def test_noise_rms_matches_noise_uv_and_sits_in_the_spike_band() -> None:
    rec = generate_recording(n_channels=6, n_units=0, duration_s=4.0, seed=8, noise_uv=7.0)
    rms = rec.traces.std(axis=0)
    np.testing.assert_allclose(rms, 7.0, rtol=0.05)
    f, pxx = signal.welch(rec.traces[:, 0], fs=SFREQ, nperseg=4096)
    band = (f >= 300) & (f <= 6000)
    assert pxx[band].sum() / pxx.sum() > 0.8
    # independent channels by default
    assert abs(np.corrcoef(rec.traces[:, 0], rec.traces[:, 1])[0, 1]) < 0.05


def test_common_noise_fraction_correlates_channels() -> None:
    rec = generate_recording(
        n_channels=4, n_units=0, duration_s=1.0, seed=8, noise_uv=5.0, noise_common_fraction=0.5
    )
    np.testing.assert_allclose(rec.traces.std(axis=0), 5.0, rtol=0.05)
    assert np.corrcoef(rec.traces[:, 0], rec.traces[:, 3])[0, 1] == pytest.approx(0.5, abs=0.08)


def test_lfp_adds_slow_power_and_a_beta_peak() -> None:
    rec = generate_recording(
        n_channels=4,
        n_units=0,
        duration_s=8.0,
        seed=9,
        noise_uv=0.0,
        lfp={"amplitude_uv": 40.0, "beta_amplitude_uv": 30.0, "beta_hz": 20.0},
    )
    x = rec.traces[::30, 1].astype(np.float64)  # 1 kHz is plenty for an LFP
    f, pxx = signal.welch(x, fs=1000.0, nperseg=2000)
    assert pxx[f <= 100].sum() / pxx.sum() > 0.95
    beta = (f >= 17) & (f <= 23)
    flank = (f >= 35) & (f <= 45)
    assert pxx[beta].mean() > 5 * pxx[flank].mean()
    # shared across channels: strongly correlated
    assert np.corrcoef(rec.traces[:, 0], rec.traces[:, 3])[0, 1] > 0.99


def test_artifacts_appear_where_requested() -> None:
    times = np.array([0.1, 0.25])
    rec = generate_recording(
        n_channels=4,
        n_units=0,
        duration_s=0.4,
        seed=0,
        noise_uv=0.0,
        artifact_times_s=times,
        artifact_amplitude_uv=3000.0,
        artifact_width_ms=0.2,
    )
    np.testing.assert_array_equal(rec.artifact_samples, [3000, 7500])
    energy = np.abs(rec.traces).max(axis=1)
    active = np.flatnonzero(energy > 1.0)
    assert active.min() == 3000
    # large and brief: 3 mV at onset, recovered (< 1% of it) within 8 ms, on every channel
    assert np.abs(rec.traces[3000:3006]).max() == pytest.approx(3000.0)
    assert np.all(np.abs(rec.traces[3000 + 240 : 7500]) < 30.0)
    assert np.all(energy[:3000] == 0.0)
    assert np.all(np.abs(rec.traces[3000]) == pytest.approx(3000.0))


def test_artifacts_fall_off_from_the_site_and_saturate() -> None:
    rec = generate_recording(
        n_channels=16,
        n_units=0,
        duration_s=0.1,
        seed=0,
        noise_uv=0.0,
        artifact_times_s=[0.05],
        artifact_amplitude_uv=8000.0,
        artifact_site_um=(0.0, 0.0, 50.0),
        saturation_uv=5000.0,
    )
    peak = np.abs(rec.traces).max(axis=0)
    assert peak[0] == pytest.approx(5000.0)  # clipped at the amplifier range
    assert np.all(np.diff(peak[3:]) <= 0) and peak[-1] < 0.3 * 8000.0  # 375 um away


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_channels": 0}, "n_channels"),
        ({"n_units": -1}, "n_units"),
        ({"firing_rates_hz": (-1.0, 5.0)}, "firing_rates_hz"),
        ({"firing_rates_hz": [1.0, np.nan]}, "firing_rates_hz"),
        ({"n_units": 2, "firing_rates_hz": [600.0, 1.0], "refractory_ms": 2.0}, "refractory"),
        ({"n_units": 0, "spike_times": [np.array([0.1])]}, "0 units"),
        ({"n_units": None, "spike_times": []}, "0 units"),
        ({"n_units": 3, "spike_times": [np.array([0.1])]}, "n_units"),
        ({"n_units": None, "spike_times": [np.array([0.1, np.nan])]}, "NaN"),
        ({"n_units": None, "spike_times": [np.array([5.0])]}, "outside"),
        ({"noise_uv": float("nan")}, "noise_uv"),
        ({"noise_uv": -1.0}, "noise_uv"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"sfreq": 0.0}, "sfreq"),
        ({"amplitude_uv": (200.0, 50.0)}, "reversed"),
        ({"positions": np.zeros((3, 2))}, "positions"),
        ({"lfp": {"alpha": 1.0}}, "unknown keys"),
        ({"artifact_times_s": [np.nan]}, "artifact_times_s"),
        ({"layout": "hexagonal"}, "layout"),
    ],
)
def test_bad_input_gives_a_clear_error(kwargs: dict, match: str) -> None:
    params = {"n_channels": 4, "n_units": 2, "duration_s": 0.2, **kwargs}
    with pytest.raises(ConfigError, match=match) as info:
        generate_recording(**params)
    assert isinstance(info.value, BCIError) and isinstance(info.value, ValueError)


def test_noise_only_recording_with_zero_units() -> None:
    rec = generate_recording(n_channels=4, n_units=0, duration_s=0.2, seed=0)
    assert rec.n_units == 0 and rec.spikes.size == 0 and rec.spike_trains() == []


def test_to_spikeinterface_round_trips_traces_probe_and_ground_truth() -> None:
    pytest.importorskip("spikeinterface")
    rec = generate_recording(n_channels=8, n_units=3, duration_s=0.5, seed=2)
    si_rec, si_sort = rec.to_spikeinterface()
    np.testing.assert_array_equal(si_rec.get_traces(return_in_uV=True), rec.traces)
    np.testing.assert_allclose(si_rec.get_channel_locations(), rec.positions)
    assert si_sort.get_num_units() == 3
    for u, train in enumerate(rec.spike_trains()):
        np.testing.assert_array_equal(si_sort.get_unit_spike_train(u), train)


def test_periodic_stimulation_artifacts_follow_the_rate() -> None:
    rec = generate_recording(
        n_channels=4,
        n_units=0,
        duration_s=1.0,
        seed=0,
        noise_uv=0.0,
        artifact_rate_hz=130.0,
        artifact_start_s=0.01,
        artifact_amplitude_uv=1000.0,
    )
    onsets = rec.artifact_samples
    assert len(onsets) == 129  # 0.01 s + k / 130 Hz < 1 s
    assert onsets[0] == 300
    np.testing.assert_allclose(np.diff(onsets), SFREQ / 130.0, atol=1.0)
    np.testing.assert_allclose(rec.traces[onsets, 0], -1000.0)
    with pytest.raises(ConfigError, match="artifact_rate_hz"):
        generate_recording(n_channels=4, n_units=0, duration_s=0.1, artifact_rate_hz=-1.0)


def test_iter_chunks_covers_the_recording_with_pipeline_chunks() -> None:
    rec = generate_recording(
        n_channels=4, n_units=3, duration_s=0.1, seed=0, firing_rates_hz=(50, 90)
    )
    chunks = list(rec.iter_chunks(chunk_samples=64, t0=100.0))
    data = np.concatenate([c.data for c, _ in chunks])
    np.testing.assert_array_equal(data, rec.traces)
    spikes = np.concatenate([s.spikes for _, s in chunks])
    np.testing.assert_array_equal(spikes, rec.spikes)
    first, last = chunks[0][0], chunks[-1][0]
    assert first.first_sample == 0 and first.t_lsl[0] == 100.0
    assert last.last_sample == rec.n_samples - 1 and chunks[-1][1].last_sample == rec.n_samples - 1
    for c, s in chunks:
        assert np.all(
            (s.spikes["sample_index"] >= c.first_sample)
            & (s.spikes["sample_index"] <= c.last_sample)
        )


def test_waveforms_widen_and_shrink_away_from_the_unit() -> None:
    rec = generate_recording(
        n_channels=32,
        n_units=1,
        duration_s=0.01,
        seed=3,
        noise_uv=0.0,
        unit_positions=[[0.0, 400.0, 20.0]],
    )
    tpl = rec.templates[0].astype(np.float64)
    near, far = 16, 24  # 0 and 200 um along the shank from the unit

    def trough_width(w: np.ndarray) -> int:
        return int(np.count_nonzero(w < w.min() / 2))  # samples below half the trough

    assert trough_width(tpl[:, far]) > trough_width(tpl[:, near])
    assert np.abs(tpl[:, far]).max() < 0.05 * np.abs(tpl[:, near]).max()


def test_generate_recording_reads_a_given_source_like_its_own():
    from bci.synthesis import SyntheticSource

    params = {"n_channels": 6, "n_units": 3, "seed": 9, "lfp": True}
    own = generate_recording(0.3, **params)
    given = generate_recording(0.3, source=SyntheticSource(**params))
    np.testing.assert_array_equal(own.traces, given.traces)
    np.testing.assert_array_equal(own.spikes, given.spikes)
    assert own.params == given.params and given.params["seed"] == 9
    with pytest.raises(ConfigError, match="make no sense with a given source"):
        generate_recording(0.3, source=SyntheticSource(**params), noise_uv=1.0)
