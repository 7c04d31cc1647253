"""Per-channel noise level from the median absolute deviation (robust to the spikes themselves)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bci.sorting.errors import SortingError

#: MAD of a standard normal: ``median(|x|) / 0.6745`` estimates its standard deviation.
MAD_TO_SIGMA = 0.6745


def mad_noise(traces: npt.ArrayLike, floor: float = 1e-6) -> npt.NDArray[np.float64]:
    """Noise standard deviation of each channel, ``median(|x - median(x)|) / 0.6745``.

    The median absolute deviation ignores the few large excursions that spikes make, unlike the
    RMS (Quian Quiroga, Nadasdy & Ben-Shaul 2004, Neural Comput 16:1661, eq. 3.1).

    Parameters
    ----------
    traces : array, shape (n_samples, n_channels)
        Band-passed (spike-band) traces.
    floor : float
        Lower bound of the result, so a dead (flat) channel never divides by zero.

    Returns
    -------
    sigma : float64 array, shape (n_channels,)

    Raises
    ------
    SortingError
        If the traces are empty, not 2-D, or hold NaN.
    """
    x = np.asarray(traces)
    if x.ndim != 2 or x.shape[0] == 0:
        raise SortingError(
            f"Noise estimation needs traces of shape (n_samples, n_channels) with at least one "
            f"sample, but got shape {x.shape}."
        )
    if not np.isfinite(x).all():
        n_bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise SortingError(
            f"Noise estimation got {n_bad} samples holding NaN or inf; calibrate on clean data."
        )
    centred = x - np.median(x, axis=0)
    sigma = np.median(np.abs(centred), axis=0) / MAD_TO_SIGMA
    return np.maximum(sigma.astype(np.float64), floor)
