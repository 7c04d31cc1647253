"""Benchmark synthetic recordings: generation speed, streaming cost per chunk, real-time pacing.

1. Offline generation of a whole recording: ``bci.synthesis.generate_recording`` vs SpikeInterface's
   ``generate_ground_truth_recording`` (the field's peer; its traces are lazy, so both are timed until
   every sample exists in memory), same channels, units, duration and noise.
2. Streaming: ``SyntheticSource.read`` in 1 ms chunks (what the live publisher does per chunk):
   microseconds per chunk and the real-time factor, for each channel count.
3. Pacing: ``SyntheticPublisher`` in a separate process for ``--seconds`` s, an inlet here measures
   push-to-pull lag (pull time minus the chunk's time stamp) at the start and the end of the run, and
   the drift of the stream against the wall clock (slope of lag over time). The peer is the naive
   loop ``push; time.sleep(chunk_s)`` that most hand-written LSL test sources use.

Prints tables; ``--json PATH`` also writes the numbers. Never fails on timing.

    .venv/bin/python benchmarks/bench_synthesis.py --seconds 30
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid

import numpy as np
import pylsl
from _common import Column, bench_parser, format_table, machine, percentiles, write_json

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl's INFO logging)

SFREQ = 30_000.0


def bench_generation(n_channels: int, n_units: int, duration_s: float) -> dict[str, float]:
    from spikeinterface.core import generate_ground_truth_recording

    from bci.synthesis import generate_recording

    # warm-up (imports, numba's cached kernels) for both, outside the timings
    generate_recording(n_channels=4, n_units=2, duration_s=0.01, seed=0)
    generate_ground_truth_recording(durations=[0.01], num_channels=4, num_units=2, seed=0)[
        0
    ].get_traces()
    t = time.perf_counter()
    generate_recording(n_channels=n_channels, n_units=n_units, duration_s=duration_s, seed=0)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    rec, _ = generate_ground_truth_recording(
        durations=[duration_s],
        sampling_frequency=SFREQ,
        num_channels=n_channels,
        num_units=n_units,
        seed=0,
        noise_kwargs={"noise_levels": 5.0, "strategy": "on_the_fly"},
    )
    rec.get_traces()
    peer = time.perf_counter() - t
    return {"ours_s": ours, "spikeinterface_s": peer, "ratio": peer / ours}


def bench_streaming(n_channels: int, n_units: int, seconds: float) -> dict[str, float]:
    from bci.synthesis import SyntheticSource

    src = SyntheticSource(n_channels=n_channels, n_units=n_units, seed=0)
    n_chunks = int(seconds * 1000)
    t = time.perf_counter()
    for _ in range(n_chunks):
        src.read(30)
    wall = time.perf_counter() - t
    return {"us_per_chunk": wall / n_chunks * 1e6, "x_real_time": seconds / wall}


def _publish(kind: str, source_id: str, n_channels: int, seconds: float, q: mp.Queue) -> None:
    if kind == "ours":
        from bci.synthesis import SyntheticPublisher

        pub = SyntheticPublisher(
            None,
            name="bench-syn",
            source_id=source_id,
            channel_format="int16",
            chunk_ms=1.0,
            ground_truth=False,
            n_channels=n_channels,
            n_units=20,
            seed=0,
        )
        pub.wait_for_consumers(10.0)
        stats = pub.run(seconds)
        q.put({"late_chunks": stats.late_chunks, "max_lag_ms": stats.max_lag_s * 1e3})
        return
    # the naive peer: same data, pushed with a fixed sleep per chunk, stamped at push time
    from bci.acquisition.metadata import make_stream_info

    outlet = pylsl.StreamOutlet(
        make_stream_info("bench-naive", "Neural", n_channels, SFREQ, "int16", source_id), 30, 360
    )
    outlet.wait_for_consumers(10.0)
    block = np.zeros((30, n_channels), dtype=np.int16)
    t0 = pylsl.local_clock()
    for k in range(int(seconds * 1000)):
        outlet.push_chunk(block, t0 + (k * 30 + 29) / SFREQ)
        time.sleep(0.001)
    q.put({})


def bench_pacing(kind: str, n_channels: int, seconds: float) -> dict[str, float]:
    sid = f"bench-syn-{kind}-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_publish, args=(kind, sid, n_channels, seconds, q))
    proc.start()
    info = pylsl.resolve_byprop("source_id", sid, 1, 20.0)[0]
    inlet = pylsl.StreamInlet(info, max_buflen=60)
    inlet.open_stream(timeout=10.0)
    buf = np.zeros((4096, n_channels), dtype=np.int16)
    pulls_t, stamps = [], []
    t_end = pylsl.local_clock() + seconds + 5.0
    n = 0
    while pylsl.local_clock() < t_end and n < seconds * SFREQ:
        _, ts = inlet.pull_chunk(timeout=0.2, max_samples=4096, dest_obj=buf)
        if ts:
            now = pylsl.local_clock()
            pulls_t.append(now)
            stamps.append(ts[-1])
            n += len(ts)
    inlet.close_stream()
    del inlet
    proc.join(20.0)
    extra = q.get(timeout=5.0) if not q.empty() else {}
    lag = (np.array(pulls_t) - np.array(stamps)) * 1e3
    k = max(len(lag) // 10, 1)
    span_min = (stamps[-1] - stamps[0]) / 60.0
    # drift: change of the typical lag from the first to the last tenth of the run (medians, so a
    # few scheduler hiccups on a shared machine do not count as drift)
    slope = (np.median(lag[-k:]) - np.median(lag[:k])) / (0.9 * span_min)
    return {
        "samples": n,
        **dict(zip(("lag_p50_ms", "lag_p99_ms"), percentiles(lag), strict=True)),
        "lag_first10pct_ms": float(np.median(lag[:k])),
        "lag_last10pct_ms": float(np.median(lag[-k:])),
        "drift_ms_per_min": float(slope),
        **extra,
    }


def main() -> None:
    ap = bench_parser(__doc__)
    ap.add_argument("--seconds", type=float, default=20.0, help="Length of the pacing runs.")
    ap.add_argument(
        "--gen-seconds", type=float, default=10.0, help="Length of generated recordings."
    )
    args = ap.parse_args()
    results: dict[str, object] = {}

    gen = {}
    for ch, un in ((32, 20), (128, 50), (384, 100)):
        gen[f"{ch}x{un}"] = {"case": f"{ch} x {un}", **bench_generation(ch, un, args.gen_seconds)}
    print()
    print(
        format_table(
            list(gen.values()),
            [
                Column("channels x units", "case", width=18),
                Column("bci.synthesis", "ours_s", ".2f"),
                Column("SpikeInterface", "spikeinterface_s", ".2f"),
                Column("SI / ours", "ratio", ".2f"),
            ],
            title=f"1. Whole-recording generation, {args.gen_seconds:g} s at 30 kHz "
            "(s of wall time)",
        )
    )
    results["generation"] = gen

    stream = {str(ch): {"channels": ch, **bench_streaming(ch, 20, 3.0)} for ch in (32, 128, 384)}
    print()
    print(
        format_table(
            list(stream.values()),
            [
                Column("channels", "channels", "d", 9),
                Column("us / chunk", "us_per_chunk", ".0f"),
                Column("x real time", "x_real_time", ".1f"),
            ],
            title="2. Streaming generation in 1 ms chunks (30 samples), 20 units, 3 s of signal",
        )
    )
    results["streaming"] = stream

    cols = ("lag_p50_ms", "lag_p99_ms", "lag_first10pct_ms", "lag_last10pct_ms", "drift_ms_per_min")
    pacing = {}
    for kind, label in (("ours", "SyntheticPublisher"), ("naive", "naive push+sleep(1 ms)")):
        pacing[kind] = {"publisher": label, **bench_pacing(kind, 32, args.seconds)}
    print()
    print(
        format_table(
            list(pacing.values()),
            [Column("publisher", "publisher", width=26)] + [Column(c, c, ".2f", 18) for c in cols],
            title=f"3. Real-time pacing, 32 ch int16, 1 ms chunks, {args.seconds:g} s, inlet in "
            "another process",
            sep=" ",
        )
    )
    if "late_chunks" in pacing["ours"]:
        print(
            f"SyntheticPublisher: late chunks {pacing['ours']['late_chunks']}, "
            f"max lag behind schedule {pacing['ours']['max_lag_ms']:.2f} ms"
        )
    results["pacing"] = pacing
    results["machine"] = machine()
    write_json(args.json, results)


if __name__ == "__main__":
    main()
