"""Soak: a lockstep closed-loop session through the product's loop (``bci run``) for a long time;
prints the curve (memory of the runner, the plant and the recorder, loop latency, per 10 s window,
as the runner wrote it into ``windows.csv``) and the verdict; exits 1 on FAIL.

    python benchmarks/soak.py --minutes 30 [--json OUT] [--every 30] [--keep DIR]

``--minutes`` is the session's length in signal time (lockstep runs as fast as the machine
allows; the wall time is printed). Pass: memory growth of each process under 5% after the
warm-up (2 min, a tenth of shorter runs), p99 latency of the last 5 minutes of signal within 10%
of the first 5 after the warm-up (a fifth of shorter runs), no sample lost by the source, the
recording complete. The session and the verdict are ``tests/reliability/soak_session.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

from soak_session import curve_table, soak, verdict_text  # noqa: E402


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="session length (signal)")
    parser.add_argument("--every", type=int, default=1, help="print every N-th window")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folder here")
    args = parser.parse_args()
    if not args.minutes > 0:
        parser.error("--minutes must be > 0")
    load_before = _uptime()
    print(f"load before: {load_before}", flush=True)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bci-soak-"))
    try:
        result = soak(args.minutes, folder=folder)
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
