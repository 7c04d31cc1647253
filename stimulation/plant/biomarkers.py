"""Biomarkers of the basal-ganglia plant: error index, relative beta power, firing rate, synchrony.

Plain functions on spike-time arrays and sampled signals, so they apply to the model's
:class:`~stimulation.plant.PlantRecord` and to recorded data alike.

References
----------
- So RQ, Kent AR, Grill WM (2012). J Comput Neurosci 32:499-519: the thalamic error index.
- Rubin JE, Terman D (2004). J Comput Neurosci 16:211-235: thalamic relay fidelity.
- Golomb D (2007). Neuronal synchrony measures. Scholarpedia 2(1):1347: the chi measure.
- Welch PD (1967). IEEE Trans Audio Electroacoust 15:70-73: averaged periodograms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import welch

from bci.checks import ensure_float
from stimulation.errors import PlantParameterError

BETA_BAND_HZ: tuple[float, float] = (13.0, 30.0)
TOTAL_BAND_HZ: tuple[float, float] = (4.0, 100.0)
EI_WINDOW_S = 0.025


def _positive(value: float, name: str) -> float:
    return ensure_float(value, name, minimum=0.0, strict_minimum=True, error=PlantParameterError)


def scored_pulses(
    smc_pulse_times: ArrayLike, t_start_s: float, t_stop_s: float, window_s: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The SMC pulses the error index scores, and where each one's interval ends.

    Returns ``(pulses, nxt)``: the sorted onsets in ``[t_start_s, t_stop_s - window_s]`` and, for
    each, the next pulse (scored or not) or ``t_stop_s``, whichever comes first.
    """
    all_pulses = np.sort(np.asarray(smc_pulse_times, dtype=np.float64))
    pulses = all_pulses[(all_pulses >= t_start_s) & (all_pulses <= t_stop_s - window_s)]
    nxt_idx = np.searchsorted(all_pulses, pulses, side="right")
    nxt = np.where(
        nxt_idx < all_pulses.size, all_pulses[np.minimum(nxt_idx, all_pulses.size - 1)], t_stop_s
    )
    return pulses, np.minimum(nxt, t_stop_s)


def error_index(
    th_spike_times: Sequence[ArrayLike],
    smc_pulse_times: ArrayLike,
    t_start_s: float,
    t_stop_s: float,
    window_s: float = EI_WINDOW_S,
) -> float:
    """Thalamic relay error index of So, Kent & Grill (2012).

    For each sensorimotor-cortex (SMC) pulse and each thalamic cell: no spike, or more than one
    spike, within ``window_s`` after the pulse onset is one error (a miss or a burst); every spike
    after that window and before the next pulse is one error (a spurious spike).
    ``EI = errors / (pulses x cells)``.

    Only pulses whose onset lies in ``[t_start_s, t_stop_s - window_s]`` are scored; the spurious
    spikes after the last scored pulse are counted up to the next pulse or ``t_stop_s``.

    Parameters
    ----------
    th_spike_times : sequence of array_like
        Spike times (s) of each thalamic cell (upward crossings of -40 mV in So 2012).
    smc_pulse_times : array_like
        Onsets (s) of the SMC pulses.
    t_start_s, t_stop_s : float
        Scored interval in seconds.
    window_s : float
        Response window after each pulse, 25 ms in So 2012.

    Returns
    -------
    float
        The error index; NaN when no pulse falls into the scored interval.
    """
    window_s = _positive(window_s, "window_s")
    pulses, nxt = scored_pulses(smc_pulse_times, t_start_s, t_stop_s, window_s)
    n_cells = len(th_spike_times)
    if pulses.size == 0 or n_cells == 0:
        return float("nan")
    errors = 0
    for spikes in th_spike_times:
        s = np.sort(np.asarray(spikes, dtype=np.float64))
        in_window = np.searchsorted(s, pulses + window_s, side="left") - np.searchsorted(
            s, pulses, side="left"
        )
        errors += int(np.count_nonzero(in_window != 1))
        between = np.searchsorted(s, nxt, side="left") - np.searchsorted(
            s, pulses + window_s, side="left"
        )
        errors += int(np.sum(np.maximum(between, 0)))
    return errors / (pulses.size * n_cells)


