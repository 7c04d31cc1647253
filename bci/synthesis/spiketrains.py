"""Spike trains for synthesis: streaming Poisson trains with a refractory period, or given trains.

Both hand out spikes in order as the stream advances (``next(until_sample)``), so an endless stream
never holds more than the spikes of the next chunk. Each unit draws from its own random stream, so
the trains do not depend on how the stream is cut into chunks.

Poisson model: inter-spike intervals are a dead time plus an exponential interval, the classic
Poisson process with dead time (Dayan & Abbott 2001, Theoretical Neuroscience, ch. 1.4); the mean
rate is exactly the requested one. The dead time is ``refractory_ms`` plus one sample, so after
rounding to samples no two spikes of a unit are closer than ``refractory_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import ConfigError

_BATCH = 64


class PoissonSpikeTrains:
    """Streaming Poisson spike trains with an absolute refractory period.

    Parameters
    ----------
    rates_hz : array (n_units,)
        Mean firing rate of each unit in Hz (>= 0, finite).
    refractory_ms : float
        Minimum interval between two spikes of one unit.
    sfreq : float
        Sampling rate in Hz; spikes come out as sample indices.
    rng : numpy.random.Generator
        Parent generator; one child stream is spawned per unit.
    """

    def __init__(
        self,
        rates_hz: npt.ArrayLike,
        refractory_ms: float,
        sfreq: float,
        rng: np.random.Generator,
    ) -> None:
        rates = np.atleast_1d(np.asarray(rates_hz, dtype=np.float64))
        if rates.ndim != 1 or not np.isfinite(rates).all() or (rates < 0).any():
            raise ConfigError(
                "Invalid value for the 'firing_rates_hz' parameter: rates must be finite and >= 0 Hz, "
                f"got {rates_hz!r}."
            )
        refractory_ms = ensure_float(refractory_ms, "refractory_ms", minimum=0.0)
        self.sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
        self.rates_hz = rates
        self.dead_samples = refractory_ms * 1e-3 * self.sfreq + 1.0
        mean_isi = np.full(rates.shape, np.inf)
        np.divide(self.sfreq, rates, out=mean_isi, where=rates > 0)
        too_fast = mean_isi <= self.dead_samples
        if too_fast.any():
            worst = float(rates[too_fast].max())
            raise ConfigError(
                f"Invalid value for the 'firing_rates_hz' parameter: {worst} Hz is impossible with a "
                f"{refractory_ms} ms refractory period (the limit is "
                f"{self.sfreq / self.dead_samples:.1f} Hz)."
            )
        self._scale = mean_isi - self.dead_samples
        self._rngs = rng.spawn(len(rates))
        self._batches = [np.empty(0) for _ in rates]
        self._next = np.full(len(rates), np.inf)
        for u in range(len(rates)):
            if rates[u] > 0:
                self._next[u] = self._draw(u)  # first spike: no dead time before the stream start

    @property
    def n_units(self) -> int:
        return int(self.rates_hz.shape[0])

    def _draw(self, u: int) -> float:
        if self._batches[u].size == 0:
            self._batches[u] = self._rngs[u].exponential(self._scale[u], _BATCH)
        value = float(self._batches[u][0])
        self._batches[u] = self._batches[u][1:]
        return value

    def next(self, until_sample: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Return ``(samples, units)`` of every spike before ``until_sample`` not returned yet,
        sorted by sample (then unit)."""
        samples: list[int] = []
        units: list[int] = []
        for u in range(self.n_units):
            t = self._next[u]
            while t < until_sample:
                samples.append(int(t))
                units.append(u)
                t += self.dead_samples + self._draw(u)
            self._next[u] = t
        s = np.asarray(samples, dtype=np.int64)
        un = np.asarray(units, dtype=np.int64)
        order = np.lexsort((un, s))
        return s[order], un[order]


class GivenSpikeTrains:
    """Hand out user-given spike trains (sample indices per unit) in stream order."""

    def __init__(self, trains_samples: Sequence[npt.ArrayLike]) -> None:
        samples, units = [], []
        for u, train in enumerate(trains_samples):
            arr = np.asarray(train, dtype=np.int64).ravel()
            samples.append(arr)
            units.append(np.full(arr.shape, u, dtype=np.int64))
        s = np.concatenate(samples) if samples else np.zeros(0, np.int64)
        un = np.concatenate(units) if units else np.zeros(0, np.int64)
        order = np.lexsort((un, s))
        self._samples = s[order]
        self._units = un[order]
        self._pos = 0
        self.n_units = len(trains_samples)

    def next(self, until_sample: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Return the given spikes before ``until_sample`` not returned yet, sorted by sample."""
        until_sample = ensure_int(until_sample, "until_sample")
        stop = int(np.searchsorted(self._samples, until_sample, side="left"))
        stop = max(stop, self._pos)
        out = self._samples[self._pos : stop], self._units[self._pos : stop]
        self._pos = stop
        return out


def times_to_samples(
    spike_times_s: Sequence[npt.ArrayLike], sfreq: float, duration_s: float | None = None
) -> list[npt.NDArray[np.int64]]:
    """Convert per-unit spike times (s) to sample indices, checking they are finite and in range."""
    trains = []
    for u, times in enumerate(spike_times_s):
        t = np.asarray(times, dtype=np.float64).ravel()
        if not np.isfinite(t).all():
            raise ConfigError(
                f"Invalid value for the 'spike_times' parameter: unit {u} has NaN or inf times."
            )
        if (t < 0).any() or (duration_s is not None and (t >= duration_s).any()):
            raise ConfigError(
                f"Invalid value for the 'spike_times' parameter: unit {u} has times outside "
                f"[0, {duration_s}) s."
            )
        samples = np.round(t * sfreq).astype(np.int64)
        if duration_s is not None:  # a time just below the end must not round past the last sample
            samples = np.minimum(samples, int(round(duration_s * sfreq)) - 1)
        trains.append(np.sort(samples))
    return trains
