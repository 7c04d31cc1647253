"""``bci demo``: the most complete real path the toolkit has, end to end, on this machine.

A synthetic probe recording is published on LSL by a separate process (``bci source synthetic``, as
an amplifier would), the pipeline resolves and pulls it with :class:`~bci.acquisition.LSLSource`,
filters it (causal band-pass), re-references it (common median), detects threshold crossings and bins
them, while a second inlet collects the ground-truth spike markers. At the end one table says what
arrived (samples, gaps, stalls, NaNs, push-to-pipeline latency), what each stage cost, and how many
ground-truth spikes the crossings caught.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import click
import numpy as np

from bci.cli._params import DEFAULT_N_UNITS, DEFAULT_SEED, fail, positive_float, probe_options


@dataclass
class DemoResult:
    """What one demo run measured (also what the tests check)."""

    n_channels: int
    sfreq: float
    duration_s: float
    source_status: dict[str, Any]
    stage_timing: list[dict[str, Any]]
    latency_ms: np.ndarray
    crossings: int
    bins: int
    gt_spikes: int
    gt_caught: int
    gt_caught_big: int
    gt_big: int
    crossings_without_spike: int
    publisher_returncode: int | None
    events: list[str] = field(default_factory=list)


def _publisher_command(name: str, sid: str, channels: int, units: int, seed: int) -> list[str]:
    """``bci source synthetic`` without a duration: it runs until the demo terminates it."""
    return [
        sys.executable,
        "-m",
        "bci.cli.main",
        "source",
        "synthetic",
        "--name",
        name,
        "--source-id",
        sid,
        "--channels",
        str(channels),
        "--units",
        str(units),
        "--seed",
        str(seed),
        "--format",
        "int16",
    ]


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """End the publisher process; return what it wrote on stderr (once)."""
    if proc.stderr is None or proc.stderr.closed:
        return ""
    if proc.returncode is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung publisher
        proc.kill()
        _, err = proc.communicate()
    return (err or b"").decode(errors="replace").strip()


def _gt_markers(inlet: Any, into: list[tuple[float, int, int]]) -> None:
    """Append (LSL time, unit, channel) of every ground-truth marker waiting in ``inlet``.

    The inlet does not recover (a dead publisher raises ``LostError`` instead of blocking), and
    what it held before is kept.
    """
    from pylsl.util import LostError

    from bci.session.load import parse_spike_marker

    while True:
        try:
            samples, stamps = inlet.pull_chunk(timeout=0.0)
        except LostError:
            return
        if not stamps:
            return
        for (text,), t in zip(samples, stamps, strict=True):
            fields = parse_spike_marker(text)
            if fields is not None:
                into.append((float(t), fields["unit"], fields["ch"]))


def run_demo(
    duration_s: float = 10.0,
    n_channels: int = 32,
    n_units: int = DEFAULT_N_UNITS,
    seed: int = DEFAULT_SEED,
    calibration_s: float = 2.0,
    chunk_log: Any = None,
) -> DemoResult:
    """Publish a synthetic recording in a child process and run the online path on it.

    Parameters
    ----------
    duration_s : float
        Seconds of signal the pipeline processes after calibration.
    n_channels, n_units, seed : int
        The synthetic probe, units and seed of the publisher.
    calibration_s : float
        Seconds the threshold detector spends estimating the noise before detecting.
    chunk_log : callable, optional
        Called once a second with the source status (for a live line).
    """
    import pylsl

    from bci.acquisition import LSLSource, resolve_stream_info
    from bci.checks import ensure_float, ensure_int
    from bci.errors import BCIError, StreamNotFoundError
    from bci.features import SpikeBinner
    from bci.preprocessing import BandPass, CommonReference
    from bci.sorting.threshold import ThresholdCrossings
    from bci.stream import Pipeline

    # every argument is checked before the publisher process starts
    duration_s = ensure_float(duration_s, "duration_s", minimum=0.0, strict_minimum=True)
    n_channels = ensure_int(n_channels, "n_channels", minimum=1)
    n_units = ensure_int(n_units, "n_units", minimum=0)
    seed = ensure_int(seed, "seed", minimum=0)
    calibration_s = ensure_float(calibration_s, "calibration_s", minimum=0.0, strict_minimum=True)
    tag = uuid.uuid4().hex[:8]
    name, sid = f"demo-{tag}", f"demo-{tag}"
    total_s = duration_s + calibration_s
    cmd = _publisher_command(name, sid, n_channels, n_units, seed)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        # the first resolve waits for the publisher process to start (imports, numba)
        resolve_stream_info(source_id=sid, timeout_s=30.0)
        gt_info = resolve_stream_info(source_id=f"{sid}-groundtruth", timeout_s=10.0)
        gt_inlet = pylsl.StreamInlet(gt_info, max_buflen=int(total_s) + 10, recover=False)
        markers: list[tuple[float, int, int]] = []
        gt_inlet.open_stream(timeout=5.0)
        # compile the stages' kernels (numba) before connecting, so the first chunks of the
        # stream do not wait behind the compiler
        _warm_up(n_channels, calibration_s)
        # no scale given: the source applies the stream's scale_uv_per_bit (int16 counts -> uV)
        source = LSLSource(
            source_id=sid, n_channels=n_channels, sfreq=30000.0, timeout_s=10.0
        ).open()
        sfreq = source.spec().rate_hz
        bandpass = BandPass()
        detector = ThresholdCrossings(calibration_s=calibration_s)
        binner = SpikeBinner(0.02, n_units=n_channels)
        # two pipelines so the spikes between detection and binning can be scored
        front = Pipeline([bandpass, CommonReference(), detector], source=source)
        binning = Pipeline([binner])
        binning.prepare(front.prepare(source.spec()))

        latencies: list[float] = []
        crossing_times: list[np.ndarray] = []
        crossing_channels: list[np.ndarray] = []
        bins = 0
        t_first: float | None = None
        t_log = time.monotonic()
        n_target = int(round(total_s * sfreq))
        # real time plus generous slack for a loaded machine; then the publisher is stuck
        deadline = time.monotonic() + 3 * total_s + 30.0
        while source.status()["samples_received"] < n_target:
            if time.monotonic() - t_log >= 1.0:
                t_log = time.monotonic()
                _gt_markers(gt_inlet, markers)
                if chunk_log is not None:
                    chunk_log(source.status())
            if time.monotonic() > deadline:
                raise BCIError(
                    f"The synthetic publisher sent {source.status()['samples_received']} of "
                    f"{n_target} samples in {3 * total_s + 30.0:g} s; giving up."
                )
            chunk = source.pull(timeout=0.05)
            if chunk is None:
                if proc.poll() is not None:
                    break
                continue
            now = pylsl.local_clock()
            latencies.append((now - float(chunk.t_lsl[-1])) * 1e3)
            if t_first is None:
                t_first = float(chunk.t_lsl[0]) - chunk.first_sample / sfreq
            spikes = front.process(chunk)
            if spikes is None:
                continue
            out = binning.process(spikes)
            if out is not None:
                bins += out.counts.shape[0]
            if spikes.spikes.size:
                crossing_times.append(t_first + spikes.spikes["sample_index"] / sfreq)
                crossing_channels.append(spikes.spikes["channel_index"])
        status = source.status()
        _gt_markers(gt_inlet, markers)
        events = [e.message for e in source.events]
        source.close()
        gt_inlet.close_stream()
    except StreamNotFoundError as err:
        raise StreamNotFoundError(
            f"{err}\nThe synthetic publisher said: {_stop(proc) or '(nothing)'}"
        ) from err
    finally:
        _stop(proc)
    times = np.concatenate(crossing_times) if crossing_times else np.zeros(0)
    channels = np.concatenate(crossing_channels) if crossing_channels else np.zeros(0, int)
    caught, big, caught_big, unexplained = _score(
        markers, times, channels, t_first, calibration_s, status
    )
    return DemoResult(
        n_channels=n_channels,
        sfreq=sfreq,
        duration_s=status["samples_received"] / sfreq,
        source_status=status,
        stage_timing=front.timing() + binning.timing(),
        latency_ms=np.asarray(latencies),
        crossings=int(times.size),
        bins=bins,
        gt_spikes=len(markers),
        gt_caught=caught,
        gt_caught_big=caught_big,
        gt_big=big,
        crossings_without_spike=unexplained,
        publisher_returncode=proc.returncode,
        events=events,
    )


def _warm_up(n_channels: int, calibration_s: float) -> None:
    """Run throwaway copies of the demo's stages on silence, compiling their numba kernels."""
    from bci.features import SpikeBinner
    from bci.preprocessing import BandPass, CommonReference
    from bci.sorting.threshold import ThresholdCrossings
    from bci.stream import Pipeline, SignalChunk, StreamSpec

    sfreq = 30000.0
    stages = [BandPass(), CommonReference(), ThresholdCrossings(calibration_s=calibration_s)]
    front, binning = Pipeline(stages), Pipeline([SpikeBinner(0.02, n_units=n_channels)])
    binning.prepare(front.prepare(StreamSpec("signal", n_channels, sfreq, unit="uV")))
    n = 30
    rng = np.random.default_rng(0)
    for k in range(int(calibration_s * sfreq / n) + 2):
        data = rng.standard_normal((n, n_channels)).astype(np.float32)
        chunk = SignalChunk(data, k * n, sfreq, k * n / sfreq + np.arange(n) / sfreq)
        spikes = front.process(chunk)
        if spikes is not None:
            binning.process(spikes)


