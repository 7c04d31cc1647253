"""The closed loop of the fault tests, in its own process (so it can be SIGKILLed):
``python _fault_loop.py SOURCE_ID COMMAND_STREAM CONTROLLER_ID TOKEN [options]``.

An :class:`~bci.acquisition.LSLSource` (reconnecting, stall and gap detection) feeds a decoder
(mean power of channels 1..) and a proportional controller (``--amplitude-ma`` at full power);
one command per ``--period-ms`` goes out on the stimulator's command stream, signed with the
controller's source_id and session token. Like the session runner, any exception in the decoder
or controller sends the safe state (stimulation off) and stops (exit 2); with ``--watch-pid`` the
death of that process (the recorder) does the same (exit 3); SIGINT/SIGTERM send the safe state
and stop (exit 0). Faults on request from ``--fault-at-s``: ``--decoder-fault`` or
``--controller-fault`` = ``raise``, ``nan`` or ``hang``.

Prints ``ready`` once the stimulator listens, ``event <json>`` for every source event (stall,
reconnect, gap, ...) and loop event, and ``stats <json>`` at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from typing import Any

import numpy as np
import pylsl

from bci.acquisition import LSLSource
from stimulation.plant.commands import CommandOutlet

POWER_REF = 100.0  # noise of 10 uV RMS: the controller asks for about the full amplitude


class Stop(Exception):
    pass


def _event(kind: str, **detail: Any) -> None:
    print("event " + json.dumps({"kind": kind, "t": pylsl.local_clock(), **detail}), flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of someone else still answers kill(0): check its state
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("source_id", "command_stream", "controller_id", "token"):
        p.add_argument(name)
    p.add_argument("--amplitude-ma", type=float, default=1.0)
    p.add_argument("--period-ms", type=float, default=20.0)
    p.add_argument("--deadline-ms", type=float, default=5.0)
    p.add_argument("--duration-s", type=float, default=1e9)
    p.add_argument("--fault-at-s", type=float, default=None)
    p.add_argument("--decoder-fault", choices=["raise", "nan", "hang"], default=None)
    p.add_argument("--controller-fault", choices=["raise", "nan", "hang"], default=None)
    p.add_argument("--watch-pid", type=int, default=None)
    a = p.parse_args()

    def _stop(signum: int, frame: Any) -> None:
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)

    source = LSLSource(
        source_id=a.source_id, timeout_s=30.0, recover=True, max_buffered_s=60.0
    ).open()
    outlet = CommandOutlet(a.command_stream, a.controller_id, a.token)
    if not outlet.wait_for_consumers(30.0):
        print("the stimulator never connected", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    period = a.period_ms * 1e-3
    latencies: list[tuple[float, float]] = []  # (LSL time, ms)
    intervals_late = 0
    misses = 0
    chunks = 0
    t_start = time.monotonic()
    t_last_cmd = 0.0
    seen_events = 0
    fault_on = False

    def faulty(which: str | None, value: float) -> float:
        if not fault_on or which is None:
            return value
        if which == "raise":
            raise RuntimeError(f"injected failure at {pylsl.local_clock():.3f}")
        if which == "nan":
            return math.nan
        while True:  # hang
            time.sleep(1.0)

    status = 0
    try:
        while time.monotonic() - t_start < a.duration_s:
            if a.watch_pid is not None and not _alive(a.watch_pid):
                _event("watched process died", pid=a.watch_pid)
                status = 3
                break
            if a.fault_at_s is not None and not fault_on:
                if time.monotonic() - t_start >= a.fault_at_s:
                    fault_on = True
                    _event("fault injected", decoder=a.decoder_fault, controller=a.controller_fault)
            chunk = source.pull(timeout=0.005)
            if source.events_total != seen_events:
                for e in list(source.events)[-(source.events_total - seen_events) :]:
                    _event(f"source {e.kind}", message=e.message, t_source=e.t)
                seen_events = source.events_total
            if chunk is None:
                continue
            chunks += 1
            x = chunk.data[:, 1:].astype(np.float64)
            power = faulty(a.decoder_fault, float(np.mean(x * x)))
            now = time.monotonic()
            if now - t_last_cmd < period:
                continue
            if t_last_cmd and now - t_last_cmd > 2 * period:
                intervals_late += 1
            t_last_cmd = now
            # NaN stays NaN (min() would hide it): the limiter must see what the decoder made
            level = power / POWER_REF
            amplitude = faulty(a.controller_fault, a.amplitude_ma * float(np.minimum(1.0, level)))
            outlet.send(amplitude)
            t_push = pylsl.local_clock()
            latency_ms = (t_push - chunk.t_arrival) * 1e3
            latencies.append((t_push, latency_ms))
            misses += latency_ms > a.deadline_ms
    except Stop as stop:
        _event("stopped", why=str(stop))
    except Exception as err:  # what the runner does: safe state first, then stop
        _event("loop failed", error=f"{type(err).__name__}: {err}")
        status = 2
    outlet.send(0.0)
    _event("safe state sent")
    lat = np.array([v for _, v in latencies]) if latencies else np.zeros(0)
    st = source.status()
    print(
        "stats "
        + json.dumps(
            {
                "commands": len(latencies),
                "chunks": chunks,
                "deadline_ms": a.deadline_ms,
                "deadline_misses": int(misses),
                "late_command_intervals": intervals_late,
                "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                "latency": [[round(t, 4), round(v, 3)] for t, v in latencies],
                "source": {
                    k: st[k] for k in ("gaps", "gap_samples", "nan_samples", "samples_received")
                },
            }
        ),
        flush=True,
    )
    time.sleep(0.5)  # the stimulator and the recorder fetch the last command
    source.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
