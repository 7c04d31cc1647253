"""SpikeBinner: counts equal np.histogram for any chunking, bins emitted only when complete."""

from __future__ import annotations

import numpy as np
import pytest

from bci.features import BinningError, SpikeBinner
from bci.stream import SPIKE_DTYPE, SpikeChunk, StreamSpec, stage_from_dict

SFREQ = 30_000.0


def make_spikes(rng: np.random.Generator, n_samples: int, n_units: int, k: int) -> np.ndarray:
    spikes = np.zeros(k, SPIKE_DTYPE)
    spikes["sample_index"] = np.sort(rng.integers(0, n_samples, k))
    spikes["unit_index"] = rng.integers(-1, n_units, k)
    return spikes


def feed(binner: SpikeBinner, spikes: np.ndarray, edges: np.ndarray) -> list:
    outs = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        sel = spikes[(spikes["sample_index"] >= a) & (spikes["sample_index"] < b)]
        out = binner.process(SpikeChunk(sel, int(a), int(b) - 1, SFREQ))
        if out is not None:
            outs.append(out)
    return outs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bin_s", [0.02, 0.0333, 0.001])
def test_counts_equal_histogram_for_any_chunking(seed: int, bin_s: float) -> None:
    rng = np.random.default_rng(seed)
    n, n_units = int(2.0 * SFREQ), 5
    spikes = make_spikes(rng, n, n_units, 2000)
    edges = np.r_[0, np.sort(rng.choice(np.arange(1, n), 80, replace=False)), n]
    binner = SpikeBinner(bin_s, count_unsorted=True)
    spec = binner.prepare(StreamSpec("spikes", n_units, SFREQ))
    assert spec.kind == "binned" and spec.n_channels == n_units + 1
    outs = feed(binner, spikes, edges)
    counts = np.vstack([o.counts for o in outs])
    assert outs[0].first_bin == 0
    assert [o.first_bin for o in outs[1:]] == list(np.cumsum([o.n_bins for o in outs])[:-1])
    n_complete = int(np.floor(n / (bin_s * SFREQ)))
    assert counts.shape == (n_complete, n_units + 1)
    bin_edges = np.arange(n_complete + 1) * round(bin_s * SFREQ, 9)  # edges in samples
    for unit in range(-1, n_units):
        samples = spikes["sample_index"][spikes["unit_index"] == unit]
        expected, _ = np.histogram(samples, bins=bin_edges)
        np.testing.assert_array_equal(counts[:, unit], expected)


def test_returns_none_until_a_bin_completes() -> None:
    binner = SpikeBinner(0.01, n_units=2)  # 300 samples
    spike = np.zeros(1, SPIKE_DTYPE)
    spike["sample_index"], spike["unit_index"] = 10, 1
    assert binner.process(SpikeChunk(spike, 0, 149, SFREQ)) is None
    assert binner.process(SpikeChunk(spike[:0], 150, 298, SFREQ)) is None
    out = binner.process(SpikeChunk(spike[:0], 299, 299, SFREQ))
    assert out is not None and out.first_bin == 0
    np.testing.assert_array_equal(out.counts, [[0.0, 1.0]])


def test_unsorted_ignored_by_default_and_bad_unit_refused() -> None:
    spikes = np.zeros(3, SPIKE_DTYPE)
    spikes["sample_index"] = [1, 2, 3]
    spikes["unit_index"] = [-1, 0, 0]
    out = SpikeBinner(0.01, n_units=1).process(SpikeChunk(spikes, 0, 299, SFREQ))
    np.testing.assert_array_equal(out.counts, [[2.0]])
    spikes["unit_index"][2] = 4
    with pytest.raises(BinningError, match="1 units.*unit 4"):
        SpikeBinner(0.01, n_units=1).process(SpikeChunk(spikes, 0, 299, SFREQ))
    with pytest.raises(BinningError, match="n_units"):
        SpikeBinner(0.01).process(SpikeChunk(spikes, 0, 299, SFREQ))


def test_stream_starting_mid_way_and_round_trip() -> None:
    binner = SpikeBinner(0.02, n_units=3, count_unsorted=True)
    out = binner.process(SpikeChunk(np.zeros(0, SPIKE_DTYPE), 90_000, 91_799, SFREQ))
    assert out.first_bin == 150 and out.n_bins == 3
    rebuilt = stage_from_dict(binner.to_dict())
    assert isinstance(rebuilt, SpikeBinner) and rebuilt.to_dict() == binner.to_dict()
