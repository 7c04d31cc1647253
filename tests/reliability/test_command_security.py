"""Who can change stimulation: on loopback LSL, a plant in real time with its safety limiter, the
session's controller, a recorder in its own process, and what else can reach the command stream:

- a foreign process publishing commands on the same stream name (another source_id);
- an impostor with the controller's source_id but another session token;
- replayed old commands of the controller (old seq), and one out of sequence;
- commands that arrive after the watchdog tripped: a delayed one (issued long ago) and replays.

Every one of them is dropped (the plant's stimulation never shows their amplitude), counted by the
limiter, and recorded: the recorder keeps the limiter's event stream, one JSON marker per drop,
and the foreign stream itself. Only the controller's fresh commands, through the limiter, change
the stimulation. The threat model is in the README ("Reliability").
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pylsl
import pytest
from lsl_testing import wait_until

from bci.session.files import read_xdf
from bci.session.recorder_process import spawn_recorder
from bci.stream import StimCommand
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.bridge import BIOMARKER_CHANNELS, BridgeTiming, PlantBridge
from stimulation.plant.commands import CommandOutlet
from stimulation.plant.probe import VirtualProbe
from stimulation.safety import DROPS, SafetyLimits

TOKEN = "session-token-7f3a"
CONTROLLER_MA = 1.0
ATTACK_MA = 3.0
WATCHDOG_S = 0.2
N_INTRUDER = 25
N_IMPOSTOR = 20
HERE = Path(__file__).resolve().parent


def _streams(path: Path) -> dict[str, dict]:
    streams, _ = read_xdf(path, synchronize_clocks=False)
    return {s["info"]["source_id"][0]: s for s in streams}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the whole scenario once; return what the limiter counted and what was recorded."""
    tag = f"sec-{time.monotonic_ns() % 10**9}"
    controller_id = f"{tag}-controller"
    intruder_id = f"{tag}-intruder"
    network = BasalGangliaNetwork(cells_per_nucleus=6, seed=3)
    probe = VirtualProbe(6, "stn", 3, 4, seed=3)
    limits = SafetyLimits(
        source_id=controller_id,
        session_token=TOKEN,
        watchdog_timeout_s=WATCHDOG_S,
        max_command_age_s=0.5,
        max_slew_ma_per_s=1e4,
    )
    bridge = PlantBridge(
        network, probe, name=tag, source_id=tag, limits=limits, timing=BridgeTiming(warmup_s=0.1)
    )
    stream = bridge.command_stream
    intruder = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_intruder.py"),
            stream,
            intruder_id,
            TOKEN,
            str(N_INTRUDER),
            str(ATTACK_MA),
        ],  # fmt: skip
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    recorder = None
    try:
        assert intruder.stdout is not None and intruder.stdin is not None
        assert intruder.stdout.readline().strip() == "ready"
        controller = CommandOutlet(stream, controller_id, TOKEN)
        impostor = CommandOutlet(stream, controller_id, "stolen-or-stale-token")
        listener = bridge.listener
        assert listener is not None
        assert wait_until(lambda: (listener.poll(0.0), listener.n_streams)[1] == 3, 20.0)
        out = tmp_path_factory.mktemp("security") / "recording.xdf"
        recorder = spawn_recorder(
            out,
            source_ids=[f"{tag}-safety", f"{tag}-biomarkers", intruder_id],
            extra_args=["--status-interval", "0"],
        )
        for outlet in (controller, impostor):
            assert outlet.wait_for_consumers(10.0)

        ran = threading.Thread(target=bridge.run, args=(3.0,), name="plant")
        ran.start()
        sent: list[StimCommand] = []
        intruder.stdin.write("go\n")
        intruder.stdin.flush()
        t_start = time.monotonic()
        while time.monotonic() - t_start < 1.2:  # the controller: 1 mA every 20 ms
            sent.append(controller.send(CONTROLLER_MA))
            if len(sent) <= N_IMPOSTOR:
                impostor.send(ATTACK_MA)
            if len(sent) == 20:  # replays of its first commands, then one out of sequence
                for old in sent[:5]:
                    controller.push(StimCommand(ATTACK_MA, 130.0, 300.0, old.t_issue,
                                                controller_id, old.seq, TOKEN))  # fmt: skip
                controller.push(StimCommand(ATTACK_MA, 130.0, 300.0, pylsl.local_clock(),
                                            controller_id, sent[-1].seq - 3, TOKEN))  # fmt: skip
            time.sleep(0.02)
        t_silent = pylsl.local_clock()
        time.sleep(WATCHDOG_S + 0.4)  # the controller falls silent: the watchdog trips
        # after the trip: a command held up on the network since before it, and replays
        late = StimCommand(ATTACK_MA, 130.0, 300.0, t_silent - 0.6, controller_id,
                           sent[-1].seq + 1, TOKEN)  # fmt: skip
        controller.push(late)
        for old in sent[-3:]:
            controller.push(StimCommand(ATTACK_MA, 130.0, 300.0, old.t_issue, controller_id,
                                        old.seq, TOKEN))  # fmt: skip
        ran.join(30.0)
        assert not ran.is_alive()
        assert intruder.stdout.readline().strip() == f"sent {N_INTRUDER}"
        time.sleep(0.6)  # the recorder pulls the last markers
        recorder.stop()
        recorder = None
        return {
            "counts": dict(bridge.limiter.counts),
            "recorded": _streams(out),
            "tag": tag,
            "intruder_id": intruder_id,
            "t_silent": t_silent,
            "n_sent": len(sent),
            "periods": bridge.stats.periods,
        }
    finally:
        if recorder is not None:
            recorder.kill()
        if intruder.stdin is not None:
            intruder.stdin.close()
        intruder.wait(10.0)
        if intruder.stdout is not None:
            intruder.stdout.close()
        bridge.close()


