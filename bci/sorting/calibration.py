"""Calibration: a segment of preprocessed traces -> a template bank (a function, no sorter).

The steps: the traces' layout is checked (time-first), noise levels (MAD), the stimulation
residue and the windows left out around pulses (:mod:`bci.sorting.pulses`), clustering into
templates (:mod:`bci.sorting.clustering`), refinement rounds that match the calibration data with
the online matcher itself (:class:`bci.sorting.peeler.Matcher`), and, with pulses, dropping the
templates locked to them (:mod:`bci.sorting.locking`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from bci.sorting.clustering import CalibrationParams, cluster_templates, rebuild_templates
from bci.sorting.config import SorterConfig
from bci.sorting.detection import default_positions
from bci.sorting.errors import SortingConfigError, SortingError
from bci.sorting.locking import MIN_LOCKING_PULSES, is_pulse_locked, pulse_locking
from bci.sorting.noise import mad_noise
from bci.sorting.peeler import Matcher
from bci.sorting.pulses import learn_residue, pulse_mask
from bci.sorting.streaming import subtract_residue
from bci.sorting.templates import TemplateBank


def time_first(
    traces: npt.ArrayLike, name: str = "traces", n_positions: int | None = None
) -> npt.NDArray[np.float32]:
    """``traces`` as a contiguous float32 array of shape (n_samples, n_channels).

    Refuses arrays that are not 2-D or empty, and arrays that are evidently channels-first: more
    channels than samples, or as many samples as there are contact positions (when given) but
    not as many channels.

    Raises
    ------
    SortingConfigError
    """
    x = np.asarray(traces)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise SortingConfigError(
            f"Invalid value for the '{name}' parameter. Allowed values are arrays of shape "
            f"(n_samples, n_channels), but got shape {x.shape} instead."
        )
    n_samples, n_channels = x.shape
    flipped = (
        f"The '{name}' array of shape {x.shape} looks channels-first: pass it time-first, "
        f"(n_samples, n_channels) ({name}.T)."
    )
    if n_positions is not None and n_positions != n_channels:
        if n_positions == n_samples:
            raise SortingConfigError(
                f"{flipped} The probe has {n_positions} contacts, as many as the array has rows."
            )
        raise SortingConfigError(
            f"Invalid value for the 'positions' parameter. Allowed values are arrays of shape "
            f"({n_channels}, 2) in um, one row per channel of '{name}', but got {n_positions} "
            "rows instead."
        )
    if n_channels > n_samples:
        raise SortingConfigError(
            f"{flipped} It has more channels ({n_channels}) than samples ({n_samples})."
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def probe_positions(positions: npt.ArrayLike | None, n_channels: int) -> npt.NDArray[np.float64]:
    """Contact positions (n_channels, 2) in um: as given, or one column at 20 um pitch."""
    if positions is None:
        return default_positions(n_channels)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[0] != n_channels or pos.shape[1] < 2:
        raise SortingConfigError(
            f"Invalid value for the 'positions' parameter. Allowed values are arrays of shape "
            f"({n_channels}, 2) in um for {n_channels} channels, but got shape {pos.shape} "
            "instead."
        )
    return pos[:, :2]


def calibrate(
    traces: npt.ArrayLike,
    sfreq: float,
    config: SorterConfig | None = None,
    positions: npt.ArrayLike | None = None,
    pulses: npt.ArrayLike | None = None,
) -> tuple[TemplateBank, dict[str, Any]]:
    """Learn noise levels and unit templates from a calibration segment.

    Parameters
    ----------
    traces : array, shape (n_samples, n_channels)
        Preprocessed signal (band-passed, referenced) in uV, typically the first 30 s.
    sfreq : float
        Sampling rate in Hz.
    config : SorterConfig or None
        The sorter's knobs (default: ``SorterConfig()``).
    positions : array (n_channels, 2) or None
        Contact positions in um (``None``: one column at 20 um pitch).
    pulses : array of int or None
        Stimulation pulse onsets (samples from the segment's start): peaks within
        ``calibration_pulse_window_ms`` of them are not learned from.

    Returns
    -------
    bank : TemplateBank
    info : dict
        Counts for the calibration report (peaks, clusters, refinement, pulse-locked units).

    Raises
    ------
    SortingConfigError
        Traces that are not (n_samples, n_channels), or positions that do not fit them.
    SortingError
        Data with NaN, too short, or without spikes above the noise.
    """
    config = SorterConfig() if config is None else config
    n_positions = None if positions is None else len(np.asarray(positions))
    x = time_first(traces, "traces", n_positions)
    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True, error=SortingConfigError)
    pos = probe_positions(positions, x.shape[1])
    noise = mad_noise(x)
    xn: npt.NDArray[np.float32] = np.ascontiguousarray(x / noise.astype(np.float32))
    p = config.calibration_params(sfreq)
    windows = config.windows(sfreq)
    pulse_arr = np.asarray([] if pulses is None else pulses, np.int64).ravel()
    window = windows.calibration_pulse_window
    masked = pulse_mask(pulse_arr, 0, xn.shape[0], window)
    residue = learn_residue(xn, pulse_arr, window)
    residue_start = window[0]
    if residue is not None:
        subtract_residue(xn, pulse_arr, residue, residue_start)
    templates, n_spikes, info = cluster_templates(xn, pos, p, masked)
    bank = make_bank(p, templates, n_spikes, noise, pos, sfreq)
    bank.residue, bank.residue_start = residue, residue_start
    info["refine"] = []
    for _ in range(config.refine):
        bank, step = refine_bank(config, p, xn, bank, masked)
        bank.residue, bank.residue_start = residue, residue_start
        info["refine"].append(step)
    if config.reject_pulse_locked and pulse_arr.size >= MIN_LOCKING_PULSES:
        bank, locked = drop_pulse_locked(config, p, xn, bank, pulse_arr, masked)
        bank.residue, bank.residue_start = residue, residue_start
        info["pulse_locked"] = locked
    info["n_units"] = bank.n_units
    return bank, info


def make_bank(
    p: CalibrationParams,
    templates: npt.NDArray[np.float32],
    n_spikes: npt.NDArray[np.int64],
    noise: npt.NDArray[np.float64],
    positions: npt.NDArray[np.float64],
    sfreq: float,
) -> TemplateBank:
    """A template bank with the matching geometry of ``p``."""
    return TemplateBank(
        templates=templates,
        pre=p.pre,
        n_match=p.pre + p.post + 1,
        noise=noise,
        positions=positions,
        sfreq=sfreq,
        n_spikes=n_spikes,
        max_offset=max(2, p.sweep + 1),
        threshold=p.threshold,
    )


def refine_bank(
    config: SorterConfig,
    p: CalibrationParams,
    xn: npt.NDArray[np.float32],
    bank: TemplateBank,
    masked: npt.NDArray[np.uint8],
) -> tuple[TemplateBank, dict[str, Any]]:
    """Match the calibration data with the current templates; rebuild them from their spikes."""
    times, chans, units = Matcher(bank, config).match_array(xn, masked)
    # the template's own trough time, not the trough of the channel the spike was found on
    aligned = times - bank.offsets[np.maximum(units, 0), chans]
    templates, spike_times, n_kept = rebuild_templates(xn, aligned, units, bank.n_units, p)
    refined = make_bank(
        p,
        np.asarray(templates, np.float32),
        np.asarray([t.size for t in spike_times]),
        bank.noise,
        bank.positions,
        bank.sfreq,
    )
    info = {
        "dropped": bank.n_units - n_kept,
        "merged": n_kept - len(templates),
        "unsorted_fraction": float(np.mean(units < 0)) if units.size else 0.0,
    }
    return refined, info


def drop_pulse_locked(
    config: SorterConfig,
    p: CalibrationParams,
    xn: npt.NDArray[np.float32],
    bank: TemplateBank,
    pulses: npt.NDArray[np.int64],
    masked: npt.NDArray[np.uint8],
) -> tuple[TemplateBank, list[dict[str, float]]]:
    """Drop the templates whose calibration spikes are locked to the stimulation pulses."""
    times, _, units = Matcher(bank, config).match_array(xn, masked)
    available = masked == 0
    horizon = config.windows(bank.sfreq).locking_horizon
    keep = np.ones(bank.n_units, bool)
    locked = []
    for k in range(bank.n_units):
        stat = pulse_locking(times[units == k], pulses, available, horizon)
        if is_pulse_locked(stat):
            keep[k] = False
            locked.append(
                {"distance": stat.distance, "p_value": stat.p_value, "n_spikes": stat.n_spikes}
            )
    if not keep.any():
        raise SortingError(
            f"All {bank.n_units} calibration templates fire locked to the stimulation pulses "
            "(artifact residue, not units); calibrate on a segment without stimulation or "
            "check the pulse times."
        )
    if keep.all():
        return bank, locked
    kept = make_bank(
        p, bank.templates[keep], bank.n_spikes[keep], bank.noise, bank.positions, bank.sfreq
    )
    return kept, locked
