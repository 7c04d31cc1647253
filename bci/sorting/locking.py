"""Pulse-locked units: the test that tells a unit from stimulation-artifact residue.

**Pulse-locked units.** Blanking and residue subtraction never remove an artifact exactly; what
is left just after the skipped windows can cross the threshold at the same few latencies after
many pulses and cluster like a unit. :func:`pulse_locking` compares a unit's latencies (time
since the last pulse) with those of every sample where a spike could have been taken: a neuron
that ignores the stimulator fires at latencies distributed like the available time, an artifact
unit piles up at a few. The statistic is the Kolmogorov-Smirnov distance ``D`` (the largest gap
between the two cumulative distributions: the fraction of the unit's spikes in excess at some
latency range), with Kolmogorov's asymptotic p-value for the unit's spike count. A unit is
locked (:func:`is_pulse_locked`) when ``D >= 0.4`` *and* ``p <= 1e-3``. Why these: in the 130 Hz
scenario of ``benchmarks/bench_sorting.py`` (SpikeInterface ground truth, 20 units), the 8
artifact templates of calibration had ``D`` = 0.59-0.70 (p < 1e-17) and the 18 real units
``D`` <= 0.21 (the largest p-value-significant real unit, 0.13 at p = 4e-4, shows why a p-value
alone is not enough: pulses shape where spikes can be seen, so a few thousand spikes make small
departures significant); 0.4 lies between, and asks that at least 40% of a unit's spikes sit at
pulse-locked latencies. ``p <= 1e-3`` keeps small units from being dropped on chance alone
(with 20 spikes, ``D`` must reach 0.44). A neuron driven by the stimulation with a fixed latency
for most of its spikes cannot be told from residue by timing: the sorter's
``reject_pulse_locked=False`` keeps such units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bci.sorting.pulses import BLOCKED, pulse_mask


def time_since_pulse(
    times: npt.NDArray[np.int64], pulses: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Samples from the latest pulse onset at or before each time; -1 where none precedes it.

    ``pulses`` must be sorted.
    """
    k = np.searchsorted(pulses, times, side="right") - 1
    out = times - pulses[np.clip(k, 0, None)] if pulses.size else np.zeros_like(times)
    return np.where(k >= 0, out, -1).astype(np.int64)


@dataclass(frozen=True)
class PulseLocking:
    """How strongly a unit's spike times follow the stimulation pulses.

    ``distance`` is the Kolmogorov-Smirnov distance between the unit's time-since-pulse
    distribution and that of the time the sorter could have taken a spike; ``p_value`` its
    asymptotic significance for ``n_spikes`` spikes.
    """

    distance: float
    p_value: float
    n_spikes: int


