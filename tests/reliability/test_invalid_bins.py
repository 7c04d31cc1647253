"""A NaN/inf stretch or a gap in the signal is not silence: the bins that cover it are marked
invalid, the decoder holds its last value there (its state does not step), and the controller does
not act on them (the loop holds its last command; after ``invalid_hold_s`` it asks for
stimulation off).

Before, the bins covering a NaN burst reached the decoder as zero counts: a symptom decoder read
them as no activity and a controller acted on that fake silence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bci.features.binning import SpikeBinner
from bci.preprocessing.filters import BandPass
from bci.sorting.threshold import ThresholdCrossings
from bci.stream import BinnedChunk, SignalChunk, SpikeChunk, StateChunk, StreamSpec, empty_spikes
from decoders.stage import DecoderStage
from stimulation.controllers import ThresholdController

SFREQ = 30000.0
MODEL = Path(__file__).resolve().parents[2] / "decoders" / "models" / "symptom_gpi_beta.npz"


def _signal(seconds: float, n_channels: int = 4, seed: int = 0) -> np.ndarray:
    """Noise with a spike (a 1 ms, -200 uV dip) about every 10 ms on every channel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SFREQ)
    x = rng.normal(0.0, 10.0, (n, n_channels)).astype(np.float32)
    for c in range(n_channels):
        for start in np.arange(0, n - 60, 300) + rng.integers(
            0, 200, size=len(range(0, n - 60, 300))
        ):
            x[start : start + 30, c] -= 200.0
    return x


def _run(x: np.ndarray, chunk: int = 600, gap_at: int | None = None, gap: int = 0):
    """Band-pass, threshold crossings, 5 ms bins, the symptom decoder, a threshold controller."""
    stages = [
        BandPass(300.0, 6000.0),
        ThresholdCrossings(thresholds=np.full(x.shape[1], -80.0)),
        SpikeBinner(0.005),
        DecoderStage(MODEL),
    ]
    spec = StreamSpec("signal", x.shape[1], SFREQ)
    for stage in stages:
        spec = stage.prepare(spec)
    controller = ThresholdController(amplitude_ma=2.0, threshold=0.0, ramp_ma_per_s=1e6)
    controller.prepare(spec)
    binned: list[BinnedChunk] = []
    states: list[StateChunk] = []
    commands = []
    acted = []
    offset = 0
    for start in range(0, x.shape[0], chunk):
        if gap_at is not None and start == gap_at:
            offset += gap
        n = min(chunk, x.shape[0] - start)
        first = start + offset
        t = (first + np.arange(n)) / SFREQ
        y = SignalChunk(
            x[start : start + n], first, SFREQ, t, 0.0, gap if start == gap_at and gap else 0
        )
        y = stages[0].process(y)
        y = stages[1].process(y)
        b = stages[2].process(y)
        if b is None:
            continue
        binned.append(b)
        s = stages[3].process(b)
        states.append(s)
        before = controller.n_acted
        command = controller.process(s)
        acted.append(controller.n_acted - before)
        commands.append(command)
    return binned, states, commands, acted, controller


