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
    # the publisher's start-up (imports, compiling) is not a stall: no event says so (a loaded
    # machine may still starve the publisher mid-run, which is a stall and is reported)
    assert not [e for e in result.events if "since connecting" in e]
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


def _rows(text: str) -> dict[str, str]:
    """Table rows of the rendered demo table: label -> value (rich's box characters removed)."""
    rows = {}
    for line in text.splitlines():
        cells = [
            c.strip() for c in line.replace("│", "|").replace("┃", "|").split("|") if c.strip()
        ]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_table_values_are_what_was_measured(result):
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(render(result))
    rows = _rows(console.export_text())
    status = result.source_status
    n = status["samples_received"]
    assert rows["samples received"] == f"{n} ({n / 30000.0:.2f} s)"
    assert rows["gaps (missing samples)"] == "0 (0)"
    assert rows["NaN samples"] == "0"
    assert rows["chunks received"] == str(status["chunks_received"])
    p50, p99 = np.percentile(result.latency_ms, [50, 99])
    assert rows["push -> pipeline latency p50 / p99 (ms)"] == f"{p50:.2f} / {p99:.2f}"
    for timing in result.stage_timing:
        label = f"{timing['stage']} compute p50 / p99 (ms)"
        assert rows[label] == f"{timing['p50_ms']:.3f} / {timing['p99_ms']:.3f}"
    assert rows["20 ms bins emitted"] == str(result.bins)
    assert rows["ground-truth spikes published"] == str(result.gt_spikes)
    caught = rows["caught by a crossing within 0.5 ms (units above noise)"]
    assert caught.startswith(f"{result.gt_caught_big}/{result.gt_big} (")
    assert f"{100 * result.gt_caught_big / result.gt_big:.1f}%" in caught


def test_cli_demo_runs_and_prints_the_table():
    out = CliRunner().invoke(cli, ["demo", "--duration", "1", "--channels", "8", "--units", "4"])
    assert out.exit_code == 0, out.output
    rows = _rows(out.output)
    # 1 s after a 2 s calibration, 30 kHz, every sample, no gap
    samples = int(rows["samples received"].split()[0])
    assert samples >= 3 * 30000
    assert rows["gaps (missing samples)"] == "0 (0)"
    assert "(8 ch x 30000 Hz" in rows["stream"]
    assert "since connecting" not in out.output  # start-up is not a stall
