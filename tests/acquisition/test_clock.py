"""SampleClock: the gap-aware dejitter behind LSLSource, fed synthetic stamps (no LSL needed)."""

from __future__ import annotations

import numpy as np
import pytest

from bci import ConfigError
from bci.acquisition.clock import SampleClock, deduced_from_zero


def feed(clock: SampleClock, k: int, stamps: np.ndarray) -> int:
    """Judge and add one chunk whose first sample is expected at ``k``; return the gap found."""
    verdict = clock.judge(k, float(stamps[0]))
    first = k + max(verdict.gap, 0)
    clock.update(first, stamps.size, float(stamps.mean()))
    return verdict.gap


def test_tracks_a_device_clock_that_runs_fast() -> None:
    """A 30 kHz amplifier whose crystal is 100 ppm fast: the fitted rate follows it."""
    sfreq, true_rate = 30000.0, 30000.0 * (1 + 100e-6)
    clock = SampleClock(sfreq, halftime_s=30.0)
    rng = np.random.default_rng(0)
    t0 = 5000.0
    for i in range(6000):  # 60 s of 10 ms chunks, push jitter up to 0.5 ms
        k = i * 300
        stamps = t0 + (k + np.arange(300)) / true_rate + rng.uniform(0, 0.5e-3)
        assert feed(clock, k, stamps) == 0
    assert 1 / clock.period_s == pytest.approx(true_rate, rel=5e-6)
    # Its prediction of the next sample is within the jitter, not 100 ppm x 60 s = 6 ms off.
    k_next = 6000 * 300
    assert abs(clock.predict(k_next) - (t0 + k_next / true_rate + 0.25e-3)) < 0.2e-3


def test_finds_a_single_missing_sample_when_stamps_are_exact() -> None:
    sfreq = 1000.0
    clock = SampleClock(sfreq)
    expected, true_index = 0, 0
    gaps = []
    for i in range(300):
        if i == 250:
            true_index += 1  # the device skipped one sample
        gap = feed(clock, expected, 100.0 + (true_index + np.arange(10)) / sfreq)
        gaps.append(gap)
        expected += max(gap, 0) + 10
        true_index += 10
    assert gaps[250] == 1 and sum(gaps) == 1
    assert expected == true_index


def test_tolerance_follows_observed_jitter() -> None:
    """Pushes stamped up to 2 ms late: a 3 ms late push is jitter, 20 missing samples a gap."""
    sfreq = 1000.0
    clock = SampleClock(sfreq)
    rng = np.random.default_rng(3)
    for i in range(200):
        late = rng.uniform(0, 2e-3)
        assert feed(clock, i * 10, 100.0 + (i * 10 + np.arange(10)) / sfreq + late) == 0
    assert 2e-3 < clock.threshold_s() < 6e-3
    assert feed(clock, 2000, 100.0 + (2000 + np.arange(10)) / sfreq + 3e-3) == 0
    gap = feed(clock, 2010, 100.0 + (2030 + np.arange(10)) / sfreq + 1e-3)
    assert gap == 20  # the whole-sample part of the residual; the 1 ms rest is jitter
    # the numbering after the gap continues from the true index: the next chunk is on time
    for k in range(2040, 2100, 10):
        assert feed(clock, k, 100.0 + (k + np.arange(10)) / sfreq + rng.uniform(0, 2e-3)) == 0
    # With exact stamps the tolerance shrinks to half a sample.
    quiet = SampleClock(sfreq)
    for i in range(500):
        feed(quiet, i * 10, 100.0 + (i * 10 + np.arange(10)) / sfreq)
    assert quiet.threshold_s() == 0.5 / sfreq


def test_stamps_jumping_back_restart_the_fit() -> None:
    sfreq = 500.0
    clock = SampleClock(sfreq)
    for i in range(50):
        feed(clock, i * 10, 10.0 + (i * 10 + np.arange(10)) / sfreq)
    verdict = clock.judge(500, 5.0)
    assert verdict.gap < 0 and not clock.anchored
    clock.update(500, 10, 5.0)
    assert clock.predict(501) == pytest.approx(5.0 + 1 / sfreq * (1 - 4.5), abs=1e-9)


def test_first_break_splits_a_block_at_the_gap() -> None:
    sfreq = 1000.0
    clock = SampleClock(sfreq)
    feed(clock, 0, 100.0 + np.arange(10) / sfreq)
    index = np.r_[np.arange(10, 40), np.arange(60, 90)]
    stamps = 100.0 + index / sfreq
    assert clock.judge(10, stamps[0]).gap == 0
    assert clock.first_break(stamps, 10) == 30
    assert clock.first_break(stamps[:30], 10) == 30


def test_parameters_checked() -> None:
    with pytest.raises(ConfigError, match="'sfreq'"):
        SampleClock(0.0)
    with pytest.raises(ConfigError, match="'gap_threshold_s'"):
        SampleClock(1000.0, gap_threshold_s=-1.0)


def test_stamps_liblsl_deduced_from_zero_are_told_from_real_ones() -> None:
    """liblsl's stamps before its first real one run 1, 2, 3... periods from 0 (issue 161)."""
    period = 1 / 30000
    real = 63127.486 + np.arange(10) * period
    deduced = np.arange(1, 7) * period
    assert deduced_from_zero(real, period) == 0
    assert deduced_from_zero(np.r_[deduced, real], period) == 6
    assert deduced_from_zero(deduced, period) == 6  # the whole pull: wait for a real one
    # the run goes on in the next pull from where it stopped, and only from there
    assert deduced_from_zero(np.r_[np.arange(7, 9) * period, real], period, before=6) == 2
    assert deduced_from_zero(np.arange(1, 3) * period, period, before=6) == 0
    assert deduced_from_zero(np.empty(0), period) == 0