def _bins(binned: list[BinnedChunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first = np.concatenate([b.first_bin + np.arange(b.n_bins) for b in binned])
    counts = np.concatenate([b.counts.sum(axis=1) for b in binned])
    valid = np.concatenate([b.valid_mask for b in binned])
    return first, counts, valid


def test_the_bins_of_a_nan_burst_are_invalid_and_the_others_valid() -> None:
    x = _signal(1.0)
    a, b = int(0.4 * SFREQ), int(0.6 * SFREQ)  # 200 ms of NaN and inf
    x[a:b] = np.nan
    x[a + 100 : a + 200, 1] = np.inf
    binned, _, _, _, _ = _run(x)
    first, counts, valid = _bins(binned)
    bin_len = 0.005 * SFREQ
    touches = (first + 1) * bin_len > a
    touches &= first * bin_len < b
    assert not valid[touches].any()  # every bin that touches the burst
    # the band-pass settles within a few ms after the burst: bins well clear of it stay valid
    clear = ((first + 1) * bin_len < a - 30) | (first * bin_len > b + 30)
    assert valid[clear].all()
    assert counts[~valid].max() == 0  # the counts there would read as silence


def test_the_decoder_holds_and_the_controller_does_not_act_on_invalid_bins() -> None:
    x = _signal(1.2)
    a, b = int(0.5 * SFREQ), int(0.8 * SFREQ)  # 300 ms of NaN: longer than invalid_hold_s
    x[a:b] = np.nan
    _, states, commands, acted, controller = _run(x)
    values = np.concatenate([s.values[:, 0] for s in states])
    t = np.concatenate([s.t for s in states])
    valid = np.concatenate([s.valid_mask for s in states])
    assert (~valid).sum() >= int(0.3 / 0.005)
    # the decoder holds its last decoded value through the invalid rows (no fake silence)
    first_bad = int(np.flatnonzero(~valid)[0])
    held = values[first_bad - 1]
    assert np.all(values[~valid] == held)
    # the controller acted on no invalid row: it stepped only where some row was valid
    for s, n in zip(states, acted, strict=True):
        assert n == int(s.valid_mask.sum())
    # it made no command while invalid rows lasted less than invalid_hold_s (the loop holds the
    # last one), then asked for stimulation off
    bad_t = t[~valid]
    for s, command in zip(states, commands, strict=True):
        if s.valid_mask.any():
            continue
        since = s.t[-1] - bad_t[0]
        if since < controller.invalid_hold_s - 1e-9:
            assert command is None, (since, command)
        else:
            assert command is not None and command.amplitude_ma == 0.0, (since, command)
    # and acts again once valid bins come back
    assert acted[-1] > 0 and commands[-1] is not None


def test_samples_lost_in_a_gap_make_invalid_bins() -> None:
    x = _signal(0.6)
    binned, _, _, _, _ = _run(x, gap_at=int(0.3 * SFREQ), gap=int(0.05 * SFREQ))
    first, _, valid = _bins(binned)
    lost_from, lost_to = int(0.3 * SFREQ), int(0.35 * SFREQ)  # stream samples never delivered
    bin_len = 0.005 * SFREQ
    touches = ((first + 1) * bin_len > lost_from) & (first * bin_len < lost_to)
    assert touches.sum() >= 10 and not valid[touches].any()


def test_a_binner_marks_a_stretch_no_spike_chunk_covered() -> None:
    binner = SpikeBinner(0.01, n_units=1)
    binner.prepare(StreamSpec("spikes", 1, 1000.0))
    out1 = binner.process(SpikeChunk(empty_spikes(), 0, 49, 1000.0))
    out2 = binner.process(SpikeChunk(empty_spikes(), 80, 119, 1000.0))  # 50..79 never came
    assert out1 is not None and out1.valid is None
    assert out2 is not None
    assert out2.first_bin == 5 and out2.valid_mask.tolist() == [False] * 3 + [True] * 4
    assert binner.invalid_bins == 3


def test_an_online_sorter_reports_its_nan_stretches_so_their_bins_are_invalid() -> None:
    from bci.sorting import OnlineSorter
    from bci.synthesis import generate_recording

    rec = generate_recording(n_channels=16, n_units=4, duration_s=6.0, seed=2)
    x = (rec.traces - np.median(rec.traces, axis=0)).astype(np.float32)
    sorter = OnlineSorter(min_spikes=10, min_cluster_size=10).fit(x[: int(4 * SFREQ)], SFREQ)
    spec = sorter.prepare(StreamSpec("signal", x.shape[1], SFREQ))
    binner = SpikeBinner(0.005)
    binner.prepare(spec)
    y = x[int(4 * SFREQ) :].copy()
    a, b = int(0.5 * SFREQ), int(0.7 * SFREQ)
    y[a:b, 3] = np.nan  # 200 ms of NaN on one channel: the sorter zero-fills it
    binned = []
    for start in range(0, y.shape[0], 300):
        chunk = SignalChunk(y[start : start + 300], start, SFREQ, np.zeros(300), 0.0)
        out = binner.process(sorter.process(chunk))
        if out is not None:
            binned.append(out)
    first, _, valid = _bins(binned)
    bin_len = 0.005 * SFREQ
    touches = ((first + 1) * bin_len > a) & (first * bin_len < b)
    assert touches.sum() >= 40 and not valid[touches].any()
    assert valid[~touches].all()
