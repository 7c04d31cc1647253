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

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bci.preprocessing import BandPass, CommonReference  # noqa: E402
from bci.preprocessing.reference import _numpy_reference  # noqa: E402
from bci.stream import SignalChunk  # noqa: E402

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
        "numpy_p50_us": float(np.percentile(t_numpy, 50) * us),
        "numpy_p99_us": float(np.percentile(t_numpy, 99) * us),
        "numba_p50_us": float(np.percentile(t_kernel, 50) * us),
        "numba_p99_us": float(np.percentile(t_kernel, 99) * us),
    }
    row["ratio_p50"] = row["numpy_p50_us"] / row["numba_p50_us"]
    row["ratio_p99"] = row["numpy_p99_us"] / row["numba_p99_us"]
    # Share of real time one core spends referencing (chunk compute / chunk duration).
    row["numpy_load_pct"] = 100 * row["numpy_p50_us"] / (chunk_ms * 1e3)
    row["numba_load_pct"] = 100 * row["numba_p50_us"] / (chunk_ms * 1e3)
    return row


def print_table(rows: list[dict[str, Any]], load: tuple[float, float, float] | None) -> None:
    head = (
        f"{'ch':>4} {'chunk':>6} | {'numpy p50':>10} {'p99':>9} | {'numba p50':>10} {'p99':>9} |"
        f" {'x p50':>6} {'x p99':>6} | {'% core np':>9} {'numba':>6}"
    )
    print("Common median reference, per-chunk compute (us), numpy np.median path vs numba kernel")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['n_channels']:>4} {r['chunk_ms']:>4.0f}ms | {r['numpy_p50_us']:>10.1f} "
            f"{r['numpy_p99_us']:>9.1f} | {r['numba_p50_us']:>10.1f} {r['numba_p99_us']:>9.1f} |"
            f" {r['ratio_p50']:>6.2f} {r['ratio_p99']:>6.2f} | {r['numpy_load_pct']:>8.1f}%"
            f" {r['numba_load_pct']:>5.1f}%"
        )
    print("x = numpy time / numba time, same run; % core = p50 compute / chunk duration.")
    if load is not None:
        print(f"load average (1/5/15 min) at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--duration-s", type=float, default=4.0, help="signal length per case (seconds)"
    )
    parser.add_argument("--quick", action="store_true", help="0.5 s per case")
    args = parser.parse_args(argv)
    duration = 0.5 if args.quick else args.duration_s
    rows = [time_case(n, ms, duration) for n in CHANNEL_COUNTS for ms in CHUNK_MS]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print_table(rows, load)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "benchmark": "common_median_reference",
            "sfreq": SFREQ,
            "duration_s": duration,
            "cpu_count": os.cpu_count(),
            "load_average": list(load) if load is not None else None,
            "platform": platform.platform(),
            "numpy": np.__version__,
            "rows": rows,
        }
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
