"""Fault report: inject every fault of issue 14 into a closed loop on loopback LSL and print one
table (fault, detected how, time to the safe stimulation state, recorded samples lost, outcome).

    python benchmarks/fault_report.py [--json OUT] [--only NAME ...] [--starve-s 10]

The loop's parts are separate processes (amplifier, loop, the basal-ganglia plant behind its
safety limiter, recorder): ``tests/integration/fault_rig.py`` builds them and
``tests/integration/fault_scenarios.py`` holds the faults (the same ones the tests run). Time to
safe: from the fault to the arrival (wall clock) of the first 20 ms control period the plant
reports delivered at the safe state (off); the bound is the plant's watchdog (0.1 s) + the ramp
down (1 mA at 100 mA/s) + three periods (the trip falls on a period boundary, the new setting
applies from the next period not yet simulated, and a period is published at its end) + one
period for a plant process scheduled late on a loaded machine. Samples lost: amplifier
samples pushed more than 1 s before the fault that are missing from the recording (repaired
first when the recorder was killed). Rows with no time to safe are faults the loop rides
through without stopping stimulation; "safe" there means no applied stimulation above the
controller's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from fault_scenarios import FAULTS, cpu_starved, read_only  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(FAULTS) + ["read_only"])
    parser.add_argument("--starve-s", type=float, default=10.0, help="CPU starvation length")
    args = parser.parse_args()
    names = args.only or [*FAULTS, "read_only"]
    rows = []
    print(f"{'fault':42s} {'time to safe':>12s} {'bound':>6s} {'lost':>5s} {'safe':>5s}  detected")
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix=f"bci-fault-{name}-"))
        t0 = time.monotonic()
        if name == "read_only":
            out = read_only(tmp)
            ok = out["exit"] != 0 and "Traceback" not in out["output"]
            line = out["output"].strip().splitlines()[-1] if out["output"].strip() else ""
            row = {
                "fault": "read-only file system under the recorder",
                "detected": f"recorder refuses at start (exit {out['exit']}): {line[:90]}",
                "time_to_safe_s": None,
                "samples_lost": 0,
                "safe": ok,
            }
            bound = float("nan")
        else:
            if name == "cpu_starved":
                result = cpu_starved(tmp, short=False, starve_s=args.starve_s)
            else:
                result = FAULTS[name](tmp, short=False)
            row = result.row()
            bound = result.bound_s
            d = result.details
            if name == "cpu_starved":
                row["latency_p99_ms"] = {
                    k: d.get(f"p99_{k}") for k in ("before", "during", "after")
                }
        rows.append(row)
        tts = "-" if row["time_to_safe_s"] is None else f"{row['time_to_safe_s']:.3f} s"
        print(
            f"{row['fault'][:42]:42s} {tts:>12s} {bound:6.3f} {row['samples_lost']:5d} "
            f"{'yes' if row['safe'] else 'NO':>5s}  {row['detected']}  ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=1))
    return 0 if all(r["safe"] and r["samples_lost"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