def relative_beta_power(
    signal: ArrayLike,
    sfreq: float,
    band_hz: tuple[float, float] = BETA_BAND_HZ,
    total_hz: tuple[float, float] = TOTAL_BAND_HZ,
    segment_s: float = 1.0,
) -> float:
    """Power in ``band_hz`` divided by power in ``total_hz`` (Welch PSD, Hann, 50% overlap).

    Parameters
    ----------
    signal : array_like, shape (n_samples,)
        An LFP (or LFP proxy) sampled at ``sfreq``.
    sfreq : float
        Sampling rate in Hz.
    band_hz : (float, float)
        Numerator band, 13-30 Hz (beta) by default.
    total_hz : (float, float)
        Denominator band, 4-100 Hz by default.
    segment_s : float
        Welch segment length in seconds (1 s: 1 Hz resolution); shortened to the signal length.

    Returns
    -------
    float
        Relative power in [0, 1]; NaN for a flat signal.
    """
    sfreq = _positive(sfreq, "sfreq")
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise PlantParameterError(f"signal must be one-dimensional, got shape {x.shape}.")
    if total_hz[1] >= sfreq / 2:
        raise PlantParameterError(
            f"The total band {total_hz} Hz reaches the Nyquist frequency ({sfreq / 2} Hz)."
        )
    nperseg = min(x.size, max(8, int(round(segment_s * sfreq))))
    if x.size < 8:
        raise PlantParameterError(f"signal too short for a PSD ({x.size} samples).")
    freqs, psd = welch(x, fs=sfreq, nperseg=nperseg, detrend="constant")
    total = psd[(freqs >= total_hz[0]) & (freqs <= total_hz[1])].sum()
    if total <= 0.0:
        return float("nan")
    return float(psd[(freqs >= band_hz[0]) & (freqs <= band_hz[1])].sum() / total)


def firing_rate_hz(spike_times: Sequence[ArrayLike], t_start_s: float, t_stop_s: float) -> float:
    """Mean firing rate (Hz) over cells of the spikes in ``[t_start_s, t_stop_s)``."""
    duration = t_stop_s - t_start_s
    if duration <= 0 or len(spike_times) == 0:
        return float("nan")
    total = 0
    for spikes in spike_times:
        s = np.asarray(spikes, dtype=np.float64)
        total += int(np.count_nonzero((s >= t_start_s) & (s < t_stop_s)))
    return total / (duration * len(spike_times))


def binned_counts(
    spike_times: Sequence[ArrayLike], t_start_s: float, t_stop_s: float, bin_s: float
) -> NDArray[np.float64]:
    """Spike counts, shape (n_bins, n_cells), in bins of ``bin_s`` from ``t_start_s``."""
    bin_s = _positive(bin_s, "bin_s")
    n_bins = int(np.floor((t_stop_s - t_start_s) / bin_s + 1e-9))
    counts = np.zeros((max(n_bins, 0), len(spike_times)))
    if n_bins <= 0:
        return counts
    edges = t_start_s + bin_s * np.arange(n_bins + 1)
    for i, spikes in enumerate(spike_times):
        counts[:, i] = np.histogram(np.asarray(spikes, dtype=np.float64), bins=edges)[0]
    return counts


def golomb_chi(
    spike_times: Sequence[ArrayLike], t_start_s: float, t_stop_s: float, bin_s: float = 0.01
) -> float:
    """Golomb's population synchrony ``chi`` of binned spike counts.

    ``chi^2 = Var_t(mean_i x_i(t)) / mean_i Var_t(x_i(t))`` with ``x_i`` the spike counts of cell
    ``i`` in bins of ``bin_s`` (Golomb 2007). ``chi`` is 1 for identical trains and about
    ``1/sqrt(n_cells)`` for independent ones.

    Returns
    -------
    float
        chi in [0, 1]; NaN when no cell has varying counts (e.g. no spikes).
    """
    x = binned_counts(spike_times, t_start_s, t_stop_s, bin_s)
    if x.shape[0] < 2 or x.shape[1] == 0:
        return float("nan")
    mean_var = x.var(axis=0).mean()
    if mean_var <= 0.0:
        return float("nan")
    return float(np.sqrt(x.mean(axis=1).var() / mean_var))
