"""The whole loop, lockstep with the plant: plant process -> LSL -> band-pass, reference, online
sorter, binner -> decoder -> controller -> limiter -> LSL -> plant, with the recorder process.

The decoder and controller here are the trivial stand-ins of ``closed_loop_doubles`` (the runner
is tested, not them); the limiter is the real :class:`stimulation.safety.SafetyLimiter`. The
recording must hold every stream and the summary's numbers must be what the recording holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyxdf

from bci.runner import SessionRunner
from bci.runner.metrics import plant_outcome
from bci.session.config import parse_session
from stimulation.plant.streams import BIOMARKER_CHANNELS

DOUBLES = "closed_loop_doubles"
MAX_MA = 2.5


def loop_config(runs_root: Path, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "whole_loop",
        "duration_s": 5.0,
        "seed": 1,
        "pacing": "lockstep",
        "source": {
            "kind": "plant",
            "network": {"cells_per_nucleus": 6},
            "probe": {"n_channels": 8, "n_units": 4},
            "timing": {"warmup_s": 0.2},
        },
        "calibration": {"duration_s": 2.5},
        "pipeline": [
            {
                "stage": "artifact_blanker",
                "params": {
                    "window_ms": [-0.2, 2.5],
                    "mode": "hold",
                    "subtract_template": True,
                    "template_tau": 100.0,
                    "blank_core_ms": [-0.2, 0.5],
                },
            },
            {"stage": "bandpass", "params": {"low_hz": 300.0, "high_hz": 6000.0}},
            {"stage": "common_reference"},
            {"stage": "online_sorter", "params": {"min_spikes": 10, "min_cluster_size": 10}},
            {"stage": "spike_binner", "params": {"bin_s": 0.02}},
        ],
        "decoder": {"stage": f"{DOUBLES}:MeanCountDecoder"},
        "controller": {
            "stage": f"{DOUBLES}:ThresholdStepController",
            "params": {"threshold": 0.05, "amplitude_ma": 4.0},
        },
        "safety": {"limits": {"max_amplitude_ma": MAX_MA, "max_slew_ma_per_s": 50.0}},
        "runs_root": str(runs_root),
    }
    config.update(changes)
    return config


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = parse_session(loop_config(tmp_path_factory.mktemp("runs")))
    return SessionRunner(config).run()


@pytest.fixture(scope="module")
def recording(result: Any) -> dict[str, dict[str, Any]]:
    streams, _ = pyxdf.load_xdf(
        str(result.run_dir / "recording.xdf"), synchronize_clocks=False, dejitter_timestamps=False
    )
    return {s["info"]["name"][0]: s for s in streams}


def _stream(recording: dict[str, dict[str, Any]], suffix: str) -> dict[str, Any]:
    found = [s for name, s in recording.items() if name.endswith(suffix)]
    assert len(found) == 1, f"one stream ending in {suffix!r} expected, got {list(recording)}"
    return found[0]


def test_the_run_completes_and_leaves_a_complete_run_folder(result: Any) -> None:
    assert result.status == "completed", result.summary["error"]
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"recording.xdf", "config.yaml", "summary.json", "session.nix", "plant.log"} <= files
    assert any(name.startswith("calibration_") and name.endswith(".npz") for name in files)
    s = result.summary
    assert s["calibration"][0]["stage"] == "OnlineSorter" and s["units"] >= 1
    assert s["plant_process"]["periods"] == 250  # 5 s of 20 ms periods: one per command
    assert s["plant_process"]["n_invalid"] == 0 and s["plant_process"]["n_dropped"] == 0


def test_the_recording_holds_every_stream_of_the_session(recording: dict[str, Any]) -> None:
    for suffix in (
        "-raw",
        "-stim",
        "-biomarkers",
        "-decoded",
        "-controller",
        "-commands",
        "-events",
    ):
        _stream(recording, suffix)
    spikes = [name for name in recording if name.endswith("-spikes")]
    assert len(spikes) == 2  # the plant's ground truth and the loop's sorted spikes


def test_the_summary_numbers_are_what_was_recorded(result: Any, recording: Any) -> None:
    s = result.summary
    raw = _stream(recording, "-raw")
    assert len(raw["time_stamps"]) == s["plant_process"]["samples"]
    assert s["signal_s"] == pytest.approx(len(raw["time_stamps"]) / 30000.0)
    for key, suffix in (
        ("decoded", "-decoded"),
        ("controller", "-controller"),
        ("events", "-events"),
    ):
        assert len(_stream(recording, suffix)["time_stamps"]) == s["streams"][key], key
    sent = _stream(recording, "-commands")
    assert len(sent["time_stamps"]) == s["commands"]["sent"] == s["streams"]["stimulator"]
    loop_spikes = recording[f"{s['run_id']}-spikes"]
    n = s["streams"]["spikes"]
    assert len(loop_spikes["time_stamps"]) == n == sum(s["unit_spikes"]) + s["unsorted_spikes"]
    units = np.asarray(loop_spikes["time_series"])[:, 0]
    assert np.array_equal(np.bincount(units[units >= 0].astype(int)), s["unit_spikes"])
    bio = _stream(recording, "-biomarkers")
    again = plant_outcome(
        list(BIOMARKER_CHANNELS),
        np.asarray(bio["time_series"]),
        np.asarray(bio["time_stamps"]),
        s["t_online_lsl"],
        s["plant"]["window_s"],
        s["plant"]["control_period_s"],
    )
    for key, value in again.items():
        assert s["plant"][key] == pytest.approx(value, nan_ok=True), key
    # the periods after calibration: 2.5 s, less the blanker's hold-back of the sorter's input
    assert 123 <= s["plant"]["periods"] <= 125


def test_every_command_that_reached_the_plant_passed_the_limiter(
    result: Any, recording: Any
) -> None:
    s = result.summary
    asked = np.asarray(_stream(recording, "-controller")["time_series"])
    sent = np.asarray(_stream(recording, "-commands")["time_series"])
    assert asked[:, 0].max() == 4.0 and s["commands"]["changed_by_limiter"] > 0
    assert sent[:, 0].max() <= MAX_MA
    # DBS off through calibration, and the safe state last
    n_calibration = 250 - s["plant"]["periods"]
    assert np.all(sent[:n_calibration, 0] == 0.0) and sent[-1, 0] == 0.0
    # lockstep: one command per period, then the safe state (reached within the limiter's slew
    # limit, 50 mA/s, then held for 0.5 s: 25 periods), numbered in order
    n = sent.shape[0]
    assert 250 + 25 <= n <= 250 + 30 and np.array_equal(sent[:, 3], np.arange(n))
    assert s["safety_events"]["clamp_amplitude"] > 0
    applied = np.asarray(_stream(recording, "-biomarkers")["time_series"])
    amplitude = applied[:, list(BIOMARKER_CHANNELS).index("amplitude_ma")]
    assert amplitude.max() <= MAX_MA + 1e-9


def test_latency_is_measured_for_every_closed_loop_command(result: Any) -> None:
    lat = result.summary["loop_latency"]
    # every period after calibration, each command timed from its chunk's arrival, except those
    # sent right after the sorter's fit (that chunk's time is calibration, not the loop's)
    periods = result.summary["plant"]["periods"]
    assert periods - 2 <= lat["commands"] <= periods
    assert 0.0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert sum(lat["histogram"]["counts"]) == lat["commands"]
    assert lat["chunks"] > 0
    rows = result.summary["stages"]
    assert [r["stage"] for r in rows] == [
        "ArtifactBlanker",
        "BandPass",
        "CommonReference",
        "OnlineSorter",
        "SpikeBinner",
        "MeanCountDecoder",
        "ThresholdStepController",
    ]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


def test_a_stream_that_never_appears_fails_before_anything_is_stimulated(tmp_path: Path) -> None:
    config = parse_session(
        loop_config(
            tmp_path,
            pacing="realtime",
            source={"kind": "lsl", "name": "no-such-amplifier-stream", "timeout_s": 1.0},
            stimulator={"command_stream": f"stim-{tmp_path.name}"},
            timing={"stream_timeout_s": 1.5},
            recording={"enabled": False},
        )
    )
    result = SessionRunner(config).run()
    assert result.status == "failed"
    assert "no-such-amplifier-stream" in result.summary["error"]
    assert result.summary["commands"]["sent"] == 0
    assert (result.run_dir / "summary.json").exists() and (result.run_dir / "config.yaml").exists()


def test_a_recorder_that_dies_stops_the_loop_with_stimulation_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stimulating unrecorded is not allowed: the loop notices a dead recorder within a second,
    and the safe state is the first thing it does on the way out (closing the source's inlet
    first, which waits for its clock thread, delayed it by up to two control periods)."""
    import threading
    import time

    from bci.acquisition.source import LSLSource
    from bci.runner.commands import CommandPath

    order: list[str] = []
    for cls, name in ((CommandPath, "safe_state"), (LSLSource, "close")):
        original = getattr(cls, name)

        def spy(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            order.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(cls, name, spy)
    config = parse_session(loop_config(tmp_path / "runs", duration_s=60.0))
    runner = SessionRunner(config)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and (runner.recorder is None or runner.samples < 90_000):
        time.sleep(0.05)  # past calibration (2.5 s of signal): the loop is stimulating
    assert runner.recorder is not None, "the loop never started"
    runner.recorder.kill()
    t_kill = runner.samples / 30000.0
    thread.join(120.0)
    assert outcome, "the run did not end after its recorder died"
    result = outcome[0]
    assert result.status == "failed"
    assert "recorder stopped during the session" in result.summary["error"]
    assert result.summary["signal_s"] < t_kill + 5.0  # stopped at once, not after 60 s
    events = " ".join(result.summary["events"])
    assert "safe state sent (failed)" in events
    assert order[:2] == ["safe_state", "close"], order


def test_a_bug_in_the_decoder_stops_the_loop_safe_first_then_keeps_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception (not one of the toolkit's errors): the run fails naming it, the
    safe state goes out before anything is written to disk, and ``error.txt`` keeps the
    traceback down to the decoder's line."""
    from bci.runner.commands import CommandPath

    order: list[str] = []
    safe_state, write_text = CommandPath.safe_state, Path.write_text

    def spy_safe(self: Any, *args: Any) -> Any:
        order.append("safe_state")
        return safe_state(self, *args)

    def spy_write(self: Path, *args: Any, **kwargs: Any) -> Any:
        order.append(self.name)
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(CommandPath, "safe_state", spy_safe)
    monkeypatch.setattr(Path, "write_text", spy_write)
    # 2.5 s of calibration in 20-ms bins, then 1 s of decoding before the bug
    decoder = {"stage": f"{DOUBLES}:BuggyDecoder", "params": {"after_bins": 50}}
    config = parse_session(loop_config(tmp_path / "runs", duration_s=10.0, decoder=decoder))
    result = SessionRunner(config).run()
    assert result.status == "failed"
    assert result.summary["error"].startswith("ZeroDivisionError"), result.summary["error"]
    assert result.summary["signal_s"] < 5.0  # stopped at the bug, not at the session's end
    trace = (result.run_dir / "error.txt").read_text()
    assert "closed_loop_doubles.py" in trace and "self.bins / 0" in trace
    assert "safe_state" in order and order.index("safe_state") < order.index("error.txt"), order


def test_what_the_source_saw_is_in_the_run_events(tmp_path: Path) -> None:
    """A live stream that falls silent for 0.5 s and then sends NaN: the run's events (summary
    and the loop's event stream) say so, not only the live view."""
    import threading
    import time
    import uuid

    import pylsl

    from bci.acquisition.metadata import make_stream_info

    sid = f"events-amp-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(make_stream_info(sid, "Neural", 2, 30000.0, "float32", sid))
    stop = threading.Event()

    def amplifier() -> None:  # 30 samples per ms; silent from 1.5 s to 2 s; NaN at 2.5 s
        t0, k = pylsl.local_clock(), 0
        rng = np.random.default_rng(0)
        while not stop.is_set():
            t = k / 30000.0
            wait = t0 + t - pylsl.local_clock()
            if wait > 0:
                time.sleep(wait)
            data = rng.normal(0.0, 10.0, (30, 2)).astype(np.float32)
            if 2.5 <= t < 2.52:
                data[:, 1] = np.nan
            if not 1.5 <= t < 2.0:
                outlet.push_chunk(data, (t0 + t + np.arange(30) / 30000.0).tolist())
            k += 30

    thread = threading.Thread(target=amplifier, daemon=True)
    thread.start()
    try:
        config = parse_session(
            {
                "name": "source_events",
                "duration_s": 4.0,
                "source": {"kind": "lsl", "source_id": sid, "n_channels": 2},
                "calibration": {"duration_s": 0.0},
                "recording": {"enabled": False},
                "runs_root": str(tmp_path),
            }
        )
        result = SessionRunner(config).run()
    finally:
        stop.set()
        thread.join(5.0)
    assert result.status == "completed", result.summary["error"]
    events = result.summary["events"]
    assert any(e.startswith("source gap") and "15000 samples" in e for e in events), events
    assert any(e.startswith("source nan") for e in events), events
