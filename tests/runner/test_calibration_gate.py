"""Stimulation stays off until every stage that calibrates on the session's signal is ready, and
the run's record says when it was enabled (the event stream and ``summary.json``).

The session: the plant in lockstep; threshold crossings learn their thresholds from the first
0.5 s, and a threshold controller learns its threshold from its first 0.5 s of decoded symptom
(which starts only once spikes are detected), so neither is ready before about 1 s; the runner's
own calibration (for stages it fits) lasts 0.2 s. Before, the event said "calibration:
stimulation off" for the runner's calibration only, and said nothing of when stimulation came on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bci.runner import SessionRunner
from bci.session.config import parse_session

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp: Path, controller: dict[str, Any]) -> Any:
    return parse_session(
        {
            "name": "gate",
            "seed": 3,
            "duration_s": 3.0,
            "pacing": "lockstep",
            "source": {
                "kind": "plant",
                "network": {"cells_per_nucleus": 6},
                "probe": {"n_channels": 4, "n_units": 2},
            },
            "calibration": {"duration_s": 0.2},
            "pipeline": [
                {"stage": "bandpass"},
                {"stage": "threshold_crossings", "params": {"calibration_s": 0.5}},
                {"stage": "spike_binner", "params": {"bin_s": 0.005}},
            ],
            "decoder": {
                "stage": "decoder",
                "model": str(ROOT / "decoders" / "models" / "symptom_gpi_beta.npz"),
            },
            "controller": controller,
            "safety": {"limits": {"max_amplitude_ma": 3.0, "max_slew_ma_per_s": 100.0}},
            "recording": {"enabled": False},
            "runs_root": str(tmp),
        }
    )


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    logging.getLogger("bci").setLevel(logging.ERROR)
    tmp = tmp_path_factory.mktemp("gate")
    # the threshold: the lowest beta of its calibration, so it stimulates much of the time
    config = _config(
        tmp,
        {
            "stage": "threshold",
            "params": {"amplitude_ma": 2.0, "calibration_s": 0.5, "percentile": 0.0},
        },
    )
    from stimulation.plant.streams import BIOMARKER_CHANNELS

    runner = SessionRunner(config)
    result = runner.run()
    assert result.ok, result.summary["error"]
    bio = runner.bio_values.array()
    assert runner.t0_lsl is not None
    return {
        **result.summary,
        # the plant's account of each period: the amplitude it applied, and the period's end
        # (seconds of signal)
        "_amplitude": bio[:, BIOMARKER_CHANNELS.index("amplitude_ma")],
        "_end_s": runner.bio_stamps.array() - runner.t0_lsl,
    }


def test_the_record_says_when_stimulation_was_enabled(gated: dict[str, Any]) -> None:
    events = [str(e) for e in gated["events"]]
    first = next(e for e in events if e.startswith("calibration:"))
    assert "ThresholdCrossings" in first and "ThresholdController" in first, first
    enabled = gated["stimulation_enabled_s"]
    assert isinstance(enabled, float)
    # threshold crossings ready at 0.5 s, then the controller's 0.5 s of decoded symptom
    assert 1.0 - 0.01 <= enabled <= 1.2, enabled
    assert any(e.startswith(f"stimulation enabled at {enabled:.3f} s") for e in events), events


def test_stimulation_stays_off_until_then_and_comes_on_after(gated: dict[str, Any]) -> None:
    enabled = float(gated["stimulation_enabled_s"])
    amplitude = np.asarray(gated["_amplitude"])
    end_s = np.asarray(gated["_end_s"])
    assert amplitude.size >= 140  # 3 s of 20 ms periods
    # every period that ended before the gate opened (and the next, whose command was sent
    # at its start) was delivered at 0 mA
    assert np.all(amplitude[end_s <= enabled + 0.02 + 1e-6] == 0.0)
    # then the controller's stimulation came through the limiter (it switches with the beta)
    assert amplitude[end_s > enabled + 0.1].max() > 1.0
    # the controller's commands of its own calibration (0.5 s, one per period) were recorded
    # on its stream but not sent
    assert int(gated["commands_held_calibrating"]) >= 20


def test_a_session_without_calibrating_stages_is_enabled_from_the_start(tmp_path: Path) -> None:
    from bci.runner.chain import CalibrationGate, StageChain
    from bci.stream import StreamSpec
    from stimulation.controllers import ContinuousController

    chain = StageChain([ContinuousController(amplitude_ma=1.0)], 0.0, background_fit=False)
    chain.prepare(StreamSpec("state", 1, 50.0))
    gate = CalibrationGate(chain)
    assert gate.waiting() == [] and gate.update(0.0) and gate.enabled_at_s == 0.0
    assert np.isfinite(gate.enabled_at_s)
