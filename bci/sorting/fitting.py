"""Fitting an OnlineSorter: calibration traces -> noise, artifact residue, refined templates.

The steps of :meth:`bci.sorting.OnlineSorter.fit`: noise levels (MAD), the stimulation residue
and the windows left out around pulses (:mod:`bci.sorting.pulses`), clustering into templates
(:mod:`bci.sorting.calibration`), refinement rounds that match the calibration data with the
sorter's own peeler, and, with pulses, dropping templates locked to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from bci.errors import StageCompatibilityError
from bci.sorting.calibration import CalibrationParams, cluster_templates, rebuild_templates
from bci.sorting.detection import default_positions
from bci.sorting.locking import (
    LOCKING_HORIZON_MS,
    MIN_LOCKING_PULSES,
    is_pulse_locked,
    pulse_locking,
)
from bci.sorting.noise import SortingError, mad_noise
from bci.sorting.pulses import learn_residue, pulse_mask
from bci.sorting.streaming import subtract_residue
from bci.sorting.templates import TemplateBank

if TYPE_CHECKING:
    from bci.sorting.matching import OnlineSorter


def _ms(value_ms: float, sfreq: float) -> int:
    return int(round(value_ms * 1e-3 * sfreq))


def fit_sorter(
    sorter: OnlineSorter,
    traces: npt.ArrayLike,
    sfreq: float | None = None,
    positions: npt.ArrayLike | None = None,
    pulses: npt.ArrayLike | None = None,
) -> None:
    """Calibrate ``sorter`` in place (what :meth:`OnlineSorter.fit` does; see its parameters)."""
    x = np.asarray(traces, dtype=np.float32)
    if x.ndim != 2:
        raise SortingError(
            f"OnlineSorter.fit needs traces of shape (n_samples, n_channels), got {x.shape}."
        )
    if sfreq is None:
        if sorter.input_spec is None:
            raise SortingError("OnlineSorter.fit needs sfreq (or prepare() the stage first).")
        sfreq = float(sorter.input_spec.rate_hz)
    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
    if sorter.input_spec is not None and sorter.input_spec.n_channels != x.shape[1]:
        raise StageCompatibilityError(
            f"OnlineSorter was prepared for {sorter.input_spec.n_channels} channels, but the "
            f"calibration traces have {x.shape[1]}."
        )
    pos = probe_positions(sorter, positions, x.shape[1])
    noise = mad_noise(x)
    xn: npt.NDArray[np.float32] = np.ascontiguousarray(x / noise.astype(np.float32))
    p = sorter._params(sfreq)
    pulse_arr = np.asarray([] if pulses is None else pulses, np.int64).ravel()
    calibration_window = sorter._window(sorter.calibration_pulse_window_ms, sfreq)
    masked = pulse_mask(pulse_arr, 0, xn.shape[0], calibration_window)
    residue = learn_residue(xn, pulse_arr, calibration_window)
    residue_start = calibration_window[0]
    if residue is not None:
        subtract_residue(xn, pulse_arr, residue, residue_start)
    templates, n_spikes, info = cluster_templates(xn, pos, p, masked)
    bank = make_bank(sorter, templates, n_spikes, noise, pos, sfreq, p)
    bank.residue, bank.residue_start = residue, residue_start
    info["refine"] = []
    for _ in range(sorter.refine):
        bank, step = refine_bank(sorter, xn, bank, p, masked)
        bank.residue, bank.residue_start = residue, residue_start
        info["refine"].append(step)
    if sorter.reject_pulse_locked and pulse_arr.size >= MIN_LOCKING_PULSES:
        bank, locked = drop_pulse_locked(sorter, xn, bank, pulse_arr, masked)
        bank.residue, bank.residue_start = residue, residue_start
        info["pulse_locked"] = locked
    info["n_units"] = bank.n_units
    sorter.bank = bank
    sorter.calibration_info = info
    sorter.reset()


def probe_positions(
    sorter: OnlineSorter, positions: npt.ArrayLike | None, n_channels: int
) -> npt.NDArray[np.float64]:
    """Contact positions (n_channels, 2) in um: given, from the prepared stream, or default."""
    if positions is None and sorter.input_spec is not None and sorter.input_spec.positions:
        positions = sorter.input_spec.positions
    if positions is None:
        return default_positions(n_channels)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[0] != n_channels:
        raise StageCompatibilityError(
            f"Probe positions must have shape ({n_channels}, 2) for {n_channels} channels, "
            f"but got shape {pos.shape}."
        )
    return pos[:, :2]


def make_bank(
    sorter: OnlineSorter,
    templates: npt.NDArray[np.float32],
    n_spikes: npt.NDArray[np.int64],
    noise: npt.NDArray[np.float64],
    positions: npt.NDArray[np.float64],
    sfreq: float,
    p: CalibrationParams,
) -> TemplateBank:
    """A template bank with the sorter's matching geometry."""
    return TemplateBank(
        templates=templates,
        pre=p.pre,
        n_match=p.pre + p.post + 1,
        noise=noise,
        positions=positions,
        sfreq=sfreq,
        n_spikes=n_spikes,
        max_offset=max(2, p.sweep + 1),
        threshold=sorter.threshold,
    )


def refine_bank(
    sorter: OnlineSorter,
    xn: npt.NDArray[np.float32],
    bank: TemplateBank,
    p: CalibrationParams,
    masked: npt.NDArray[np.uint8],
) -> tuple[TemplateBank, dict[str, Any]]:
    """Match the calibration data with the first templates; rebuild them from their spikes."""
    times, chans, units = sorter._match_array(xn, bank, masked)
    # the template's own trough time, not the trough of the channel the spike was found on
    aligned = times - bank.offsets[np.maximum(units, 0), chans]
    templates, spike_times, n_kept = rebuild_templates(xn, aligned, units, bank.n_units, p)
    refined = make_bank(
        sorter,
        np.asarray(templates, np.float32),
        np.asarray([t.size for t in spike_times]),
        bank.noise,
        bank.positions,
        bank.sfreq,
        p,
    )
    info = {
        "dropped": bank.n_units - n_kept,
        "merged": n_kept - len(templates),
        "unsorted_fraction": float(np.mean(units < 0)) if units.size else 0.0,
    }
    return refined, info


def drop_pulse_locked(
    sorter: OnlineSorter,
    xn: npt.NDArray[np.float32],
    bank: TemplateBank,
    pulses: npt.NDArray[np.int64],
    masked: npt.NDArray[np.uint8],
) -> tuple[TemplateBank, list[dict[str, float]]]:
    """Drop the templates whose calibration spikes are locked to the stimulation pulses."""
    times, chans, units = sorter._match_array(xn, bank, masked)
    available = masked == 0
    horizon = _ms(LOCKING_HORIZON_MS, bank.sfreq)
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
        sorter,
        bank.templates[keep],
        bank.n_spikes[keep],
        bank.noise,
        bank.positions,
        bank.sfreq,
        sorter._params(bank.sfreq),
    )
    return kept, locked
