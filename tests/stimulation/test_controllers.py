"""The baseline controllers: one interface (stage and act), their rules, and evaluate()."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bci.errors import StageCompatibilityError
from bci.stream import StateChunk, StimCommand, StreamSpec, get_stage_class, stage_from_dict
from stimulation.controllers import (
    CONTROLLERS,
    ContinuousController,
    Controller,
    ControllerConfigError,
    DualThresholdController,
    PIController,
    ThresholdController,
    evaluate,
)


def _run(ctl: Controller, betas: list[float]) -> list[StimCommand]:
    return [ctl.act([b]) for b in betas]


@pytest.mark.parametrize("name", sorted(CONTROLLERS))  # rl_snn: the shipped model
def test_every_baseline_is_a_registered_stage_from_state_to_commands(name: str) -> None:
    cls = get_stage_class(name)
    assert cls is CONTROLLERS[name]
    ctl = stage_from_dict({"stage": name, "params": {"source_id": "ctl-1", "input_index": 1}})
    # the RL-SNN controller takes only the quantity its actor was trained on (its own test)
    column = "pd_state" if name == "rl_snn" else "beta_gpi"
    spec = ctl.prepare(StreamSpec("state", 2, 50.0, channel_names=("x", column)))
    assert spec.kind == "command" and spec.channel_names[0] == "amplitude_ma"
    rows = np.array([[0.0, 0.1], [0.0, 0.12], [0.0, 0.09]], dtype=np.float32)
    out = ctl.process(StateChunk(rows, np.array([10.0, 10.02, 10.04])))
    assert isinstance(out, StimCommand)
    assert (out.seq, out.t_issue, out.source_id) == (2, 10.04, "ctl-1")
    assert math.isfinite(out.amplitude_ma) and out.pulse_width_us == 300.0
    assert stage_from_dict(ctl.to_dict()).to_dict() == ctl.to_dict()
    with pytest.raises(StageCompatibilityError, match="output 1"):
        cls(input_index=1).prepare(StreamSpec("state", 1, 50.0))
    with pytest.raises(StageCompatibilityError, match="state"):
        cls().prepare(StreamSpec("signal", 4, 30000.0))


def test_threshold_calibrates_ramps_and_keeps_the_minimum_on_time() -> None:
    ctl = ThresholdController(amplitude_ma=2.0, calibration_s=1.0, percentile=50.0, min_on_s=0.1)
    calib = _run(ctl, [0.05, 0.15] * 25)  # 1 s of calibration, no stimulation meanwhile
    assert all(c.amplitude_ma == 0.0 for c in calib)
    on = _run(ctl, [0.2] * 12)  # above the median (0.1): ramps at 10 mA/s, 0.2 mA per period
    assert ctl.active_threshold == pytest.approx(0.1)
    assert [c.amplitude_ma for c in on] == pytest.approx([0.2 * k for k in range(1, 11)] + [2, 2])
    # below threshold: off (ramped) since it has been on longer than 100 ms
    off = _run(ctl, [0.01] * 3)
    assert [c.amplitude_ma for c in off] == pytest.approx([1.8, 1.6, 1.4])
    ctl.reset()
    _run(ctl, [0.1] * 50)
    first = _run(ctl, [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # one blip: on for >= 100 ms
    assert [c.amplitude_ma for c in first] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 0.8, 0.6])
    assert [c.seq for c in first] == list(range(50, 57))


def test_dual_threshold_steps_up_above_holds_between_and_steps_down_below() -> None:
    ctl = DualThresholdController(lower=0.05, upper=0.1, max_amplitude_ma=0.3)
    amps = [c.amplitude_ma for c in _run(ctl, [0.2] * 4 + [0.07] * 2 + [0.0] * 5)]
    assert amps == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0])
    with pytest.raises(ControllerConfigError, match="min_amplitude_ma"):
        DualThresholdController(min_amplitude_ma=2.0, max_amplitude_ma=1.0)


def _pi_outputs(ctl: PIController, betas: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.array([c.amplitude_ma for c in _run(ctl, list(np.asarray(betas)))])


def test_pi_clamps_and_does_not_wind_up() -> None:
    ctl = PIController(kp=10.0, ti_s=0.2, setpoint=0.1, max_amplitude_ma=3.0)
    out = _pi_outputs(ctl, [0.12])
    # u = Kp (e + e dt / Ti) = 10 (0.02 + 0.02 * 0.02 / 0.2)
    assert out[0] == pytest.approx(10.0 * (0.02 + 0.02 * 0.02 / 0.2))
    saturated = _pi_outputs(ctl, [0.5] * 250)  # 5 s far above the setpoint: clamped at 3 mA
    assert saturated.max() == 3.0 and saturated[-1] == 3.0
    assert ctl.integral < 3.0 * 0.2 / 10.0 + 1e-9  # frozen near saturation, not 5 s of error
    recover = _pi_outputs(ctl, [0.05] * 10)
    assert recover[0] < 3.0 and recover[-1] == 0.0  # leaves the clamp at once (no windup)
    with pytest.raises(ControllerConfigError, match="ti_s"):
        PIController(ti_s=0.0)


def test_bad_observations_and_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="entry 2"):
        ThresholdController(input_index=2).act([0.1])
    with pytest.raises(ControllerConfigError, match="amplitude_ma"):
        ContinuousController(amplitude_ma=-1.0)
    with pytest.raises(ControllerConfigError, match="controller"):
        evaluate("bang_bang", [1], duration_s=0.1)


class _Garbage(Controller):
    """A broken controller: NaN, then huge, then negative amplitudes."""

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        return (math.nan, 1e300, -5.0)[self.n_acted % 3], self.frequency_hz


def test_evaluate_runs_every_controller_through_the_limiter_on_the_same_plants() -> None:
    kw = {"duration_s": 0.4, "settle_s": 0.2}
    off = evaluate("off", [3, 4], **kw)
    zero = evaluate("continuous", [3, 4], amplitude_ma=0.0, **kw)
    on = evaluate("continuous", [3, 4], amplitude_ma=2.5, frequency_hz=130.0, traces=True, **kw)
    for a, b in zip(off, zero, strict=True):  # same seeds, same plant: bit for bit
        assert a["error_index"] == b["error_index"] and a["gpi_beta"] == b["gpi_beta"]
    for a, c in zip(off, on, strict=True):
        assert c["energy"] == pytest.approx(1.0) and c["time_on_stim"] == 1.0
        assert c["mean_frequency_hz"] == 130.0 and a["energy"] == 0.0
        assert c["error_index"] < a["error_index"]
    trace = on[0]["trace"]
    assert trace["amplitude_ma"].shape == (20,) and np.all(trace["amplitude_ma"] == 2.5)
    # garbage out of a controller: the limiter turns it into its safe state (off) or clamps
    broken = evaluate(_Garbage(), [3], traces=True, **kw)[0]
    amps = broken["trace"]["amplitude_ma"]
    assert np.all(np.isfinite(amps)) and amps.max() <= 0.24 + 1e-9  # 12 mA/s slew, from off
    assert broken["safety_events"]["invalid"] > 0


def test_the_shipped_rl_controller_runs_in_numpy_and_says_how_it_was_made() -> None:
    from stimulation.controllers.rl_snn import DEFAULT_MODEL, RLSNNController

    ctl = RLSNNController()
    meta = ctl.weights.meta
    assert ctl.model == str(DEFAULT_MODEL)
    assert "train-controller" in meta["command"] or "train_controller.py" in meta["command"]
    assert meta["wall_s"] > 0 and isinstance(meta["seed"], int)
    # the settings file shipped beside it reproduces it: same settings, as many transitions
    import yaml

    settings = yaml.safe_load(DEFAULT_MODEL.with_suffix(".yaml").read_text())
    assert meta["steps"] == settings["total_steps"] and meta["seed"] == settings["seed"]
    for key, value in settings.items():
        if key != "total_steps":
            assert meta["config"][key] == value, key
    # it was trained on what the demo's loop gives it online: the output of the decoder model
    # of the closed_loop_dbs session
    from decoders import load
    from stimulation.controllers.observation import SOURCE_OUTPUT

    assert meta["config"]["plant"] == "fluctuating"
    sessions = Path(__file__).resolve().parents[2] / "sessions"
    session = yaml.safe_load((sessions / "closed_loop_dbs.yaml").read_text())
    assert session["controller"]["model"].endswith(DEFAULT_MODEL.name)
    decoder = load(sessions / session["decoder"]["model"])
    assert decoder.info.output_names[0] == SOURCE_OUTPUT[meta["symptom_source"]]
    commands = _run(ctl, [0.0, 0.05, 0.1, 0.2] * 5)
    lo, hi = meta["frequency_range_hz"]
    for c in commands:
        assert 0.0 <= c.amplitude_ma <= meta["max_amplitude_ma"]
        assert lo <= c.frequency_hz <= hi
