"""The faults of the fault report, one function each: run the rig, inject, measure.

Each returns a :class:`~fault_rig.FaultResult` whose ``details`` hold what the tests check
beyond the table (events, loop statistics, exit codes). ``short=True`` shortens the waits (the
default test run); the CPU starvation lasts ``starve_s``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from fault_rig import FaultResult, FaultRig


def _first(events: list[dict[str, Any]], prefix: str, after: float) -> dict[str, Any] | None:
    return next((e for e in events if e["kind"].startswith(prefix) and e["t"] >= after), None)


def _detected(events: list[dict[str, Any]], prefix: str, t_fault: float, what: str) -> str:
    e = _first(events, prefix, t_fault - 0.05)
    if e is None:
        return f"NOT DETECTED ({what})"
    return f"{what} after {e['t'] - t_fault:.2f} s"


def source_returns(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(2.0)
        t_fault = rig.kill_source()
        rig.run_for(2.0)
        rig.start_source(rig.pushed())  # same source_id, counting on
        t_back = pylsl.local_clock()
        rig.run_for(3.0)
    finally:
        stats = rig.stop()
    events = rig.loop_events()
    result = rig.measure(
        "source outlet dies, returns after 2 s",
        t_fault,
        _detected(events, "source stall", t_fault, "LSLSource stall event")
        + "; plant watchdog trip",
    )
    amps, stamps = result.details["amps"], result.details["bio_stamps"]
    result.details.update(
        resumed=bool(np.any(amps[stamps > t_back + 1.0] > 0)), stats=stats, events=events
    )
    return result


def source_never_returns(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(2.0)
        t_fault = rig.kill_source()
        rig.run_for(3.0 if short else 10.0)
        loop_alive = rig.loop is not None and rig.loop.alive
    finally:
        stats = rig.stop()
    events = rig.loop_events()
    result = rig.measure(
        "source outlet dies, never returns",
        t_fault,
        _detected(events, "source stall", t_fault, "LSLSource stall event")
        + "; plant watchdog trip",
    )
    amps, stamps = result.details["amps"], result.details["bio_stamps"]
    settled = stamps > t_fault + result.bound_s + 0.05
    result.details.update(
        stays_safe=bool(settled.any() and np.all(amps[settled] == 0.0)),
        loop_alive=loop_alive,
        stats=stats,
    )
    return result


def recorder_killed(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(2.0)
        t_fault = rig.kill_recorder()
        rig.run_for(1.5)
        loop_alive = rig.loop is not None and rig.loop.alive
    finally:
        stats = rig.stop()
    result = rig.measure(
        "recorder SIGKILLed",
        t_fault,
        "recorder exit -9; file repaired (bci session repair)",
        needs_safe=False,
    )
    result.details.update(loop_alive=loop_alive, stats=stats)
    return result


def loop_killed(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(2.0)
        t_fault = rig.kill_loop()
        rig.run_for(2.0)
        t_end = pylsl.local_clock()
    finally:
        rig.stop()
    result = rig.measure(
        "loop/runner process SIGKILLed",
        t_fault,
        "plant watchdog trip (no command for 0.1 s)",
    )
    rec = rig.recording()
    amp = rec[rig.source_id]
    stamps = np.asarray(amp["time_stamps"])
    bio = np.asarray(rec[f"{rig.tag}-biomarkers"]["time_stamps"])
    result.details.update(
        # the recorder kept recording the other streams after the loop died
        amp_after_s=float(stamps.max() - t_fault) if stamps.size else 0.0,
        bio_after_s=float(bio.max() - t_fault) if bio.size else 0.0,
        run_after_s=t_end - t_fault,
    )
    return result


def nan_burst(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp, source_args=["--nan-ms", "200"]).start()
    try:
        rig.run_for(2.0)
        t_fault = rig.signal_source(signal.SIGUSR1)
        rig.run_for(2.5)
    finally:
        stats = rig.stop()
    result = rig.measure(
        "NaN/inf burst (200 ms)",
        t_fault,
        "NaN command -> limiter 'invalid' -> safe state",
    )
    amps, stamps = result.details["amps"], result.details["bio_stamps"]
    result.details.update(
        resumed=bool(np.any(amps[stamps > t_fault + 1.0] > 0)),
        nan_samples=stats.get("source", {}).get("nan_samples", 0),
        invalid=_count_safety(rig, "invalid"),
    )
    return result


def _count_safety(rig: FaultRig, kind: str) -> int:
    import json

    markers = rig.recording()[f"{rig.tag}-safety"]["time_series"]
    return sum(json.loads(m[0])["event"] == kind for m in markers)


def twin_stream(tmp: Path, short: bool = True) -> FaultResult:
    from bci.acquisition import LSLSource
    from bci.errors import BCIError

    rig = FaultRig(tmp).start()
    refused = ""
    try:
        rig.run_for(1.5)
        t_fault = pylsl.local_clock()
        rig.second_stream(channels=7)
        rig.run_for(1.0)
        try:  # a session that names the stream instead of its source_id
            LSLSource(name=rig.tag, n_channels=4, timeout_s=5.0).open().close()
        except BCIError as err:
            refused = f"{type(err).__name__}: {err}"
        rig.run_for(1.0)
    finally:
        stats = rig.stop()
    result = rig.measure(
        "second stream, same name, 7 channels",
        t_fault,
        (f"by-name resolve refused ({refused.split(':')[0]}); " if refused else "NOT REFUSED; ")
        + "loop (by source_id) unaffected",
        needs_safe=False,
    )
    amps, stamps = result.details["amps"], result.details["bio_stamps"]
    result.details.update(
        refused=refused, on_after=float(np.mean(amps[stamps > t_fault + 0.5] > 0)), stats=stats
    )
    return result


def clock_jump(tmp: Path, short: bool = True) -> FaultResult:
    rig = FaultRig(tmp, source_args=["--jump-s", "5"]).start()
    try:
        rig.run_for(2.0)
        t_fault = rig.signal_source(signal.SIGUSR2)
        rig.run_for(2.5)
    finally:
        stats = rig.stop()
    events = rig.loop_events()
    result = rig.measure(
        "clock jump +5 s in the source's stamps",
        t_fault,
        _detected(events, "source gap", t_fault, "LSLSource gap event")
        + "; loop goes on (limiter runs on the stimulator's clock)",
        needs_safe=False,
    )
    amps, stamps = result.details["amps"], result.details["bio_stamps"]
    result.details.update(
        on_after=float(np.mean(amps[stamps > t_fault + 0.5] > 0)), stats=stats, events=events
    )
    return result


def part_fails(part: str, how: str) -> Callable[[Path, bool], FaultResult]:
    def scenario(tmp: Path, short: bool = True) -> FaultResult:
        rig = FaultRig(tmp, loop_args=["--fault-at-s", "2", f"--{part}-fault", how]).start()
        try:
            rig.run_for(2.0 + (3.0 if how == "hang" else 2.0))
        finally:
            rig.stop()
        events = rig.loop_events()
        injected = _first(events, "fault injected", 0.0)
        t_fault = injected["t"] if injected else None
        detected = {
            "raise": "exception -> loop sends the safe state, stops",
            "nan": "NaN command -> limiter 'invalid' -> safe state",
            "hang": "plant watchdog trip (no command for 0.1 s)",
        }[how]
        result = rig.measure(
            f"{part} {'raises' if how == 'raise' else how + 's'}", t_fault, detected
        )
        result.details.update(
            events=events, loop_exit=rig.loop.proc.returncode if rig.loop else None
        )
        return result

    return scenario


def cpu_starved(tmp: Path, short: bool = True, starve_s: float | None = None) -> FaultResult:
    seconds = starve_s if starve_s is not None else (3.0 if short else 10.0)
    rig = FaultRig(tmp).start()
    try:
        rig.run_for(2.0)
        t_fault = pylsl.local_clock()
        burners = rig.burn_cpu(2, seconds)
        rig.run_for(seconds + 3.0)
        t_end_burn = t_fault + seconds
        loop_alive = rig.loop is not None and rig.loop.alive
        for b in burners:
            b.proc.wait(30)
    finally:
        stats = rig.stop()
    result = rig.measure(
        f"CPU starved ({seconds:g} s, 2 busy processes)",
        t_fault,
        "deadline misses counted",
        needs_safe=False,
    )
    lat = np.asarray(stats.get("latency") or np.zeros((0, 2)))
    before = lat[lat[:, 0] < t_fault, 1] if lat.size else np.zeros(0)
    during = lat[(lat[:, 0] >= t_fault) & (lat[:, 0] < t_end_burn), 1] if lat.size else np.zeros(0)
    after = lat[lat[:, 0] > t_end_burn + 1.0, 1] if lat.size else np.zeros(0)
    amps, stamps = result.details["amps"], result.details["bio_stamps"]
    result.detected = (
        f"{stats.get('deadline_misses', 0)} deadline misses (> {stats.get('deadline_ms')} ms) of "
        f"{stats.get('commands', 0)} commands, {_count_safety(rig, 'watchdog_trip')} watchdog trips"
    )
    result.details.update(
        loop_alive=loop_alive,
        stats=stats,
        p99_before=float(np.percentile(before, 99)) if before.size else None,
        p99_during=float(np.percentile(during, 99)) if during.size else None,
        p99_after=float(np.percentile(after, 99)) if after.size else None,
        on_after=float(np.mean(amps[stamps > t_end_burn + 1.0] > 0)),
    )
    return result


def disk_full(tmp: Path, short: bool = True) -> FaultResult:
    # a second recorder, of the amplifier, on a "disk" of 1.5 MB (about 3 s of it); the loop
    # watches that recorder and goes to its safe state when it fails
    rig = FaultRig(tmp, recorder_fsize_bytes=1_500_000, watch_recorder=True).start()
    try:
        deadline = time.monotonic() + 20.0
        small = rig.small_disk_recorder
        assert small is not None
        while small.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        t_fault = pylsl.local_clock()
        rig.run_for(1.5)
    finally:
        rig.stop()
    text = small.text()
    watched = _first(rig.loop_events(), "watched process died", 0.0)
    result = rig.measure(
        "disk full under the recorder",
        watched["t"] if watched else t_fault,
        "recorder exits with its write error; loop sees it, sends the safe state",
    )
    result.details.update(
        recorder_exit=small.proc.returncode, recorder_output=text, loop_saw_it=watched is not None
    )
    return result


def read_only(tmp: Path, short: bool = True) -> dict[str, Any]:
    """``bci record`` of a live stream onto a read-only file system (sysfs)."""
    from fault_rig import Child, python

    sid = f"ro-{time.monotonic_ns() % 10**9}"
    source = Child("amplifier", python("_fault_source.py", sid, sid))
    try:
        source.wait_line("t0", 60)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bci.cli.main",
                "record",
                "--out",
                "/sys/bci-recording.xdf",
                "--source-id",
                sid,
                "--timeout",
                "20",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        source.kill()
    return {"exit": proc.returncode, "output": proc.stdout + proc.stderr}


#: name -> scenario, in the order of the report
FAULTS: dict[str, Callable[..., FaultResult]] = {
    "source_returns": source_returns,
    "source_never_returns": source_never_returns,
    "recorder_killed": recorder_killed,
    "loop_killed": loop_killed,
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
}
