"""Soak: a lockstep closed-loop session through the product's loop (``bci run``) for a long time;
prints the curve (memory of the runner, the plant and the recorder, loop latency, per 10 s window,
as the runner wrote it into ``windows.csv``) and the verdict; exits 1 on FAIL.

    python benchmarks/soak.py --minutes 30 [--max-speed 1 | --unpaced] [--json OUT] [--every 30]
        [--keep DIR]

``--minutes`` is the session's length in signal time; the wall time is printed. The plant is
paced (``--max-speed 1.0``, the default: the lockstep plant never runs ahead of real time, so 30
minutes of signal take 30 minutes of wall time), because a stimulator runs in real time and the
loop's latency should be measured with the processor doing what a session asks of it: unpaced
(``--max-speed 0`` or ``--unpaced``, the plant as fast as the commands come) the lockstep ran
about 2x real time and its three processes (plant, runner, recorder) filled both cores of a
2-core machine, so the p99 measured the scheduler, not the loop. Pass: memory growth of each
process under 5% after the warm-up (2 min, a tenth of shorter runs), p99 and p50 latency of the
last 5 minutes of signal within 10% of the first 5 after the warm-up (a fifth of shorter runs),
with the host's speed divided out window by window (a reference workload timed beside the loop;
the raw figures are printed too), no sample lost by the source, the recording complete. The
session, the reference and the verdict are ``tests/reliability/soak_session.py`` and
``host_reference.py``; why the host is divided out and why the p50 is judged too is written
there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

from soak_session import curve_table, pacing_text, soak, verdict_text  # noqa: E402


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="session length (signal)")
    parser.add_argument("--every", type=int, default=1, help="print every N-th window")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folder here")
    parser.add_argument(
        "--max-speed",
        type=float,
        default=1.0,
        help="the plant's pace, x real time (default 1.0; 0: unpaced, as fast as possible)",
    )
    parser.add_argument("--unpaced", action="store_true", help="the same as --max-speed 0")
    args = parser.parse_args()
    if not args.minutes > 0:
        parser.error("--minutes must be > 0")
    if args.every < 1:
        parser.error(f"--every must be >= 1 (print every N-th window), got {args.every}")
    if not (math.isfinite(args.max_speed) and args.max_speed >= 0):
        parser.error(f"--max-speed must be a finite number >= 0 (0: unpaced), got {args.max_speed}")
    max_speed = None if args.unpaced or args.max_speed == 0 else args.max_speed
    print(pacing_text(max_speed), flush=True)
    load_before = _uptime()
    print(f"load before: {load_before}", flush=True)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bci-soak-"))
    try:
        result = soak(args.minutes, folder=folder, max_speed=max_speed)
        load_after = _uptime()
        print(curve_table(result, args.every))
        print()
        print(verdict_text(result))
        print(f"load after: {load_after}")
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            data = dataclasses.asdict(result)
            data.update(run_dir=str(result.run_dir), ok=result.ok, failures=result.failures(),
                        load_before=load_before, load_after=load_after)  # fmt: skip
            args.json.write_text(json.dumps(data, indent=1, default=float))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
