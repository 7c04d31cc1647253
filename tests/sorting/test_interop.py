"""Spikes to SpikeInterface sortings and neo spike trains, and back."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import quantities as pq

from bci.errors import ConfigError
from bci.sorting.interop import from_neo, from_spikeinterface, to_neo, to_spikeinterface
from bci.sorting.threshold import ThresholdCrossings
from bci.stream import SPIKE_DTYPE, UNSORTED, SignalChunk
from bci.synthesis import generate_recording

SFREQ = 30_000.0


@pytest.fixture(scope="module")
def spikes() -> np.ndarray:
    """Ground-truth spikes of 5 units plus unsorted detections mixed in, sorted by sample."""
    rec = generate_recording(n_channels=8, n_units=5, duration_s=2.0, seed=7)
    rng = np.random.default_rng(7)
    unsorted = np.zeros(40, SPIKE_DTYPE)
    unsorted["sample_index"] = rng.integers(0, rec.n_samples, 40)
    unsorted["unit_index"] = UNSORTED
    unsorted["channel_index"] = rng.integers(0, 8, 40)
    unsorted["amplitude"] = rng.normal(-60.0, 5.0, 40)
    both = np.concatenate([rec.spikes, unsorted])
    return both[np.argsort(both["sample_index"], kind="stable")]


def per_unit(spikes: np.ndarray) -> dict[int, np.ndarray]:
    return {
        int(u): np.sort(spikes["sample_index"][spikes["unit_index"] == u])
        for u in np.unique(spikes["unit_index"])
    }


def test_spikeinterface_round_trip(spikes: np.ndarray) -> None:
    sorting = to_spikeinterface(spikes, SFREQ)
    sorted_only = spikes[spikes["unit_index"] != UNSORTED]
    expected = per_unit(sorted_only)
    assert list(sorting.unit_ids) == sorted(expected)
    assert sorting.get_sampling_frequency() == SFREQ
    for unit, train in expected.items():
        np.testing.assert_array_equal(sorting.get_unit_spike_train(unit), train)
    back = from_spikeinterface(sorting)
    np.testing.assert_array_equal(back["sample_index"], sorted_only["sample_index"])
    assert per_unit(back).keys() == expected.keys()
    for unit, train in per_unit(back).items():
        np.testing.assert_array_equal(train, expected[unit])
    assert np.all(back["channel_index"] == -1) and np.all(np.isnan(back["amplitude"]))


def test_spikeinterface_unsorted_and_unit_ids(spikes: np.ndarray) -> None:
    with_unsorted = to_spikeinterface(spikes, SFREQ, include_unsorted=True)
    assert UNSORTED in list(with_unsorted.unit_ids)
    assert with_unsorted.get_unit_spike_train(UNSORTED).size == 40
    # an empty unit is kept; spikes of units not asked for are left out, not relabelled
    chosen = to_spikeinterface(spikes, SFREQ, unit_ids=[3, 1, 99])
    assert list(chosen.unit_ids) == [3, 1, 99]
    assert chosen.get_unit_spike_train(99).size == 0
    total = sum(chosen.get_unit_spike_train(u).size for u in chosen.unit_ids)
    assert total == int(np.isin(spikes["unit_index"], [1, 3]).sum())
    with pytest.raises(ConfigError, match="unit_ids"):
        to_spikeinterface(spikes, SFREQ, unit_ids=[1, 1])


def test_neo_trains(spikes: np.ndarray) -> None:
    trains = to_neo(spikes, SFREQ, t_start=2.0)
    expected = per_unit(spikes[spikes["unit_index"] != UNSORTED])
    assert [t.annotations["unit_id"] for t in trains] == sorted(expected)
    last = int(spikes["sample_index"][spikes["unit_index"] != UNSORTED].max())
    for train in trains:
        unit = train.annotations["unit_id"]
        assert train.units == pq.s
        assert float(train.t_start) == 2.0
        assert float(train.t_stop) == pytest.approx(2.0 + (last + 1) / SFREQ)
        np.testing.assert_allclose(train.magnitude, 2.0 + expected[unit] / SFREQ)
        mine = spikes[spikes["unit_index"] == unit]
        np.testing.assert_array_equal(
            train.array_annotations["channel_index"], mine["channel_index"]
        )
        np.testing.assert_allclose(train.array_annotations["amplitude"], mine["amplitude"])
        assert float(train.sampling_rate.rescale("Hz")) == SFREQ
    back = from_neo(trains, SFREQ)
    np.testing.assert_array_equal(back, spikes[spikes["unit_index"] != UNSORTED])


def test_neo_t_stop(spikes: np.ndarray) -> None:
    trains = to_neo(spikes, SFREQ, t_stop=10.0, unit_ids=[0, 42])
    assert [float(t.t_stop) for t in trains] == [10.0, 10.0]
    assert len(trains[1]) == 0 and trains[1].annotations["unit_id"] == 42
    with pytest.raises(ConfigError, match="t_stop"):
        to_neo(spikes, SFREQ, t_stop=0.5)
    assert to_neo(spikes[:0], SFREQ, unit_ids=[0])[0].t_stop == 0.0 * pq.s


def test_threshold_crossing_chunks_convert() -> None:
    rec = generate_recording(n_channels=4, n_units=2, duration_s=1.0, seed=2, noise_uv=5.0)
    tc = ThresholdCrossings(thresholds=np.full(4, -25.0))
    chunks = []
    for start in range(0, rec.n_samples, 300):
        data = rec.traces[start : start + 300]
        out = tc.process(SignalChunk(data, start, SFREQ, np.zeros(len(data))))
        assert out is not None
        chunks.append(out)
    flat = np.concatenate([c.spikes for c in chunks])
    assert flat.size > 0
    sorting = to_spikeinterface(chunks, SFREQ, unit_ids=range(4))
    trains = to_neo(chunks, SFREQ, t_stop=rec.duration_s, unit_ids=range(4))
    for channel in range(4):
        mine = flat["sample_index"][flat["channel_index"] == channel]
        np.testing.assert_array_equal(sorting.get_unit_spike_train(channel), mine)
        assert len(trains[channel]) == mine.size


def test_bad_input_and_missing_package(spikes: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="SPIKE_DTYPE"):
        to_spikeinterface(np.zeros(3), SFREQ)
    with pytest.raises(ConfigError, match="sfreq"):
        to_neo(spikes, 0.0)
    monkeypatch.setitem(sys.modules, "spikeinterface.core", None)
    with pytest.raises(ImportError, match="pip install spikeinterface"):
        to_spikeinterface(spikes, SFREQ)
