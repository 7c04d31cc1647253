"""PlantBridge on loopback LSL: command authorisation, bad commands, published streams, CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pylsl
import pytest
from click.testing import CliRunner

from bci.acquisition.metadata import read_channel_info
from bci.cli.main import cli
from bci.session.load import parse_spike_marker
from stimulation.errors import PlantParameterError, StimulationError
from stimulation.plant.bridge import BIOMARKER_CHANNELS, PlantBridge
from stimulation.plant.commands import CommandOutlet

SMALL: dict[str, Any] = {"cells_per_nucleus": 6, "n_units": 3, "n_channels": 4, "warmup_s": 0.1}


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _inlet(source_id: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", source_id, 1, 10.0)
    assert found, f"stream {source_id} not found"
    inlet = pylsl.StreamInlet(found[0], max_buflen=30, recover=False)
    inlet.open_stream(timeout=10.0)
    return inlet


def _pull(inlet: pylsl.StreamInlet, n_min: int = 1) -> tuple[list, list]:
    data: list = []
    stamps: list = []
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        d, t = inlet.pull_chunk(timeout=0.2, max_samples=100000)
        data += d
        stamps += t
        if len(stamps) >= n_min and not t:
            break
    return data, stamps


def _lockstep_bridge(source_id: str, **kwargs: Any) -> tuple[PlantBridge, str]:
    name = f"plant-{source_id[-12:]}"
    bridge = PlantBridge(
        seed=1,
        name=name,
        source_id=source_id,
        controller_source_id=f"{source_id}-controller",
        lockstep=True,
        **{**SMALL, **kwargs},
    )
    return bridge, name


def test_commands_from_another_source_change_nothing_and_are_counted(source_id: str) -> None:
    bridge, name = _lockstep_bridge(source_id)
    with bridge:
        listener = bridge.listener
        assert listener is not None
        intruder = CommandOutlet(f"{name}-commands", f"{source_id}-intruder")
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller")
        assert _until(lambda: (listener.poll(0.0), listener.n_streams)[1] == 2)
        assert intruder.wait_for_consumers(5.0) and controller.wait_for_consumers(5.0)

        for _ in range(3):
            intruder.send(300.0)
        assert _until(lambda: (bridge.serve(0.0), bridge.n_unauthorised)[1] == 3)
        assert bridge.stats.periods == 0 and bridge.t_model_s == 0.0  # lockstep did not move
        assert bridge.train.amplitude == 0.0
        assert listener.unauthorised_sources == {f"{source_id}-intruder"}

        controller.send(0.0)
        assert bridge.serve(5.0) == 1
        intruder.send(300.0)
        controller.send(0.0)
        # two streams, no order between them: the intruder's command may arrive after the
        # controller's, so wait for both
        assert _until(
            lambda: (bridge.serve(0.0), (bridge.stats.periods, bridge.n_unauthorised))[1] == (2, 4)
        )
        assert bridge.stats.pulses == 0
        assert bridge.t_model_s == pytest.approx(0.04)

        controller.send(300.0, 130.0, 300.0)
        assert bridge.serve(5.0) == 1
        # the pulse clock ran on while the amplitude was 0: onsets k / 130 s in [40, 60) ms
        assert bridge.train.amplitude == 300.0 and bridge.stats.pulses == 2


def test_invalid_commands_are_refused_counted_and_the_plant_keeps_going(source_id: str) -> None:
    bridge, name = _lockstep_bridge(source_id, max_amplitude=500.0)
    with bridge:
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller")
        assert bridge.listener is not None and bridge.listener.wait_for_controller(10.0)
        assert controller.wait_for_consumers(5.0)
        controller.send(200.0)
        assert bridge.serve(5.0) == 1
        bad = [
            (float("nan"), 130.0, 300.0),
            (-1.0, 130.0, 300.0),
            (100.0, 130.0, 10000.0),  # a 10-ms pulse does not fit a 7.7-ms period
            (600.0, 130.0, 300.0),  # above max_amplitude
            (100.0, float("inf"), 300.0),
        ]
        for command in bad:
            controller.send(*command)
        assert _until(lambda: (bridge.serve(0.0), bridge.stats.periods)[1] == 6)
        assert bridge.n_invalid == 5 and bridge.stats.commands_applied == 1
        assert bridge.train.amplitude == 200.0  # the last valid command still holds
        assert (
            "max_amplitude" in bridge.listener.last_error or "finite" in bridge.listener.last_error
        )
        # a text stream of the command stream's name is never obeyed, even from the controller
        text = pylsl.StreamOutlet(
            pylsl.StreamInfo(
                f"{name}-commands", "Markers", 1, 0.0, "string", f"{source_id}-controller"
            )
        )
        listener = bridge.listener
        assert _until(lambda: (listener.poll(0.0), listener.n_streams)[1] == 2)
        assert text.wait_for_consumers(5.0)
        text.push_sample(["amplitude=300"])
        assert _until(lambda: (bridge.serve(0.0), bridge.n_unauthorised)[1] == 1)
        assert bridge.stats.periods == 6 and bridge.train.amplitude == 200.0
        with pytest.raises(StimulationError, match="amplitude"):
            bridge.advance(amplitude=-5.0)
        with pytest.raises(PlantParameterError, match="max_amplitude"):
            bridge.advance(amplitude=800.0)
        assert bridge.train.amplitude == 200.0 and bridge.stats.periods == 6


def test_streams_carry_the_recording_ground_truth_pulses_and_biomarkers(source_id: str) -> None:
    bridge, name = _lockstep_bridge(source_id, noise_uv=2.0, lfp_uv=20.0)
    with bridge:
        inlets = {s: _inlet(f"{source_id}-{s}") for s in ("raw", "spikes", "stim", "biomarkers")}
        assert bridge.raw_outlet.wait_for_consumers(5.0)
        records = [bridge.advance(amplitude=300.0 if k >= 2 else 0.0) for k in range(6)]
        got = {s: _pull(inlet) for s, inlet in inlets.items()}

        info = inlets["raw"].info(timeout=5.0)
        ch = read_channel_info(info)
        assert info.name() == f"{name}-raw" and info.nominal_srate() == 30000.0
        assert info.channel_count() == 4 and set(ch.units) == {"uV"}
        np.testing.assert_allclose(np.array(ch.positions), bridge.probe.positions)
        plant = info.desc().child("plant")
        assert plant.child_value("state") == "pd" and plant.child_value("lockstep") == "true"
        cells = [int(c) for c in plant.child_value("recorded_cells").split()]
        assert cells == bridge.probe.cells.tolist()

        # raw: every rendered sample, stamped on the model's time axis
        raw, stamps = got["raw"]
        n = 6 * 600 - bridge.probe.latency_samples
        assert len(stamps) == n
        np.testing.assert_allclose(np.diff(stamps), 1 / 30000.0, atol=1e-7)
        raw_a = np.asarray(raw)

        # ground truth: exactly the recorded cells' spikes, in samples of the raw stream
        markers = [parse_spike_marker(m[0]) for m in got["spikes"][0]]
        assert all(m is not None for m in markers)
        expected = sorted(
            int(round((t - bridge.t_origin_s) * 30000.0))
            for rec in records
            for cell in cells
            for t in rec.spike_times["stn"][cell]
        )
        assert len(markers) == len(expected) > 10
        assert sorted(m["sample"] for m in markers if m) == expected
        assert {m["cell"] for m in markers if m} <= set(cells)

        # pulses: on the stim stream, and as artifacts far above the noise in the voltage
        pulses = [int(m[0].split()[1].split("=")[1]) for m in got["stim"][0]]
        expected_pulses = [
            int(round((t - bridge.t_origin_s) * 30000.0))
            for rec in records
            for t in rec.dbs_pulse_times
        ]
        # the pulse clock runs from t = 0: onsets k / 130 s in [40, 120) ms, k = 6..15
        assert pulses == expected_pulses and len(pulses) == 10
        before = np.abs(raw_a[: pulses[0]]).max()
        assert np.abs(raw_a[pulses[0] : pulses[0] + 10]).max() > 5 * before

        # biomarkers: one labelled sample per period with the stimulation applied
        bio, bstamps = got["biomarkers"]
        binfo = inlets["biomarkers"].info(timeout=5.0)
        assert read_channel_info(binfo).labels == BIOMARKER_CHANNELS
        assert binfo.nominal_srate() == pytest.approx(50.0)
        bio_a = np.asarray(bio)
        amp = BIOMARKER_CHANNELS.index("amplitude")
        assert bio_a.shape == (6, len(BIOMARKER_CHANNELS))
        assert bio_a[:, amp].tolist() == [0.0, 0.0, 300.0, 300.0, 300.0, 300.0]
        np.testing.assert_allclose(np.diff(bstamps), 0.02, atol=1e-6)


def test_realtime_run_paces_to_the_clock_and_obeys_the_controller(source_id: str) -> None:
    name = f"plant-{source_id[-12:]}"
    bridge = PlantBridge(
        seed=2, name=name, source_id=source_id, controller_source_id=f"{source_id}-ctl", **SMALL
    )
    with bridge:
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-ctl")
        assert bridge.listener is not None and bridge.listener.wait_for_controller(10.0)
        assert controller.wait_for_consumers(5.0)
        controller.send(300.0)
        time.sleep(0.2)  # delivered before the first period is simulated
        stats = bridge.run(0.3)
        assert stats.periods == 15 and stats.commands_applied == 1
        assert stats.wall_s > 0.25  # paced, not flat out
        assert stats.pulses == 39  # 0.3 s of 130 Hz, the command applied from the first period


def test_cli_runs_the_plant_and_reports_bad_settings(source_id: str) -> None:
    runner = CliRunner()
    args = ["plant", "--cells", "4", "--units", "2", "--channels", "4", "--source-id", source_id]
    result = runner.invoke(cli, [*args, "--name", f"cli-{source_id[-12:]}", "--duration", "0.1"])
    assert result.exit_code == 0, result.output
    assert "Simulated 0.10 s" in result.output and "5 periods" in result.output
    bad = runner.invoke(cli, [*args, "--units", "9"])
    assert bad.exit_code != 0 and "n_units" in bad.output
    lock = runner.invoke(cli, [*args, "--lockstep"])
    assert lock.exit_code != 0 and "controller" in lock.output
