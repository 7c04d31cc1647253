"""Spike detection: negative threshold crossings that are locally exclusive peaks on the probe.

A detected peak is a sample ``(t, c)`` of the noise-normalised trace (units of the channel's noise
sigma) that lies below ``-threshold``, is the minimum of its own channel within ``sweep`` samples,
and the minimum of every neighbouring channel (contacts within ``radius_um``) within the same
sweep. One spike seen on several contacts is thereby detected once, on its largest contact (the
"locally exclusive" peak detection of SpikeInterface's sorting components, also used by
Tridesclous and SpyKING CIRCUS 2; Garcia et al. 2024, eLife 12:RP86216). A refractory period per
channel keeps one slow trough from being counted twice.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from bci.errors import StageCompatibilityError


def channel_neighbours(
    positions: npt.ArrayLike, radius_um: float
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Channels within ``radius_um`` of each channel (itself excluded).

    Returns
    -------
    neighbours : int32 array, shape (n_channels, max_neighbours)
        Neighbour indices, padded with -1.
    counts : int32 array, shape (n_channels,)
        Number of valid entries per row.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise StageCompatibilityError(
            f"Probe positions must have shape (n_channels, 2) in um, but got shape {pos.shape}."
        )
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1))
    near = (dist <= radius_um) & ~np.eye(len(pos), dtype=bool)
    counts = near.sum(axis=1).astype(np.int32)
    neighbours = np.full((len(pos), max(1, int(counts.max(initial=0)))), -1, dtype=np.int32)
    for c in range(len(pos)):
        idx = np.flatnonzero(near[c])
        neighbours[c, : idx.size] = idx[np.argsort(dist[c, idx], kind="stable")]
    return neighbours, counts


def default_positions(n_channels: int, pitch_um: float = 20.0) -> npt.NDArray[np.float64]:
    """A single column of contacts ``pitch_um`` apart, for callers that give no probe geometry."""
    return np.column_stack([np.zeros(n_channels), pitch_um * np.arange(n_channels)])


@numba.njit(cache=True, nogil=True, inline="always")
def is_local_peak(x, t, c, v, sweep, neighbours, n_neighbours):  # pragma: no cover (jitted)
    """True if ``x[t, c] == v`` is the minimum of its channel and its neighbours within ``sweep``.

    Ties go to the earlier sample and, at the same sample, to the lower channel index, so exactly
    one of two equal samples is a peak.
    """
    for dt in range(1, sweep + 1):
        if x[t - dt, c] <= v or x[t + dt, c] < v:
            return False
    for j in range(n_neighbours[c]):
        n = neighbours[c, j]
        for dt in range(-sweep, sweep + 1):
            w = x[t + dt, n]
            if w < v or (w == v and (dt < 0 or (dt == 0 and n < c))):
                return False
    return True


@numba.njit(cache=True, nogil=True)
def detect_peaks(
    x, start, stop, threshold, sweep, refractory, neighbours, n_neighbours
):  # pragma: no cover (jitted)
    """Locally exclusive negative peaks of the noise-normalised ``x`` at samples ``[start, stop)``.

    ``x`` must hold ``sweep`` valid samples on both sides of the range. Returns ``(times,
    channels)`` in time order (then channel order).
    """
    n_channels = x.shape[1]
    cap = 1024
    times = np.empty(cap, np.int64)
    chans = np.empty(cap, np.int32)
    last = np.full(n_channels, -(10**12), np.int64)
    n = 0
    for t in range(start, stop):
        for c in range(n_channels):
            v = x[t, c]
            if v > -threshold or t - last[c] < refractory:
                continue
            if not is_local_peak(x, t, c, v, sweep, neighbours, n_neighbours):
                continue
            if n == cap:
                cap *= 2
                times2 = np.empty(cap, np.int64)
                chans2 = np.empty(cap, np.int32)
                times2[:n] = times[:n]
                chans2[:n] = chans[:n]
                times, chans = times2, chans2
            times[n] = t
            chans[n] = c
            last[c] = t
            n += 1
    return times[:n], chans[:n]
