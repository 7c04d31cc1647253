"""The soak of issue 14 as a test: a 30-minute lockstep closed loop (``soak_loop``) keeps its
memory (growth < 5% after a 2-minute warm-up), its latency (p99 of the last 5 minutes within 10%
of the first 5), every sample and a complete recording. ``benchmarks/soak.py`` prints the curve.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from soak_loop import soak


def _check(r) -> None:  # type: ignore[no-untyped-def]
    assert r.periods > 0 and r.commands > 0
    for process, growth in r.memory_growth.items():
        assert growth < 0.05, f"{process} grew {100 * growth:.1f}% after the warm-up"
    assert abs(r.p99_drift) <= 0.10, (r.p99_first_ms, r.p99_last_ms)
    assert r.gaps == 0 and r.gap_samples == 0
    assert r.recording_complete, (r.samples_recorded, r.last_stamp_lag_s)


@pytest.mark.slow
@pytest.mark.timeout(45 * 60)
def test_a_30_minute_lockstep_loop_keeps_its_memory_latency_and_samples(tmp_path: Path) -> None:
    logging.getLogger("bci").setLevel(logging.ERROR)
    _check(soak(30 * 60.0, folder=tmp_path, sample_s=10.0))


def test_a_short_lockstep_loop_loses_no_sample_and_records_all(tmp_path: Path) -> None:
    """20 s of the same loop in the default run: the bookkeeping, not the drift."""
    logging.getLogger("bci").setLevel(logging.ERROR)
    r = soak(20.0, folder=tmp_path, sample_s=2.0)
    assert r.periods > 100 and r.commands == r.periods
    assert r.gaps == 0 and r.recording_complete, (r.samples_recorded, r.last_stamp_lag_s)
    assert all(g < 0.05 for g in r.memory_growth.values()), r.memory_growth
