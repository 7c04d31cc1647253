"""The report's figures (matplotlib, Agg), each returned as PNG bytes.

Every figure draws numbers already in ``analysis.json`` (or the spike and pulse times of the loaded
run, for the raster); nothing here computes a metric.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import quantities as pq

from bci.analysis.run import RunAnalysis

__all__ = ["render_figures"]

_STIM_COLOR = "#d62728"


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _stim_spans(ax: Any, numbers: dict[str, Any]) -> None:
    """Shade the control periods with stimulation on (amplitude > 0)."""
    amp = numbers.get("biomarkers", {}).get("amplitude_ma")
    if not amp or len(amp["times_s"]) < 2:
        return
    t = np.asarray(amp["times_s"])
    on = np.asarray(amp["values"]) > 0
    period = float(np.median(np.diff(t)))
    start = None
    for ti, o in zip(t, on, strict=True):
        if o and start is None:
            start = ti - period
        elif not o and start is not None:
            ax.axvspan(start, ti - period, color=_STIM_COLOR, alpha=0.08, lw=0)
            start = None
    if start is not None:
        ax.axvspan(start, t[-1], color=_STIM_COLOR, alpha=0.08, lw=0)


def raster(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    run = analysis.run
    trains = run.sorted_units or run.ground_truth_units
    if not trains:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(trains) + 1.6))
    times = [st.times.rescale(pq.s).magnitude for st in trains]
    labels = [f"unit {int(st.annotations.get('unit_id', i))}" for i, st in enumerate(trains)]
    pulses = run.pulses
    if pulses is not None and len(pulses):
        times.append(pulses.times.rescale(pq.s).magnitude)
        labels.append("pulses")
    colors = ["k"] * len(trains) + ([_STIM_COLOR] if len(times) > len(trains) else [])
    ax.eventplot(times, colors=colors, linelengths=0.8, linewidths=0.6)
    ax.set_yticks(range(len(labels)), labels)
    _stim_spans(ax, analysis.numbers)
    ax.set_xlabel("time (s)")
    ax.set_title(
        f"Spike raster ({analysis.numbers.get('units_source')} units); shaded: stimulation on"
    )
    return _png(fig)


def rates(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    r = analysis.numbers.get("rates")
    if not r:
        return None
    fig, ax = plt.subplots(figsize=(10, 3))
    for uid, hz in zip(r["unit_ids"], r["hz"], strict=True):
        ax.plot(r["times_s"], hz, lw=0.8, label=f"unit {uid}")
    _stim_spans(ax, analysis.numbers)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("rate (Hz)")
    ax.set_title("Instantaneous firing rates (elephant, Gaussian kernel)")
    if len(r["unit_ids"]) <= 12:
        ax.legend(fontsize=7, ncol=6, loc="upper right")
    return _png(fig)


def beta_spectrogram(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    lfp = analysis.numbers.get("lfp")
    if not lfp or not lfp["spectrogram"]["power"]:
        return None
    spec = lfp["spectrogram"]
    t = np.asarray(spec["times_s"])
    f = np.asarray(spec["frequencies_hz"])
    p = np.asarray(spec["power"]).T
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, height_ratios=[3, 1])
    ax.pcolormesh(t, f, 10 * np.log10(np.maximum(p, 1e-30)), shading="nearest", cmap="viridis")
    lo, hi = analysis.numbers["settings"]["beta_band_hz"]
    for y in (lo, hi):
        ax.axhline(y, color="w", lw=0.8, ls="--")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title("LFP spectrogram (sliding Welch, dB); dashed: beta band")
    bx.plot(lfp["beta_over_time"]["times_s"], lfp["beta_over_time"]["power"], color="k", lw=1)
    _stim_spans(bx, analysis.numbers)
    bx.set_ylabel(f"beta ({lfp['psd_unit']})", fontsize=8)
    bx.set_xlabel("time (s)")
    return _png(fig)


def spectra(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    lfp = analysis.numbers.get("lfp")
    if not lfp:
        return None
    f = np.asarray(lfp["frequencies_hz"])
    p = np.asarray(lfp["psd"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(f, p.T, color="0.7", lw=0.5)
    ax.semilogy(f, p.mean(axis=0), color="k", lw=1.2, label="mean over channels")
    ax.axvspan(*analysis.numbers["settings"]["beta_band_hz"], color="orange", alpha=0.2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(lfp["psd_unit"])
    ax.set_title("LFP power spectra (Welch)")
    ax.legend(fontsize=7)
    return _png(fig)


def amplitude_and_error_index(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    bio = analysis.numbers.get("biomarkers", {})
    if "amplitude_ma" not in bio and "error_index" not in bio:
        return None
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(10, 4), sharex=True)
    if "amplitude_ma" in bio:
        ax.step(
            bio["amplitude_ma"]["times_s"],
            bio["amplitude_ma"]["values"],
            where="post",
            color=_STIM_COLOR,
        )
    ax.set_ylabel("amplitude (mA)")
    ax.set_title("Stimulation amplitude applied and the plant's error index")
    if "error_index" in bio:
        bx.plot(bio["error_index"]["times_s"], bio["error_index"]["values"], color="k", lw=1)
    bx.set_ylabel("error index")
    bx.set_xlabel("time (s)")
    return _png(fig)


def triggered(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    sta = analysis.numbers.get("stim_triggered_average")
    if not sta:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(sta["lag_ms"], sta["channel_mean"], color="k", lw=1)
    ax.axvline(0, color=_STIM_COLOR, lw=0.8)
    ax.set_xlabel("time from pulse onset (ms)")
    ax.set_ylabel(f"voltage ({sta['unit']})")
    ax.set_title(f"Stimulation-triggered average ({sta['n_pulses_averaged']} pulses)")
    return _png(fig)


def latency(analysis: RunAnalysis) -> bytes | None:
    import matplotlib.pyplot as plt

    lat = analysis.numbers.get("loop_latency")
    if not lat:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if "samples" in lat:
        ax.hist(lat["samples"], bins=min(50, max(5, len(lat["samples"]) // 5)), color="0.3")
    else:
        ax.stairs(lat["counts"], np.asarray(lat["edges_ms"]), fill=True, color="0.3")
    ax.set_xlabel("loop latency (ms)")
    ax.set_ylabel("commands")
    ax.set_title("Loop latency (runner's summary.json)")
    return _png(fig)


def render_figures(analysis: RunAnalysis) -> dict[str, bytes]:
    """Every figure the data allows, in report order (title -> PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    makers = {
        "Raster with stimulation": raster,
        "Firing rates": rates,
        "Beta spectrogram": beta_spectrogram,
        "Amplitude and error index": amplitude_and_error_index,
        "LFP spectra": spectra,
        "Stimulation-triggered average": triggered,
        "Loop latency": latency,
    }
    out = {}
    for title, make in makers.items():
        png = make(analysis)
        if png is not None:
            out[title] = png
    return out
