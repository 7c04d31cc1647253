"""`bci run` as a user runs it: a closed loop stopped with SIGTERM switches stimulation off first,
closes the recording and exits non-zero.

Lockstep pacing, so the plant keeps up on a loaded machine (the signal path is the same as in real
time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyxdf
import yaml

from bci.session.run_folder import SUMMARY_FILE_NAME
from stimulation.plant.streams import BIOMARKER_CHANNELS

HERE = Path(__file__).parent


def _session(tmp_path: Path) -> Path:
    config = {
        "name": "sigterm_test",
        "description": "a loop stopped by SIGTERM",
        "duration_s": 600.0,
        "seed": 2,
        "pacing": "lockstep",
        "source": {
            "kind": "plant",
            "network": {"cells_per_nucleus": 6},
            "probe": {"n_channels": 8, "n_units": 4},
            "timing": {"warmup_s": 0.2},
        },
        "calibration": {"duration_s": 1.5},
        "pipeline": [
            {"stage": "bandpass"},
            {"stage": "threshold_crossings", "params": {"calibration_s": 0.5}},
            {"stage": "spike_binner", "params": {"bin_s": 0.02}},
        ],
        "decoder": {"stage": "closed_loop_doubles:MeanCountDecoder"},
        # always on: stimulation is running when the signal comes
        "controller": {
            "stage": "closed_loop_doubles:ThresholdStepController",
            "params": {"threshold": -1.0, "amplitude_ma": 2.0},
        },
        "safety": {"limits": {"max_amplitude_ma": 2.5, "max_slew_ma_per_s": 20.0}},
        "recording": {"nix": False},
        "runs_root": str(tmp_path / "runs"),
    }
    path = tmp_path / "sigterm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sigterm_stops_stimulation_first_and_exits_non_zero(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bci.cli.main", "run", str(_session(tmp_path)), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 120.0
    recording = None
    # wait until the loop stimulates: the recording has grown past calibration
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(runs.glob("*-sigterm_test/recording.xdf"))
        if found and found[0].stat().st_size > 3_000_000:
            recording = found[0]
            break
        time.sleep(0.2)
    assert recording is not None, proc.communicate(timeout=30)[0]
    time.sleep(4.0)  # the loop starts once the recorder is ready, and stimulates at once
    proc.send_signal(signal.SIGTERM)
    # an impatient user signals again while the run is on its way out (the safe state is held
    # for 0.5 s): that must not cut the shut-down short
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, output
    assert "interrupted" in output and "SIGTERM" in output

    import json

    summary = json.loads((recording.parent / SUMMARY_FILE_NAME).read_text())
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]
    streams, _ = pyxdf.load_xdf(str(recording), dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in streams}
    sent = next(s for n, s in by_name.items() if n.endswith("-commands"))
    amplitude = np.asarray(sent["time_series"])[:, 0]
    assert amplitude.max() == 2.0  # it was stimulating
    assert amplitude[-1] == 0.0  # and the last command, after SIGTERM, is the safe state (off)
    assert len(sent["time_stamps"]) == summary["commands"]["sent"]  # the file was closed whole
    bio = next(s for n, s in by_name.items() if n.endswith("-biomarkers"))
    applied = np.asarray(bio["time_series"])[:, list(BIOMARKER_CHANNELS).index("amplitude_ma")]
    assert applied.max() > 0.0 and applied[-1] == 0.0  # the plant got there before it stopped
