"""ArtifactBlanker: exact windows for given pulses across chunk edges, delay, detection, template."""

from __future__ import annotations

import numpy as np
import pytest

from bci.errors import BCIError, StageCompatibilityError
from bci.preprocessing import ArtifactBlanker
from bci.stream import SignalChunk, StreamSpec, stage_from_dict

SFREQ = 30_000.0
PRE, POST = 6, 45  # default window (-0.2, 1.5) ms at 30 kHz


def stream(
    stage: ArtifactBlanker, x: np.ndarray, sizes, before_chunk=None
) -> tuple[np.ndarray, int]:
    outs, start = [], 0
    for i, size in enumerate(sizes):
        if before_chunk is not None:
            before_chunk(i, start, stage)
        data = np.ascontiguousarray(x[start : start + size], dtype=np.float32)
        res = stage.process(SignalChunk(data, start, SFREQ, np.arange(start, start + size) / SFREQ))
        if res is not None:
            outs.append(res)
        start += size
    for a, b in zip(outs, outs[1:], strict=False):
        assert b.first_sample == a.first_sample + a.n_samples  # contiguous, true indices
        np.testing.assert_array_equal(b.t_lsl, np.arange(b.first_sample, b.last_sample + 1) / SFREQ)
    return np.vstack([o.data for o in outs]), outs[0].first_sample


def window_mask(n: int, pulses) -> np.ndarray:
    mask = np.zeros(n, bool)
    for p in pulses:
        mask[max(p - PRE, 0) : p + POST + 1] = True
    return mask


