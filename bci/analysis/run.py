"""Analyse one run folder: every metric of :mod:`bci.analysis.metrics`, plus the closed loop's numbers.

The closed loop's numbers (one row of the controller comparison) come from the runner's
``summary.json`` when it holds them (its numbers cover the online part of the run, after
calibration), else from the recording; ``analysis.json`` says which (``sources``). Read from
``summary.json``: ``controller``; ``plant.error_index``, ``plant.gpi_beta``, ``plant.energy_j``,
``plant.time_on_stim`` (a fraction of ``plant.online_s``); ``loop_latency.p50_ms`` / ``p99_ms`` and,
for the histogram, ``loop_latency.histogram`` (``{"edges_ms": [...], "counts": [...]}``) or
``loop_latency.samples`` (ms). Computed from the recording otherwise:

- error index and GPi beta: means of the plant's ``error_index`` and ``beta_gpi`` biomarkers;
- time on stimulation: control periods with amplitude > 0 x the control period;
- energy: each recorded pulse's energy at 1 kOhm (:meth:`stimulation.pulses.PulseTrain.energy_j`)
  from its marker's amplitude in mA (``amp_ma=``), with the frequency and pulse width in effect.

Loop latency is measured by the runner only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo
import numpy as np
import quantities as pq

from bci.analysis.data import RunData, load_run
from bci.analysis.metrics import (
    AnalysisSettings,
    lfp_metrics,
    sorting_accuracy,
    synchrony_metrics,
    triggered_average,
    unit_metrics,
)

__all__ = ["RunAnalysis", "analyze_run"]


@dataclass
class RunAnalysis:
    """What :func:`analyze_run` found: the numbers (``analysis.json``) and the loaded run."""

    numbers: dict[str, Any]
    run: RunData
    rates: neo.AnalogSignal | None = None
    timing_s: dict[str, float] = field(default_factory=dict)


def _controller(run: RunData) -> str:
    if run.summary and run.summary.get("controller"):
        return str(run.summary["controller"])
    ctl = (run.config or {}).get("controller")
    if isinstance(ctl, dict):
        return str(ctl.get("kind") or ctl.get("name") or ctl.get("type") or "unknown")
    return str(ctl) if ctl else "unknown"


def _held(
    times: np.ndarray, series: tuple[np.ndarray, np.ndarray] | None, default: float
) -> np.ndarray:
    """Value of a per-period series in effect at each time (the period's sample is at its end)."""
    if series is None or not len(series[0]):
        return np.full(len(times), default)
    k = np.clip(np.searchsorted(series[0], times, side="left"), 0, len(series[0]) - 1)
    return series[1][k]


def summary_numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """The comparison's numbers the runner wrote (its ``plant`` and ``loop_latency`` entries)."""
    out: dict[str, Any] = {}
    raw_plant = summary.get("plant")
    plant: dict[str, Any] = raw_plant if isinstance(raw_plant, dict) else {}
    for key in ("error_index", "gpi_beta", "energy_j"):
        value = plant.get(key, summary.get(key))
        if isinstance(value, (int, float)) and np.isfinite(value):
            out[key] = float(value)
    frac, online = plant.get("time_on_stim"), plant.get("online_s")
    if isinstance(frac, (int, float)) and isinstance(online, (int, float)) and np.isfinite(frac):
        out["time_on_stim_s"] = float(frac) * float(online)
        out["time_on_stim_fraction"] = float(frac)
    elif isinstance(summary.get("time_on_stim_s"), (int, float)):
        out["time_on_stim_s"] = float(summary["time_on_stim_s"])
    lat = summary.get("loop_latency")
    if isinstance(lat, dict):
        for q in ("p50", "p99"):
            if isinstance(lat.get(f"{q}_ms"), (int, float)):
                out[f"loop_latency_{q}_ms"] = float(lat[f"{q}_ms"])
    return out


def closed_loop_numbers(run: RunData) -> dict[str, Any]:
    """The controller comparison's row for one run (see the module docstring)."""
    out: dict[str, Any] = {"controller": _controller(run)}
    sources: dict[str, str] = {}
    for key, value in summary_numbers(run.summary or {}).items():
        out[key] = value
        sources[key] = "summary.json"
    for key, label in (("error_index", "error_index"), ("beta_gpi", "gpi_beta")):
        series = run.biomarker(key)
        if label not in out and series is not None and len(series[1]):
            out[label] = float(np.nanmean(series[1]))
            sources[label] = "recording"
    amp = applied_amplitude(run)
    if "time_on_stim_s" not in out and amp is not None and len(amp[0]) > 1:
        period = float(np.median(np.diff(amp[0])))
        out["time_on_stim_s"] = float(np.sum(amp[1] > 0) * period)
        out["time_on_stim_fraction"] = float(np.mean(amp[1] > 0))
        sources["time_on_stim_s"] = "recording"
    pulses = run.pulses
    if pulses is not None and len(pulses):
        out["n_pulses"] = int(len(pulses))
        if "energy_j" not in out:
            out["energy_j"] = _pulse_energy_j(run, pulses)
            sources["energy_j"] = "recording (pulses x 1 kOhm)"
    out["sources"] = sources
    return out


def applied_amplitude(run: RunData) -> tuple[np.ndarray, np.ndarray] | None:
    """The stimulation amplitude the plant applied per control period, in mA (its biomarkers)."""
    return run.biomarker("amplitude_ma")


def _pulse_energy_j(run: RunData, pulses: neo.Event) -> float:
    from bci.session.nwb import parse_tokens
    from stimulation.pulses import PulseTrain

    times = pulses.times.rescale(pq.s).magnitude
    amps = np.array([parse_tokens(str(lab)).get("amp_ma", np.nan) for lab in pulses.labels])
    freq = _held(times, run.biomarker("frequency_hz"), 130.0)
    width = _held(times, run.biomarker("pulse_width_us"), 300.0)
    energy = 0.0
    for a, f, w in zip(amps, freq, width, strict=True):
        if np.isfinite(a) and a > 0:
            energy += PulseTrain(a, f, w).energy_j(1.0 / f)
    return energy


def latency_samples(run: RunData) -> dict[str, Any] | None:
    """The loop-latency distribution the runner wrote into ``summary.json``, if any."""
    lat = (run.summary or {}).get("loop_latency")
    if not isinstance(lat, dict):
        return None
    if isinstance(lat.get("samples"), list) and lat["samples"]:
        return {"samples": [float(x) for x in lat["samples"]]}
    hist = lat.get("histogram")
    if isinstance(hist, dict) and "edges_ms" in hist and "counts" in hist:
        return {"edges_ms": list(hist["edges_ms"]), "counts": list(hist["counts"])}
    return None


def analyze_run(path: str | Path, settings: AnalysisSettings | None = None) -> RunAnalysis:
    """Compute every metric of one run folder (never fails on a damaged folder: see ``missing``)."""
    settings = settings or AnalysisSettings()
    timing: dict[str, float] = {}
    t = time.perf_counter()
    run = load_run(path)
    timing["load"] = time.perf_counter() - t
    missing = list(run.missing)
    numbers: dict[str, Any] = {
        "run": run.name,
        "path": str(run.path),
        "loaded_from": run.source,
        "duration_s": run.duration_s,
        "settings": settings.to_dict(),
    }
    sorted_units, gt = run.sorted_units, run.ground_truth_units
    trains = sorted_units or gt
    numbers["units_source"] = "sorted" if sorted_units else ("ground_truth" if gt else None)
    numbers["unsorted_spikes"] = run.unsorted_spikes
    rates = None
    if trains:
        t = time.perf_counter()
        numbers["units"], rates = unit_metrics(trains, settings)
        timing["firing"] = time.perf_counter() - t
        t = time.perf_counter()
        numbers["synchrony"] = synchrony_metrics(trains, settings)
        timing["synchrony"] = time.perf_counter() - t
        if rates is not None:
            numbers["rates"] = {
                "times_s": rates.times.rescale(pq.s).magnitude.tolist(),
                "unit_ids": [row["unit_id"] for row in numbers["units"]],
                "hz": np.round(rates.magnitude, 4).T.tolist(),
            }
    elif run.block is not None:
        missing.append("no spike stream: no firing rates, ISI statistics or synchrony")
    voltage = run.voltage
    if voltage is not None:
        t = time.perf_counter()
        numbers["lfp"] = lfp_metrics(voltage, settings)
        timing["lfp"] = time.perf_counter() - t
        pulses = run.pulses
        if pulses is not None and len(pulses):
            t = time.perf_counter()
            numbers["stim_triggered_average"] = triggered_average(
                voltage, pulses.times.rescale(pq.s).magnitude, settings
            )
            timing["triggered_average"] = time.perf_counter() - t
        else:
            missing.append("no stimulation pulses recorded: no stimulation-triggered average")
    elif run.block is not None:
        missing.append("no voltage stream: no LFP spectra, beta power or triggered averages")
    if sorted_units and gt:
        sfreq = float(voltage.sampling_rate.rescale(pq.Hz)) if voltage is not None else 30_000.0
        t = time.perf_counter()
        numbers["sorting_accuracy"] = sorting_accuracy(
            sorted_units, gt, sfreq, settings, t_from_s=run.online_from_s()
        )
        timing["sorting_accuracy"] = time.perf_counter() - t
    elif sorted_units and run.block is not None:
        missing.append("no ground truth: sorting accuracy not computed")
    numbers["closed_loop"] = closed_loop_numbers(run)
    series = {}
    for key in ("error_index", "beta_gpi"):
        s = run.biomarker(key)
        if s is not None:
            series[key] = {"times_s": s[0].tolist(), "values": s[1].tolist()}
    amp = applied_amplitude(run)
    if amp is not None:
        series["amplitude_ma"] = {"times_s": amp[0].tolist(), "values": amp[1].tolist()}
    numbers["biomarkers"] = series
    numbers["loop_latency"] = latency_samples(run)
    if numbers["loop_latency"] is None and run.summary is not None:
        missing.append(
            "summary.json has no loop_latency histogram or samples: no latency histogram"
        )
    numbers["missing"] = missing
    numbers["timing_s"] = timing
    return RunAnalysis(numbers, run, rates, timing)