def _score(
    markers: list[tuple[float, int, int]],
    times: np.ndarray,
    channels: np.ndarray,
    t_first: float | None,
    calibration_s: float,
    status: dict[str, Any],
) -> tuple[int, int, int, int]:
    """Score crossings against the ground truth, after calibration and within what arrived.

    Returns ``(caught, big, caught_big, unexplained)``: ground-truth spikes with a crossing within
    0.5 ms on the unit's peak channel or a neighbour; spikes of the units caught at least half the
    time (the units above the noise) and how many of those were caught; crossings with no
    ground-truth spike within 1 ms on any channel (noise crossings: one spike crosses on several
    neighbouring channels, so crossings outnumber spikes without being false).
    """
    if t_first is None or not markers:
        return 0, 0, 0, int(times.size)
    t_end = t_first + status["samples_received"] / status["effective_rate_hz"]
    t0 = t_first + calibration_s + 0.05
    kept = [(t, u, ch) for t, u, ch in markers if t0 <= t <= t_end - 0.05]
    caught = 0
    per_unit: dict[int, list[bool]] = {}
    order = np.argsort(times) if times.size else np.zeros(0, int)
    times_sorted, ch_sorted = times[order], channels[order]
    for t, unit, ch in kept:
        lo, hi = np.searchsorted(times_sorted, [t - 5e-4, t + 5e-4])
        hit = bool(np.any(np.abs(ch_sorted[lo:hi] - ch) <= 1))
        caught += hit
        per_unit.setdefault(unit, []).append(hit)
    # units whose crossings are reliable (caught >= half the time) are the "big" ones
    big_units = [u for u, hits in per_unit.items() if np.mean(hits) >= 0.5]
    big = sum(len(per_unit[u]) for u in big_units)
    caught_big = sum(sum(per_unit[u]) for u in big_units)
    gt_times = np.sort([t for t, _, _ in markers])
    idx = np.clip(np.searchsorted(gt_times, times), 1, max(gt_times.size - 1, 1))
    nearest = np.minimum(
        np.abs(times - gt_times[idx - 1]),
        np.abs(times - gt_times[np.minimum(idx, gt_times.size - 1)]),
    )
    unexplained = int(np.count_nonzero(nearest > 1e-3))
    return caught, big, caught_big, unexplained


