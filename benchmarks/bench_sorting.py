"""Online sorting accuracy and speed against SpikeInterface's offline sorters, on the same data.

Data: SpikeInterface's ``generate_ground_truth_recording`` (32 channels, 30 kHz, 60 s). Our path
streams it in 10 ms chunks through ``bci.sorting.sort_recording`` (causal: band-pass, common median
reference, detection, calibration on the first 30 s (10 s with ``--quick``), template matching);
the peers ``spykingcircus2`` and ``tridesclous2`` sort it offline (zero-phase filters, whole
recording: an upper bound for a causal sorter) in the same run. Scoring:
``compare_sorter_to_ground_truth(delta_time=0.4)``; well detected = accuracy >= 0.8.

Scenarios: 20 units / noise 5 / seed 42; 40 units / noise 10; 20 units with 130 Hz biphasic
stimulation artifacts added (pulse times go to ``sort_recording(pulses=)``: our ArtifactBlanker
subtracts a running artifact template, the sorter skips a window around each pulse, drops the
calibration templates whose spikes are locked to the pulses and unlabels units that lock online,
see ``bci.sorting.locking``; peers get the raw artifacts). "art.units" counts the units with more
than half of their spikes 0-2 ms after a pulse (the window covers 26% of the time at 130 Hz; an
independent unit has ~20-26% there, less where its spikes are skipped). Ours scores the whole
recording: it calibrates on the first 30 s (10 s with ``--quick``), then streams everything,
calibration segment included, through the frozen online path.

Performance (ours only, one thread): throughput of the whole online path (filter, reference,
detect, match, bin) at 96 and 384 channels as x real time; per-chunk compute p99 with 1 ms chunks
at 96 channels; spike-to-label latency p99 at 96 channels / 1 ms chunks, defined for a real-time
paced stream as ``(chunks waited between the chunk holding the trough and the call that emits the
labelled spike) * chunk length + compute time of that call``.

    .venv/bin/python benchmarks/bench_sorting.py --json benchmarks/results/sorting.json
    .venv/bin/python benchmarks/bench_sorting.py --quick --no-peers
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bci.features import SpikeBinner
from bci.preprocessing import ArtifactBlanker
from bci.sorting import build_online_path, sort_recording, to_spikeinterface
from bci.stream import SignalChunk, Stage

SFREQ = 30_000.0
PEERS = ("spykingcircus2", "tridesclous2")


# -- data -------------------------------------------------------------------------------------------
def make_data(
    n_units: int, noise_uv: float, seed: int, seconds: float, n_channels: int = 32
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """SpikeInterface ground truth: (recording, gt_sorting, traces float32, positions)."""
    from spikeinterface.core import generate_ground_truth_recording

    recording, gt = generate_ground_truth_recording(
        durations=[seconds],
        sampling_frequency=SFREQ,
        num_channels=n_channels,
        num_units=n_units,
        seed=seed,
        noise_kwargs={"noise_levels": noise_uv, "strategy": "on_the_fly"},
    )
    traces = np.ascontiguousarray(recording.get_traces(return_in_uV=False), dtype=np.float32)
    positions = np.asarray(recording.get_channel_locations(), dtype=float)
    return recording, gt, traces, positions


def add_artifacts(
    traces: np.ndarray, rate_hz: float, amplitude_uv: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Add charge-balanced biphasic pulses (60 us per phase) with an exponential amplifier tail.

    Amplitude falls with a random per-channel gain (0.5-1.5, distance to the contact); returns the
    new traces and the pulse onsets (sample indices).
    """
    rng = np.random.default_rng(seed)
    n, ch = traces.shape
    period = SFREQ / rate_hz
    onsets = np.round(np.arange(0.005 * SFREQ, n - 60, period)).astype(np.int64)
    phase = max(1, round(60e-6 * SFREQ))
    shape = np.zeros(60, np.float32)
    shape[:phase] = -1.0
    shape[phase : 2 * phase] = 1.0
    tail = np.arange(60 - 2 * phase, dtype=np.float32)
    shape[2 * phase :] = 0.15 * np.exp(-tail / (0.4e-3 * SFREQ))
    gain = np.asarray(rng.uniform(0.5, 1.5, ch), np.float32) * amplitude_uv
    out = traces.copy()
    for p in onsets:
        out[p : p + 60] += shape[:, None] * gain[None, :]
    return out, onsets


