"""Common median reference per chunk: the numba kernel against the numpy path it replaced.

Data: 30 kHz Gaussian noise (50 uV per channel) plus a shared common mode (30 uV), band-passed
300-6000 Hz by our causal ``BandPass``, as the reference sees it in the online sorting path.
Each chunk is referenced by both paths back to back, alternating which goes first, so both see the
same machine load; the table gives per-chunk compute time p50/p99 of each and their ratio (numpy
over numba, > 1 means the kernel is faster), measured in the same run. Both outputs are checked to
be bit-identical before timing.

    .venv/bin/python benchmarks/bench_preprocessing.py --json benchmarks/results/preprocessing.json
    .venv/bin/python benchmarks/bench_preprocessing.py --quick
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _common import Column, bench_parser, format_table, machine, percentiles, write_json

from bci.preprocessing import BandPass, CommonReference
from bci.preprocessing.reference import _numpy_reference
from bci.stream import SignalChunk

SFREQ = 30_000.0
CHANNEL_COUNTS = (32, 96, 384)
CHUNK_MS = (1.0, 10.0)


def make_signal(n_samples: int, n_channels: int, seed: int = 0) -> np.ndarray:
    """Band-passed noise with a common mode, float32, time-first."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 50.0, (n_samples, n_channels)) + rng.normal(0.0, 30.0, (n_samples, 1))
    data = raw.astype(np.float32)
    chunk = SignalChunk(data, 0, SFREQ, np.arange(n_samples) / SFREQ)
    return BandPass(300.0, 6000.0).process(chunk).data


def time_case(n_channels: int, chunk_ms: float, duration_s: float) -> dict[str, Any]:
    """Per-chunk compute time of both paths over ``duration_s`` of signal."""
    chunk_len = int(round(chunk_ms * 1e-3 * SFREQ))
    n_chunks = max(int(duration_s * 1e3 / chunk_ms), 20)
    data = make_signal(chunk_len * n_chunks, n_channels, seed=n_channels)
    stage = CommonReference("median")
    first = data[:chunk_len]
    if stage.apply(first).tobytes() != _numpy_reference(first, None, "median").tobytes():
        raise RuntimeError("kernel and numpy path disagree; timing would be meaningless")
    for _ in range(5):  # warm both paths (jit load, caches)
        stage.apply(first)
        _numpy_reference(first, None, "median")
    t_kernel = np.empty(n_chunks)
    t_numpy = np.empty(n_chunks)
    clock = time.perf_counter
    for i in range(n_chunks):
        block = data[i * chunk_len : (i + 1) * chunk_len]
        if i % 2:
            t0 = clock()
            stage.apply(block)
            t1 = clock()
            _numpy_reference(block, None, "median")
            t2 = clock()
            t_kernel[i], t_numpy[i] = t1 - t0, t2 - t1
        else:
            t0 = clock()
            _numpy_reference(block, None, "median")
            t1 = clock()
            stage.apply(block)
            t2 = clock()
            t_numpy[i], t_kernel[i] = t1 - t0, t2 - t1
    us = 1e6
    row = {
        "n_channels": n_channels,
        "chunk_ms": chunk_ms,
        "chunk_samples": chunk_len,
        "n_chunks": n_chunks,
    }
    row["numpy_p50_us"], row["numpy_p99_us"] = percentiles(t_numpy * us)
    row["numba_p50_us"], row["numba_p99_us"] = percentiles(t_kernel * us)
    row["ratio_p50"] = row["numpy_p50_us"] / row["numba_p50_us"]
    row["ratio_p99"] = row["numpy_p99_us"] / row["numba_p99_us"]
    # Share of real time one core spends referencing (chunk compute / chunk duration).
    row["numpy_load_pct"] = 100 * row["numpy_p50_us"] / (chunk_ms * 1e3)
    row["numba_load_pct"] = 100 * row["numba_p50_us"] / (chunk_ms * 1e3)
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        format_table(
            rows,
            [
                Column("ch", "n_channels", "d", 4),
                Column("chunk", lambda r: f"{r['chunk_ms']:.0f}ms", width=6),
                Column("numpy p50", "numpy_p50_us", ".1f", 10),
                Column("p99", "numpy_p99_us", ".1f", 9),
                Column("numba p50", "numba_p50_us", ".1f", 10),
                Column("p99", "numba_p99_us", ".1f", 9),
                Column("x p50", "ratio_p50", ".2f"),
                Column("x p99", "ratio_p99", ".2f"),
                Column("% core np", lambda r: f"{r['numpy_load_pct']:.1f}%", width=9),
                Column("numba", lambda r: f"{r['numba_load_pct']:.1f}%"),
            ],
            title="Common median reference, per-chunk compute (us), numpy np.median path vs "
            "numba kernel",
            notes="x = numpy time / numba time, same run; % core = p50 compute / chunk duration.",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--duration-s", type=float, default=4.0, help="signal length per case (seconds)"
    )
    parser.add_argument("--quick", action="store_true", help="0.5 s per case")
    args = parser.parse_args(argv)
    duration = 0.5 if args.quick else args.duration_s
    rows = [time_case(n, ms, duration) for n in CHANNEL_COUNTS for ms in CHUNK_MS]
    print_table(rows)
    where = machine(numpy=np.__version__)
    print("load average (1/5/15 min) at the end: " + " ".join(f"{v:.2f}" for v in where["loadavg"]))
    write_json(
        args.json,
        {
            "benchmark": "common_median_reference",
            "sfreq": SFREQ,
            "duration_s": duration,
            "machine": where,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
