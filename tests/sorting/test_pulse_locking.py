"""Stimulation-locked clusters: the locking statistic, and the sorter rejecting artifact units."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from bci.sorting import sort_recording
from bci.sorting.pulses import is_pulse_locked, pulse_locking, pulse_mask
from bci.synthesis import generate_recording

SFREQ = 30_000.0
N = int(30 * SFREQ)
PULSES = np.arange(150, N - 300, int(SFREQ / 130.0)).astype(np.int64)  # 130 Hz DBS
#: the sorter's calibration window around each pulse (-0.5 to 3 ms): no spike is taken there
AVAILABLE = pulse_mask(PULSES, 0, N, (-15, 90)) == 0
HORIZON = 600


def _poisson(rng: np.random.Generator, rate_hz: float) -> npt.NDArray[np.int64]:
    """A neuron that ignores the stimulator, seen where the sorter can see spikes."""
    t = np.flatnonzero(rng.random(N) < rate_hz / SFREQ)
    return t[AVAILABLE[t]]


def _locked(
    rng: np.random.Generator, pulses: npt.NDArray[np.int64], latency: int, fraction: float
) -> npt.NDArray[np.int64]:
    """Artifact residue: a peak ``latency`` samples (+- 3) after a fraction of the pulses."""
    chosen = pulses[rng.random(pulses.size) < fraction]
    return chosen + latency + rng.integers(-3, 4, chosen.size)


def test_independent_unit_is_not_locked() -> None:
    rng = np.random.default_rng(0)
    for rate in (2.0, 10.0, 40.0):  # from a few dozen to ~700 spikes
        stat = pulse_locking(_poisson(rng, rate), PULSES, AVAILABLE, HORIZON)
        assert stat.distance < 0.15
        assert not is_pulse_locked(stat)


def test_residue_locked_to_pulses_is_locked() -> None:
    rng = np.random.default_rng(1)
    for fraction in (0.02, 0.3):  # ~70 and ~1200 spikes, all 3.5 ms after a pulse
        stat = pulse_locking(_locked(rng, PULSES, 105, fraction), PULSES, AVAILABLE, HORIZON)
        assert stat.distance > 0.5
        assert stat.p_value < 1e-10
        assert is_pulse_locked(stat)


def test_locking_to_irregular_pulses_is_found() -> None:
    """Pulses at random intervals (closed-loop stimulation): a fixed latency still stands out."""
    rng = np.random.default_rng(2)
    pulses = np.sort(rng.choice(np.arange(1000, N - 1000), size=300, replace=False))
    available = pulse_mask(pulses, 0, N, (-15, 90)) == 0
    locked = pulse_locking(_locked(rng, pulses, 120, 0.5), pulses, available, HORIZON)
    assert is_pulse_locked(locked)
    t = np.flatnonzero(rng.random(N) < 10.0 / SFREQ)
    free = pulse_locking(t[available[t]], pulses, available, HORIZON)
    assert not is_pulse_locked(free)


def test_partly_driven_unit_is_kept() -> None:
    """A neuron with a fifth of its spikes at a fixed latency is significant but kept: only
    units made mostly of pulse-locked events are treated as artifacts."""
    rng = np.random.default_rng(3)
    free = _poisson(rng, 20.0)
    driven = _locked(rng, PULSES, 150, free.size / 4 / PULSES.size)
    stat = pulse_locking(np.concatenate([free, driven]), PULSES, AVAILABLE, HORIZON)
    assert stat.p_value < 1e-3
    assert not is_pulse_locked(stat)


def test_no_spikes_or_no_pulses_is_not_locked() -> None:
    empty = np.zeros(0, np.int64)
    assert pulse_locking(empty, PULSES, AVAILABLE, HORIZON).p_value == 1.0
    assert pulse_locking(PULSES + 100, empty, AVAILABLE, HORIZON).p_value == 1.0


# -- the sorter -------------------------------------------------------------------------------------
def _accuracy(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], tol: int = 12) -> float:
    if found.size == 0:
        return 0.0
    i = np.clip(np.searchsorted(found, truth), 1, max(found.size - 1, 1))
    near = np.minimum(np.abs(found[i] - truth), np.abs(found[i - 1] - truth)) <= tol
    hits = int(near.sum())
    return hits / (truth.size + found.size - hits)


@pytest.fixture(scope="module")
def stimulated() -> tuple:
    """Four units under 130 Hz stimulation whose pulses also leave a late, spike-like transient
    (60 uV, 4 ms after half of the pulses, on the contacts at the far end of the probe): past
    every window the blanker and the sorter skip, so calibration clusters it into a "unit"."""
    unit_positions = np.column_stack([np.zeros(4), 80.0 + 130.0 * np.arange(4), np.full(4, 20.0)])
    rec = generate_recording(
        n_channels=32,
        n_units=4,
        unit_positions=unit_positions,
        duration_s=12.0,
        seed=11,
        amplitude_uv=(90.0, 180.0),
        firing_rates_hz=(8.0, 15.0),
        artifact_rate_hz=130.0,
        artifact_start_s=0.01,
    )
    rng = np.random.default_rng(4)
    traces = rec.traces.copy()
    t = np.arange(-15, 30)
    wave = -60.0 * np.exp(-0.5 * (t / 4.0) ** 2) + 20.0 * np.exp(-0.5 * ((t - 12) / 6.0) ** 2)
    gain = np.exp(-0.5 * ((np.arange(32) - 30) / 1.5) ** 2)
    pulses = rec.artifact_samples
    evoked = pulses[rng.random(pulses.size) < 0.5] + 120
    evoked = evoked[evoked + 30 < len(traces)]
    for e in evoked:
        traces[e - 15 : e + 30] += (wave[:, None] * gain[None, :]).astype(np.float32)
    return rec, traces, pulses, evoked


def _locked_units(spikes: npt.NDArray[np.void], evoked: npt.NDArray[np.int64]) -> list[int]:
    """Units with most of their spikes within 0.5 ms of a late artifact transient."""
    out = []
    for unit in np.unique(spikes["unit_index"][spikes["unit_index"] >= 0]):
        t = spikes["sample_index"][spikes["unit_index"] == unit]
        i = np.clip(np.searchsorted(evoked, t), 1, evoked.size - 1)
        near = np.minimum(np.abs(evoked[i] - t), np.abs(evoked[i - 1] - t)) <= 15
        if near.mean() > 0.5:
            out.append(int(unit))
    return out


def test_sorter_rejects_pulse_locked_clusters_and_keeps_units(stimulated: tuple) -> None:
    rec, traces, pulses, evoked = stimulated
    kwargs = {"calibration_s": 6, "pulses": pulses}
    # the data does make an artifact unit when the test is switched off ...
    kept = sort_recording(traces, SFREQ, rec.positions, reject_pulse_locked=False, **kwargs)
    assert _locked_units(kept, evoked)
    # ... and none with the default, while every real unit is still found
    spikes = sort_recording(traces, SFREQ, rec.positions, **kwargs)
    assert not _locked_units(spikes, evoked)
    for unit in range(rec.n_units):
        truth = rec.spikes["sample_index"][rec.spikes["unit_index"] == unit]
        best = max(
            _accuracy(np.sort(spikes["sample_index"][spikes["unit_index"] == k]), truth)
            for k in np.unique(spikes["unit_index"][spikes["unit_index"] >= 0])
        )
        assert best >= 0.8, f"unit {unit}: accuracy {best:.2f}"
