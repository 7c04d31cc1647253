"""Stimulation pulses as the sorter sees them: windows to skip and the residue they leave.

Whether a unit is locked to the pulses is :mod:`bci.sorting.locking`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Mask values: 0 detect as usual, 1 take no peak, 2 take only full-threshold peaks.
FREE, BLOCKED, STRICT = 0, 1, 2


def pulse_mask(
    pulses: npt.NDArray[np.int64],
    first: int,
    n: int,
    window: tuple[int, int],
    strict_until: int | None = None,
) -> npt.NDArray[np.uint8]:
    """One flag per sample of ``[first, first + n)``: :data:`BLOCKED` within ``window`` (samples
    from each pulse onset, both ends included), :data:`STRICT` after it up to ``strict_until``."""
    lo, hi = window
    mask = np.zeros(n, np.uint8)
    if strict_until is not None:
        for a, b in zip(
            np.clip(pulses + hi + 1 - first, 0, n).tolist(),
            np.clip(pulses + strict_until + 1 - first, 0, n).tolist(),
            strict=True,
        ):
            mask[a:b] = STRICT
    for a, b in zip(
        np.clip(pulses + lo - first, 0, n).tolist(),
        np.clip(pulses + hi + 1 - first, 0, n).tolist(),
        strict=True,
    ):
        mask[a:b] = BLOCKED
    return mask


def learn_residue(
    xn: npt.NDArray[np.float32], pulses: npt.NDArray[np.int64], window: tuple[int, int]
) -> npt.NDArray[np.float32] | None:
    """Median preprocessed signal around the pulses (what blanking upstream leaves behind).

    ``None`` with fewer than 10 pulses whose whole window lies inside ``xn``.
    """
    lo, hi = window
    inside = pulses[(pulses + lo >= 0) & (pulses + hi < xn.shape[0])]
    if inside.size < 10:
        return None
    idx = inside[:, None] + np.arange(lo, hi + 1)[None, :]
    return np.median(xn[idx], axis=0).astype(np.float32)


class PulseSchedule:
    """The stimulation pulses a live stream has announced, and the mask they put on each scan.

    Parameters
    ----------
    window : (int, int)
        Samples from each onset where no spike is taken (:data:`BLOCKED`).
    tail : int
        Samples from each onset up to which only full-threshold peaks are taken (:data:`STRICT`).
    """

    def __init__(self, window: tuple[int, int], tail: int) -> None:
        self.window, self.tail = window, tail
        self.pulses = np.zeros(0, np.int64)
        self._no_mask = np.zeros(0, np.uint8)

    def add(self, onsets: npt.NDArray[np.int64]) -> None:
        """Register pulse onsets (stream sample indices)."""
        self.pulses = np.unique(np.concatenate([self.pulses, onsets]))

    def mask(self, first: int, n: int) -> npt.NDArray[np.uint8]:
        """The mask of samples ``[first, first + n)`` (read-only: may be shared between calls)."""
        if self.pulses.size == 0:
            if self._no_mask.shape[0] != n:
                self._no_mask = np.zeros(n, np.uint8)
            return self._no_mask
        start, end = self.window
        # only pulses whose window or tail reaches into [first, first + n) (pulse_mask loops
        # over the pulses it gets, and a replay may register thousands ahead)
        lo, hi = np.searchsorted(
            self.pulses, [first - max(end, self.tail), first + n - start], side="left"
        )
        return pulse_mask(self.pulses[lo:hi], first, n, self.window, self.tail)

    def forget_before(self, horizon: int) -> None:
        """Forget the pulses whose window and tail end before sample ``horizon``."""
        if self.pulses.size:
            reach = max(self.window[1], self.tail)
            self.pulses = self.pulses[self.pulses + reach >= horizon]