def test_zero_blanks_exactly_the_windows_across_chunk_edges() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.normal(5, 1, (n, 4)).astype(np.float32)
    pulses = [100, 1000, 1003 + 400, 5000, 12_345]
    sizes = [30] * (n // 30) + [n % 30]  # 1 ms chunks: every window straddles edges
    blanker = ArtifactBlanker(mode="zero")
    blanker.add_pulses(pulses)
    y, first = stream(blanker, x, sizes)
    assert first == 0 and len(y) == n - blanker.delay_samples == n - PRE
    mask = window_mask(len(y), pulses)
    assert np.all(y[mask] == 0.0)
    np.testing.assert_array_equal(y[~mask], x[: len(y)][~mask])


def test_pulse_announced_at_its_onset_is_fully_blanked() -> None:
    # The runner learns of a pulse when it is sent: at the chunk that holds its onset.
    rng = np.random.default_rng(1)
    n = 9000
    x = rng.normal(0, 1, (n, 2)).astype(np.float32)
    pulses = [1234, 4567, 8001]

    def announce(i: int, start: int, stage: ArtifactBlanker) -> None:
        stage.add_pulses([p for p in pulses if start <= p < start + 30])

    blanker = ArtifactBlanker()
    y, _ = stream(blanker, x, [30] * (n // 30), announce)
    mask = window_mask(len(y), pulses)
    assert np.all(y[mask] == 0.0) and blanker.late_pulses == 0
    np.testing.assert_array_equal(y[~mask], x[: len(y)][~mask])


def test_late_pulse_blanks_only_what_is_left() -> None:
    x = np.ones((600, 1), np.float32)
    blanker = ArtifactBlanker()
    y1, _ = stream(blanker, x[:300], [300])
    blanker.add_pulses([290])  # window 284..335; 0..293 already emitted
    res = blanker.process(SignalChunk(x[300:], 300, SFREQ, np.zeros(300)))
    assert blanker.late_pulses == 1
    assert np.all(y1 == 1.0)
    np.testing.assert_array_equal(res.data[: 335 - 294 + 1, 0], 0.0)
    assert res.data[335 - 294 + 1, 0] == 1.0


@pytest.mark.parametrize("mode", ["hold", "interpolate-causal"])
def test_hold_and_interpolate_have_no_steps(mode: str) -> None:
    n = 3000
    ramp = np.linspace(0, 300, n, dtype=np.float32)[:, None]
    x = ramp.copy()
    x[1000:1030] += 5000.0  # artifact
    blanker = ArtifactBlanker(mode=mode)  # type: ignore[arg-type]
    blanker.add_pulses([1000])
    y, _ = stream(blanker, x, [30] * 100)
    w = y[1000 - PRE : 1000 + POST + 1, 0]
    assert w.max() < 301.0
    if mode == "hold":
        assert np.all(w == x[1000 - PRE - 1, 0])
    else:
        np.testing.assert_allclose(w, ramp[1000 - PRE : 1000 + POST + 1, 0], atol=1e-3)
        assert blanker.delay_samples == PRE + POST + 1


def test_detection_finds_pulses_not_spikes() -> None:
    rng = np.random.default_rng(2)
    n = 60_000
    x = rng.normal(0, 5, (n, 16)).astype(np.float32)
    pulses = np.arange(500, n - 100, 231)  # 130 Hz
    for p in pulses:
        x[p : p + 3] += np.array([1500, -1500, 400], np.float32)[:, None]
    for s in rng.integers(0, n - 40, 200):  # big spikes on two channels only
        x[s : s + 10, 3:5] -= 300.0
    blanker = ArtifactBlanker(detect_threshold=20.0)
    y, _ = stream(blanker, x, [30] * (n // 30))
    np.testing.assert_array_equal(blanker.pulses_seen, pulses)
    assert np.abs(y[window_mask(len(y), pulses)]).max() == 0.0


def test_template_subtraction_recovers_the_tail() -> None:
    rng = np.random.default_rng(3)
    n = 60_000
    x = rng.normal(0, 5, (n, 4)).astype(np.float32)
    tail = (800 * np.exp(-np.arange(POST + 1) / 10.0)).astype(np.float32)
    pulses = np.arange(300, n - 100, 231)
    for p in pulses:
        x[p : p + POST + 1] += tail[:, None]
    blanker = ArtifactBlanker(subtract_template=True, blank_core_ms=(-0.2, 0.3))
    blanker.add_pulses(pulses)
    y, _ = stream(blanker, x, [30] * (n // 30))
    late = [np.arange(p + 10, p + POST + 1) for p in pulses[50:200]]
    residual = y[np.concatenate(late)]
    assert residual.std() < 8.0  # noise is 5; without subtraction the tail is up to 300
    assert np.all(y[pulses[60] - PRE : pulses[60] + 10] == 0.0)  # core still blanked


def test_checks_and_round_trip() -> None:
    with pytest.raises(BCIError, match="mode"):
        ArtifactBlanker(mode="cut")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window_ms"):
        ArtifactBlanker(window_ms=(0.5, 1.0))
    blanker = ArtifactBlanker((-0.1, 2.0), "hold", detect_threshold=15.0)
    assert stage_from_dict(blanker.to_dict()).to_dict() == blanker.to_dict()
    spec = blanker.prepare(StreamSpec("signal", 3, SFREQ))
    assert spec == StreamSpec("signal", 3, SFREQ) and blanker.delay_samples == 3
    with pytest.raises(StageCompatibilityError, match="3 channels.*2 channels"):
        blanker.process(SignalChunk(np.zeros((5, 2), np.float32), 0, SFREQ, np.zeros(5)))


def test_gap_drops_held_back_samples_and_reports_them() -> None:
    x = np.arange(200, dtype=np.float32)[:, None]
    blanker = ArtifactBlanker()
    first = blanker.process(SignalChunk(x[:100], 0, SFREQ, np.zeros(100)))
    second = blanker.process(SignalChunk(x[150:], 150, SFREQ, np.zeros(50), gap_before=50))
    assert first.first_sample == 0 and first.n_samples == 100 - PRE
    assert second.first_sample == 150 and second.n_samples == 50 - PRE
    assert second.gap_before == 50 + PRE
    np.testing.assert_array_equal(second.data[:, 0], x[150 : 200 - PRE, 0])
