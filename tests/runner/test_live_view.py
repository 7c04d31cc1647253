"""The live view and the result tables show what the loop measured (rendered to text)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from bci.runner.live import LiveView, compare_table, summary_table


def _text(renderable: Any) -> str:
    console = Console(record=True, width=160)
    console.print(renderable)
    return console.export_text()


SNAPSHOT: dict[str, Any] = {
    "session": "closed_loop_dbs",
    "label": None,
    "progress": 0.5,
    "signal_s": 15.0,
    "source": {
        "name": "plant-x-raw",
        "state": "connected",
        "effective_rate_hz": 30000.0,
        "gaps": 2,
        "gap_samples": 60,
        "last_data_age_ms": 0.4,
    },
    "calibrating": False,
    "units": 3,
    "rates_hz": [12.5, 30.25, 4.0],
    "decoded": 0.0612,
    "true": 0.0457,
    "error_index": 0.21,
    "command": {"amplitude_ma": 1.75, "frequency_hz": 130.0, "pulse_width_us": 60.0},
    "energy_j": 0.00123,
    "latency_p50_ms": 0.81,
    "latency_p99_ms": 3.47,
    "deadline_misses": 4,
    "safety_changes": 17,
    "events": ["calibration done"],
}


def test_the_live_view_shows_health_units_symptom_stimulation_latency_and_safety() -> None:
    view = LiveView(title="bci run")
    assert "starting" in _text(view.render())
    view(SNAPSHOT)
    text = _text(view.render())
    for expected in (
        "plant-x-raw: connected",
        "gaps 2 (60 samples)",
        "3 sorted; rates (Hz) 12.5 30.2 4.0",
        "decoded 0.061",
        "true GPi beta 0.046",
        "1.75 mA, 130 Hz, 60 us",
        "1.23e-03 J",
        "p50 0.81 ms, p99 3.47 ms; deadline misses 4",
        "17 commands changed by the limiter",
        "closed loop",
    ):
        assert expected in text, expected


def test_the_tables_put_the_runs_side_by_side_relative_to_continuous_dbs() -> None:
    def summary(controller: str, ei: float, energy: float) -> dict[str, Any]:
        return {
            "session": "s",
            "status": "completed",
            "controller": controller,
            "units": 5,
            "signal_s": 30.0,
            "wall_s": 40.0,
            "stages": [],
            "loop_latency": {"p50_ms": 1.0, "p99_ms": 4.0, "commands": 10, "deadline_misses": 0},
            "plant": {"error_index": ei, "gpi_beta": 0.05, "energy_j": energy, "time_on_stim": 0.5},
            "decoder_tracking": {"r": 0.5, "r2": 0.2},
        }

    rows = [
        ("rl", summary("rl_snn", 0.1, 0.002)),
        ("off", summary("off", 0.3, 0.0)),
        ("continuous", summary("continuous", 0.01, 0.008)),
    ]
    text = _text(compare_table(rows))
    assert "25%" in text and "100%" in text  # energy against continuous DBS
    assert "0.100" in text and "0.300" in text and "1.0/4.0" in text
    one = _text(summary_table(rows[0][1]))
    assert "error index" in one and "0.100" in one and "1.00 / 4.00" in one


def test_a_motor_session_shows_decoded_against_true_velocity_not_a_symptom() -> None:
    snapshot = {
        **SNAPSHOT,
        "session": "motor_decoding",
        "decoded": 3.21,
        "true": None,
        "error_index": None,
        "command": None,
        "decoded_names": ["vx", "vy"],
        "decoded_values": [3.21, -7.5],
        "true_values": [4.0, -8.25],
    }
    view = LiveView()
    view(snapshot)
    text = _text(view.render())
    assert "vx 3.2 (4.0)" in text and "vy -7.5 (-8.2)" in text
    assert "GPi beta" not in text
    summary = {
        "session": "motor_decoding",
        "status": "completed",
        "decoder_tracking": {
            "outputs": {"vx": {"r": 0.93, "r2": 0.86}, "vy": {"r": 0.9, "r2": 0.8}},
            "r": 0.915,
            "r2": 0.83,
            "pairs": 1350,
        },
    }
    text = _text(summary_table(summary))
    assert "decoded vx vs true: r (R2)" in text and "0.93 (0.86)" in text and "0.90 (0.80)" in text
    assert "GPi beta" not in text
