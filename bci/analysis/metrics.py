"""Offline metrics of one run, computed with elephant (and SpikeInterface for sorting accuracy).

Every number comes from the field's implementation, called on the neo objects of
:class:`bci.analysis.data.RunData`:

- firing: ``elephant.statistics.mean_firing_rate``, ``instantaneous_rate`` (Gaussian kernel),
  ``isi`` with ``cv`` (coefficient of variation) and ``lv`` (local variation, Shinomoto et al. 2003);
- synchrony: ``elephant.spike_train_correlation.spike_time_tiling_coefficient`` for every pair of
  units (Cutts & Eglen 2014) and ``elephant.spike_train_synchrony.spike_contrast`` for the population
  (Ciba et al. 2018);
- LFP: the voltage recording decimated to about ``lfp_sfreq_hz`` (neo's ``downsample``, scipy's
  zero-phase decimation: offline, so not causal), ``elephant.spectral.welch_psd`` per channel, and
  beta power over time as Welch spectra of the channel-mean LFP in sliding windows (the spectrogram
  of the report); band power is the mean PSD over the band;
- ``elephant.sta.spike_triggered_average`` of the channel-mean voltage around the stimulation pulses
  (at most ``sta_max_pulses``, evenly spread over the run: elephant averages pulse by pulse);
- sorting accuracy per ground-truth unit: ``spikeinterface.comparison.compare_sorter_to_ground_truth``
  (accuracy = matches / (matches + misses + false positives) within ``accuracy_delta_ms``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import neo
import numpy as np
import quantities as pq

__all__ = [
    "AnalysisSettings",
    "lfp_metrics",
    "sorting_accuracy",
    "synchrony_metrics",
    "triggered_average",
    "unit_metrics",
]


_F = TypeVar("_F", bound=Callable[..., Any])


def _quiet_quantities(func: _F) -> _F:
    """Silence quantities' deprecation of ``copy=``, which elephant 1.2.1 still passes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from quantities import QuantitiesDeprecationWarning

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=QuantitiesDeprecationWarning)
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class AnalysisSettings:
    """Parameters of the offline metrics (written into ``analysis.json``)."""

    rate_sampling_ms: float = 20.0
    rate_kernel_sigma_ms: float = 50.0
    sttc_dt_ms: float = 5.0
    lfp_sfreq_hz: float = 1000.0
    welch_resolution_hz: float = 1.0
    spectrum_max_hz: float = 100.0
    beta_band_hz: tuple[float, float] = (13.0, 30.0)
    beta_window_s: float = 1.0
    beta_step_s: float = 0.25
    beta_resolution_hz: float = 2.0
    sta_window_ms: tuple[float, float] = (-5.0, 20.0)
    sta_max_pulses: int = 400
    accuracy_delta_ms: float = 0.4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unit_id(st: neo.SpikeTrain, i: int) -> int:
    return int(st.annotations.get("unit_id", i))


@_quiet_quantities
def unit_metrics(
    trains: list[neo.SpikeTrain], settings: AnalysisSettings
) -> tuple[list[dict[str, Any]], neo.AnalogSignal | None]:
    """Per unit: spikes, mean rate, ISI CV and LV; and the instantaneous rates of all units."""
    from elephant.kernels import GaussianKernel
    from elephant.statistics import cv, instantaneous_rate, isi, lv, mean_firing_rate

    rows = []
    for i, st in enumerate(trains):
        intervals = isi(st).rescale(pq.s).magnitude
        rows.append(
            {
                "unit_id": _unit_id(st, i),
                "n_spikes": int(len(st)),
                "mean_rate_hz": float(mean_firing_rate(st).rescale(pq.Hz).magnitude),
                "isi_cv": float(cv(intervals)) if len(intervals) >= 2 else None,
                "isi_lv": float(lv(intervals)) if len(intervals) >= 2 else None,
            }
        )
    rates = None
    if trains and any(len(st) for st in trains):
        rates = instantaneous_rate(
            trains,
            sampling_period=settings.rate_sampling_ms * pq.ms,
            kernel=GaussianKernel(sigma=settings.rate_kernel_sigma_ms * pq.ms),
        ).rescale(pq.Hz)
        for j, row in enumerate(rows):
            row["instantaneous_rate_max_hz"] = float(np.max(rates.magnitude[:, j]))
    return rows, rates


