"""A lockstep closed loop for a long time, measured as it goes (the soak of issue 14).

The basal-ganglia plant (``bci plant --lockstep``, its own process) simulates one 20 ms control
period per command it accepts and publishes its probe (30 kHz) and one biomarker sample per
period; the loop (this process) pulls the probe with :class:`~bci.acquisition.LSLSource`,
band-passes it, detects threshold crossings, bins them in 20 ms, decodes the mean count, and a
:class:`~stimulation.controllers.ThresholdController` sends one command per period, signed with
the session's source_id and token, through the plant's safety limiter; ``bci record`` records
the probe, the biomarkers, the commands and the safety events in its own process.

Every ``sample_s`` the soak notes the resident memory of the loop, the plant and the recorder,
and the loop latency of each command (biomarker sample of the period in -> next command out).
At the end: memory growth after the warm-up, p99 latency of the first and last windows, samples
the loop lost (gaps), and whether the recording holds every probe sample the loop received.
Used by ``benchmarks/soak.py`` and ``tests/reliability/test_soak.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), from /proc."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / 1e6
    except OSError:
        return float("nan")


@dataclass
class SoakResult:
    duration_s: float
    window_s: float
    warmup_s: float
    periods: int
    commands: int
    curve: list[dict[str, float]] = field(default_factory=list)
    memory_growth: dict[str, float] = field(default_factory=dict)
    p99_first_ms: float = float("nan")
    p99_last_ms: float = float("nan")
    gaps: int = 0
    gap_samples: int = 0
    samples_received: int = 0
    samples_recorded: int = 0
    recording_complete: bool = False
    #: last probe stamp the loop received minus the last one recorded (s)
    last_stamp_lag_s: float = float("nan")

    @property
    def p99_drift(self) -> float:
        return self.p99_last_ms / self.p99_first_ms - 1.0


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _wait_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        if line.startswith(prefix) or prefix in line:
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"no {prefix!r} from {proc.args}")


_DRAINS: list[Any] = []


def _drain(proc: subprocess.Popen[str]) -> None:
    """Keep reading a child's output so its pipe never fills; close it at its end."""
    import threading

    def read() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass
        proc.stdout.close()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    _DRAINS.append(thread)


