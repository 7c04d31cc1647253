"""Test helper: record a short lockstep plant session into a run folder, the way a run does.

The plant (:class:`stimulation.plant.bridge.PlantBridge`, lockstep, int16 raw) publishes its raw
probe, ground-truth spikes, pulse onsets and biomarkers on LSL; beside it this helper publishes what
the rest of the loop will: a sorted-spike stream (``Spikes``, the ground truth with jitter, misses
and false positives, each spike with a waveform), a decoded symptom (``Decoded``, 50 Hz), the
controller's commands (``StimCommands``) and safety events (``Safety``). A
:class:`bci.session.Recorder` records them all into ``recording.xdf``; ``config.yaml`` and
``summary.json`` are written as a runner writes them. Stimulation is off for the first and last
third and 2.5 mA (300 uA/cm2 in the model) at 130 Hz in between. About 3 s of plant time: a few seconds of wall time.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl

from bci.acquisition.metadata import make_stream_info
from bci.session import Recorder, StreamQuery, find_streams, write_config, write_summary
from bci.session.run_folder import create_run_dir
from bci.stream import StimCommand
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.bridge import BridgeTiming, PlantBridge, RawFormat
from stimulation.plant.commands import CommandOutlet
from stimulation.plant.probe import VirtualProbe
from stimulation.safety import SafetyLimits

SFREQ = 30_000.0
PERIOD_S = 0.02
N_WF = 30
WF_SFREQ = 30_000.0
SORTED_CHANNELS = ("unit", "channel", "amplitude", "sample_index") + tuple(
    f"waveform_{i:03d}" for i in range(N_WF)
)


@dataclass
class PlantRun:
    """What was published: per sorted unit its spike samples, the pulses, the commands."""

    run_dir: Path
    names: dict[str, str]
    sorted_samples: dict[int, list[int]] = field(default_factory=dict)
    gt_samples: dict[int, list[int]] = field(default_factory=dict)
    n_periods: int = 0
    n_safety: int = 0
    n_commands: int = 0
    scale_uv_per_bit: float = 0.0


def _template(unit: int) -> np.ndarray:
    t = np.arange(N_WF) - 10
    return -(40.0 + 15 * unit) * np.exp(-0.5 * (t / 2.0) ** 2) + 10 * np.exp(
        -0.5 * ((t - 6) / 4.0) ** 2
    )


def record_plant_run(
    root: Path, *, seconds: float = 3.0, seed: int = 1, n_channels: int = 8, n_units: int = 4,
    name: str = "plant_test", amplitude_on_ma: float = 2.5,
) -> PlantRun:  # fmt: skip
    """Record ``seconds`` of lockstep plant time into a new run folder under ``root``."""
    tag = uuid.uuid4().hex[:10]
    pname = f"plant-{tag}"
    controller = f"ctl-{tag}"
    bridge = PlantBridge(
        BasalGangliaNetwork(cells_per_nucleus=6, seed=seed),
        VirtualProbe(6, "stn", n_units, n_channels, seed=seed, noise_uv=4.0, lfp_uv=30.0),
        name=pname,
        source_id=f"plant-src-{tag}",
        # steps, not ramps: the middle third is on at amplitude_on_ma from its first period
        limits=SafetyLimits(source_id=controller, max_slew_ma_per_s=1e4),
        timing=BridgeTiming(warmup_s=0.2, lockstep=True),
        raw_format=RawFormat(channel_format="int16"),
    )
    rng = np.random.default_rng(seed)
    sorted_info = make_stream_info(
        f"sorter-{tag}", "Spikes", len(SORTED_CHANNELS), 0.0, "double64", f"sorter-{tag}",
        labels=SORTED_CHANNELS, units=["", "", "uV", ""] + ["uV"] * N_WF,
    )  # fmt: skip
    sorted_info.desc().append_child_value("waveform_sfreq", repr(WF_SFREQ))
    decoded_info = make_stream_info(
        f"decoder-{tag}", "Decoded", 1, 1 / PERIOD_S, "float32", f"decoder-{tag}",
        labels=["beta_estimate"], units="a.u.",
    )  # fmt: skip
    safety_info = make_stream_info(
        f"safety-{tag}", "Safety", 1, 0.0, "string", f"safety-{tag}", labels=["event"], units=""
    )
    sorted_out = pylsl.StreamOutlet(sorted_info)
    decoded_out = pylsl.StreamOutlet(decoded_info)
    safety_out = pylsl.StreamOutlet(safety_info)
    commands = CommandOutlet(f"{pname}-commands", controller)
    names = {
        "raw": f"{pname}-raw", "spikes": f"{pname}-spikes", "stim": f"{pname}-stim",
        "biomarkers": f"{pname}-biomarkers", "sorted": f"sorter-{tag}",
        "decoded": f"decoder-{tag}", "safety": f"safety-{tag}", "commands": f"{pname}-commands",
    }  # fmt: skip
    run_dir = create_run_dir(name, root)
    run = PlantRun(run_dir, names, scale_uv_per_bit=bridge.scale_uv_per_bit)
    # resolved infos (an outlet's own info has no address an inlet could open)
    infos = find_streams(
        [StreamQuery(source_id=o.get_info().source_id()) for o in (
            bridge.raw_outlet.outlet, bridge.spike_outlet.outlet, bridge.stim_outlet.outlet,
            bridge.biomarker_outlet.outlet, sorted_out, decoded_out, safety_out, commands.outlet,
        )],
        timeout_s=10.0,
    )  # fmt: skip
    n_periods = int(round(seconds / PERIOD_S))
    with bridge:
        recorder = Recorder(infos, run_dir / "recording.xdf", flush_interval_s=0.1)
        recorder.start()
        try:
            for outlet in (sorted_out, decoded_out, safety_out, commands.outlet):
                outlet.wait_for_consumers(5.0)
            bridge.raw_outlet.outlet.wait_for_consumers(5.0)
            cells = bridge.probe.cells.tolist()
            for k in range(n_periods):
                amp = amplitude_on_ma if n_periods // 3 <= k < 2 * n_periods // 3 else 0.0
                rec = bridge.advance(StimCommand(amp, 130.0, 300.0, 0.0, controller, k))
                t0 = float(bridge.t0 or 0.0)
                # the controller's command stream, as a runner records it
                commands.send(amp, 130.0, 300.0, timestamp=t0 + k * PERIOD_S)
                run.n_commands += 1
                if amp > 0 and k == n_periods // 3:
                    event = {
                        "event": "ramp_limited",
                        "amplitude_ma": amp,
                        "seq": k,
                    }  # as the limiter
                    safety_out.push_sample([json.dumps(event)], t0 + k * PERIOD_S)
                    run.n_safety += 1
                rows, stamps = [], []
                for unit, cell in enumerate(cells):
                    for t in rec.spike_times["stn"][cell]:
                        sample = int(round((t - bridge.t_origin_s) * SFREQ))
                        run.gt_samples.setdefault(unit, []).append(sample)
                        if rng.random() < 0.1:
                            continue  # a miss
                        sample += int(rng.integers(-3, 4))
                        rows.append((unit, sample))
                if rng.random() < 0.3:  # a false positive
                    lo = int(round((rec.t_start_s - bridge.t_origin_s) * SFREQ))
                    rows.append((int(rng.integers(len(cells))), lo + int(rng.integers(600))))
                if amp > 0 and rng.random() < 0.5:  # a spike left unsorted (unit -1)
                    lo = int(round((rec.t_start_s - bridge.t_origin_s) * SFREQ))
                    rows.append((-1, lo + int(rng.integers(600))))
                values = []
                for unit, sample in sorted(rows, key=lambda r: r[1]):
                    wf = _template(unit) + rng.normal(0, 4.0, N_WF)
                    values.append([unit, max(unit, 0) % n_channels, float(wf.min()), sample, *wf])
                    stamps.append(t0 + sample / SFREQ)
                    run.sorted_samples.setdefault(unit, []).append(sample)
                if values:
                    sorted_out.push_chunk(values, stamps)
                beta = float(rec.t_stop_s)  # any smooth value; checked by identity only
                decoded_out.push_sample(
                    [np.sin(beta) + 0.1 * rng.normal()], t0 + (k + 1) * PERIOD_S
                )
                run.n_periods += 1
            time.sleep(0.6)  # let the recorder pull the last chunk
        finally:
            recorder.stop()
    write_config(
        run_dir,
        {"name": name, "seed": seed, "pacing": "lockstep", "duration_s": seconds,
         "controller": {"kind": "schedule", "amplitude_on_ma": amplitude_on_ma}},
    )  # fmt: skip
    # the runner's layout (bci.runner): controller and loop latency; the plant's numbers are
    # left to the recording here
    write_summary(
        run_dir,
        {"controller": "schedule",
         "loop_latency": {"commands": 4, "p50_ms": 0.8, "p99_ms": 2.5,
                          "histogram": {"edges_ms": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
                                        "counts": [2, 1, 0, 0, 1]}}},
    )  # fmt: skip
    return run
