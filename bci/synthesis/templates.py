"""Spatial spike templates: one extracellular waveform per unit and channel.

Model
-----
Each unit sits at a 3-D point ``(x, y, z)`` near the probe (``z`` > 0 um off the shank plane).
Its waveform on a contact at distance ``d`` is a negative Gaussian trough followed by a broader
positive repolarisation peak,

    w(t) = -exp(-t^2 / (2 s_t^2)) + r exp(-(t - t_p)^2 / (2 s_p^2)),

shifted so its minimum lies exactly at ``t = 0`` (the trough sample) and scaled to a trough of
-1. ``s_t`` (0.07-0.12 ms), ``t_p`` (trough-to-peak 0.3-0.5 ms), ``s_p`` and ``r`` are drawn per
unit, so units differ in shape as well as in place. The trough amplitude falls off with distance
as ``1 / (1 + (d / falloff_um)^2)`` (monopole-like at long range, finite next to the source),
normalised so the nearest contact carries the unit's amplitude. Farther contacts see a slightly
wider and slightly later spike, the extracellular low-pass effect of Pettersen & Einevoll 2008
(Biophys J 94:784). Distance-dependent templates on a probe follow the idea of MEArec (Buccino &
Einevoll 2021, Neuroinformatics 19:185); the waveform shape is a plain analytic one, not a
simulated cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import ConfigError


def template_geometry(
    sfreq: float, template_ms: float = 3.0, trough_ms: float = 1.0
) -> tuple[int, int]:
    """Return ``(n_template_samples, trough_offset)`` for a template length and trough time."""
    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
    template_ms = ensure_float(template_ms, "template_ms", minimum=0.0, strict_minimum=True)
    trough_ms = ensure_float(trough_ms, "trough_ms", minimum=0.0)
    n_samples = max(int(round(template_ms * 1e-3 * sfreq)), 3)
    trough_offset = int(round(trough_ms * 1e-3 * sfreq))
    if trough_offset >= n_samples:
        raise ConfigError(
            f"Invalid value for the 'trough_ms' parameter: the trough ({trough_ms} ms) must lie "
            f"inside the template ({template_ms} ms)."
        )
    return n_samples, trough_offset


def place_units(
    positions: npt.NDArray[np.float64],
    n_units: int,
    rng: np.random.Generator,
    *,
    z_range_um: tuple[float, float] = (10.0, 50.0),
    margin_um: float = 20.0,
) -> npt.NDArray[np.float64]:
    """Draw unit positions ``(n_units, 3)`` in um: uniform over the probe's extent plus a margin in
    x and y, at ``z`` uniform in ``z_range_um`` off the shank plane."""
    n_units = ensure_int(n_units, "n_units", minimum=0)
    lo = positions.min(axis=0) - margin_um
    hi = positions.max(axis=0) + margin_um
    xy = rng.uniform(lo, hi, size=(n_units, 2))
    z = rng.uniform(z_range_um[0], z_range_um[1], size=n_units)
    return np.column_stack([xy, z])


def _waveform(
    t_ms: npt.NDArray[np.float64], s_t: float, t_p: float, s_p: float, r: float
) -> npt.NDArray[np.float64]:
    trough = -np.exp(-(t_ms**2) / (2 * s_t**2))
    peak = r * np.exp(-((t_ms - t_p) ** 2) / (2 * s_p**2))
    return trough + peak


def _trough_shift(s_t: float, t_p: float, s_p: float, r: float) -> tuple[float, float]:
    """Time (ms) and depth of the continuous minimum of the un-shifted waveform."""
    grid = np.linspace(-0.3, 0.3, 6001)
    w = _waveform(grid, s_t, t_p, s_p, r)
    i = int(np.argmin(w))
    return float(grid[i]), float(-w[i])


def make_templates(
    positions: npt.NDArray[np.float64],
    unit_positions: npt.NDArray[np.float64],
    amplitudes_uv: npt.NDArray[np.float64],
    sfreq: float,
    rng: np.random.Generator,
    *,
    template_ms: float = 3.0,
    trough_ms: float = 1.0,
    falloff_um: float = 30.0,
    broadening_per_100um: float = 0.3,
    delay_ms_per_100um: float = 0.05,
) -> tuple[npt.NDArray[np.float32], int]:
    """Build spatial templates.

    Parameters
    ----------
    positions : float array (n_channels, 2)
        Contact positions in um.
    unit_positions : float array (n_units, 3)
        Unit positions in um (``z`` off the shank plane; a 2-D array means ``z = 0``).
    amplitudes_uv : float array (n_units,)
        Trough depth (positive number, uV) on each unit's nearest contact.
    sfreq : float
        Sampling rate in Hz.
    rng : numpy.random.Generator
        Draws the per-unit shape parameters.
    template_ms, trough_ms : float
        Template length and time of the trough from the template start.
    falloff_um : float
        Distance at which the amplitude halves relative to a contact at distance 0.
    broadening_per_100um, delay_ms_per_100um : float
        Relative widening and delay of the waveform per 100 um beyond the nearest contact.

    Returns
    -------
    templates : float32 array (n_units, n_template_samples, n_channels)
        In uV; the nearest contact's trough (at ``trough_offset``) equals ``-amplitudes_uv``.
    trough_offset : int
        Samples from the template start to the trough.
    """
    n_samples, trough_offset = template_geometry(sfreq, template_ms, trough_ms)
    falloff_um = ensure_float(falloff_um, "falloff_um", minimum=0.0, strict_minimum=True)
    upos = np.asarray(unit_positions, dtype=np.float64)
    if upos.ndim != 2 or upos.shape[1] not in (2, 3):
        raise ConfigError(
            f"Invalid value for the 'unit_positions' parameter: expected shape (n_units, 2 or 3), "
            f"got {upos.shape}."
        )
    if upos.shape[1] == 2:
        upos = np.column_stack([upos, np.zeros(len(upos))])
    amps = np.asarray(amplitudes_uv, dtype=np.float64)
    n_units = upos.shape[0]
    n_channels = positions.shape[0]
    contacts = np.column_stack([positions, np.zeros(n_channels)])
    dist = np.linalg.norm(upos[:, None, :] - contacts[None, :, :], axis=2)  # (units, channels)
    t_ms = (np.arange(n_samples) - trough_offset) / sfreq * 1e3
    templates = np.zeros((n_units, n_samples, n_channels), dtype=np.float32)
    for u in range(n_units):
        s_t = rng.uniform(0.07, 0.12)
        t_p = rng.uniform(0.3, 0.5)
        s_p = rng.uniform(0.2, 0.35)
        r = rng.uniform(0.15, 0.45)
        extra_100um = (dist[u] - dist[u].min()) / 100.0
        gain = 1.0 / (1.0 + (dist[u] / falloff_um) ** 2)
        gain /= gain.max()
        # widening every time constant by a factor a is w(t / a): the trough moves to a * shift
        # and keeps its depth, so one search per unit serves every channel
        shift, depth = _trough_shift(s_t, t_p, s_p, r)
        widen = 1.0 + broadening_per_100um * extra_100um  # (channels,)
        delay = delay_ms_per_100um * extra_100um
        t_unit = (t_ms[:, None] - delay[None, :]) / widen[None, :] + shift  # (samples, channels)
        w = _waveform(t_unit, s_t, t_p, s_p, r) / depth
        templates[u] = (amps[u] * gain[None, :] * w).astype(np.float32)
    return templates, trough_offset


def peak_channels(templates: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    """Channel of the largest absolute template value of each unit."""
    if templates.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.abs(templates).max(axis=1).argmax(axis=1).astype(np.int64)


@dataclass(frozen=True)
class UnitTemplates:
    """Synthetic units near a probe: what a :class:`~bci.synthesis.renderer.StreamingRenderer`
    needs to turn their spike times into voltage, and the truth about them.

    Attributes
    ----------
    templates : float32 array (n_units, n_template_samples, n_channels)
        Waveforms in uV.
    trough_offset : int
        Samples from a template's start to its trough.
    positions : float array (n_channels, 2)
        Contact positions in um.
    unit_positions : float array (n_units, 3)
        Unit positions in um.
    peak_channels : int array (n_units,)
        Channel of each unit's largest absolute template value.
    trough_uv : float array (n_units,)
        Template value at the trough on the peak channel (negative, uV).
    """

    templates: npt.NDArray[np.float32]
    trough_offset: int
    positions: npt.NDArray[np.float64]
    unit_positions: npt.NDArray[np.float64]
    peak_channels: npt.NDArray[np.int64]
    trough_uv: npt.NDArray[np.float64]


def make_unit_templates(
    n_units: int,
    positions: npt.ArrayLike,
    sfreq: float,
    seed: int | None = 0,
    *,
    amplitude_uv: tuple[float, float] = (50.0, 200.0),
    unit_positions: npt.ArrayLike | None = None,
    **kwargs: float,
) -> UnitTemplates:
    """Place ``n_units`` units near a probe and build their templates in one call.

    For sources that know spike times from elsewhere (a simulated network) and only need voltage:
    ``units = make_unit_templates(10, make_probe(32), 30000.0, seed=1)`` then
    ``StreamingRenderer(units.templates, units.trough_offset, 32, 30000.0, positions=units.positions)``.

    Parameters
    ----------
    n_units : int
        Units (>= 1).
    positions : array (n_channels, 2)
        Contact positions in um (e.g. from :func:`~bci.synthesis.probe.make_probe`).
    sfreq : float
        Sampling rate in Hz.
    seed : int or None
        Seeds positions, amplitudes and shapes.
    amplitude_uv : (float, float)
        Range of trough depths on the nearest contact, in uV.
    unit_positions : array (n_units, 2 or 3), optional
        Place the units yourself (um); default: random 10-50 um off the shank.
    **kwargs
        ``template_ms``, ``trough_ms``, ``falloff_um``, ``broadening_per_100um``,
        ``delay_ms_per_100um`` of :func:`make_templates`.
    """
    from bci.synthesis.probe import check_positions

    n_units = ensure_int(n_units, "n_units", minimum=1)
    pos = check_positions(positions)
    rng = np.random.default_rng(seed)
    lo = ensure_float(amplitude_uv[0], "amplitude_uv[0]", minimum=0.0)
    hi = ensure_float(amplitude_uv[1], "amplitude_uv[1]", minimum=lo)
    if unit_positions is None:
        upos = place_units(pos, n_units, rng)
    else:
        upos = np.asarray(unit_positions, dtype=np.float64)
        if upos.shape[0] != n_units:
            raise ConfigError(
                f"Invalid value for the 'unit_positions' parameter: {upos.shape[0]} rows for "
                f"{n_units} units."
            )
    amps = rng.uniform(lo, hi, size=n_units)
    templates, trough_offset = make_templates(pos, upos, amps, sfreq, rng, **kwargs)
    peaks = peak_channels(templates)
    trough = templates[np.arange(n_units), trough_offset, peaks].astype(np.float64)
    if upos.shape[1] == 2:
        upos = np.column_stack([upos, np.zeros(n_units)])
    return UnitTemplates(templates, trough_offset, pos, upos, peaks, trough)
