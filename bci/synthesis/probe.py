"""Probe geometries: contact positions in um, shank in the x-y plane (y along the shank).

The layouts are generic, not vendor-exact: a single-column linear shank (like a NeuroNexus
A1x32), groups of four contacts (tetrode-like, like a stereotrode/tetrode shank layout) and a
square grid (like a planar multi-electrode array). Units of the synthetic recording sit off the
shank, at a positive distance ``z`` from this plane.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import ConfigError

#: Layouts :func:`make_probe` knows.
PROBE_LAYOUTS: tuple[str, ...] = ("linear", "tetrode-like", "grid")


def make_probe(
    n_channels: int = 32,
    layout: str = "linear",
    pitch_um: float = 25.0,
    *,
    group_spacing_um: float | None = None,
) -> npt.NDArray[np.float64]:
    """Return contact positions of a synthetic probe.

    Parameters
    ----------
    n_channels : int
        Number of contacts (>= 1).
    layout : {"linear", "tetrode-like", "grid"}
        ``"linear"``: one column, contacts ``pitch_um`` apart along y.
        ``"tetrode-like"``: groups of four contacts on a ``pitch_um`` square, groups stacked along
        y ``group_spacing_um`` apart (default ``6 * pitch_um``); a last group may be partial.
        ``"grid"``: a square-ish grid (``ceil(sqrt(n))`` columns), filled row by row.
    pitch_um : float
        Contact spacing in um (> 0).
    group_spacing_um : float, optional
        Centre-to-centre distance of tetrode-like groups.

    Returns
    -------
    positions : float64 array, shape (n_channels, 2)
        ``(x, y)`` of each contact in um.
    """
    n_channels = ensure_int(n_channels, "n_channels", minimum=1)
    check_value(layout, PROBE_LAYOUTS, "layout")
    pitch_um = ensure_float(pitch_um, "pitch_um", minimum=0.0, strict_minimum=True)
    idx = np.arange(n_channels)
    if layout == "linear":
        return np.column_stack([np.zeros(n_channels), idx * pitch_um])
    if layout == "grid":
        n_cols = math.ceil(math.sqrt(n_channels))
        return np.column_stack([(idx % n_cols) * pitch_um, (idx // n_cols) * pitch_um])
    spacing = 6.0 * pitch_um if group_spacing_um is None else group_spacing_um
    spacing = ensure_float(spacing, "group_spacing_um", minimum=0.0, strict_minimum=True)
    if spacing < 2 * pitch_um:
        raise ConfigError(
            f"Invalid value for the 'group_spacing_um' parameter: groups {spacing} um apart "
            f"overlap contacts {pitch_um} um apart; use at least {2 * pitch_um} um."
        )
    corner = idx % 4
    group = idx // 4
    x = (corner % 2) * pitch_um
    y = group * spacing + (corner // 2) * pitch_um
    return np.column_stack([x, y]).astype(np.float64)


def check_positions(
    positions: npt.ArrayLike, n_channels: int | None = None
) -> npt.NDArray[np.float64]:
    """Return ``positions`` as a finite float64 ``(n_channels, 2)`` array, else raise ConfigError."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] < 1:
        raise ConfigError(
            f"Invalid value for the 'positions' parameter: expected shape (n_channels, 2) in um, "
            f"got {pos.shape}."
        )
    if n_channels is not None and pos.shape[0] != n_channels:
        raise ConfigError(
            f"Invalid value for the 'positions' parameter: {pos.shape[0]} contacts for "
            f"{n_channels} channels."
        )
    if not np.isfinite(pos).all():
        raise ConfigError("Invalid value for the 'positions' parameter: contains NaN or inf.")
    return pos
