"""A closed loop on loopback LSL whose parts are separate processes, to inject faults into:

- an amplifier (``_fault_source.py``: channel 0 is each sample's running index);
- the loop (``_fault_loop.py``: :class:`~bci.acquisition.LSLSource`, decoder, controller, the
  command stream signed with the session's source_id and token);
- the stimulator: the basal-ganglia plant in real time (``bci plant``) behind its
  :class:`~stimulation.safety.SafetyLimiter` (watchdog, validity, slew), publishing the
  stimulation it applied each 20 ms period (``-biomarkers``) and the limiter's events
  (``-safety``);
- the recorder (``bci record``): the amplifier, the commands, the plant's biomarkers and safety
  events into one XDF file.

:class:`FaultRig` starts them, injects a fault, stops them and measures from the recording:
time from the fault to the safe stimulation state (the plant's applied amplitude at 0), the
amplifier samples from before the fault missing from the recording, and whether any applied
stimulation exceeded the controller's. The loop is the rig's own process, not
:class:`bci.runner.SessionRunner` (written while the runner could not yet drive the plant); it
follows the runner's documented policy (safe state first on any failure). Pointing the loop-side
faults at ``SessionRunner`` is the next step.

Used by ``tests/integration/test_faults*.py`` and ``benchmarks/fault_report.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

HERE = Path(__file__).resolve().parent
PERIOD_S = 0.02
#: allowance for the plant process being scheduled late on a loaded machine (one period)
SCHEDULING_S = 0.02


class Child:
    """A child process whose output lines are kept with the LSL time they were read."""

    def __init__(self, name: str, cmd: Sequence[str], **popen: Any) -> None:
        self.name = name
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            **popen,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((pylsl.local_clock(), line.rstrip("\n")))
        self.proc.stdout.close()

    def wait_line(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _, line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not print {prefix!r}:\n{self.text()}")

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines[-40:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return int(self.proc.returncode)


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, str(HERE / script), *args]


@dataclass
class FaultResult:
    """What one fault did, measured from the recording (JSON row of the fault report)."""

    fault: str
    detected: str
    time_to_safe_s: float | None
    samples_lost: int
    safe: bool
    max_applied_ma: float
    bound_s: float
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "detected": self.detected,
            "time_to_safe_s": self.time_to_safe_s,
            "samples_lost": self.samples_lost,
            "safe": self.safe,
        }


class FaultRig:
    """The loop's processes (module docstring); ``tmp`` receives the recording.

    Parameters
    ----------
    tmp : Path
        Folder for the recording and the limits file.
    watchdog_s : float
        The plant limiter's watchdog timeout.
    amplitude_ma : float
        The controller's full amplitude.
    slew_ma_per_s : float
        The limiter's slew limit (the safe state is reached ``amplitude / slew`` after a trip).
    loop_args, source_args : sequence of str
        More options of ``_fault_loop.py`` / ``_fault_source.py`` (fault injection).
    recorder_fsize_bytes : int, optional
        Largest file the recorder may write (RLIMIT_FSIZE): a disk that fills up.
    watch_recorder : bool
        The loop goes safe when the recorder dies.
    """

    def __init__(
        self,
        tmp: Path,
        *,
        watchdog_s: float = 0.1,
        amplitude_ma: float = 1.0,
        slew_ma_per_s: float = 100.0,
        loop_args: Sequence[str] = (),
        source_args: Sequence[str] = (),
        recorder_fsize_bytes: int | None = None,
        watch_recorder: bool = False,
    ) -> None:
        self.tmp = Path(tmp)
        self.tag = f"fault-{uuid.uuid4().hex[:8]}"
        self.source_id = f"{self.tag}-amp"
        self.controller_id = f"{self.tag}-controller"
        self.token = uuid.uuid4().hex
        self.watchdog_s = watchdog_s
        self.amplitude_ma = amplitude_ma
        self.slew = slew_ma_per_s
        self.loop_args = list(loop_args)
        self.source_args = list(source_args)
        self.recorder_fsize_bytes = recorder_fsize_bytes
        self.watch_recorder = watch_recorder
        self.path = self.tmp / "recording.xdf"
        self.sources: list[tuple[int, Child]] = []  # (start index, process)
        self.plant: Child | None = None
        self.loop: Child | None = None
        self.recorder: Child | None = None
        self.small_disk_recorder: Child | None = None
        self.others: list[Child] = []
        self.recorder_killed = False

    # ------------------------------------------------------------------ processes
    def start_source(self, start_index: int = 0, *extra: str) -> Child:
        child = Child(
            "amplifier",
            python(
                "_fault_source.py",
                self.tag,
                self.source_id,
                "--start-index",
                str(start_index),
                *self.source_args,
                *extra,
            ),  # fmt: skip
        )
        child.wait_line("t0", 60)
        self.sources.append((start_index, child))
        return child

    def pushed(self, at: float | None = None) -> int:
        """Samples the amplifiers had pushed by LSL time ``at`` (all runs; as they printed)."""
        last = 0
        for _start, child in self.sources:
            for t, line in child.lines:
                if line.startswith("pushed") and (at is None or t <= at):
                    last = max(last, int(line.split()[1]))
        return last

    def start(self) -> FaultRig:
        limits = self.tmp / "limits.yaml"
        limits.write_text(
            f"max_slew_ma_per_s: {self.slew}\nwatchdog_timeout_s: {self.watchdog_s}\n"
        )
        self.plant = Child(
            "plant",
            [
                sys.executable,
                "-m",
                "bci.cli.main",
                "plant",
                "--realtime",
                "--name",
                self.tag,
                "--source-id",
                self.tag,
                "--controller-source-id",
                self.controller_id,
                "--session-token",
                self.token,
                "--limits",
                str(limits),
                "--cells",
                "6",
                "--units",
                "2",
                "--channels",
                "2",
            ],  # fmt: skip
        )
        self.plant.wait_line("Obeying", 120)
        self._observe(f"{self.tag}-biomarkers")
        self.start_source(0)
        self.recorder = self._start_recorder(self.path, with_plant=True)
        if self.recorder_fsize_bytes is not None:  # a second recorder, on a disk that fills up
            self.small_disk_recorder = self._start_recorder(
                self.tmp / "small-disk.xdf", with_plant=False, fsize=self.recorder_fsize_bytes
            )
        watched = self.small_disk_recorder or self.recorder
        watch = ["--watch-pid", str(watched.proc.pid)] if self.watch_recorder else []
        self.loop = Child(
            "loop",
            python(
                "_fault_loop.py",
                self.source_id,
                f"{self.tag}-commands",
                self.controller_id,
                self.token,
                "--amplitude-ma",
                str(self.amplitude_ma),
                *watch,
                *self.loop_args,
            ),  # fmt: skip
        )
        self.loop.wait_line("ready", 60)
        return self

    def _observe(self, source_id: str) -> None:
        """Note when each plant period arrives on the wall clock (the plant's own stamps follow
        its model clock, which falls behind the wall clock when the machine is loaded)."""
        from stimulation.plant.streams import BIOMARKER_CHANNELS

        col = BIOMARKER_CHANNELS.index("amplitude_ma")
        found = pylsl.resolve_byprop("source_id", source_id, 1, 30.0)
        if not found:
            raise RuntimeError(f"no {source_id} stream")
        inlet = pylsl.StreamInlet(found[0], max_buflen=60, recover=False)
        inlet.open_stream(timeout=10.0)
        self.arrivals: list[tuple[float, float]] = []  # (LSL time of arrival, amplitude)
        self._observing = True

        def pull() -> None:
            while self._observing:
                try:
                    values, stamps = inlet.pull_chunk(timeout=0.005)
                except pylsl.util.LostError:
                    return
                now = pylsl.local_clock()
                self.arrivals += [(now, float(v[col])) for v in values]
            inlet.close_stream()

        self._observer = threading.Thread(target=pull, daemon=True)
        self._observer.start()

    def _start_recorder(self, path: Path, *, with_plant: bool, fsize: int | None = None) -> Child:
        cmd = [sys.executable, "-m", "bci.cli.main", "record", "--out", str(path),
               "--flush-interval", "0.25", "--status-interval", "0", "--timeout", "30"]  # fmt: skip
        sids = [self.source_id]
        if with_plant:
            sids += [f"{self.tag}-biomarkers", f"{self.tag}-safety"]
        for sid in sids:
            cmd += ["--source-id", sid]
        popen: dict[str, Any] = {}
        if fsize is not None:
            import resource

            def small_disk() -> None:  # writes past fsize fail with EFBIG (Python ignores SIGXFSZ)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

            popen["preexec_fn"] = small_disk
        child = Child("recorder", cmd, **popen)
        child.wait_line("bci-record: recording", 90)
        return child

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for child in (self.plant, self.loop):
                if child is not None and not child.alive and child is self.plant:
                    raise RuntimeError(f"the plant died:\n{child.text()}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ faults
    def kill_source(self) -> float:
        t = pylsl.local_clock()
        self.sources[-1][1].kill()
        return t

    def kill_recorder(self) -> float:
        assert self.recorder is not None
        t = pylsl.local_clock()
        self.recorder.kill()
        self.recorder_killed = True
        return t

    def signal_source(self, sig: int) -> float:
        """Send ``sig`` to the amplifier (SIGUSR1: NaN/inf burst, SIGUSR2: clock jump)."""
        t = pylsl.local_clock()
        self.sources[-1][1].proc.send_signal(sig)
        return t

    def kill_loop(self) -> float:
        assert self.loop is not None
        t = pylsl.local_clock()
        self.loop.kill()
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
        """Stop everything (loop first: it sends the safe state); return the loop's stats."""
        stats: dict[str, Any] = {}
        if self.loop is not None:
            self.loop.stop()
            for _, line in self.loop.lines:
                if line.startswith("stats "):
                    stats = json.loads(line[6:])
        time.sleep(0.3)
        if self.recorder is not None and not self.recorder_killed:
            self.recorder.stop(30)
        if self.small_disk_recorder is not None:
            self.small_disk_recorder.stop(30)
        for _, child in self.sources:
            child.kill()
        for child in self.others:
            child.kill()
        if self.plant is not None:
            self.plant.stop()
        self._observing = False
        if hasattr(self, "_observer"):
            self._observer.join(5)
        return stats

    def loop_events(self) -> list[dict[str, Any]]:
        assert self.loop is not None
        return [json.loads(line[6:]) for _, line in self.loop.lines if line.startswith("event ")]

    def recording(self) -> dict[str, dict[str, Any]]:
        """The recorded streams by source_id (a killed recorder's file is repaired first)."""
        from bci.session.files import read_xdf
        from bci.session.repair import repair

        path = self.path
        if self.recorder_killed:
            report = repair(path, self.tmp / "repaired.xdf", overwrite=True)
            path = report.output or path
        streams, _ = read_xdf(path, synchronize_clocks=False)
        return {s["info"]["source_id"][0]: s for s in streams}

    def measure(
        self, fault: str, t_fault: float | None, detected: str, *, needs_safe: bool = True
    ) -> FaultResult:
        """Time to the safe state after ``t_fault`` and samples lost, from the recording."""
        from stimulation.plant.streams import BIOMARKER_CHANNELS

        rec = self.recording()
        bio = rec[f"{self.tag}-biomarkers"]
        amps = np.asarray(bio["time_series"])[:, BIOMARKER_CHANNELS.index("amplitude_ma")]
        stamps = np.asarray(bio["time_stamps"])
        # the watchdog trips at a period boundary after the timeout, a new setting applies from
        # the next period not yet simulated (the plant runs one period ahead), and a period is
        # published at its end; plus one period for a late-scheduled plant process
        bound = self.watchdog_s + self.amplitude_ma / self.slew + 3 * PERIOD_S + SCHEDULING_S
        time_to_safe = None
        if t_fault is not None and needs_safe:
            # when the plant reported a period delivered at the safe state, on the wall clock
            safe = [t for t, a in self.arrivals if t >= t_fault and a == 0.0]
            if safe:
                time_to_safe = float(safe[0] - t_fault)
        amp = rec.get(self.source_id)
        recorded = set()
        if amp is not None and len(amp["time_stamps"]):
            recorded = set(np.asarray(amp["time_series"])[:, 0].astype(np.int64).tolist())
        # every sample pushed more than a second before the fault (or the end) must be on disk
        cutoff = (t_fault if t_fault is not None else pylsl.local_clock()) - 1.0
        expected = self._indices_pushed_by(cutoff, recorded)
        lost = len(expected - recorded)
        safe_ok = time_to_safe is not None and time_to_safe <= bound if needs_safe else True
        return FaultResult(
            fault=fault,
            detected=detected,
            time_to_safe_s=None if time_to_safe is None else round(time_to_safe, 3),
            samples_lost=lost,
            safe=bool(safe_ok and float(amps.max(initial=0.0)) <= self.amplitude_ma + 1e-9),
            max_applied_ma=float(amps.max(initial=0.0)),
            bound_s=bound,
            details={"bio_stamps": stamps, "amps": amps, "recorded": len(recorded)},
        )

    def _indices_pushed_by(self, t: float, recorded: set[int]) -> set[int]:
        """Samples pushed before LSL time ``t`` since the recorder's inlet first got one (an
        inlet receives what is pushed after it connects: the recorder starts after the source)."""
        first = min(recorded, default=0)
        out: set[int] = set()
        for start, child in self.sources:
            last = start
            for tl, line in child.lines:
                if line.startswith("pushed") and tl <= t:
                    last = int(line.split()[1])
            out.update(range(max(start, first), last))
        return out
