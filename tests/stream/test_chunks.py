import numpy as np
import pytest

from bci.stream import (
    SPIKE_DTYPE,
    BinnedChunk,
    ChunkError,
    SignalChunk,
    SpikeChunk,
    StateChunk,
    empty_spikes,
)


def _signal(n=10, ch=4, first=0):
    return SignalChunk(
        np.zeros((n, ch), np.float32), first, 30000.0, np.arange(n, dtype=np.float64) / 30000.0
    )


def test_signal_chunk_geometry():
    chunk = _signal(n=30, ch=8, first=300)
    assert (chunk.n_samples, chunk.n_channels) == (30, 8)
    assert chunk.last_sample == 329


def test_signal_chunk_refuses_wrong_layout():
    with pytest.raises(ChunkError, match="2-D"):
        SignalChunk(np.zeros(10, np.float32), 0, 30000.0, np.zeros(10))
    with pytest.raises(ChunkError, match="float32"):
        SignalChunk(np.zeros((10, 2)), 0, 30000.0, np.zeros(10))
    with pytest.raises(ChunkError, match="one timestamp per sample"):
        SignalChunk(np.zeros((10, 2), np.float32), 0, 30000.0, np.zeros(9))


def test_nan_rows_flags_only_bad_samples():
    data = np.zeros((5, 3), np.float32)
    data[2, 1] = np.nan
    chunk = SignalChunk(data, 0, 1000.0, np.zeros(5))
    assert chunk.nan_rows.tolist() == [False, False, True, False, False]


def test_spike_chunk_checks_dtype_and_span():
    spikes = empty_spikes(3)
    assert spikes.dtype == SPIKE_DTYPE
    assert SpikeChunk(spikes, 0, 99, 30000.0).n_spikes == 3
    SpikeChunk(empty_spikes(), 100, 99, 30000.0)  # an empty span is allowed
    with pytest.raises(ChunkError, match="SPIKE_DTYPE"):
        SpikeChunk(np.zeros(3), 0, 10, 30000.0)
    with pytest.raises(ChunkError, match="reversed"):
        SpikeChunk(spikes, 100, 50, 30000.0)


def test_binned_and_state_chunks_check_shapes():
    assert BinnedChunk(np.zeros((4, 7), np.float32), 12, 0.02).n_bins == 4
    with pytest.raises(ChunkError):
        BinnedChunk(np.zeros(4, np.float32), 0, 0.02)
    with pytest.raises(ChunkError, match="one time per row"):
        StateChunk(np.zeros((3, 2), np.float32), np.zeros(4))
