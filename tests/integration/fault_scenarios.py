"""The faults of the fault report, one function each: run ``bci run`` (``fault_rig``), inject,
measure.

Each returns a :class:`~fault_rig.FaultResult` whose ``details`` hold what the tests check beyond
the table (the run's summary and exit code, events, the plant's late periods). ``short=True``
shortens the waits (the default test run); the CPU starvation lasts ``starve_s``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pylsl
import yaml
from fault_rig import (
    AMPLITUDE_MA,
    RECORDER_CHECK_S,
    FaultResult,
    FaultRig,
    bci,
    python,
    runner_bound_s,
    watchdog_bound_s,
    within,
)


def _after(rig: FaultRig, prefix: str, t_fault: float, what: str) -> str:
    found = rig.first_event(prefix, t_fault - 0.05)
    if found is None:
        return f"NOT DETECTED ({what})"
    return f"{what} after {found[0] - t_fault:.2f} s"


def _count(rig: FaultRig, kind: str, after: float = 0.0) -> int:
    return sum(e.get("event") == kind for t, e in rig.safety_events() if t >= after)


def _finish(rig: FaultRig, result: FaultResult, summary: dict[str, Any]) -> FaultResult:
    plant = dict(summary.get("plant_process") or {})
    if rig.plant is not None:  # the rig's stimulator (amp): its last line has the counts
        found = re.search(r"late\s+periods\s+(\d+),\s+max\s+lag\s+([\d.]+)\s+ms", rig.plant.text(5))
        if found:
            plant = {"late_periods": int(found[1]), "max_lag_s": float(found[2]) * 1e-3}
    result.details.update(
        summary=summary,
        runner_exit=None if rig.runner is None else rig.runner.proc.returncode,
        late_periods=plant.get("late_periods"),
        max_lag_s=plant.get("max_lag_s"),
        watchdog_trips=_count(rig, "watchdog_trip"),
    )
    return result


def source_returns(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp, source="amp").start()
    try:
        rig.run_for(1.0)
        t_fault = rig.kill_source()
        rig.run_for(2.0)
        rig.start_source(rig.pushed())  # same source_id, counting on
        t_back = pylsl.local_clock()
        rig.run_for(3.0)
    finally:
        summary = rig.stop()
    result = rig.measure(
        "source outlet dies, returns after 2 s (same source_id)",
        t_fault,
        _after(rig, "source stall", t_fault, "runner: LSLSource stall event")
        + "; runner sends nothing -> plant watchdog trip; resumes on reconnect",
        bound_s=watchdog_bound_s(),
    )
    result.details["resumed"] = AMPLITUDE_MA in within(result.details["amps"], t_back + 1.0)
    return _finish(rig, result, summary)


def source_never_returns(tmp: Path, short: bool = True) -> FaultResult:
    """The amplifier dies for good: the plant's watchdog makes stimulation safe at once, and the
    runner, after ``SOURCE_SILENCE_S`` of silence, stops by itself (safe state sent again, the
    recorder closed). ``short`` stops the run after 3 s instead (the default test run)."""
    from bci.runner.loop import SOURCE_SILENCE_S
    from bci.session.xdf_read import scan_xdf

    rig = FaultRig(tmp, source="amp").start()
    gave_up_after = None
    try:
        rig.run_for(1.0)
        t_fault = rig.kill_source()
        assert rig.runner is not None
        if short:
            rig.run_for(3.0)
        else:
            rig.runner.proc.wait(SOURCE_SILENCE_S + 60.0)
            gave_up_after = pylsl.local_clock() - t_fault
        runner_alive = rig.runner.alive
        t_end = pylsl.local_clock()
    finally:
        summary = rig.stop()
    result = rig.measure(
        "source outlet dies, never returns",
        t_fault,
        _after(rig, "source stall", t_fault, "runner: LSLSource stall event")
        + "; plant watchdog trip; stays off"
        + (
            ""
            if gave_up_after is None
            else f"; the runner stops by itself after {gave_up_after:.1f} s (exit "
            f"{rig.runner.proc.returncode if rig.runner else '?'}), recording closed"
        ),
        bound_s=watchdog_bound_s(),
    )
    settled = within(result.details["amps"], t_fault + watchdog_bound_s() + 0.05, t_end)
    assert rig.run_dir is not None
    scan = scan_xdf(rig.run_dir / "recording.xdf")
    result.details.update(
        stays_safe=bool(settled) and max(settled) == 0.0,
        runner_alive=runner_alive,
        gave_up_after_s=gave_up_after,
        settled_periods=len(settled),
        recording_closed=scan.is_complete,
        recording_problems=scan.problems(),
    )
    return _finish(rig, result, summary)


def plant_killed(tmp: Path, short: bool = True) -> FaultResult:
    """The plant is the source and the stimulator: its process dies."""
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(1.0)
        t_fault = rig.kill_pid(rig.plant_pid())
        assert rig.runner is not None
        rig.runner.proc.wait(30)
    finally:
        summary = rig.stop()
    result = rig.measure(
        "plant (source and stimulator) SIGKILLed",
        t_fault,
        f"runner: plant process exit -9 -> stops, exit {rig.runner.proc.returncode}; "
        "no stimulator left to make safe",
        bound_s=None,
    )
    return _finish(rig, result, summary)


def recorder_killed(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(1.5)
        t_fault = rig.kill_pid(rig.recorder_pid())
        assert rig.runner is not None
        rig.runner.proc.wait(30)
    finally:
        summary = rig.stop()
    result = rig.measure(
        "recorder SIGKILLed",
        t_fault,
        f"runner: recorder exit -9 (polled every {RECORDER_CHECK_S:g} s) -> safe state, stops "
        f"(exit {rig.runner.proc.returncode}); file repaired",
        bound_s=runner_bound_s(RECORDER_CHECK_S),
        repair_first=True,
    )
    return _finish(rig, result, summary)


def runner_killed(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(1.5)
        t_fault = rig.kill_runner()
        rig.run_for(2.0)
        t_end = pylsl.local_clock()
    finally:
        summary = rig.stop()
    result = rig.measure(
        "runner (bci run) SIGKILLed",
        t_fault,
        "plant watchdog trip (no command for 0.1 s); plant and recorder live on",
        bound_s=watchdog_bound_s(),
    )
    rec = result.details["rec"]
    raw = rec[f"{rig.plant_name}-raw"]["time_stamps"]
    bio = rec[f"{rig.plant_name}-biomarkers"]["time_stamps"]
    # the recorder kept recording the plant after the runner died (on the plant's clock)
    result.details.update(
        raw_after_s=float(raw[-1] - t_fault), bio_after_s=float(bio[-1] - t_fault),
        run_after_s=t_end - t_fault,
    )  # fmt: skip
    return _finish(rig, result, summary)


def nan_burst(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp, source="amp", source_args=["--nan-ms", "200"]).start()
    try:
        rig.run_for(1.0)
        t_fault = rig.signal_source(signal.SIGUSR1)
        rig.run_for(2.5)
    finally:
        summary = rig.stop()
    result = rig.measure(
        "NaN/inf burst, 200 ms",
        t_fault,
        _after(rig, "source nan", t_fault, "runner: LSLSource nan event")
        + "; filters hold NaN/inf; its bins marked invalid (the decoder holds, the controller "
        "does not act: the loop holds the last command); loop rides through",
        bound_s=None,
    )
    amps = result.details["amps"]
    result.details.update(
        off_during=within(amps, t_fault, t_fault + 0.5).count(0.0),
        on_after=AMPLITUDE_MA in within(amps, t_fault + 1.0),
        invalid=_count(rig, "invalid"),
    )
    return _finish(rig, result, summary)


def twin_stream(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp, source="amp").start()
    try:
        rig.run_for(1.0)
        t_fault = pylsl.local_clock()
        rig.second_stream(channels=7)
        # a second session that names the amplifier's stream instead of its source_id
        second = tmp / "by_name.yaml"
        second.write_text(
            yaml.safe_dump(
                {
                    "name": "by_name",
                    "duration_s": 5.0,
                    "source": {"kind": "lsl", "name": rig.tag, "n_channels": 4, "timeout_s": 5},
                    "timing": {"stream_timeout_s": 5.0},
                    "recording": {"enabled": False},
                    "runs_root": str(tmp / "runs2"),
                }
            )
        )
        proc = subprocess.run(
            bci("run", str(second), "--quiet"), capture_output=True, text=True, timeout=120,
            env=_env(),
        )  # fmt: skip
        rig.run_for(1.0)
    finally:
        summary = rig.stop()
    refused = proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines() or [""]
    message = next((ln for ln in lines if "streams match" in ln), lines[-1])
    result = rig.measure(
        "second stream, same name, 7 channels",
        t_fault,
        ("a session naming the stream is refused: " if refused else "NOT REFUSED: ")
        + message[:100]
        + "; the running session (by source_id) rides through",
        bound_s=None,
    )
    result.details.update(
        refused=refused,
        message=proc.stdout + proc.stderr,
        on_after=AMPLITUDE_MA in within(result.details["amps"], t_fault + 0.5),
    )
    return _finish(rig, result, summary)


def _env() -> dict[str, str]:
    import os

    from fault_rig import HERE, ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return env


def clock_jump(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp, source="amp", source_args=["--jump-s", "5"]).start()
    try:
        rig.run_for(1.0)
        t_fault = rig.signal_source(signal.SIGUSR2)
        rig.run_for(2.5)
    finally:
        summary = rig.stop()
    result = rig.measure(
        "clock jump +5 s in the source's stamps",
        t_fault,
        _after(rig, "source gap", t_fault, "runner: LSLSource gap event")
        + "; loop goes on (limiters on their own clocks)",
        bound_s=None,
    )
    result.details["on_after"] = AMPLITUDE_MA in within(result.details["amps"], t_fault + 0.5)
    return _finish(rig, result, summary)


def part_fails(part: str, how: str) -> Callable[[Path, bool], FaultResult]:
    def scenario(tmp: Path, short: bool = True) -> FaultResult:
        rig = FaultRig(
            tmp,
            decoder_fault=how if part == "decoder" else None,
            controller_fault=how if part == "controller" else None,
        ).start()
        try:
            rig.run_for(1.0)
            t_fault = rig.trigger()
            rig.run_for(2.0)
            if how == "raise" and rig.runner is not None:  # it stops by itself
                rig.runner.proc.wait(60)
        finally:
            summary = rig.stop()
        detected, bound = {
            "raise": (
                "runner: exception -> safe state, stops",
                runner_bound_s(),
            ),
            "nan": ("runner's limiter: NaN command 'invalid' -> safe state", runner_bound_s()),
            "hang": ("plant watchdog trip (no command for 0.1 s)", watchdog_bound_s()),
        }[how]
        result = rig.measure(
            f"{part} {'raises' if how == 'raise' else how + 's'}", t_fault, detected, bound_s=bound
        )
        return _finish(rig, result, summary)

    return scenario


def cpu_starved(tmp: Path, short: bool = True, starve_s: float | None = None) -> FaultResult:
    seconds = starve_s if starve_s is not None else (3.0 if short else 10.0)
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(2.0)
        t_fault = pylsl.local_clock()
        burners = rig.burn_cpu(2, seconds)
        for b in burners:
            b.proc.wait(seconds + 60)
        t_end_burn = pylsl.local_clock()
        rig.run_for(3.0)
        runner_alive = rig.runner is not None and rig.runner.alive
    finally:
        summary = rig.stop()
    result = rig.measure(
        f"CPU starved {seconds:g} s (2 busy processes)",
        t_fault,
        "",
        bound_s=None,
    )
    lat = summary.get("loop_latency") or {}
    plant = summary.get("plant_process") or {}
    trips = _count(rig, "watchdog_trip", t_fault)
    result.detected = (
        f"{lat.get('deadline_misses', lat.get('misses', '?'))} deadline misses "
        f"(> 5 ms) of {lat.get('commands', '?')} commands; plant: "
        f"{plant.get('late_periods', '?')} late periods, {trips} watchdog trips"
    )
    result.details.update(
        runner_alive=runner_alive,
        on_after=AMPLITUDE_MA in within(result.details["amps"], t_end_burn + 1.0),
        trips=trips,
    )
    return _finish(rig, result, summary)


def disk_full(tmp: Path, short: bool = True) -> FaultResult:
    # the runner and its children may write files of 2 MB at most: the recording fills it
    rig = FaultRig(tmp, fsize_bytes=2_000_000).start()
    try:
        pid = rig.recorder_pid()
        from fault_rig import pid_alive

        deadline = time.monotonic() + 60.0
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        t_fault = pylsl.local_clock()
        assert rig.runner is not None
        rig.runner.proc.wait(30)
    finally:
        summary = rig.stop()
    result = rig.measure(
        "disk full under the recorder (RLIMIT_FSIZE 2 MB)",
        t_fault,
        f"recorder exits (File too large); runner polls it every {RECORDER_CHECK_S:g} s -> "
        f"safe state, stops (exit {rig.runner.proc.returncode})",
        bound_s=runner_bound_s(RECORDER_CHECK_S),
        repair_first=True,
    )
    result.details["error"] = summary.get("error") or ""
    return _finish(rig, result, summary)


class DiskUnavailable(RuntimeError):
    """This machine cannot make a file system turn read-only on demand (the reason)."""


class FailingDisk:
    """A small ext4 file system (a loop-mounted image, ``errors=remount-ro``) that the kernel
    turns read-only on demand, the way an ext4 disk does after an I/O error: writing ``1`` to
    ``/sys/fs/ext4/<dev>/trigger_fs_error`` reports a file-system error, and from then on every
    write, also to files already open, fails with EROFS.

    Needs root (mount, the sysfs file) and loop devices; :class:`DiskUnavailable` says why not.
    """

    def __init__(self, tmp: Path, size_mb: int = 256) -> None:
        import os
        import shutil

        self.image = tmp / "disk.ext4"
        self.mount = tmp / "disk"
        self.mounted = False
        if os.geteuid() != 0:
            raise DiskUnavailable(
                f"needs root to mount a file system (running as uid {os.geteuid()})"
            )
        for tool in ("mount", "umount", "mkfs.ext4"):
            if shutil.which(tool) is None:
                raise DiskUnavailable(f"no {tool} on PATH")
        self.mount.mkdir(parents=True, exist_ok=True)
        with self.image.open("wb") as f:
            f.truncate(size_mb << 20)
        self._sh(["mkfs.ext4", "-q", "-F", str(self.image)], "mkfs.ext4")
        self._sh(
            ["mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mount)], "mount"
        )
        self.mounted = True
        dev = self._device()
        self.trigger = Path(f"/sys/fs/ext4/{dev}/trigger_fs_error")
        if not self.trigger.exists():
            self.close()
            raise DiskUnavailable(f"this kernel has no {self.trigger}")

    @staticmethod
    def _sh(cmd: list[str], what: str) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise DiskUnavailable(f"{what} failed: {(proc.stderr or proc.stdout).strip()[:200]}")

    def _device(self) -> str:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1] == str(self.mount):
                return Path(fields[0]).name
        raise DiskUnavailable(f"{self.mount} is not in /proc/mounts after mounting it")

    def fail(self) -> float:
        """The file system turns read-only now; the LSL time it did."""
        t = pylsl.local_clock()
        self.trigger.write_text("1")
        return t

    def read_only(self) -> bool:
        """Whether writing a new file there fails with EROFS (the kernel marks such a mount
        ``emergency_ro`` in ``/proc/mounts``, not ``ro``)."""
        import errno

        try:
            (self.mount / "probe.txt").write_text("x")
        except OSError as err:
            return err.errno == errno.EROFS
        return False

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, timeout=60)
            self.mounted = False
        self.image.unlink(missing_ok=True)


def read_only_mid_session(tmp: Path, short: bool = True) -> FaultResult:
    """The run folder's file system turns read-only under the running recorder (:class:`FailingDisk`);
    raises :class:`DiskUnavailable` where that cannot be done."""
    disk = FailingDisk(tmp)
    try:
        rig = FaultRig(tmp, runs_root=disk.mount / "runs")
        flush_s = float(rig.session()["recording"]["flush_interval_s"])
        rig.start()
        try:
            rig.run_for(1.5)
            t_fault = disk.fail()
            assert rig.runner is not None
            rig.runner.proc.wait(60)
        finally:
            summary = rig.stop()
        output = rig.runner.text() if rig.runner is not None else ""
        result = rig.measure(
            "file system turns read-only under the recorder (ext4 error, remount-ro)",
            t_fault,
            f"recorder's next write fails (Read-only file system; it writes every {flush_s:g} s), "
            f"it exits; runner polls it every {RECORDER_CHECK_S:g} s -> safe state, stops (exit "
            f"{rig.runner.proc.returncode}); file readable up to the fault after repair",
            # the recorder learns it at its next write (flush), the runner at its next poll
            bound_s=runner_bound_s(RECORDER_CHECK_S + flush_s),
            repair_first=True,
        )
        result.details.update(output=output, read_only=disk.read_only(), events=rig.runner_events())
        return _finish(rig, result, summary)
    finally:
        disk.close()


def read_only(tmp: Path, short: bool = True) -> dict[str, Any]:
    """``bci run`` with its run folder on a read-only file system (sysfs)."""
    rig = FaultRig(tmp, runs_root=Path("/sys/bci-runs"))
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(rig.session()))
    proc = subprocess.run(
        bci("run", str(path), "--quiet"), capture_output=True, text=True, timeout=120, env=_env()
    )
    return {"exit": proc.returncode, "output": proc.stdout + proc.stderr}


#: name -> scenario, in the order of the report
FAULTS: dict[str, Callable[..., FaultResult]] = {
    "source_returns": source_returns,
    "source_never_returns": source_never_returns,
    "plant_killed": plant_killed,
    "recorder_killed": recorder_killed,
    "runner_killed": runner_killed,
    "nan_burst": nan_burst,
    "twin_stream": twin_stream,
    "clock_jump": clock_jump,
    "decoder_raises": part_fails("decoder", "raise"),
    "decoder_nan": part_fails("decoder", "nan"),
    "decoder_hangs": part_fails("decoder", "hang"),
    "controller_raises": part_fails("controller", "raise"),
    "controller_nan": part_fails("controller", "nan"),
    "controller_hangs": part_fails("controller", "hang"),
    "cpu_starved": cpu_starved,
    "disk_full": disk_full,
    "read_only_mid_session": read_only_mid_session,
}

__all__ = ["FAULTS", "DiskUnavailable", "cpu_starved", "python", "read_only"]
