"""The soak of issue 14 through the product's loop (``soak_session``: ``bci run`` of a lockstep
closed-loop session, judged from its run folder). ``benchmarks/soak.py --minutes 30`` is the full
soak and prints the curve; here the same code runs for a few minutes (``slow``, paced at real time
as the benchmark: its verdict is the issue's), and for 30 s of unpaced lockstep in the default run
to check what the runner writes for it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from soak_session import PROCESSES, soak, verdict_text

from bci.runner.windows import WINDOW_COLUMNS, WINDOW_S, read_windows


@pytest.mark.slow
@pytest.mark.timeout(30 * 60)
def test_a_few_minutes_of_lockstep_loop_keep_memory_latency_samples_and_recording(
    tmp_path: Path,
) -> None:
    result = soak(5.0, folder=tmp_path, max_speed=1.0)
    assert result.ok, verdict_text(result)
    assert result.wall_s >= 0.9 * 5.0 * 60.0  # it did keep to real time


def test_a_run_writes_sane_windows_of_latency_commands_and_memory(tmp_path: Path) -> None:
    """30 s of signal: windows.csv, latency_ms.npy and summary.json's windows agree."""
    result = soak(0.5, folder=tmp_path, warmup_s=0.0, span_s=10.0)
    run = result.run_dir
    assert result.status == "completed" and result.exit_code == 0, result.error
    with (run / "windows.csv").open() as f:
        assert f.readline().strip().split(",") == list(WINDOW_COLUMNS)
    rows = read_windows(run / "windows.csv")
    summary = json.loads((run / "summary.json").read_text())
    assert len(rows) >= 2 and rows == summary["windows"]
    latency = np.load(run / "latency_ms.npy")
    # every command is in exactly one window, and the last window ends at the run's count
    assert sum(r["commands"] for r in rows) == latency.size == summary["loop_latency"]["commands"]
    assert rows[-1]["commands_total"] == latency.size
    # lockstep: one command per 20 ms period of signal, and every period reported by the plant
    assert latency.size >= 0.9 * 30.0 / 0.02
    assert abs(sum(r["periods"] for r in rows) - latency.size) <= 2
    # full windows are WINDOW_S apart; signal time only grows, to the session's 30 s
    t = [r["t_s"] for r in rows]
    assert all(abs(b - a - WINDOW_S) < 1.0 for a, b in zip(t[:-2], t[1:-1], strict=True))
    s = [r["signal_s"] for r in rows]
    assert s == sorted(s) and abs(s[-1] - 30.0) < 0.05
    cpu = np.load(run / "loop_cpu_ms.npy")  # the loop thread's CPU time on every chunk
    assert cpu.size == rows[-1]["chunks_total"] == summary["loop_latency"]["chunks"]
    assert np.all(cpu >= 0.0) and np.all(cpu < 1000.0)
    for r in rows:
        assert r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert 0.0 <= r["cpu_p50_ms"] <= r["cpu_p99_ms"]
        assert r["gaps"] == 0 and r["gap_samples"] == 0
        for name in PROCESSES:  # the three processes' resident memory, in a plausible range
            assert 20.0 < r[f"{name}_mb"] < 4000.0, (name, r)
    # the window's percentiles are those of its rows of latency_ms.npy
    start = int(rows[-2]["commands_total"])
    last = latency[start:]
    assert math.isclose(rows[-1]["p99_ms"], float(np.percentile(last, 99)), rel_tol=1e-9)
    assert result.gaps == 0 and result.recording_complete, verdict_text(result)
    assert not (run / ".measurements").exists()  # the spilled measurements are cleaned up
    # the host reference timed the session's own chain beside the run, in every full window, at
    # the loop's scale of CPU time per chunk (the loop adds its pull, outlets and limiter)
    ref = np.array(result.ref_window_ms)
    loop = np.array([r["cpu_p50_ms"] for r in rows])
    assert ref.size == len(rows) and np.all(np.isfinite(ref[:-1])) and np.all(ref[:-1] > 0)
    ratio = loop[:-1] / ref[:-1]
    assert ratio.size >= 1 and np.all((0.2 < ratio) & (ratio < 10.0)), (loop, ref)
