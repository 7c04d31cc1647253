"""The LSL benchmark's rig: an outlet process with a sample clock, and the two consumers.

The outlet (:func:`outlet_main`, run in its own process) streams at :data:`SFREQ` and writes its
push time into channels 0 and 1 of every sample; :class:`BareInlet` (the peer, a bare pylsl inlet)
and :class:`OurSource` (``LSLSource``) pull it; :func:`latency` and :func:`throughput` measure one
paced or flat-out phase. ``bench_lsl.py`` describes the measurements.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pylsl

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl's INFO log before first use)

SFREQ = 30_000.0
WRAP_US = 1 << 30
PULL_TIMEOUT_S = 0.005
MAX_PULL_S = 0.05


def now_us() -> int:
    return int(pylsl.local_clock() * 1e6) % WRAP_US


def outlet_main(source_id: str, n_ch: int, fmt: str, chunk: int, conn: Any) -> None:
    """Outlet process: obey ("paced", seconds), ("flat", n_samples), ("stop",) from ``conn``."""
    from bci.acquisition.metadata import NUMPY_DTYPES, make_stream_info

    dtype = NUMPY_DTYPES[fmt]
    info = make_stream_info("bench-lsl", "Neural", n_ch, SFREQ, fmt, source_id)
    outlet = pylsl.StreamOutlet(info, chunk, 60)
    rng = np.random.default_rng(0)
    n_blocks = 64
    noise = rng.normal(0, 50, size=(chunk * n_blocks, n_ch))
    block = (np.clip(noise, -32768, 32767) if fmt == "int16" else noise).astype(dtype)
    sample_index = 0  # the sample clock runs on across phases
    t_origin = pylsl.local_clock()
    conn.send("ready")
    while True:
        cmd = conn.recv()
        if cmd[0] == "stop":
            break
        if cmd[0] == "index":  # samples pushed so far (the recorder section counts with it)
            conn.send(sample_index)
            continue
        if cmd[0] == "paced":
            t_origin = pylsl.local_clock() - sample_index / SFREQ
            t_end = pylsl.local_clock() + cmd[1]
            b = 0
            while pylsl.local_clock() < t_end:
                wait = t_origin + (sample_index + chunk) / SFREQ - pylsl.local_clock()
                if wait > 0:
                    time.sleep(wait)
                data = block[b * chunk : (b + 1) * chunk]
                u = now_us()
                data[:, 0] = u >> 15
                data[:, 1] = u & 0x7FFF
                sample_index += chunk
                outlet.push_chunk(data, t_origin + (sample_index - 1) / SFREQ)
                b = (b + 1) % n_blocks
        elif cmd[0] == "flat":
            n_total = cmd[1]  # stamps go on from the paced phase: no jump, no false gap
            pushed, b = 0, 0
            while pushed < n_total:
                data = block[b * chunk : (b + 1) * chunk]
                sample_index += chunk
                pushed += chunk
                outlet.push_chunk(data, t_origin + (sample_index - 1) / SFREQ)
                b = (b + 1) % n_blocks
        conn.send("done")
    del outlet


class BareInlet:
    """The peer: a pylsl inlet pulling into a preallocated numpy buffer, nothing else."""

    label = "bare"

    def __init__(self, source_id: str) -> None:
        info = pylsl.resolve_byprop("source_id", source_id, 1, 10.0)[0]
        flags = pylsl.proc_clocksync | pylsl.proc_monotonize
        self.inlet = pylsl.StreamInlet(info, max_buflen=10, processing_flags=flags)
        self.inlet.open_stream(10.0)
        self.inlet.time_correction(10.0)
        n_ch = info.channel_count()
        dtype = np.int16 if info.channel_format() == pylsl.cf_int16 else np.float32
        self.max_samples = int(MAX_PULL_S * SFREQ)
        self.buffer = np.empty((self.max_samples, n_ch), dtype=dtype)

    def pull(self) -> tuple[int, Any]:
        _, ts = self.inlet.pull_chunk(
            timeout=PULL_TIMEOUT_S,
            max_samples=self.max_samples,
            dest_obj=self.buffer,
            min_samples=1,
        )
        n = len(ts)
        return n, (self.buffer[n - 1, 0], self.buffer[n - 1, 1]) if n else None

    def close(self) -> None:
        self.inlet.close_stream()
        del self.inlet


class OurSource:
    label = "ours"

    def __init__(self, source_id: str) -> None:
        from bci.acquisition import LSLSource

        self.source = LSLSource(source_id=source_id, timeout_s=10.0, max_pull_s=MAX_PULL_S).open()

    def pull(self) -> tuple[int, Any]:
        chunk = self.source.pull(timeout=PULL_TIMEOUT_S)
        if chunk is None:
            return 0, None
        return chunk.n_samples, (chunk.data[-1, 0], chunk.data[-1, 1])

    def close(self) -> None:
        self.source.close()


def latency(consumer: Any, conn: Any, seconds: float) -> list[float]:
    """Paced phase: one push-to-available latency (ms) per pull that returned data."""
    lat_ms: list[float] = []
    conn.send(("paced", seconds))
    t_end = time.monotonic() + seconds + 1.0
    while time.monotonic() < t_end:
        n, stamp = consumer.pull()
        if n:
            now = now_us()
            pushed = (int(stamp[0]) << 15) | int(stamp[1])
            lat_ms.append(((now - pushed) % WRAP_US) / 1e3)
        elif conn.poll():
            break
    conn.recv()
    return lat_ms[10:]  # skip the connection's first chunks


def throughput(consumer: Any, conn: Any, seconds: float) -> tuple[float, float]:
    """Flat-out phase: (data seconds per wall second, consumer CPU seconds per data second)."""
    n_total = int(seconds * SFREQ)
    got = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    conn.send(("flat", n_total))
    deadline = t0 + 60.0
    while got < n_total and time.perf_counter() < deadline:
        n, _ = consumer.pull()
        got += n
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    conn.recv()
    return (got / SFREQ) / wall, cpu / max(got / SFREQ, 1e-9)