@_quiet_quantities
def synchrony_metrics(trains: list[neo.SpikeTrain], settings: AnalysisSettings) -> dict[str, Any]:
    """Spike-time tiling coefficient of every pair, their mean, and the population spike contrast."""
    from elephant.spike_train_correlation import spike_time_tiling_coefficient
    from elephant.spike_train_synchrony import spike_contrast

    ids = [_unit_id(st, i) for i, st in enumerate(trains)]
    n = len(trains)
    sttc = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(i + 1, n):
            if len(trains[i]) and len(trains[j]):
                value = spike_time_tiling_coefficient(
                    trains[i], trains[j], dt=settings.sttc_dt_ms * pq.ms
                )
                sttc[i, j] = sttc[j, i] = float(value)
    pairs = sttc[np.triu_indices(n, k=1)]
    finite = pairs[np.isfinite(pairs)]
    contrast = None
    if sum(1 for st in trains if len(st) > 1) >= 2:
        contrast = float(spike_contrast([st for st in trains if len(st)]))
    return {
        "unit_ids": ids,
        "sttc": sttc.tolist(),
        "sttc_mean": float(finite.mean()) if finite.size else None,
        "spike_contrast": contrast,
    }


def decimate(signal: neo.AnalogSignal, target_hz: float) -> neo.AnalogSignal:
    """Downsample by integer steps of at most 10 (scipy's advice for its IIR decimation)."""
    factor = max(1, int(float(signal.sampling_rate.rescale(pq.Hz)) // target_hz))
    out = signal
    while factor > 1:
        step = next((q for q in range(min(10, factor), 1, -1) if factor % q == 0), min(10, factor))
        out = out.downsample(step)
        factor //= step
    return out


def _band_mean(freqs: np.ndarray, psd: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    sel = (freqs >= band[0]) & (freqs <= band[1])
    return np.asarray(psd[..., sel].mean(axis=-1))


@_quiet_quantities
def lfp_metrics(voltage: neo.AnalogSignal, settings: AnalysisSettings) -> dict[str, Any]:
    """Welch spectra per channel, beta power per channel and over time (sliding Welch)."""
    from elephant.spectral import welch_psd

    lfp = decimate(voltage, settings.lfp_sfreq_hz)
    fs = float(lfp.sampling_rate.rescale(pq.Hz))
    duration = lfp.shape[0] / fs
    resolution = max(settings.welch_resolution_hz, 1.0 / duration)
    freqs, psd = welch_psd(lfp, frequency_resolution=resolution * pq.Hz)
    f = freqs.rescale(pq.Hz).magnitude
    p = psd.magnitude  # (channels, frequencies)
    keep = f <= settings.spectrum_max_hz
    beta_per_channel = _band_mean(f, p, settings.beta_band_hz)
    mean_lfp = lfp.magnitude.mean(axis=1)
    win = int(round(settings.beta_window_s * fs))
    step = max(1, int(round(settings.beta_step_s * fs)))
    times, spectra = [], []
    spec_f = np.zeros(0)
    for lo in range(0, len(mean_lfp) - win + 1, step):
        segment = neo.AnalogSignal(
            mean_lfp[lo : lo + win], units=lfp.units, sampling_rate=fs * pq.Hz
        )
        sf, sp = welch_psd(segment, frequency_resolution=settings.beta_resolution_hz * pq.Hz)
        spec_f = sf.rescale(pq.Hz).magnitude
        spectra.append(sp.magnitude.ravel())
        times.append(float(lfp.t_start.rescale(pq.s)) + (lo + win / 2) / fs)
    spectrogram = np.array(spectra) if spectra else np.zeros((0, 0))
    beta_t = _band_mean(spec_f, spectrogram, settings.beta_band_hz) if spectra else np.zeros(0)
    unit = f"{lfp.units.dimensionality.string}**2/Hz"
    return {
        "lfp_sfreq_hz": fs,
        "psd_unit": unit,
        "frequencies_hz": f[keep].tolist(),
        "psd": p[:, keep].tolist(),
        "beta_power_per_channel": beta_per_channel.tolist(),
        "beta_power_mean": float(beta_per_channel.mean()),
        "beta_over_time": {"times_s": times, "power": beta_t.tolist()},
        "spectrogram": {
            "times_s": times,
            "frequencies_hz": spec_f[spec_f <= settings.spectrum_max_hz].tolist(),
            "power": spectrogram[:, spec_f <= settings.spectrum_max_hz].tolist() if spectra else [],
        },
    }


@_quiet_quantities
def triggered_average(
    voltage: neo.AnalogSignal, pulse_times_s: np.ndarray, settings: AnalysisSettings
) -> dict[str, Any] | None:
    """Average voltage around each stimulation pulse (every channel), or None without pulses."""
    from elephant.sta import spike_triggered_average

    w0, w1 = (v * 1e-3 for v in settings.sta_window_ms)
    t_start = float(voltage.t_start.rescale(pq.s))
    t_stop = float(voltage.t_stop.rescale(pq.s))
    times = np.asarray(pulse_times_s, dtype=np.float64)
    times = times[(times + w0 >= t_start) & (times + w1 < t_stop)]
    if times.size == 0:
        return None
    n_recorded = int(times.size)
    if times.size > settings.sta_max_pulses:  # evenly spread subset: elephant loops per pulse
        times = times[np.linspace(0, times.size - 1, settings.sta_max_pulses).round().astype(int)]
    mean = neo.AnalogSignal(
        voltage.magnitude.mean(axis=1, keepdims=True),
        units=voltage.units,
        sampling_rate=voltage.sampling_rate,
        t_start=voltage.t_start,
    )
    train = neo.SpikeTrain(times * pq.s, t_start=t_start * pq.s, t_stop=t_stop * pq.s)
    sta = spike_triggered_average(mean, train, window=(w0 * pq.s, w1 * pq.s))
    values = sta.magnitude[:, 0]
    lag_ms = (np.arange(values.shape[0]) / float(sta.sampling_rate.rescale(pq.Hz)) + w0) * 1e3
    return {
        "n_pulses_recorded": n_recorded,
        "n_pulses_averaged": int(times.size),
        "pulse_times_s": times.tolist(),
        "unit": sta.units.dimensionality.string,
        "lag_ms": lag_ms.tolist(),
        "channel_mean": values.tolist(),
        "peak_to_peak": float(np.ptp(values)),
    }


def sorting_accuracy(
    sorted_units: list[neo.SpikeTrain],
    ground_truth: list[neo.SpikeTrain],
    sfreq_hz: float,
    settings: AnalysisSettings,
    t_from_s: float = 0.0,
) -> dict[str, Any]:
    """Per ground-truth unit: accuracy, recall, precision and the sorted unit it matched.

    Only spikes at or after ``t_from_s`` count (the sorter labels nothing while it calibrates).
    """
    try:
        from spikeinterface.comparison import compare_sorter_to_ground_truth
        from spikeinterface.core import NumpySorting
    except ImportError:
        return {"error": "spikeinterface is not installed (pip install spikeinterface)"}

    def sorting(trains: list[neo.SpikeTrain]) -> Any:
        samples, labels = [], []
        for i, st in enumerate(trains):
            t = st.times.rescale(pq.s).magnitude
            s = np.round(t[t >= t_from_s] * sfreq_hz).astype(np.int64)
            samples.append(s)
            labels.append(np.full(len(s), _unit_id(st, i), dtype=np.int64))
        order = np.argsort(np.concatenate(samples), kind="stable")
        return NumpySorting.from_samples_and_labels(
            [np.concatenate(samples)[order]], [np.concatenate(labels)[order]], sfreq_hz
        )

    cmp = compare_sorter_to_ground_truth(
        sorting(ground_truth), sorting(sorted_units), delta_time=settings.accuracy_delta_ms,
        exhaustive_gt=True,
    )  # fmt: skip
    perf = cmp.get_performance()
    match = cmp.hungarian_match_12  # the matching the performance is computed on
    rows = []
    for gt_id in perf.index:
        m = match.get(gt_id, -1)
        rows.append(
            {
                "gt_unit": int(gt_id),
                "matched_unit": None if m == -1 else int(m),
                "accuracy": float(perf.loc[gt_id, "accuracy"]),
                "recall": float(perf.loc[gt_id, "recall"]),
                "precision": float(perf.loc[gt_id, "precision"]),
            }
        )
    return {"delta_ms": settings.accuracy_delta_ms, "compared_from_s": t_from_s, "units": rows}