def soak(
    duration_s: float,
    *,
    folder: Path | None = None,
    sample_s: float = 10.0,
    window_s: float | None = None,
    warmup_s: float | None = None,
    progress: bool = False,
) -> SoakResult:
    """Run the loop for ``duration_s`` of wall time; windows default to 5 min (a fifth of
    shorter runs), the warm-up to 2 min (a tenth of shorter runs)."""
    from bci.acquisition import LSLSource
    from bci.features.binning import SpikeBinner
    from bci.preprocessing.filters import BandPass
    from bci.session.files import read_xdf
    from bci.sorting.threshold import ThresholdCrossings
    from stimulation.controllers import ThresholdController
    from stimulation.plant.commands import CommandOutlet

    window_s = window_s if window_s is not None else min(300.0, duration_s / 5)
    warmup_s = warmup_s if warmup_s is not None else min(120.0, duration_s / 10)
    folder = Path(folder or tempfile.mkdtemp(prefix="bci-soak-"))
    tag = f"soak-{uuid.uuid4().hex[:8]}"
    ctrl_id, token = f"{tag}-controller", uuid.uuid4().hex
    plant = _start(
        [
            sys.executable,
            "-m",
            "bci.cli.main",
            "plant",
            "--lockstep",
            "--name",
            tag,
            "--source-id",
            tag,
            "--controller-source-id",
            ctrl_id,
            "--session-token",
            token,
            "--cells",
            "6",
            "--units",
            "2",
            "--channels",
            "4",
            "--seed",
            "1",
        ]  # fmt: skip
    )
    recorder = None
    try:
        _wait_line(plant, "Obeying", 180)
        _drain(plant)
        outlet = CommandOutlet(f"{tag}-commands", ctrl_id, token)
        source = LSLSource(
            source_id=f"{tag}-raw",
            timeout_s=30.0,
            max_buffered_s=60.0,
            dejitter=False,
            clocksync=False,
        ).open()
        last_stamp = float("nan")
        found = pylsl.resolve_byprop("source_id", f"{tag}-biomarkers", 1, 30.0)
        bio = pylsl.StreamInlet(found[0], max_buflen=600, recover=False)
        bio.open_stream(timeout=10.0)
        rec_path = folder / "recording.xdf"
        rec_cmd = [sys.executable, "-m", "bci.cli.main", "record", "--out", str(rec_path),
                   "--status-interval", "0", "--timeout", "30"]  # fmt: skip
        for sid in (f"{tag}-raw", f"{tag}-biomarkers", f"{tag}-safety", ctrl_id):
            rec_cmd += ["--source-id", sid]
        spec = source.spec()
        stages: list[Any] = [
            BandPass(300.0, 6000.0),
            ThresholdCrossings(thresholds=np.full(spec.n_channels, -25.0)),
            SpikeBinner(0.02),
        ]
        for st in stages:
            spec = st.prepare(spec)
        controller = ThresholdController(
            amplitude_ma=1.0, threshold=0.5, source_id=ctrl_id, session_token=token
        )
        if not outlet.wait_for_consumers(30.0):
            raise RuntimeError("the plant never listened to the commands")
        outlet.send(0.0)  # period 0; the recorder finds the command stream from here on
        recorder = _start(rec_cmd)
        _wait_line(recorder, "bci-record: recording", 120)
        _drain(recorder)

        t0 = time.monotonic()
        # preallocated, so the soak's own bookkeeping does not grow the loop's memory
        capacity = int(duration_s * 200) + 1000  # at most 200 commands per second
        lat_t = np.zeros(capacity)
        lat_ms = np.zeros(capacity)
        n_lat = 0
        decoded = 0.0
        periods = 0
        curve: list[dict[str, float]] = []
        next_sample = t0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                next_sample += sample_s
                recent = lat_ms[max(0, n_lat - 2000) : n_lat] if n_lat else np.zeros(1)
                point = {
                    "t_s": now - t0,
                    "loop_mb": rss_mb(os.getpid()),
                    "plant_mb": rss_mb(plant.pid),
                    "recorder_mb": rss_mb(recorder.pid),
                    "p50_ms": float(np.percentile(recent, 50)),
                    "p99_ms": float(np.percentile(recent, 99)),
                    "periods": periods,
                }
                curve.append(point)
                if progress:
                    print(" ".join(f"{k}={v:.2f}" for k, v in point.items()), flush=True)
            if now - t0 >= duration_s:
                break
            chunk = source.pull(timeout=0.001)
            if chunk is not None:
                last_stamp = float(chunk.t_lsl[-1])
                x: Any = chunk
                for st in stages:
                    x = st.process(x) if x is not None else None
                if x is not None and x.counts.shape[0]:
                    decoded = float(np.mean(x.counts[-1]))
            _, stamps = bio.pull_chunk(timeout=0.0)
            if stamps:
                t_in = pylsl.local_clock()
                periods += len(stamps)
                for _ in range(len(stamps)):  # one command per finished period
                    cmd = controller.act(np.array([decoded]), periods * 0.02)
                    outlet.send(cmd.amplitude_ma, cmd.frequency_hz, cmd.pulse_width_us)
                if n_lat == capacity:
                    lat_t = np.concatenate([lat_t, np.zeros(capacity)])
                    lat_ms = np.concatenate([lat_ms, np.zeros(capacity)])
                    capacity *= 2
                lat_t[n_lat] = now - t0
                lat_ms[n_lat] = (pylsl.local_clock() - t_in) * 1e3
                n_lat += 1
        # stop commanding (the lockstep plant stands still), let the loop and the recorder take
        # everything the plant published, stop the recorder, then the plant (an outlet that
        # closes drops what its inlets have not fetched yet)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            chunk = source.pull(timeout=0.05)
            if chunk is not None:
                last_stamp = float(chunk.t_lsl[-1])
        time.sleep(1.0)
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
        plant.send_signal(signal.SIGINT)
        plant.wait(30)
        status = source.status()
        source.close()
        streams, _ = read_xdf(rec_path, synchronize_clocks=False)
        by_id = {s["info"]["source_id"][0]: s for s in streams}
        raw = by_id[f"{tag}-raw"]
    finally:
        for proc in (plant, recorder):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        while _DRAINS:
            _DRAINS.pop().join(10)
        for proc in (plant, recorder):
            if proc is not None and proc.stdout is not None and not proc.stdout.closed:
                proc.stdout.close()
    lt, lm = lat_t[:n_lat], lat_ms[:n_lat]
    first = lm[(lt >= warmup_s) & (lt < warmup_s + window_s)]
    last = lm[lt >= duration_s - window_s]
    growth = {}
    after = [p for p in curve if p["t_s"] >= warmup_s]
    for key in ("loop_mb", "plant_mb", "recorder_mb"):
        if len(after) >= 2:
            growth[key] = after[-1][key] / after[0][key] - 1.0
    n_rec = len(raw["time_stamps"])
    rec_stamps = np.asarray(raw["time_stamps"])
    # the recorder starts after the loop: complete = no sample missing from its first to the
    # last one the loop received
    return SoakResult(
        duration_s=duration_s,
        window_s=window_s,
        warmup_s=warmup_s,
        periods=periods,
        commands=len(lm),
        curve=curve,
        memory_growth=growth,
        p99_first_ms=float(np.percentile(first, 99)) if first.size else float("nan"),
        p99_last_ms=float(np.percentile(last, 99)) if last.size else float("nan"),
        gaps=int(status["gaps"]),
        gap_samples=int(status["gap_samples"]),
        samples_received=int(status["samples_received"]),
        samples_recorded=n_rec,
        last_stamp_lag_s=float(last_stamp - rec_stamps[-1]) if n_rec else float("nan"),
        recording_complete=bool(
            n_rec > 0
            and _regular(rec_stamps, 30000.0)
            and abs(rec_stamps[-1] - last_stamp) < 0.5 / 30000.0
        ),
    )


def _regular(stamps: np.ndarray, sfreq: float) -> bool:
    """No missing sample: consecutive stamps one sample period apart (within 10%)."""
    d = np.diff(stamps)
    return bool(d.size and np.all(np.abs(d * sfreq - 1.0) < 0.1))
