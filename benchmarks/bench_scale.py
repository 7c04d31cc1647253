"""Scale-out on Ray: N lockstep closed-loop sessions (bci sweep) and their analyses (bci analyze
--many), one after another in one process against Ray tasks on a local Ray instance, in one run.

Ray's start-up (``ray.init`` of a local instance) is measured and reported apart from the tasks;
"speedup" is sequential wall time / Ray wall time with start-up included, "speedup excl." without
it. Target (issue 13): 8 lockstep sessions on 2 cores >= 1.6x faster than one after another,
start-up included.

The sweep needs the closed-loop runner (``bci.runner``) and a lockstep session: ``--session PATH``
(or a shipped session's name), by default ``whole_loop``: the whole-loop test's session
(``tests/integration/test_closed_loop.py``: plant with 6 cells per nucleus, 8 channels, 4 units,
online sorter, its stand-in decoder and controller), 8 s each. Without the runner only the
analysis part runs, on sessions recorded by the tests' plant helper
(``tests/session/_plant_run.py``).

    nice -n 10 python benchmarks/bench_scale.py --json benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _timed_batch(func: Any, items: list, *, use_ray: bool, cpus: int) -> dict[str, Any]:
    from bci.analysis.batch import run_tasks

    t = time.perf_counter()
    result = run_tasks(func, items, use_ray=use_ray, num_cpus=cpus)
    wall = time.perf_counter() - t
    return {
        "wall_s": wall,
        "startup_s": result.startup_s,
        "tasks_s": wall - result.startup_s,
        "ok": len(result.rows),
        "failed": [e["error"] for e in result.errors],
        "rows": result.rows,
    }


def _load() -> float:
    return os.getloadavg()[0]


def _whole_loop_session(folder: Path) -> str:
    """The whole-loop test's lockstep session as a YAML file (its stand-ins importable)."""
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH"), str(ROOT / "tests" / "integration")) if p
    )
    from test_closed_loop import loop_config

    path = folder / "whole_loop.yaml"
    path.write_text(yaml.safe_dump(loop_config(folder / "runs", name="bench_scale")))
    return str(path)


def bench_sweep(
    n: int, cpus: int, session: str, sets: list[str], folder: Path
) -> dict[str, Any] | None:
    try:
        import bci.runner  # noqa: F401
    except ImportError as err:
        print(f"sweep skipped: the closed-loop runner cannot be imported ({err})")
        return None
    from bci.analysis.sweep import plan_sweep, run_job

    if session == "whole_loop":
        session = _whole_loop_session(folder)

    jobs = plan_sweep(session, list(range(n)), sets)
    items = [(j.label, (j.session, j.seed, list(j.overrides))) for j in jobs]
    load0 = _load()
    seq = _timed_batch(run_job, items, use_ray=False, cpus=cpus)
    par = _timed_batch(run_job, items, use_ray=True, cpus=cpus)
    return {"sequential": seq, "ray": par, "load_before": load0, "load_after": _load(),
            "run_dirs": [r["run_dir"] for r in seq["rows"] + par["rows"]]}  # fmt: skip


def bench_analysis(run_dirs: list[str], cpus: int) -> dict[str, Any]:
    from bci.analysis.batch import analyze_one

    items = [(d, (d,)) for d in run_dirs]
    load0 = _load()
    seq = _timed_batch(analyze_one, items, use_ray=False, cpus=cpus)
    par = _timed_batch(analyze_one, items, use_ray=True, cpus=cpus)
    return {"sequential": seq, "ray": par, "load_before": load0, "load_after": _load()}


def _record_runs(n: int, seconds: float, root: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "tests" / "session"))
    from _plant_run import record_plant_run

    return [
        str(record_plant_run(root, seconds=seconds, seed=s, n_channels=16).run_dir)
        for s in range(n)
    ]


def _line(name: str, part: dict[str, Any] | None) -> str:
    if part is None:
        return f"{name:<24} (not run)"
    seq, par = part["sequential"], part["ray"]
    return (
        f"{name:<24} {seq['wall_s']:>9.1f} {par['startup_s']:>9.1f} {par['tasks_s']:>9.1f} "
        f"{par['wall_s']:>9.1f} {seq['wall_s'] / par['wall_s']:>8.2f}x "
        f"{seq['wall_s'] / max(par['tasks_s'], 1e-9):>8.2f}x  {part['load_before']:.1f}-"
        f"{part['load_after']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    parser.add_argument("--n", type=int, default=8, help="sessions")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument(
        "--session", default="whole_loop", help="session of the sweep (module docstring)"
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=None,
        help="overrides of the sweep's session (default: pacing=lockstep duration_s=8)",
    )  # fmt: skip
    parser.add_argument(
        "--record-s", type=float, default=5.0, help="plant seconds per recorded run"
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    out: dict[str, Any] = {"n": args.n, "cpus": args.cpus, "cpu_count": os.cpu_count()}
    sets = args.sets or ["pacing=lockstep", "duration_s=8"]
    out["sets"] = sets
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        out["sweep"] = bench_sweep(args.n, args.cpus, args.session, sets, Path(tmp))
        if out["sweep"] is not None and out["sweep"]["run_dirs"]:
            run_dirs = [r["run_dir"] for r in out["sweep"]["sequential"]["rows"]]
        else:
            run_dirs = _record_runs(args.n, args.record_s, Path(tmp))
        out["analysis"] = bench_analysis(run_dirs, args.cpus)
    print(f"\n{args.n} sessions, local Ray with {args.cpus} CPUs (machine: {os.cpu_count()} cores)")
    print(f"{'':<24} {'seq s':>9} {'ray init':>9} {'ray tasks':>9} {'ray s':>9} {'speedup':>9} "
          f"{'excl.':>9}  load")  # fmt: skip
    print(_line("sweep (lockstep loop)", out["sweep"]))
    print(_line("analyze --many", out["analysis"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        for part in (out["sweep"], out["analysis"]):
            if part:
                for key in ("sequential", "ray"):
                    part[key].pop("rows", None)
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