def detect_pulses(traces: np.ndarray, chunk: int, threshold: float = 20.0) -> np.ndarray:
    """Pulse onsets found by our ArtifactBlanker's own detector (no pulse times given)."""
    blanker = ArtifactBlanker(mode="hold", detect_threshold=threshold)
    for start in range(0, len(traces), chunk):
        stop = min(start + chunk, len(traces))
        blanker.process(SignalChunk(traces[start:stop], start, SFREQ, np.zeros(stop - start)))
    return np.asarray(blanker.pulses_seen, dtype=np.int64)


def match_pulses(found: np.ndarray, true: np.ndarray, tol: int = 3) -> dict[str, Any]:
    """Recall/precision of detected pulse onsets within ``tol`` samples of the true ones."""
    if len(found) == 0:
        return {"true": len(true), "found": 0, "hits": 0, "false": 0, "max_offset": None}
    k = np.clip(np.searchsorted(true, found), 1, len(true) - 1)
    near = np.minimum(np.abs(found - true[k - 1]), np.abs(found - true[k]))
    hits = near <= tol
    return {
        "true": len(true),
        "found": len(found),
        "hits": int(hits.sum()),
        "false": int((~hits).sum()),
        "max_offset": int(near[hits].max()) if hits.any() else None,
    }


# -- our path ---------------------------------------------------------------------------------------
def run_ours(
    traces: np.ndarray, positions: np.ndarray, calibration_s: float, pulses: np.ndarray | None
) -> tuple[np.ndarray, str, float]:
    """Sort with our online path (10 ms chunks); returns (spikes, label, seconds)."""
    t0 = time.perf_counter()
    spikes = sort_recording(
        traces, SFREQ, positions, chunk_ms=10, calibration_s=calibration_s, pulses=pulses
    )
    return spikes, "ours (bci.sorting, online)", time.perf_counter() - t0


# -- scoring ----------------------------------------------------------------------------------------
def gt_unit_amplitudes(
    traces: np.ndarray, gt: Any, max_spikes: int = 200
) -> dict[Any, tuple[float, int]]:
    """Per ground-truth unit: trough of its mean waveform on its best channel (uV), and that channel."""
    out = {}
    n = len(traces)
    for uid in gt.unit_ids:
        st = gt.get_unit_spike_train(uid)
        st = st[(st > 30) & (st < n - 60)][:max_spikes]
        if len(st) == 0:
            out[uid] = (0.0, -1)
            continue
        snippets = traces[st[:, None] + np.arange(-30, 60)[None, :]]
        mean = snippets.mean(axis=0)
        mean -= np.median(mean, axis=0)
        trough = mean.min(axis=0)
        best = int(np.argmin(trough))
        out[uid] = (float(-trough[best]), best)
    return out


def score(gt: Any, tested: Any, pulses: np.ndarray | None = None) -> dict[str, Any]:
    import spikeinterface.comparison as sc

    cmp = sc.compare_sorter_to_ground_truth(gt, tested, delta_time=0.4, exhaustive_gt=True)
    perf = cmp.get_performance()
    acc = perf["accuracy"].to_numpy(dtype=float)
    well = [str(u) for u, a in zip(perf.index, acc, strict=True) if a >= 0.8]
    result = {
        "well_detected": len(well),
        "well_detected_units": well,
        "median_accuracy": float(np.median(acc)),
        "accuracy": {str(u): float(a) for u, a in zip(perf.index, acc, strict=True)},
        "n_tested_units": len(tested.unit_ids),
        "false_positive_units": int(cmp.count_false_positive_units()),
    }
    if pulses is not None:  # units whose spikes sit mostly within 2 ms after a pulse
        n_art = 0
        for uid in tested.unit_ids:
            st = tested.get_unit_spike_train(uid)
            if len(st) == 0:
                continue
            k = np.searchsorted(pulses, st, side="right") - 1
            dt = st - pulses[np.clip(k, 0, None)]
            if np.mean((k >= 0) & (dt >= 0) & (dt < 0.002 * SFREQ)) > 0.5:
                n_art += 1
        result["artifact_units"] = n_art
    return result


def run_peer(name: str, recording: Any, folder: Path) -> tuple[Any, float]:
    import spikeinterface.sorters as ss

    t0 = time.perf_counter()
    sorting = ss.run_sorter(
        name, recording, folder=str(folder / name), remove_existing_folder=True, verbose=False
    )
    return sorting, time.perf_counter() - t0


