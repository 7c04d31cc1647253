"""The product's closed loop, ``bci run SESSION.yaml``, on loopback LSL, to inject faults into.

:class:`FaultRig` writes a small real-time session and runs it as a user does (``bci run
SESSION.yaml --quiet``: :class:`bci.runner.SessionRunner` in its own process, which starts the
recorder, and the plant when the plant is the source). Two sources:

- ``plant`` (``source.kind: plant``): the runner starts the basal-ganglia plant (6 cells per
  nucleus, a 2-contact probe) as its own process, behind the plant's
  :class:`~stimulation.safety.SafetyLimiter` (watchdog 0.1 s, slew 100 mA/s); the probe's raw
  stream is the runner's source. Used for every fault that does not need the source's outlet to
  die on its own (in this session the probe outlet and the stimulator are one process).
- ``amp`` (``source.kind: lsl``): an amplifier of the rig (``_fault_source.py``: 4 channels at
  30 kHz, channel 0 = each sample's running index, NaN/inf bursts and clock jumps on signal) is
  the source, and ``bci plant --realtime`` is the stimulator on the session's command stream
  (``stimulator.command_stream``). The rig starts it once the runner has opened that stream,
  with the session's limiter source_id and token read from the stream's metadata (the pairing a
  user does for a real stimulator). Used for the faults of the source's outlet (dies, returns,
  NaN/inf, clock jump, a second stream of the same name).

The session: band-pass, threshold crossings (calibrated in the first 1.5 s with stimulation off),
20 ms bins, :class:`fault_stages.FaultyDecoder` (mean count) and
:class:`fault_stages.FaultyController` (1 mA whenever the decoder gives a number), the runner's
limiter (watchdog 0.1 s, slew 100 mA/s), recording on. The decoder or controller fails on
request (raise, NaN, hang) once the rig creates their trigger file.

The rig watches the plant's ``-biomarkers`` (the stimulation applied each 20 ms period) and
``-safety`` streams and the runner's ``-events`` in its own process, noting each sample's arrival
on the wall clock (LSL's ``local_clock``), and measures from them and from the run folder
(:meth:`FaultRig.measure`).

Used by ``tests/integration/test_faults.py`` and ``benchmarks/fault_report.py``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
import yaml
from fault_procs import HERE, ROOT, Child, Observer, bci, children_of, pid_alive, python

__all__ = [
    "HERE",
    "ROOT",
    "Child",
    "FaultResult",
    "FaultRig",
    "bci",
    "pid_alive",
    "python",
    "runner_bound_s",
    "watchdog_bound_s",
    "within",
]

PERIOD_S = 0.02
#: allowance for the plant process being scheduled late on a loaded machine (one period)
SCHEDULING_S = 0.02
#: how often the runner checks its recorder (bci.runner.loop.RECORDER_CHECK_S)
RECORDER_CHECK_S = 0.25
AMPLITUDE_MA = 1.0
WATCHDOG_S = 0.1
SLEW_MA_PER_S = 100.0


def watchdog_bound_s() -> float:
    """Latest safe arrival after the loop falls silent: the plant's watchdog, the ramp down, three
    periods (the trip falls on a period boundary, a new setting applies from the next period not
    yet simulated, a period is published at its end) and one period of scheduling allowance."""
    return WATCHDOG_S + AMPLITUDE_MA / SLEW_MA_PER_S + 3 * PERIOD_S + SCHEDULING_S


def runner_bound_s(detect_s: float = 0.0) -> float:
    """Latest safe arrival after a fault the runner itself notices within ``detect_s``: it sends
    the safe state at once (its own ramp), then the same three periods and allowance."""
    return detect_s + AMPLITUDE_MA / SLEW_MA_PER_S + 3 * PERIOD_S + SCHEDULING_S


@dataclass
class FaultResult:
    """What one fault did (JSON row of the fault report, and details for the tests)."""

    fault: str
    detected: str
    time_to_safe_s: float | None
    samples_lost: int
    safe: bool
    max_applied_ma: float
    bound_s: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "detected": self.detected,
            "time_to_safe_s": self.time_to_safe_s,
            "bound_s": None if self.bound_s is None else round(self.bound_s, 3),
            "samples_lost": self.samples_lost,
            "safe": self.safe,
        }


class FaultRig:
    """``bci run`` of a small real-time session, and the faults (module docstring).

    Parameters
    ----------
    tmp : Path
        Folder for the session file, the run folder and the triggers.
    source : {"plant", "amp"}
        The session's source (module docstring).
    decoder_fault, controller_fault : {"raise", "nan", "hang"}, optional
        What the decoder / controller does once :meth:`trigger` is called.
    source_args : sequence of str
        More options of ``_fault_source.py`` (``amp``).
    fsize_bytes : int, optional
        Largest file the runner and its children may write (RLIMIT_FSIZE): a disk that fills
        up under the recorder.
    runs_root : Path, optional
        Where the run folder goes (default ``tmp/runs``); a read-only place for that fault.
    """

    def __init__(
        self,
        tmp: Path,
        *,
        source: str = "plant",
        decoder_fault: str | None = None,
        controller_fault: str | None = None,
        source_args: Sequence[str] = (),
        fsize_bytes: int | None = None,
        runs_root: Path | None = None,
    ) -> None:
        self.tmp = Path(tmp)
        self.kind = source
        self.tag = f"fault-{uuid.uuid4().hex[:8]}"
        self.amp_id = f"{self.tag}-amp"
        self.trigger_path = self.tmp / "fault.trigger"
        self.decoder_fault = decoder_fault
        self.controller_fault = controller_fault
        self.source_args = list(source_args)
        self.fsize_bytes = fsize_bytes
        self.runs_root = runs_root if runs_root is not None else self.tmp / "runs"
        self.sources: list[tuple[int, Child]] = []  # amplifiers: (start index, process)
        self.runner: Child | None = None
        self.plant: Child | None = None  # amp: the rig's stimulator; plant: None (runner's)
        self.others: list[Child] = []
        self.orphans: dict[int, str] = {}  # the runner's children after the runner was killed
        self.observer = Observer()
        self.run_id = ""
        self.plant_name = ""
        self.run_dir: Path | None = None

    # ------------------------------------------------------------------ the session
    def session(self) -> dict[str, Any]:
        trigger = str(self.trigger_path)
        config: dict[str, Any] = {
            "name": "faults",
            "description": "fault rig session (tests/integration/fault_rig.py)",
            "duration_s": 3600.0,
            "seed": 1,
            "pacing": "realtime",
            "calibration": {"duration_s": 1.5},
            "pipeline": [
                {"stage": "bandpass"},
                {"stage": "threshold_crossings", "params": {"calibration_s": 0.5}},
                {"stage": "spike_binner", "params": {"bin_s": PERIOD_S}},
            ],
            "decoder": {
                "stage": "fault_stages:FaultyDecoder",
                "params": {"fault": self.decoder_fault, "trigger": trigger},
            },
            "controller": {
                "stage": "fault_stages:FaultyController",
                "params": {
                    "amplitude_ma": AMPLITUDE_MA,
                    "fault": self.controller_fault,
                    "trigger": trigger,
                },
            },
            "safety": {
                "limits": {
                    "max_amplitude_ma": 2.0,
                    "max_slew_ma_per_s": SLEW_MA_PER_S,
                    "watchdog_timeout_s": WATCHDOG_S,
                }
            },
            "timing": {"deadline_ms": 5.0, "stream_timeout_s": 30.0},
            "recording": {"enabled": True, "nix": False, "flush_interval_s": 0.25},
            "runs_root": str(self.runs_root),
        }
        if self.kind == "plant":
            config["source"] = {
                "kind": "plant",
                "network": {"cells_per_nucleus": 6},
                "probe": {"n_channels": 2, "n_units": 2},
                "timing": {"warmup_s": 0.2},
                "limits": {"max_slew_ma_per_s": SLEW_MA_PER_S, "watchdog_timeout_s": WATCHDOG_S},
            }
        else:
            config["source"] = {"kind": "lsl", "source_id": self.amp_id, "n_channels": 4}
            config["stimulator"] = {"command_stream": f"{self.tag}-commands"}
        return config

    def start(self, *, wait_on_s: float = 120.0) -> FaultRig:
        """Start the session and return once the plant applies the controller's amplitude."""
        if self.kind == "amp":
            self.start_source(0)
        path = self.tmp / "session.yaml"
        path.write_text(yaml.safe_dump(self.session()))
        popen: dict[str, Any] = {}
        if self.fsize_bytes is not None:
            fsize = self.fsize_bytes

            def small_disk() -> None:  # writes past fsize fail with EFBIG (Python ignores SIGXFSZ)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

            popen["preexec_fn"] = small_disk
        self.runner = Child("runner", bci("run", str(path), "--quiet"), **popen)
        self.run_dir = self._wait_run_dir(120.0)
        if self.kind == "plant":
            tag = self.run_id.rsplit("-", 1)[1]
            self.plant_name = f"plant-{tag}"
        else:
            self.plant_name = f"{self.tag}-plant"
            self._start_stimulator(60.0)
        self.observer.watch(f"{self.plant_name}-biomarkers", 120.0)
        self.observer.watch(f"{self.plant_name}-safety", 30.0)
        self.observer.watch(f"{self.run_id}-events", 30.0)
        deadline = time.monotonic() + wait_on_s
        while not any(a >= AMPLITUDE_MA for _, a in self.amplitudes()):
            if time.monotonic() > deadline or not self.runner.alive:
                raise RuntimeError(f"the loop never stimulated:\n{self.runner.text()}")
            time.sleep(0.05)
        return self

    def _wait_run_dir(self, timeout_s: float) -> Path:
        deadline = time.monotonic() + timeout_s
        assert self.runner is not None
        while time.monotonic() < deadline:
            found = list(self.runs_root.glob("*-faults/config.yaml"))
            if found:
                try:
                    self.run_id = yaml.safe_load(found[0].read_text())["run"]["id"]
                    return found[0].parent
                except (TypeError, KeyError, yaml.YAMLError):
                    pass  # being written
            if not self.runner.alive:
                break
            time.sleep(0.05)
        raise RuntimeError(f"bci run made no run folder:\n{self.runner.text()}")

    def _start_stimulator(self, timeout_s: float) -> None:
        """``bci plant --realtime`` obeying the session's limiter (source_id, token from the
        command stream's metadata)."""
        found = pylsl.resolve_byprop("name", f"{self.tag}-commands", 1, timeout_s)
        if not found:
            raise RuntimeError("the runner never opened the stimulator's command stream")
        info = pylsl.StreamInlet(found[0]).info(timeout=10.0)
        token = info.desc().child("command").child_value("session_token")
        (self.tmp / "limits.yaml").write_text(
            yaml.safe_dump({"max_slew_ma_per_s": SLEW_MA_PER_S, "watchdog_timeout_s": WATCHDOG_S})
        )
        self.plant = Child(
            "plant",
            bci(
                "plant",
                "--realtime",
                "--name",
                self.plant_name,
                "--source-id",
                self.plant_name,
                "--command-stream",
                f"{self.tag}-commands",
                "--controller-source-id",
                info.source_id(),
                "--session-token",
                token,
                "--limits",
                str(self.tmp / "limits.yaml"),
                "--cells",
                "6",
                "--units",
                "2",
                "--channels",
                "2",
            ),  # fmt: skip
        )
        self.plant.wait_line("Obeying", 120)

    def start_source(self, start_index: int = 0, *extra: str, name: str | None = None) -> Child:
        child = Child(
            "amplifier",
            python(
                "_fault_source.py",
                name or self.tag,
                self.amp_id,
                "--start-index",
                str(start_index),
                *self.source_args,
                *extra,
            ),  # fmt: skip
        )
        child.wait_line("t0", 60)
        self.sources.append((start_index, child))
        return child

    def pushed(self) -> int:
        """Samples the amplifiers had pushed (as they printed)."""
        last = 0
        for _start, child in self.sources:
            for _, line in child.lines:
                if line.startswith("pushed"):
                    last = max(last, int(line.split()[1]))
        return last

    # ------------------------------------------------------------------ what is seen
    def amplitudes(self) -> list[tuple[float, float]]:
        """(arrival, amplitude applied) of every plant period seen so far."""
        from stimulation.plant.streams import BIOMARKER_CHANNELS

        col = BIOMARKER_CHANNELS.index("amplitude_ma")
        rows = self.observer.samples.get(f"{self.plant_name}-biomarkers", [])
        return [(a, float(v[col])) for a, _, v in list(rows)]

    def safety_events(self) -> list[tuple[float, dict[str, Any]]]:
        rows = self.observer.samples.get(f"{self.plant_name}-safety", [])
        return [(a, json.loads(v[0])) for a, _, v in list(rows)]

    def runner_events(self) -> list[tuple[float, str]]:
        rows = self.observer.samples.get(f"{self.run_id}-events", [])
        return [(a, str(v[0])) for a, _, v in list(rows)]

    def first_event(self, prefix: str, after: float) -> tuple[float, str] | None:
        return next(
            ((t, e) for t, e in self.runner_events() if t >= after and e.startswith(prefix)), None
        )

    def run_for(self, seconds: float) -> None:
        time.sleep(seconds)

    # ------------------------------------------------------------------ faults
    def trigger(self) -> float:
        """Make the decoder / controller fail; return the LSL time it did (or asked)."""
        t = pylsl.local_clock()
        self.trigger_path.write_text("now")
        at = self.trigger_path.with_name(self.trigger_path.name + ".at")
        deadline = time.monotonic() + 10.0
        while not at.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            return float(at.read_text())
        except (OSError, ValueError):
            return t

    def recorder_pid(self) -> int:
        assert self.runner is not None
        for pid, cmd in children_of(self.runner.proc.pid).items():
            if " record " in cmd:
                return pid
        raise RuntimeError("the runner has no recorder process")

    def plant_pid(self) -> int:
        assert self.runner is not None
        for pid, cmd in children_of(self.runner.proc.pid).items():
            if "plant_child" in cmd:
                return pid
        raise RuntimeError("the runner has no plant process")

    def kill_source(self) -> float:
        t = pylsl.local_clock()
        self.sources[-1][1].kill()
        return t

    def signal_source(self, sig: int) -> float:
        """Send ``sig`` to the amplifier (SIGUSR1: NaN/inf burst, SIGUSR2: clock jump)."""
        t = pylsl.local_clock()
        self.sources[-1][1].proc.send_signal(sig)
        return t

    def kill_pid(self, pid: int) -> float:
        t = pylsl.local_clock()
        os.kill(pid, signal.SIGKILL)
        return t

    def kill_runner(self) -> float:
        """SIGKILL the runner; its plant and recorder live on (they are stopped at the end)."""
        assert self.runner is not None
        self.orphans = children_of(self.runner.proc.pid)
        t = pylsl.local_clock()
        self.runner.kill()
        return t

    def burn_cpu(self, n_processes: int, seconds: float) -> list[Child]:
        code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"
        burners = [Child("burner", [sys.executable, "-c", code]) for _ in range(n_processes)]
        self.others += burners
        return burners

    def second_stream(self, channels: int) -> Child:
        child = Child(
            "twin",
            python("_fault_source.py", self.tag, f"{self.tag}-twin", "--channels", str(channels)),
        )
        child.wait_line("t0", 60)
        self.others.append(child)
        return child

    # ------------------------------------------------------------------ the end
    def stop(self) -> dict[str, Any]:
        """Stop the run as a user does (SIGINT: safe state, recorder closed); return summary.json
        (empty if the runner was killed)."""
        if self.runner is not None:
            self.runner.stop(60)
        for pid in self.orphans:  # the runner's children, left behind by its SIGKILL
            if pid_alive(pid):
                os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while any(pid_alive(p) for p in self.orphans) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.orphans:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.plant is not None:
            time.sleep(0.3)
            self.plant.stop()
        for _, child in self.sources:
            child.kill()
        for child in self.others:
            child.kill()
        self.observer.close()
        summary: dict[str, Any] = {}
        if self.run_dir is not None and (self.run_dir / "summary.json").exists():
            summary = json.loads((self.run_dir / "summary.json").read_text())
        return summary

    def recording(self, repair_first: bool = False) -> dict[str, dict[str, Any]]:
        """The recorded streams by source_id (a killed recorder's file is repaired first)."""
        from bci.session.files import read_xdf
        from bci.session.repair import repair

        assert self.run_dir is not None
        path = self.run_dir / "recording.xdf"
        if repair_first:
            report = repair(path, self.tmp / "repaired.xdf", overwrite=True)
            path = report.output or path
        streams, _ = read_xdf(path, synchronize_clocks=False)
        return {s["info"]["source_id"][0]: s for s in streams}

    def measure(
        self,
        fault: str,
        t_fault: float | None,
        detected: str,
        *,
        bound_s: float | None,
        repair_first: bool = False,
        run_ends: bool = False,
    ) -> FaultResult:
        """Time from ``t_fault`` to the first period the plant reported delivered at the safe
        state (arrival on the wall clock), samples lost, the largest applied amplitude.

        ``bound_s`` None: a fault the loop rides through (no time to safe asked). ``run_ends``:
        the run stops at the fault, so the recording ends there too.
        """
        amps = self.amplitudes()
        time_to_safe = None
        lag = None  # how late the plant published its first safe period (wall - its own clock)
        plant_clock = None  # time to safe on the plant's own clock
        if t_fault is not None and bound_s is not None:
            bio = self.observer.samples.get(f"{self.plant_name}-biomarkers", [])
            safe = [(t, stamp) for (t, a), (_, stamp, _) in zip(amps, bio, strict=False)
                    if t >= t_fault and a == 0.0]  # fmt: skip
            before = [stamp for t, stamp, _ in bio if t < t_fault]
            if safe:
                time_to_safe = float(safe[0][0] - t_fault)
                lag = max(0.0, float(safe[0][0] - safe[0][1]))
                if before:  # the plant's clock at the fault: its last period published by then
                    plant_clock = float(safe[0][1] - before[-1])
        rec = self.recording(repair_first)
        cutoff = (t_fault if t_fault is not None else pylsl.local_clock()) - 1.0
        lost, recorded = self._lost(rec, cutoff)
        max_applied = max((a for _, a in amps), default=0.0)
        ok = time_to_safe is not None and time_to_safe <= bound_s if bound_s is not None else True
        return FaultResult(
            fault=fault,
            detected=detected,
            time_to_safe_s=None if time_to_safe is None else round(time_to_safe, 3),
            samples_lost=lost,
            safe=bool(ok and max_applied <= AMPLITUDE_MA + 1e-9),
            max_applied_ma=max_applied,
            bound_s=bound_s,
            details={
                "amps": amps,
                "recorded": recorded,
                "rec": rec,
                "plant_lag_s": lag,
                "plant_clock_time_to_safe_s": plant_clock,
            },  # fmt: skip
        )

    def _lost(self, rec: dict[str, dict[str, Any]], cutoff: float) -> tuple[int, int]:
        """Source samples pushed before LSL time ``cutoff`` missing from the recording."""
        if self.kind == "amp":
            amp = rec.get(self.amp_id)
            recorded: set[int] = set()
            if amp is not None and len(amp["time_stamps"]):
                recorded = set(np.asarray(amp["time_series"])[:, 0].astype(np.int64).tolist())
            first = min(recorded, default=0)
            expected: set[int] = set()
            for start, child in self.sources:
                last = start
                for tl, line in child.lines:
                    if line.startswith("pushed") and tl <= cutoff:
                        last = int(line.split()[1])
                expected.update(range(max(start, first), last))
            return len(expected - recorded), len(recorded)
        # the plant's probe: sample n is stamped t0 + n / sfreq (its model clock); what it had
        # pushed by the cutoff: up to the end of the last period whose biomarker sample (pushed
        # after the period's raw samples) had arrived here by then, less one period of hold-back
        raw = rec.get(f"{self.plant_name}-raw")
        if raw is None or not len(raw["time_stamps"]):
            return -1, 0
        stamps = np.asarray(raw["time_stamps"], dtype=np.float64)
        sfreq = float(raw["info"]["nominal_srate"][0])
        index = np.round((stamps - stamps[0]) * sfreq).astype(np.int64)
        bio = self.observer.samples.get(f"{self.plant_name}-biomarkers", [])
        ends = [stamp for arrival, stamp, _ in bio if arrival <= cutoff]
        if not ends:
            return 0, int(index.size)
        last = int(np.floor((ends[-1] - PERIOD_S - stamps[0]) * sfreq))
        have = np.unique(index[(index >= 0) & (index <= last)]).size
        return max(0, last + 1 - have), int(index.size)


def within(rows: list[tuple[float, float]], lo: float, hi: float = np.inf) -> list[float]:
    """Amplitudes of the periods that arrived between ``lo`` and ``hi``."""
    return [a for t, a in rows if lo <= t < hi]


Scenario = Callable[..., FaultResult]
