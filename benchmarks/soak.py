"""Soak: a lockstep closed loop (plant, LSL, pipeline, controller, safety limiter, recorder) for
a long time; prints the curve (memory of each process, loop latency) and the verdict.

    python benchmarks/soak.py --minutes 30 [--json OUT]

Pass: memory growth under 5% after the warm-up (2 min, a tenth of shorter runs), p99 latency of
the last window within 10% of the first (5 min windows, a fifth of shorter runs), no sample lost
by the loop, the recording complete. The machinery is ``tests/reliability/soak_loop.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

from soak_loop import soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import logging

    logging.getLogger("bci").setLevel(logging.ERROR)  # lockstep pauses are not stalls to report
    print(f"{'t (s)':>7s} {'loop MB':>8s} {'plant MB':>9s} {'rec MB':>7s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'periods':>8s}")  # fmt: skip

    r = soak(args.minutes * 60.0, sample_s=args.sample_s)
    for p in r.curve:
        print(f"{p['t_s']:7.0f} {p['loop_mb']:8.1f} {p['plant_mb']:9.1f} {p['recorder_mb']:7.1f} "
              f"{p['p50_ms']:7.3f} {p['p99_ms']:7.3f} {p['periods']:8.0f}")  # fmt: skip
    growth = ", ".join(f"{k[:-3]} {100 * v:+.1f}%" for k, v in r.memory_growth.items())
    ok = (
        all(v < 0.05 for v in r.memory_growth.values())
        and abs(r.p99_drift) <= 0.10
        and r.gaps == 0
        and r.recording_complete
    )
    print(f"\n{r.duration_s / 60:g} min, {r.periods} periods, {r.commands} commands")
    print(f"memory growth after {r.warmup_s:.0f} s warm-up: {growth}")
    print(f"p99 latency first {r.window_s:.0f} s {r.p99_first_ms:.3f} ms, last {r.p99_last_ms:.3f}"
          f" ms ({100 * r.p99_drift:+.1f}%)")  # fmt: skip
    print(f"loop gaps {r.gaps} ({r.gap_samples} samples); recording complete: "
          f"{r.recording_complete} ({r.samples_recorded} samples recorded)")  # fmt: skip
    print("PASS" if ok else "FAIL")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**asdict(r), "pass": ok}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