# -- scenarios --------------------------------------------------------------------------------------
def scenario(
    label: str,
    n_units: int,
    noise: float,
    seed: int,
    seconds: float,
    calibration_s: float,
    peers: tuple[str, ...],
    artifacts: bool,
    workdir: Path,
    detect_artifacts: bool = False,
) -> dict[str, Any]:
    from spikeinterface.core import NumpyRecording

    recording, gt, traces, positions = make_data(n_units, noise, seed, seconds)
    amps = gt_unit_amplitudes(traces, gt)
    pulses = None
    detection: dict[str, Any] | None = None
    if artifacts:
        traces, pulses = add_artifacts(traces, 130.0, 2000.0, seed)
        found = detect_pulses(traces, int(0.010 * SFREQ))
        detection = match_pulses(found, pulses)
        art_rec = NumpyRecording([traces], SFREQ)
        art_rec.set_probe(recording.get_probe())
        recording = art_rec
    rows: list[dict[str, Any]] = []
    ours_pulses = found if (artifacts and detect_artifacts) else pulses
    spikes, ours_label, wall = run_ours(traces, positions, calibration_s, ours_pulses)
    if artifacts and detect_artifacts:
        ours_label += " [pulses detected]"
    res = score(gt, to_spikeinterface(spikes, SFREQ), pulses)
    res.update(sorter=ours_label, wall_s=wall, x_recording=wall / seconds)
    rows.append(res)
    if peers:  # in-process sorters need a serializable (on-disk) recording
        recording = recording.save(
            folder=workdir / label.replace(" ", "_") / "recording",
            verbose=False,
            progress_bar=False,
        )
    for peer in peers:
        try:
            sorting, wall = run_peer(peer, recording, workdir / label)
            res = score(gt, sorting, pulses)
            res.update(sorter=peer, wall_s=wall, x_recording=wall / seconds)
        except Exception as exc:  # a peer failing must not hide our numbers
            traceback.print_exc()
            res = {"sorter": peer, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(res)
    missed = {
        str(u): {
            "trough_uv": round(amps[u][0], 1),
            "snr": round(amps[u][0] / noise, 2),
            "accuracy_ours": rows[0]["accuracy"].get(str(u), 0.0),
        }
        for u in gt.unit_ids
        if rows[0]["accuracy"].get(str(u), 0.0) < 0.8
    }
    return {
        "scenario": label,
        "n_units": n_units,
        "noise_uv": noise,
        "seed": seed,
        "seconds": seconds,
        "artifacts": artifacts,
        "n_pulses": 0 if pulses is None else len(pulses),
        "rows": rows,
        "missed_by_ours": missed,
        "pulse_detection": detection,
        "gt_trough_uv": {str(u): round(amps[u][0], 1) for u in gt.unit_ids},
    }


# -- performance ------------------------------------------------------------------------------------
def online_path(
    traces: np.ndarray, positions: np.ndarray, calibration_s: float
) -> tuple[list[Stage], str]:
    """Our whole online path calibrated on the first ``calibration_s`` seconds, plus a binner."""
    stages = build_online_path(traces[: int(calibration_s * SFREQ)], SFREQ, positions)
    sorted_spec = stages[-1].output_spec  # one column per unit of the calibrated sorter
    assert sorted_spec is not None  # build_online_path returns prepared stages
    binner = SpikeBinner(0.02)
    binner.prepare(sorted_spec)
    return [*stages, binner], "filter+reference+detect+match+bin"


def time_path(stages: list, traces: np.ndarray, chunk: int) -> dict[str, Any]:
    """Feed ``traces`` in chunks; per-call compute times and spike-to-label latencies."""
    n = (len(traces) // chunk) * chunk
    call_ns = np.zeros(n // chunk, np.int64)
    latencies: list[float] = []
    stage_ns = np.zeros(len(stages), np.int64)
    chunk_s = chunk / SFREQ
    spike_stage = next((i for i, s in enumerate(stages) if isinstance(s, SpikeBinner)), len(stages))
    for k, start in enumerate(range(0, n, chunk)):
        c: Any = SignalChunk(traces[start : start + chunk], start, SFREQ, np.zeros(chunk))
        t0 = time.perf_counter_ns()
        spikes_out = None
        t_prev = t0
        for i, stage in enumerate(stages):
            if c is None:
                break
            c = stage.process(c)
            t_now = time.perf_counter_ns()
            stage_ns[i] += t_now - t_prev
            t_prev = t_now
            if i == spike_stage - 1:
                spikes_out = c
        call_ns[k] = time.perf_counter_ns() - t0
        if spikes_out is not None and spikes_out.n_spikes:
            labelled = spikes_out.spikes[spikes_out.spikes["unit_index"] >= 0]
            waited = k - labelled["sample_index"] // chunk
            latencies.extend((waited * chunk_s + call_ns[k] * 1e-9).tolist())
    seconds = n / SFREQ
    return {
        "x_real_time": seconds / (call_ns.sum() * 1e-9),
        "chunk_p50_ms": float(np.percentile(call_ns, 50) * 1e-6),
        "chunk_p99_ms": float(np.percentile(call_ns, 99) * 1e-6),
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1e3) if latencies else float("nan"),
        "n_labelled": len(latencies),
        "stage_share": {
            type(st).__name__.lstrip("_"): round(float(ns / max(stage_ns.sum(), 1)), 3)
            for st, ns in zip(stages, stage_ns, strict=True)
        },
    }


def performance(seconds: float, calibration_s: float) -> list[dict[str, Any]]:
    """Throughput and latency rows; 384 channels use half the durations (memory)."""
    rows = []
    for n_ch, chunk_ms in ((96, 10), (384, 10), (96, 1)):
        scale = 0.5 if n_ch > 100 else 1.0
        cal, dur = calibration_s * scale, seconds * scale
        _, _, traces, positions = make_data(n_ch // 3, 5.0, 7, cal + dur, n_channels=n_ch)
        stages, what = online_path(traces, positions, cal)
        res = time_path(stages, traces[int(cal * SFREQ) :], int(chunk_ms * 1e-3 * SFREQ))
        res.update(channels=n_ch, chunk_ms=chunk_ms, path=what)
        rows.append(res)
        end_to_end = _sort_recording_throughput(traces, positions, cal, chunk_ms)
        rows.append(end_to_end | {"channels": n_ch, "chunk_ms": chunk_ms})
        del traces
    return rows


def _sort_recording_throughput(
    traces: np.ndarray, positions: np.ndarray, calibration_s: float, chunk_ms: float
) -> dict[str, Any]:
    """x real time of ``bci.sorting.sort_recording`` end to end (calibration included)."""
    t0 = time.perf_counter()
    sort_recording(traces, SFREQ, positions, chunk_ms=chunk_ms, calibration_s=calibration_s)
    wall = time.perf_counter() - t0
    nan = float("nan")
    return {
        "x_real_time": len(traces) / SFREQ / wall,
        "chunk_p50_ms": nan,
        "chunk_p99_ms": nan,
        "latency_p99_ms": nan,
        "n_labelled": 0,
        "stage_share": {},
        "path": "sort_recording end to end (calibration included)",
    }


# -- output -----------------------------------------------------------------------------------------
def print_tables(results: list[dict[str, Any]], perf: list[dict[str, Any]]) -> None:
    print(
        f"\n{'scenario':<26} {'sorter':<52} {'well det.':>9} {'median acc':>10} {'wall/rec':>9} {'art.units':>9}"
    )
    for sc_res in results:
        for r in sc_res["rows"]:
            if "error" in r:
                print(f"{sc_res['scenario']:<26} {r['sorter']:<52} {'error: ' + r['error'][:60]}")
                continue
            print(
                f"{sc_res['scenario']:<26} {r['sorter']:<52} {r['well_detected']:>4}/{sc_res['n_units']:<4} "
                f"{r['median_accuracy']:>10.2f} {r['x_recording']:>8.2f}x {r.get('artifact_units', '-'):>9}"
            )
        clean = next(
            (
                c
                for c in results
                if not c["artifacts"]
                and c["n_units"] == sc_res["n_units"]
                and c["noise_uv"] == sc_res["noise_uv"]
                and c["seed"] == sc_res["seed"]
            ),
            None,
        )
        if sc_res["artifacts"] and clean is not None:
            for r, rc in zip(sc_res["rows"], clean["rows"], strict=False):
                if "error" in r or "error" in rc:
                    continue
                lost = sorted(set(rc["well_detected_units"]) - set(r["well_detected_units"]))
                r["lost_vs_clean"] = lost
                print(
                    f"{'':<26} {r['sorter']}: {len(lost)} well-detected units lost to artifacts {lost}"
                )
        if sc_res.get("pulse_detection"):
            d = sc_res["pulse_detection"]
            print(
                f"{'':<26} ArtifactBlanker detection (threshold 20x): {d['hits']}/{d['true']} pulses "
                f"found, {d['false']} false, max onset offset {d['max_offset']} samples"
            )
        missed = sc_res["missed_by_ours"]
        if missed:
            desc = ", ".join(
                f"{u} ({m['trough_uv']} uV, SNR {m['snr']}, acc {m['accuracy_ours']:.2f})"
                for u, m in sorted(missed.items(), key=lambda kv: kv[1]["trough_uv"])
            )
            print(f"{'':<26} missed by ours: {desc}")
        for r in sc_res["rows"][1:]:
            if "accuracy" in r:
                miss = [u for u, a in r["accuracy"].items() if a < 0.8]
                desc = ", ".join(f"{u} ({sc_res['gt_trough_uv'][u]} uV)" for u in miss)
                print(f"{'':<26} missed by {r['sorter']}: {desc}")
    if perf:
        print(
            f"\n{'channels':>8} {'chunk':>6} {'x real time':>11} {'chunk p50':>10} {'chunk p99':>10} "
            f"{'latency p99':>11}  path"
        )
        for p in perf:
            print(
                f"{p['channels']:>8} {p['chunk_ms']:>4}ms {p['x_real_time']:>10.1f}x {p['chunk_p50_ms']:>8.3f}ms "
                f"{p['chunk_p99_ms']:>8.3f}ms {p['latency_p99_ms']:>9.2f}ms  {p['path']}"
            )
        for p in (p for p in perf if p["stage_share"]):
            share = ", ".join(f"{k} {v:.0%}" for k, v in p["stage_share"].items())
            print(f"  {p['channels']} ch / {p['chunk_ms']} ms, share of compute: {share}")
        print(
            "targets: >=10x at 96 ch, >=2x at 384 ch, chunk p99 < 1 ms and latency p99 < 3 ms at 96 ch / 1 ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write all results to this JSON file")
    ap.add_argument(
        "--quick", action="store_true", help="20 s recordings, 10 s calibration, one scenario"
    )
    ap.add_argument(
        "--units",
        type=int,
        choices=(20, 40),
        help="run only this scenario (20: noise 5, 40: noise 10)",
    )
    ap.add_argument("--noise", type=float, help="override the noise level (uV)")
    ap.add_argument("--no-peers", action="store_true", help="skip spykingcircus2 / tridesclous2")
    ap.add_argument("--no-artifacts", action="store_true", help="skip the 130 Hz artifact scenario")
    ap.add_argument(
        "--detect-artifacts",
        action="store_true",
        help="ours blanks the pulses its ArtifactBlanker detects instead of the given pulse times",
    )
    ap.add_argument("--no-perf", action="store_true", help="skip the performance table")
    args = ap.parse_args()
    seconds, calibration = (20.0, 10.0) if args.quick else (60.0, 30.0)
    peers = () if args.no_peers else PEERS
    plan = []
    if args.units in (None, 20):
        plan.append(("20 units, noise 5", 20, args.noise or 5.0, 42, False))
    if args.units in (None, 40) and not args.quick:
        plan.append(("40 units, noise 10", 40, args.noise or 10.0, 42, False))
    if args.units in (None, 20) and not args.no_artifacts:
        plan.append(("20 units + 130 Hz stim", 20, args.noise or 5.0, 42, True))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, n_units, noise, seed, artifacts in plan:
            print(f"running {label} ...", flush=True)
            results.append(
                scenario(
                    label,
                    n_units,
                    noise,
                    seed,
                    seconds,
                    calibration,
                    peers,
                    artifacts,
                    Path(tmp),
                    args.detect_artifacts,
                )
            )
    perf = [] if args.no_perf else performance(*((5.0, 5.0) if args.quick else (10.0, 10.0)))
    print_tables(results, perf)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"scenarios": results, "performance": perf, "cpu_count": os.cpu_count()},
                indent=2,
                default=str,
            )
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