def _markers(attacked: dict) -> list[dict]:
    safety = attacked["recorded"][f"{attacked['tag']}-safety"]
    return [json.loads(m[0]) for m in safety["time_series"]]


def test_every_foreign_replayed_or_late_command_is_dropped_and_counted(attacked: dict) -> None:
    counts = attacked["counts"]
    assert counts["rejected_source"] == N_INTRUDER
    assert counts["rejected_token"] == N_IMPOSTOR
    assert counts["rejected_seq"] == 5 + 1 + 3  # early replays, out of sequence, late replays
    assert counts["rejected_stale"] == 1  # the command held up since before the trip
    assert counts["watchdog_trip"] >= 1


def test_the_recording_holds_every_drop_and_the_foreign_stream(attacked: dict) -> None:
    markers = _markers(attacked)
    recorded = Counter(m["event"] for m in markers)
    for kind in (*DROPS, "watchdog_trip"):
        assert recorded[kind] == attacked["counts"].get(kind, 0), kind
    foreign = {m["source_id"] for m in markers if m["event"] == "rejected_source"}
    assert foreign == {attacked["intruder_id"]}
    assert len(attacked["recorded"][attacked["intruder_id"]]["time_stamps"]) == N_INTRUDER


def test_only_the_controller_changed_the_stimulation(attacked: dict) -> None:
    bio = attacked["recorded"][f"{attacked['tag']}-biomarkers"]
    values = np.asarray(bio["time_series"])
    amps = values[:, BIOMARKER_CHANNELS.index("amplitude_ma")]
    assert len(amps) == attacked["periods"]
    assert amps.max() == pytest.approx(CONTROLLER_MA)  # never an attacker's 3 mA
    seqs = values[:, BIOMARKER_CHANNELS.index("command_seq")]
    assert seqs.max() <= attacked["n_sent"] - 1  # the applied seq is always one the controller sent
    stamps = np.asarray(bio["time_stamps"])
    after = stamps > attacked["t_silent"] + WATCHDOG_S + 0.05
    assert after.any() and np.all(amps[after] == 0.0)  # safe state after the trip, and kept
