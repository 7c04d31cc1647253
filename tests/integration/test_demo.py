"""The default session end to end: a synthetic probe published by a separate process over LSL,
pulled, filtered, re-referenced, threshold-detected and binned online (`make demo`)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bci.cli.demo import render, run_demo
from bci.cli.main import cli


@pytest.fixture(scope="module")
def result():
    return run_demo(duration_s=4.0, n_channels=16, n_units=8, seed=3, calibration_s=1.0)


def test_every_sample_arrives_without_gaps(result):
    # the publisher's start-up (imports, compiling) is not a stall: no event says so
    assert not [e for e in result.events if "No data" in e or "flowing again" in e]
    status = result.source_status
    assert status["samples_received"] >= int(5.0 * 30000)
    assert status["gaps"] == 0 and status["gap_samples"] == 0
    assert status["nan_samples"] == 0
    assert status["effective_rate_hz"] == pytest.approx(30000.0, rel=1e-3)


def test_crossings_catch_the_ground_truth_spikes_of_units_above_noise(result):
    assert result.gt_spikes > 50
    assert result.gt_big > 20
    assert result.gt_caught_big / result.gt_big >= 0.9
    # crossings are spikes, not noise: at -4.5 x RMS almost every crossing lies within 1 ms of a
    # ground-truth spike (on some channel: one spike crosses on several neighbouring channels)
    assert result.crossings > result.gt_caught
    assert result.crossings_without_spike <= 0.05 * result.crossings


def test_bins_cover_the_detected_stretch(result):
    # 20 ms bins over the seconds after calibration (the detector emits nothing before)
    expected = (result.duration_s - 1.0) / 0.02
    assert abs(result.bins - expected) <= 0.05 * expected
    stages = [row["stage"] for row in result.stage_timing]
    assert stages == ["BandPass", "CommonReference", "ThresholdCrossings", "SpikeBinner"]
    assert all(row["calls"] > 0 for row in result.stage_timing)
    assert np.all(result.latency_ms > 0)


def test_table_names_what_arrived(result):
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render(result))
    text = console.export_text()
    assert "samples received" in text and "threshold crossings" in text
    assert "gaps (missing samples)" in text


def test_cli_demo_runs_and_prints_the_table():
    out = CliRunner().invoke(cli, ["demo", "--duration", "1", "--channels", "8", "--units", "4"])
    assert out.exit_code == 0, out.output
    assert "samples received" in out.output