def render(result: DemoResult) -> Any:
    """A rich table of what arrived and what the pipeline made of it."""
    from rich.table import Table

    s = result.source_status
    lat = result.latency_ms
    p50, p99 = np.percentile(lat, [50, 99]) if lat.size else (float("nan"), float("nan"))
    table = Table(title="bci demo: synthetic probe -> LSL -> online pipeline", show_lines=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("stream", f"{s['name']} ({result.n_channels} ch x {result.sfreq:g} Hz int16)")
    table.add_row("samples received", f"{s['samples_received']} ({result.duration_s:.2f} s)")
    table.add_row("chunks received", str(s["chunks_received"]))
    table.add_row("effective rate (Hz)", f"{s['effective_rate_hz']:.1f}")
    table.add_row("gaps (missing samples)", f"{s['gaps']} ({s['gap_samples']})")
    table.add_row("NaN samples", str(s["nan_samples"]))
    table.add_row("push -> pipeline latency p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}")
    for row in result.stage_timing:
        table.add_row(
            f"  {row['stage']} compute p50 / p99 (ms)", f"{row['p50_ms']:.3f} / {row['p99_ms']:.3f}"
        )
    table.add_row(
        "threshold crossings (with no spike within 1 ms)",
        f"{result.crossings} ({result.crossings_without_spike})",
    )
    table.add_row("20 ms bins emitted", str(result.bins))
    table.add_row("ground-truth spikes published", str(result.gt_spikes))
    if result.gt_big:
        table.add_row(
            "caught by a crossing within 0.5 ms (units above noise)",
            f"{result.gt_caught_big}/{result.gt_big} ({100 * result.gt_caught_big / result.gt_big:.1f}%)",
        )
    return table


@click.command()
@click.option(
    "--duration", type=positive_float, default=10.0, show_default=True, help="Seconds to run."
)
@probe_options(seed_help="Seed of the recording.")
def demo(duration: float, channels: int, units: int, seed: int) -> None:
    """Run the default session: a synthetic probe over LSL through the online pipeline."""
    from rich.console import Console

    from bci.errors import BCIError

    console = Console()
    console.print(
        f"Starting a synthetic {channels}-channel probe ({units} units, seed {seed}) in a separate "
        f"process; the pipeline listens for {duration:g} s after a 2 s noise calibration."
    )

    def log(status: dict[str, Any]) -> None:
        console.print(
            f"  {status['samples_received'] / 30000.0:5.1f} s received, {status['gaps']} gaps, "
            f"state {status['state']}"
        )

    try:
        result = run_demo(duration, channels, units, seed, chunk_log=log)
    except BCIError as err:
        fail(err)
    console.print(render(result))
    for message in result.events:
        console.print(f"  event: {message}")
    if result.source_status["samples_received"] == 0:
        raise click.ClickException("No data arrived from the synthetic source.")
