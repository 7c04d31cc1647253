"""End-to-end loop latency of the closed loop in real time, over LSL, with the recorder running.

For each channel count, ``bci.runner`` runs a closed-loop session in real time: a probe recording
(``bci source synthetic``, its own process, 20 units) is published at 30 kHz in 1 ms chunks; the
loop pulls it, band-passes, re-references, sorts online, bins (5 ms), decodes the symptom, runs the
controller and the safety limiter, and pushes each command on an LSL command stream. The synthetic
source stands in for the plant here because it keeps real time at 96 channels on a loaded 2-core
machine, which the plant's simulation does not; the loop's work is the same. Loop latency: from the
arrival of the chunk whose processing produced a command (the newest sample that informed it) to
that command's push, with every stage's compute time and share. Anchor: the Open Ephys -> Falcon
round trip, 9.2 ms (Ciliberti et al. 2018); target p99 under 5 ms.

    python benchmarks/bench_loop.py --json benchmarks/results/loop.json [--duration 60]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

#: The symptom decoder the closed loop uses (shipped by the decoders package).
DEFAULT_DECODER = (
    Path(__file__).resolve().parents[1] / "decoders" / "models" / "symptom_gpi_beta.npz"
)
FALCON_ROUND_TRIP_MS = 9.2
TARGET_P99_MS = 5.0


def session(n_channels: int, duration_s: float, decoder: Path, runs_root: Path) -> dict[str, Any]:
    """The closed-loop session measured, in real time."""
    return {
        "name": f"bench_loop_{n_channels}ch",
        "description": "loop latency benchmark",
        "seed": 5,
        "duration_s": duration_s,
        "pacing": "realtime",
        "source": {
            "kind": "synthetic",
            "n_channels": n_channels,
            "n_units": 20,
            "channel_format": "int16",
            "chunk_ms": 1.0,
        },
        "stimulator": {"command_stream": f"bench-loop-{n_channels}-commands"},
        "calibration": {"duration_s": 6.0},
        "pipeline": [
            {"stage": "bandpass", "params": {"low_hz": 300.0, "high_hz": 6000.0}},
            {"stage": "common_reference", "params": {"mode": "median"}},
            {"stage": "online_sorter"},
            {"stage": "spike_binner", "params": {"bin_s": 0.005}},
        ],
        "decoder": {"stage": "decoder", "model": str(decoder)},
        "controller": {"stage": "threshold", "params": {"amplitude_ma": 2.5, "calibration_s": 1.0}},
        "recording": {"enabled": True, "nix": False},
        "timing": {"deadline_ms": TARGET_P99_MS},
        "runs_root": str(runs_root),
    }


def _f(x: Any, fmt: str = ".2f") -> str:
    return "nan" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--duration", type=float, default=66.0, help="s per run (6 s calibrate)")
    parser.add_argument("--decoder", type=Path, default=DEFAULT_DECODER)
    parser.add_argument("--runs-root", type=Path, default=Path("benchmarks/results/runs"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import logging

    from bci.runner import SessionRunner
    from bci.session.config import parse_session

    logging.getLogger("bci").setLevel(logging.ERROR)

    if not args.decoder.exists():
        raise SystemExit(f"No symptom decoder model at {args.decoder}; give --decoder FILE.")
    rows = []
    for n in args.channels:
        config = parse_session(session(n, args.duration, args.decoder, args.runs_root))
        result = SessionRunner(config).run()
        s = result.summary
        lat = s["loop_latency"]
        rows.append(
            {
                "channels": n,
                "status": s["status"],
                "error": s["error"],
                "run_dir": str(result.run_dir),
                "signal_s": s["signal_s"],
                "commands": lat["commands"],
                "p50_ms": lat["p50_ms"],
                "p99_ms": lat["p99_ms"],
                "max_ms": lat["max_ms"],
                "deadline_misses": lat["deadline_misses"],
                "chunk_p50_ms": lat["chunk_p50_ms"],
                "chunk_p99_ms": lat["chunk_p99_ms"],
                "chunk_overruns": lat["chunk_overruns"],
                "chunks": lat["chunks"],
                "units": s["units"],
                "stages": [
                    {k: r[k] for k in ("stage", "p50_ms", "p99_ms", "mean_ms", "share")}
                    for r in s["stages"]
                ],
                "limiter": s["limiter"],
            }
        )
    load = os.getloadavg()
    print(
        f"\nClosed-loop latency, real time over LSL, 30 kHz in 1 ms chunks "
        f"(load average {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"{'ch':>4} {'commands':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'misses':>7} "
        f"{'chunk p99':>10} {'overruns':>9} {'units':>6}  vs Falcon 9.2 ms (p99)"
    )
    for r in rows:
        ratio = r["p99_ms"] / FALCON_ROUND_TRIP_MS if r["p99_ms"] else float("nan")
        print(
            f"{r['channels']:>4} {r['commands']:>9} {_f(r['p50_ms']):>8} {_f(r['p99_ms']):>8} "
            f"{_f(r['max_ms']):>8} {r['deadline_misses']:>7} {_f(r['chunk_p99_ms']):>10} "
            f"{r['chunk_overruns']:>9} {r['units']:>6}  {_f(ratio)}x"
        )
    for r in rows:
        shares = ", ".join(
            f"{st['stage']} {100 * st['share']:.0f}% (p99 {st['p99_ms']:.3f})" for st in r["stages"]
        )
        print(f"  {r['channels']} ch stage shares: {shares}")
        if r["status"] != "completed":
            print(f"  {r['channels']} ch run {r['status']}: {r['error']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"load_average": load, "rows": rows}, indent=2, default=str) + "\n"
        )


if __name__ == "__main__":
    main()
