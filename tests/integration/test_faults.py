"""Fault injection on loopback LSL (``fault_rig``, ``fault_scenarios``): each fault is detected,
stimulation reaches the safe state within the stimulator's watchdog bound (watchdog timeout +
ramp + three 20 ms control periods: the trip falls on a period boundary, the plant simulates one
period ahead, and reports a period at its end), nothing the recorder had from before the fault is lost
(every amplifier sample pushed more than 1 s before the fault is in the recording), and no
applied stimulation ever exceeds the controller's. Each test starts five processes (amplifier,
plant, loop, recorder, fault): about 30 s on a loaded 2-core machine, so the default run keeps
four and the rest are ``slow``. ``benchmarks/fault_report.py`` prints them all as one table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_rig import FaultResult
from fault_scenarios import FAULTS, cpu_starved, read_only


def _check(result: FaultResult) -> None:
    assert result.samples_lost == 0, result.row()
    assert result.max_applied_ma <= 1.0 + 1e-9, result.row()  # nothing above the controller's
    assert result.safe, (result.row(), result.bound_s)
    assert "NOT" not in result.detected, result.row()


def test_a_source_that_dies_and_returns_after_2_s(tmp_path: Path) -> None:
    result = FAULTS["source_returns"](tmp_path)
    _check(result)
    assert result.time_to_safe_s is not None
    assert result.details["resumed"], "the loop did not resume when the source came back"


def test_a_killed_loop_leaves_the_plant_safe_and_the_recorder_recording(tmp_path: Path) -> None:
    result = FAULTS["loop_killed"](tmp_path)
    _check(result)
    # the recorder kept recording the amplifier and the plant after the loop died
    assert result.details["amp_after_s"] > result.details["run_after_s"] - 1.0
    assert result.details["bio_after_s"] > result.details["run_after_s"] - 1.0


def test_a_nan_and_inf_burst_gives_the_safe_state_then_recovers(tmp_path: Path) -> None:
    result = FAULTS["nan_burst"](tmp_path)
    _check(result)
    assert result.details["nan_samples"] > 0 and result.details["invalid"] > 0
    assert result.details["resumed"]


def test_a_decoder_that_raises_stops_the_loop_in_the_safe_state(tmp_path: Path) -> None:
    result = FAULTS["decoder_raises"](tmp_path)
    _check(result)
    assert result.details["loop_exit"] == 2


@pytest.mark.slow
def test_a_source_that_never_returns(tmp_path: Path) -> None:
    result = FAULTS["source_never_returns"](tmp_path, short=False)
    _check(result)
    assert result.details["stays_safe"] and result.details["loop_alive"]


@pytest.mark.slow
def test_a_killed_recorder_loses_nothing_it_had(tmp_path: Path) -> None:
    result = FAULTS["recorder_killed"](tmp_path)
    _check(result)
    assert result.details["loop_alive"]


@pytest.mark.slow
def test_a_second_stream_of_the_same_name_is_refused_by_name(tmp_path: Path) -> None:
    result = FAULTS["twin_stream"](tmp_path)
    _check(result)
    assert "AmbiguousStreamError" in result.details["refused"]
    assert result.details["on_after"] > 0.0


@pytest.mark.slow
def test_a_clock_jump_is_a_gap_and_the_loop_goes_on(tmp_path: Path) -> None:
    result = FAULTS["clock_jump"](tmp_path)
    _check(result)
    assert result.details["on_after"] > 0.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["decoder_nan", "decoder_hangs", "controller_raises", "controller_nan", "controller_hangs"],
)
def test_a_failing_decoder_or_controller_gives_the_safe_state(tmp_path: Path, name: str) -> None:
    _check(FAULTS[name](tmp_path))


@pytest.mark.slow
def test_a_starved_cpu_counts_misses_and_recovers(tmp_path: Path) -> None:
    result = cpu_starved(tmp_path, short=False)  # 10 s, two busy processes on two cores
    _check(result)
    d = result.details
    assert d["loop_alive"] and d["stats"]["commands"] > 0
    assert d["on_after"] > 0.0  # stimulation resumed after the starvation


@pytest.mark.slow
def test_a_full_disk_stops_the_recorder_clearly_and_the_loop_goes_safe(tmp_path: Path) -> None:
    result = FAULTS["disk_full"](tmp_path)
    _check(result)
    d = result.details
    assert d["recorder_exit"] not in (0, None) and d["loop_saw_it"]
    assert "File too large" in d["recorder_output"] or "No space" in d["recorder_output"]


def test_a_read_only_output_is_refused_before_recording(tmp_path: Path) -> None:
    out = read_only(tmp_path)
    assert out["exit"] != 0 and "/sys/bci-recording.xdf" in out["output"], out
    assert "Permission denied" in out["output"] or "Read-only" in out["output"], out
    assert "Traceback" not in out["output"]