def pulse_locking(
    spike_times: npt.ArrayLike,
    pulses: npt.ArrayLike,
    available: npt.NDArray[np.bool_],
    horizon: int,
) -> PulseLocking:
    """Test whether spike times are locked to the pulses (one-sample Kolmogorov-Smirnov test).

    Under the null hypothesis (a neuron firing independently of the stimulator) the time since
    the last pulse at a spike is distributed as it is over all the samples where a spike could
    have been taken (``available``, which leaves out the windows the sorter skips around each
    pulse): a unit made of artifact residue instead piles its spikes at a few latencies. Times
    since a pulse are capped at ``horizon`` samples (and samples no pulse precedes count as
    ``horizon``), so pulse trains of any rate or regularity are handled alike: at 130 Hz every
    latency is below one period; at 2 Hz, all but the first ``horizon`` samples after each pulse
    are one bin.

    Parameters
    ----------
    spike_times : array of int
        The unit's spike samples (same clock as ``pulses`` and ``available``, all inside
        ``available``'s span).
    pulses : array of int
        Pulse onsets.
    available : bool array (n_samples,)
        Samples where a spike could have been taken.
    horizon : int
        Latencies at or beyond this many samples are one bin.

    Returns
    -------
    PulseLocking
        KS distance, its p-value (Kolmogorov's asymptotic distribution, treating the reference
        as exact: it holds every available sample) and the spike count.
    """
    from scipy.special import kolmogorov

    times = np.asarray(spike_times, dtype=np.int64).ravel()
    pulse_arr = np.sort(np.asarray(pulses, dtype=np.int64).ravel())
    if times.size == 0 or pulse_arr.size == 0:
        return PulseLocking(0.0, 1.0, int(times.size))

    def _latencies(t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        dt = time_since_pulse(t, pulse_arr)
        return np.where((dt < 0) | (dt > horizon), horizon, dt)

    reference = np.bincount(_latencies(np.flatnonzero(available)), minlength=horizon + 1)
    unit = np.bincount(_latencies(times), minlength=horizon + 1)
    if reference.sum() == 0:
        return PulseLocking(0.0, 1.0, int(times.size))
    cdf_ref = np.cumsum(reference) / reference.sum()
    cdf_unit = np.cumsum(unit) / unit.sum()
    distance = float(np.max(np.abs(cdf_unit - cdf_ref)))
    p_value = float(kolmogorov(distance * np.sqrt(times.size)))
    return PulseLocking(distance, p_value, int(times.size))


#: Latencies from a pulse beyond this are one bin of the locking test (ms): longer than any
#: artifact residue after blanking, and than the period of DBS-rate stimulation (>= 50 Hz).
LOCKING_HORIZON_MS = 20.0
#: Fewer pulses than this in calibration: no locking test (too few to tell locking from chance).
MIN_LOCKING_PULSES = 10
#: A unit is pulse-locked when its KS distance reaches this ...
LOCKED_DISTANCE = 0.4
#: ... and the distance is this unlikely under independence.
LOCKED_P_VALUE = 1e-3


def is_pulse_locked(stat: PulseLocking) -> bool:
    """A unit of stimulation-artifact residue rather than a neuron (thresholds in module notes)."""
    return stat.distance >= LOCKED_DISTANCE and stat.p_value <= LOCKED_P_VALUE


def _capped(latency: npt.NDArray[np.int64], horizon: int) -> npt.NDArray[np.int64]:
    return np.where((latency < 0) | (latency > horizon), horizon, latency)


class LockingMonitor:
    """The same test, run online on the spikes a sorter emits: flags units that become locked.

    Keeps, per unit, a histogram of its spikes' latencies (capped at ``horizon``), and one of the
    samples where a spike could have been taken (outside the ``blocked`` window around every
    pulse); every ``check_every`` new spikes of a unit (from ``min_spikes`` on) the unit is
    tested with :func:`is_pulse_locked`. A flagged unit stays flagged (the sorter makes a new
    monitor on ``reset``). Costs a few ``searchsorted`` and ``bincount`` calls per ``batch``
    samples, only once pulses exist.

    Parameters
    ----------
    n_units : int
        Units of the sorter.
    horizon : int
        Latency cap in samples (:data:`LOCKING_HORIZON_MS`).
    blocked : (int, int)
        Window around each pulse where no spike is taken, in samples from its onset.
    check_every, min_spikes : int
        Test cadence and the smallest spike count tested.
    batch : int
        Samples of emitted spans gathered before they are counted.
    """

    def __init__(
        self,
        n_units: int,
        horizon: int,
        blocked: tuple[int, int],
        check_every: int = 25,
        min_spikes: int = 25,
        batch: int = 300,
    ) -> None:
        self.horizon = horizon
        self.batch = batch
        self.blocked = blocked
        self.check_every = check_every
        self.min_spikes = min_spikes
        self.reference = np.zeros(horizon + 1, np.int64)
        self.counts = np.zeros((n_units, horizon + 1), np.int64)
        self.unchecked = np.zeros(n_units, np.int64)
        #: True for each unit found locked to the pulses
        self.locked = np.zeros(n_units, bool)
        self._pulses = np.zeros(0, np.int64)
        self._span: tuple[int, int] | None = None
        self._times: list[npt.NDArray[np.int64]] = []
        self._units: list[npt.NDArray[np.int64]] = []

    def add_pulses(self, pulses: npt.NDArray[np.int64]) -> None:
        """Pulse onsets on the clock of the spans given to :meth:`observe`."""
        self._pulses = np.unique(np.concatenate([self._pulses, pulses]))

    @property
    def active(self) -> bool:
        """Whether any pulse was seen (without pulses there is nothing to test)."""
        return self._pulses.size > 0

    def observe(
        self, first: int, last: int, times: npt.NDArray[np.int64], units: npt.NDArray[np.int64]
    ) -> None:
        """Count the span ``[first, last]`` and its labelled spikes (``units`` >= 0); test units.

        Spans are gathered and counted ``batch`` samples at a time (the per-call overhead of the
        histograms would otherwise dominate with 1 ms chunks).
        """
        if last < first or not self.active:
            return
        start = first if self._span is None else self._span[0]
        self._span = (start, last)
        sel = units >= 0
        if sel.any():
            self._times.append(np.asarray(times[sel], np.int64))
            self._units.append(np.asarray(units[sel], np.int64))
        if last - start + 1 >= self.batch:
            self.update()

    def update(self) -> None:
        """Count what :meth:`observe` gathered and test the units with enough new spikes."""
        if self._span is None:
            return
        first, last = self._span
        self._span = None
        # only the last pulse before the span and those whose window reaches into it matter
        lo = max(int(np.searchsorted(self._pulses, first, side="right")) - 1, 0)
        hi = int(np.searchsorted(self._pulses, last - self.blocked[0], side="right"))
        pulses = self._pulses[lo:hi]
        span = np.arange(first, last + 1, dtype=np.int64)
        free = pulse_mask(pulses, first, span.size, self.blocked) != BLOCKED
        lat = _capped(time_since_pulse(span, pulses), self.horizon)
        self.reference += np.bincount(lat[free], minlength=self.horizon + 1)
        if self._units:
            u = np.concatenate(self._units)
            lat_s = _capped(time_since_pulse(np.concatenate(self._times), pulses), self.horizon)
            self._times, self._units = [], []
            np.add.at(self.counts, (u, lat_s), 1)
            self.unchecked += np.bincount(u, minlength=self.counts.shape[0])
            for k in np.flatnonzero(self.unchecked >= self.check_every):
                self.unchecked[k] = 0
                if not self.locked[k] and self.counts[k].sum() >= self.min_spikes:
                    self.locked[k] = is_pulse_locked(self._test(int(k)))
        # keep the last pulse before the horizon: latencies beyond it are capped anyway
        keep_from = np.searchsorted(self._pulses, last - self.horizon, side="right") - 1
        if keep_from > 0:
            self._pulses = self._pulses[keep_from:]

    def _test(self, unit: int) -> PulseLocking:
        from scipy.special import kolmogorov

        n = int(self.counts[unit].sum())
        cdf_unit = np.cumsum(self.counts[unit]) / n
        cdf_ref = np.cumsum(self.reference) / max(int(self.reference.sum()), 1)
        distance = float(np.max(np.abs(cdf_unit - cdf_ref)))
        return PulseLocking(distance, float(kolmogorov(distance * np.sqrt(n))), n)
