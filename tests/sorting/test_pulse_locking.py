"""Stimulation-locked clusters: the locking statistic, and the sorter rejecting artifact units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bci.sorting import OnlineSorter, sort_recording
from bci.sorting.locking import LockingMonitor, is_pulse_locked, pulse_locking
from bci.sorting.pipeline import _calibrate, _chunks, _preprocessing, _run_preprocessing
from bci.sorting.pulses import pulse_mask
from bci.synthesis import generate_recording

SFREQ = 30_000.0
N = int(30 * SFREQ)
PULSES = np.arange(150, N - 300, int(SFREQ / 130.0)).astype(np.int64)  # 130 Hz DBS
#: the sorter's calibration window around each pulse (-0.5 to 3 ms): no spike is taken there
AVAILABLE = pulse_mask(PULSES, 0, N, (-15, 90)) == 0
HORIZON = 600


def _poisson(
    rng: np.random.Generator, rate_hz: float, available: npt.NDArray[np.bool_] = AVAILABLE
) -> npt.NDArray[np.int64]:
    """A neuron that ignores the stimulator, seen where the sorter can see spikes."""
    t = np.flatnonzero(rng.random(N) < rate_hz / SFREQ)
    return t[available[t]]


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


def test_monitor_flags_the_unit_that_becomes_locked() -> None:
    rng = np.random.default_rng(5)
    monitor = LockingMonitor(3, HORIZON, (-6, 15))
    monitor.add_pulses(PULSES)
    online = pulse_mask(PULSES, 0, N, (-6, 15)) == 0  # online, only the pulse itself is skipped
    free = _poisson(rng, 15.0, online)
    locked = _locked(rng, PULSES, 40, 0.05)
    late = _poisson(rng, 15.0, online)
    late = np.concatenate([late[late < N // 2], _locked(rng, PULSES[PULSES > N // 2], 40, 0.2)])
    times = np.concatenate([free, locked, late])
    units = np.repeat([0, 1, 2], [free.size, locked.size, late.size])
    order = np.argsort(times, kind="stable")
    times, units = times[order], units[order]
    flagged_at: dict[int, int] = {}
    for first in range(0, N, 3000):  # 100 ms spans, as a sorter emits them
        sel = (times >= first) & (times < first + 3000)
        monitor.observe(first, first + 2999, times[sel], units[sel])
        for k in np.flatnonzero(monitor.locked):
            flagged_at.setdefault(int(k), first)
    assert sorted(flagged_at) == [1, 2]
    assert flagged_at[1] < 8 * SFREQ  # 6.5 spikes/s: at its first or second test (25 spikes)
    assert flagged_at[2] > N // 2  # only once its spikes do lock


def test_sorter_unlabels_a_unit_that_locks_online(stimulated: tuple, tmp_path: Path) -> None:
    """A bank calibrated without the test: the online monitor finds the artifact unit."""
    rec, traces, pulses, evoked = stimulated
    stages = _preprocessing(True, "median")
    sorter = OnlineSorter(reject_pulse_locked=False)
    n_cal = int(6 * SFREQ)
    _calibrate(traces[:n_cal], SFREQ, rec.positions, 10.0, stages, sorter, pulses)
    artifact = _locked_units(
        sort_recording(
            traces[:n_cal],
            SFREQ,
            rec.positions,
            calibration_s=6,
            pulses=pulses,
            reject_pulse_locked=False,
        ),
        evoked,
    )
    sorter = OnlineSorter.load(sorter.save(tmp_path / "bank.npz"), reject_pulse_locked=True)
    parts = []
    for chunk in _chunks(traces, SFREQ, n_cal, traces.shape[0], 300):
        out = _run_preprocessing(stages, chunk, pulses, sorter)
        if out is not None:
            parts.append(sorter.process(out).spikes)
    parts.append(sorter.flush().spikes)
    spikes = np.concatenate(parts)
    assert artifact and sorter.pulse_locked_units == artifact
    late = spikes[spikes["sample_index"] > traces.shape[0] - int(2 * SFREQ)]
    assert not np.isin(late["unit_index"], sorter.pulse_locked_units).any()
    assert len(sorter.pulse_locked_units) < sorter.n_units  # the real units stay
