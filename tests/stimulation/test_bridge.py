"""PlantBridge on loopback LSL: only limiter-approved commands reach the plant; streams; CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
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
from bci.stream import StimCommand
from stimulation.errors import PlantParameterError
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.bridge import (
    BIOMARKER_CHANNELS,
    BridgeTiming,
    PlantBridge,
)
from stimulation.plant.commands import CommandOutlet
from stimulation.plant.probe import VirtualProbe
from stimulation.safety import SafetyLimits

FAST = {"max_slew_ma_per_s": 1e4}  # limits that do not ramp, where a test wants steps


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


def _bridge(
    source_id: str,
    *,
    seed: int = 1,
    lockstep: bool = True,
    limits: dict[str, Any] | None = None,
    probe: dict[str, Any] | None = None,
    max_speed: float | None = None,
) -> tuple[PlantBridge, str]:
    name = f"plant-{source_id[-12:]}"
    network = BasalGangliaNetwork(cells_per_nucleus=6, seed=seed)
    vp = VirtualProbe(6, "stn", 3, 4, seed=seed, **(probe or {}))
    bridge = PlantBridge(
        network,
        vp,
        name=name,
        source_id=source_id,
        limits=SafetyLimits(source_id=f"{source_id}-controller", **(limits or FAST)),
        timing=BridgeTiming(warmup_s=0.1, lockstep=lockstep, max_speed=max_speed),
    )
    return bridge, name


def test_only_the_controllers_fresh_commands_with_its_token_reach_the_plant(
    source_id: str,
) -> None:
    bridge, name = _bridge(source_id, limits={**FAST, "session_token": "tok-1"})
    with bridge:
        listener = bridge.listener
        assert listener is not None
        intruder = CommandOutlet(f"{name}-commands", f"{source_id}-intruder", "tok-1")
        old_session = CommandOutlet(f"{name}-commands", f"{source_id}-controller", "tok-0")
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller", "tok-1")
        assert _until(lambda: (listener.poll(0.0), listener.n_streams)[1] == 3)
        for outlet in (intruder, old_session, controller):
            assert outlet.wait_for_consumers(5.0)

        for _ in range(3):
            intruder.send(2.5)
            old_session.send(2.5)
        counts = bridge.limiter.counts
        assert _until(
            lambda: (
                (bridge.serve(0.0), (counts["rejected_source"], counts["rejected_token"]))[1]
                == (3, 3)
            )
        )
        assert bridge.stats.periods == 0 and bridge.t_model_s == 0.0  # lockstep did not move
        assert bridge.train.amplitude == 0.0

        controller.send(0.0)
        assert bridge.serve(5.0) == 1
        # a replay of command 0 and one out of order: dropped, no period, no stimulation
        controller.push(StimCommand(2.5, 130.0, 300.0, 0.0, f"{source_id}-controller", 0, "tok-1"))
        controller.seq = 5
        controller.send(0.0)  # seq 5
        controller.push(StimCommand(2.5, 130.0, 300.0, 0.0, f"{source_id}-controller", 3, "tok-1"))
        assert _until(lambda: (bridge.serve(0.0), counts["rejected_seq"])[1] == 2)
        assert bridge.stats.periods == 2 and bridge.stats.pulses == 0
        assert bridge.command_seq == 5

        controller.send(2.5, 130.0, 300.0)  # seq 6
        assert bridge.serve(5.0) == 1
        # 2.5 mA is 300 uA/cm2 in the model; the pulse clock ran on while off: onsets k / 130 s
        # in [40, 60) ms
        assert bridge.train.amplitude == pytest.approx(300.0) and bridge.stats.pulses == 2
        assert bridge.n_dropped == 8


def test_invalid_commands_get_the_safe_state_and_out_of_range_ones_are_clamped(
    source_id: str,
) -> None:
    bridge, name = _bridge(source_id, limits={**FAST, "max_amplitude_ma": 3.0})
    with bridge:
        events = _inlet(f"{source_id}-safety")
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller")
        assert bridge.listener is not None
        assert bridge.listener.wait_for_source(f"{source_id}-controller", 10.0)
        assert controller.wait_for_consumers(5.0)
        controller.send(2.0)
        assert bridge.serve(5.0) == 1 and bridge.command.amplitude_ma == pytest.approx(2.0)
        sent = [
            ((float("nan"), 130.0, 300.0), 0.0),  # invalid: safe state (off)
            ((2.0, 130.0, 300.0), 2.0),
            ((-1.0, 130.0, 300.0), 0.0),
            ((2.0, float("inf"), 300.0), 0.0),
            ((9.0, 130.0, 300.0), 3.0),  # clamped to max_amplitude_ma
            ((1.0, 130.0, 10000.0), 1.0),  # pulse width clamped to 450 us
        ]
        delivered = []
        for command, _ in sent:
            controller.send(*command)
            assert bridge.serve(5.0) == 1  # every accepted command advances lockstep
            delivered.append(bridge.command)
        assert [c.amplitude_ma for c in delivered] == pytest.approx([e for _, e in sent])
        assert delivered[-1].pulse_width_us == 450.0
        assert bridge.n_invalid == 3
        counts = bridge.limiter.counts
        assert counts["clamp_amplitude"] == 1 and counts["clamp_pulse_width"] == 1
        markers = [json.loads(m[0]) for m in _pull(events, 5)[0]]
        kinds = [m["event"] for m in markers]
        assert kinds.count("invalid") == 3 and "clamp_amplitude" in kinds
        clamp = next(m for m in markers if m["event"] == "clamp_amplitude")
        assert clamp["requested"] == 9.0 and clamp["delivered"] == 3.0

        # a text stream of the command stream's name is never obeyed, even from the controller
        text = pylsl.StreamOutlet(
            pylsl.StreamInfo(
                f"{name}-commands", "Markers", 1, 0.0, "string", f"{source_id}-controller"
            )
        )
        listener = bridge.listener
        assert _until(lambda: (listener.poll(0.0), listener.n_malformed)[1] == 1)
        text.push_sample(["amplitude=3"])
        assert bridge.serve(0.3) == 0 and bridge.stats.periods == 7


def test_streams_carry_the_recording_ground_truth_pulses_and_biomarkers(source_id: str) -> None:
    bridge, name = _bridge(source_id, probe={"noise_uv": 2.0, "lfp_uv": 20.0})
    controller = f"{source_id}-controller"
    with bridge:
        inlets = {s: _inlet(f"{source_id}-{s}") for s in ("raw", "spikes", "stim", "biomarkers")}
        assert bridge.raw_outlet.wait_for_consumers(5.0)
        records = [
            bridge.advance(StimCommand(2.5 if k >= 2 else 0.0, 130.0, 300.0, 0.0, controller, k))
            for k in range(6)
        ]
        got = {s: _pull(inlet) for s, inlet in inlets.items()}

        info = inlets["raw"].info(timeout=5.0)
        ch = read_channel_info(info)
        assert info.name() == f"{name}-raw" and info.nominal_srate() == 30000.0
        assert info.channel_count() == 4 and set(ch.units) == {"uV"}
        np.testing.assert_allclose(np.array(ch.positions), bridge.probe.positions)
        plant = info.desc().child("plant")
        assert plant.child_value("state") == "pd" and plant.child_value("lockstep") == "true"
        assert plant.child_value("controller_source_id") == controller
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

        # pulses: on the stim stream (device amplitude), and as artifacts in the voltage
        stim = [m[0] for m in got["stim"][0]]
        pulses = [int(m.split()[1].split("=")[1]) for m in stim]
        assert {tuple(m.split()[2:]) for m in stim} == {("amp=300", "amp_ma=2.5")}
        expected_pulses = [
            int(round((t - bridge.t_origin_s) * 30000.0))
            for rec in records
            for t in rec.dbs_pulse_times
        ]
        # the pulse clock runs from t = 0: onsets k / 130 s in [40, 120) ms, k = 6..15
        assert pulses == expected_pulses and len(pulses) == 10
        before = np.abs(raw_a[: pulses[0]]).max()
        assert np.abs(raw_a[pulses[0] : pulses[0] + 10]).max() > 5 * before

        # biomarkers: one labelled sample per period with the stimulation applied, in mA
        bio, bstamps = got["biomarkers"]
        binfo = inlets["biomarkers"].info(timeout=5.0)
        labels = read_channel_info(binfo)
        assert labels.labels == BIOMARKER_CHANNELS
        amp = BIOMARKER_CHANNELS.index("amplitude_ma")
        assert labels.units[amp] == "mA"
        model = BIOMARKER_CHANNELS.index("amplitude")
        assert labels.units[model] == "uA/cm2"
        assert np.asarray(bio)[:, model].tolist() == [0.0, 0.0, 300.0, 300.0, 300.0, 300.0]
        assert binfo.nominal_srate() == pytest.approx(50.0)
        bio_a = np.asarray(bio)
        assert bio_a.shape == (6, len(BIOMARKER_CHANNELS))
        assert bio_a[:, amp].tolist() == [0.0, 0.0, 2.5, 2.5, 2.5, 2.5]
        np.testing.assert_allclose(np.diff(bstamps), 0.02, atol=1e-6)
        # the plant's state, to score a state decoder: this stationary plant is Parkinsonian
        assert bio_a[:, BIOMARKER_CHANNELS.index("pd_state")].tolist() == [1.0] * 6


def test_realtime_run_paces_to_the_clock_and_ramps_at_the_slew_limit(source_id: str) -> None:
    bridge, name = _bridge(
        source_id, seed=2, lockstep=False, limits={"watchdog_timeout_s": None}
    )  # default slew: 12 mA/s
    with bridge:
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller")
        assert bridge.listener is not None
        assert bridge.listener.wait_for_source(f"{source_id}-controller", 10.0)
        assert controller.wait_for_consumers(5.0)
        biomarkers = _inlet(f"{source_id}-biomarkers")
        controller.send(2.5)
        time.sleep(0.2)  # delivered before the first period is simulated
        stats = bridge.run(0.4)
        assert stats.periods == 20 and stats.commands_applied == 1
        assert stats.wall_s > 0.3  # paced, not flat out
        amps = np.asarray(_pull(biomarkers, 20)[0])[:, BIOMARKER_CHANNELS.index("amplitude_ma")]
        # from off, 0.24 mA per 20-ms period up to 2.5 mA, never a larger step
        assert amps[0] == pytest.approx(0.24) and np.all(np.diff(amps) <= 0.24 + 1e-5)
        assert amps[-1] == pytest.approx(2.5) and np.count_nonzero(amps < 2.5 - 1e-6) == 10


def test_watchdog_trips_within_its_timeout_when_the_controller_falls_silent(
    source_id: str,
) -> None:
    timeout_s = 0.1
    bridge, name = _bridge(
        source_id, lockstep=False, limits={**FAST, "watchdog_timeout_s": timeout_s}
    )
    with bridge:
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller")
        assert bridge.listener is not None
        assert bridge.listener.wait_for_source(f"{source_id}-controller", 10.0)
        assert controller.wait_for_consumers(5.0)
        events = _inlet(f"{source_id}-safety")
        biomarkers = _inlet(f"{source_id}-biomarkers")

        def send() -> None:  # a controller that sends for 0.4 s, then dies
            end = time.monotonic() + 0.4
            while time.monotonic() < end:
                controller.send(2.0)
                time.sleep(0.02)

        sender = threading.Thread(target=send)
        sender.start()
        bridge.run(1.0)
        sender.join()
        markers = [json.loads(m[0]) for m in _pull(events, 1)[0]]
        trips = [m for m in markers if m["event"] == "watchdog_trip"]
        # one trip before the controller's first command may be seen, one after it died
        last = trips[-1]
        assert timeout_s < last["silent_s"] <= timeout_s + bridge.control_period_s + 1e-9
        amps = np.asarray(_pull(biomarkers, 50)[0])[:, BIOMARKER_CHANNELS.index("amplitude_ma")]
        assert amps.max() == pytest.approx(2.0)
        assert amps[-1] == 0.0 and bridge.command.amplitude_ma == 0.0
        assert np.count_nonzero(amps[np.argmax(amps == 2.0) :] == 0.0) > 10  # off, and stays off


def test_a_plant_that_runs_late_still_publishes_as_it_goes(source_id: str) -> None:
    """A plant process that cannot keep up with the wall clock (a loaded machine) publishes each
    period as soon as it is simulated, not only once it has caught up: the loop and the recorder
    keep getting data, late."""
    bridge, _ = _bridge(source_id, lockstep=False, limits={"watchdog_timeout_s": None})
    step = bridge.network.step

    def slow_step(*args: Any, **kwargs: Any) -> Any:  # 30 ms of wall time per 20 ms period
        time.sleep(0.03)
        return step(*args, **kwargs)

    bridge.network.step = slow_step  # type: ignore[method-assign]
    with bridge:
        biomarkers = _inlet(f"{source_id}-biomarkers")
        arrived: list[float] = []

        def pull() -> None:
            while len(arrived) < 40:
                _, stamps = biomarkers.pull_chunk(timeout=0.01)
                arrived.extend(time.monotonic() for _ in stamps)
                if time.monotonic() > t_end + 5.0:
                    return

        t_end = time.monotonic() + 60.0
        puller = threading.Thread(target=pull)
        puller.start()
        t_start = time.monotonic()
        stats = bridge.run(0.8)  # 40 periods, about 1.2 s of wall time
        t_end = time.monotonic()
        puller.join()
        assert stats.late_periods > 0  # it did run late
        assert arrived, "no biomarker sample arrived"
        # the first period went out right after it was simulated, long before the run ended
        assert arrived[0] - t_start < 0.5 * (t_end - t_start), (
            arrived[0] - t_start,
            t_end - t_start,
        )


def test_lockstep_reports_what_it_waits_for(source_id: str) -> None:
    bridge, _ = _bridge(source_id)
    reports: list[float] = []

    def waiting(silent_s: float) -> None:
        reports.append(silent_s)
        bridge.stop()

    with bridge:
        bridge.run(1.0, on_wait=waiting, wait_report_s=0.3)
    assert len(reports) == 1 and reports[0] >= 0.3 and bridge.stats.periods == 0


def test_a_paced_lockstep_driven_as_fast_as_possible_keeps_to_the_clock(source_id: str) -> None:
    """max_speed 1.0: every command queued at once still takes the signal's time in wall time;
    one period per command, none lost."""
    bridge, name = _bridge(source_id, max_speed=1.0)
    with bridge:
        controller = CommandOutlet(f"{name}-commands", f"{source_id}-controller")
        assert bridge.listener is not None
        assert bridge.listener.wait_for_source(f"{source_id}-controller", 10.0)
        assert controller.wait_for_consumers(5.0)
        for k in range(25):
            controller.send(2.0 if k >= 5 else 0.0)
        t_start = time.perf_counter()
        stats = bridge.run(0.5)
        wall_s = time.perf_counter() - t_start
    assert stats.periods == 25 and stats.commands_applied == 25
    assert bridge.t_model_s == pytest.approx(0.5) and bridge.n_dropped == 0
    assert wall_s >= 0.9 * 0.5, wall_s  # the last period starts 24 periods after the first
    assert stats.paced_s > 0.0


def test_pacing_changes_when_periods_run_never_what_they_hold(source_id: str) -> None:
    def periods(max_speed: float | None) -> tuple[list[Any], float]:
        bridge, _ = _bridge(source_id, seed=4, max_speed=max_speed)
        controller = f"{source_id}-controller"
        with bridge:
            t_start = time.perf_counter()
            recs = [
                bridge.advance(
                    StimCommand(2.0 if k >= 3 else 0.0, 130.0, 300.0, 0.0, controller, k)
                )
                for k in range(15)
            ]
            return recs, time.perf_counter() - t_start

    unpaced, _ = periods(None)
    paced, wall_s = periods(1.0)
    assert wall_s >= 0.9 * 15 * 0.02, wall_s
    for a, b in zip(unpaced, paced, strict=True):
        assert a.t_stop_s == b.t_stop_s
        np.testing.assert_array_equal(a.dbs_pulse_times, b.dbs_pulse_times)
        assert a.spike_times.keys() == b.spike_times.keys()
        for key in a.spike_times:
            for cell_a, cell_b in zip(a.spike_times[key], b.spike_times[key], strict=True):
                np.testing.assert_array_equal(cell_a, cell_b)
        for key in a.lfp:
            np.testing.assert_array_equal(a.lfp[key], b.lfp[key])
    assert unpaced[-1].dbs_pulse_times.size > 0  # the commands did stimulate


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "fast"])
def test_a_bad_pace_is_named(bad: Any) -> None:
    with pytest.raises(PlantParameterError, match="'max_speed'"):
        BridgeTiming(lockstep=True, max_speed=bad)
    with pytest.raises(PlantParameterError, match="'max_speed'.*lockstep only"):
        BridgeTiming(max_speed=1.0)  # real time already runs at the clock's speed


def test_cli_runs_the_plant_and_reports_bad_settings(source_id: str) -> None:
    runner = CliRunner()
    args = ["plant", "--cells", "4", "--units", "2", "--channels", "4", "--source-id", source_id]
    result = runner.invoke(
        cli,
        [*args, "--name", f"cli-{source_id[-12:]}", "--duration", "0.1", "--amplitude-ma", "2.5"],
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Open loop at 2.5 mA" in output
    assert "Simulated 0.10 s" in output and "5 periods" in output
    n_pulses = int(output.split(" pulses;")[0].rsplit(" ", 1)[1])
    assert n_pulses in (12, 13)  # 0.1 s at 130 Hz, the phase set by the warm-up
    bad = runner.invoke(cli, [*args, "--units", "9"])
    assert bad.exit_code == 2 and "n_units" in bad.output
    lock = runner.invoke(cli, [*args, "--lockstep"])
    assert lock.exit_code == 2 and "--controller-source-id" in lock.output
    limits = runner.invoke(cli, [*args, "--max-amplitude-ma", "-1"])
    assert limits.exit_code == 2 and "max_amplitude_ma" in limits.output
    paced = [*args, "--lockstep", "--controller-source-id", f"{source_id}-ctl", "--max-speed"]
    for bad in ("0", "-2", "nan", "inf"):
        speed = runner.invoke(cli, [*paced, bad])
        assert speed.exit_code == 2 and "--max-speed" in speed.output, speed.output
    realtime = runner.invoke(cli, [*args, "--max-speed", "1"])
    assert realtime.exit_code == 2 and "--max-speed paces --lockstep" in realtime.output


def test_bci_stim_drives_a_lockstep_plant_from_the_command_line(source_id: str) -> None:
    name = f"cli-{source_id[-12:]}"
    ctl = f"{source_id}-stim"
    sender = subprocess.Popen(
        [sys.executable, "-m", "bci.cli.main", "stim", "--stream", f"{name}-commands"]
        + ["--source-id", ctl, "--session-token", "t1", "--amplitude-ma", "9", "--count", "10"]
        + ["--rate-hz", "100", "--wait", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        result = CliRunner().invoke(
            cli,
            ["plant", "--cells", "4", "--units", "2", "--channels", "4", "--name", name]
            + ["--source-id", source_id, "--controller-source-id", ctl, "--session-token", "t1"]
            + ["--lockstep", "--duration", "0.2"],
        )
        out, _ = sender.communicate(timeout=60)
    finally:
        sender.kill()
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps lines
    assert f"bci stim --stream {name}-commands --source-id {ctl}" in output
    assert "Simulated 0.20 s" in output and "commands applied 10" in output
    assert "'clamp_amplitude': 10" in output  # 9 mA asked, the limiter's 3 mA delivered
    assert sender.returncode == 0 and "Sent 10 commands" in out


def test_flat_settings_go_to_the_object_that_owns_them(source_id: str) -> None:
    bridge = PlantBridge.from_settings(
        seed=3,
        cells_per_nucleus=6,
        n_units=2,
        n_channels=4,
        recorded_nucleus="gpi",
        plant="fluctuating",
        warmup_s=0.0,
        controller_source_id="ctl",
        max_amplitude_ma=2.0,
        amplitude_ma=1.0,
        channel_format="int16",
        source_id=source_id,
    )
    with bridge:
        assert bridge.network.plant == "fluctuating" and bridge.network.seed == 3
        assert bridge.probe.nucleus == "gpi" and bridge.probe.n_units == 2
        assert bridge.limits.source_id == "ctl" and bridge.limits.max_amplitude_ma == 2.0
        assert bridge.initial.amplitude_ma == 1.0 and bridge.channel_format == "int16"
        assert bridge.closed_loop and bridge.limits.watchdog_timeout_s == 0.1
    with pytest.raises(PlantParameterError, match="Unknown plant bridge setting 'n_unit'"):
        PlantBridge.from_settings(n_unit=3)
    with pytest.raises(PlantParameterError, match="device units"):
        PlantBridge.from_settings(amplitude_scale=120.0)


def test_a_stop_asked_before_the_run_starts_ends_it(source_id: str) -> None:
    """A SIGINT that reaches the plant right after its ready line (before ``run``) stops it."""
    bridge, _ = _bridge(source_id, lockstep=False, limits={"watchdog_timeout_s": None})
    with bridge:
        bridge.stop()
        done = threading.Event()
        runner = threading.Thread(target=lambda: (bridge.run(None), done.set()), daemon=True)
        runner.start()
        stopped = done.wait(30.0)  # a run that lost the request runs until stopped again
        if not stopped:
            bridge.stop()
            runner.join(30.0)
        assert stopped, "run() ignored the stop asked before it started"
        # the request was used up: a later run runs until asked again
        assert bridge.run(0.04).periods == 2
