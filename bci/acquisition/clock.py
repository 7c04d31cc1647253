"""Sample clock: LSL time as a linear function of the sample index, fitted online.

Why our own dejitter instead of liblsl's ``proc_dejitter``: liblsl fits time stamps against the
number of samples it has *received*, so when samples are lost (an outlet that died and came back, a
dropped packet) its smoothed stamps run on as if nothing was missing and the gap disappears from the
time stamps. Gap detection must therefore look at unsmoothed stamps, and the smoothing must count
the samples a gap skipped. We also judge gaps on the outlet's own stamps (``proc_monotonize`` only)
and add liblsl's clock offset afterwards: offset estimates wander by tens of microseconds even on
loopback (more than a sample at 30 kHz), and a new estimate must not read as a missing sample. This
module does both: it fits ``t = t_ref + (k - k_ref) * period`` by exponentially forgetting weighted
least squares over chunk centroids, where ``k`` is the sample index *including* reported gaps, and
judges each new chunk by its residual against the fit before the chunk is added.

The fit is the one liblsl uses in spirit (linear regression with a forgetting half-time, 90 s by
default); the nominal period enters as a prior worth ``prior_s`` seconds of data, so the slope starts
at the nominal rate and follows a drifting device clock (tens to hundreds of ppm) once enough data
have arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float


@dataclass(frozen=True, slots=True)
class ClockVerdict:
    """What the clock makes of a chunk's first time stamp.

    ``gap`` > 0: samples missing before the chunk; ``gap`` < 0: the stamps jumped back by that many
    samples (the fit was restarted); ``residual_s`` is the first stamp minus the fit's prediction.
    """

    gap: int
    residual_s: float


class SampleClock:
    """Online linear fit of LSL time stamps against sample indices, with gap judgement.

    Parameters
    ----------
    sfreq : float
        Nominal sampling rate in Hz.
    halftime_s : float
        Forgetting half-time of the fit in seconds of stream time (liblsl's dejitter uses 90 s).
    prior_s : float
        Weight of the nominal period as a prior, in seconds of evenly spread data.
    gap_threshold_s : float or None
        A chunk whose first stamp is later than predicted by more than this is preceded by a gap.
        ``None``: adaptive, ``jitter_factor`` times the decaying peak of recent residuals, but never
        less than half a sample (so a single missing sample is found when stamps are exact).
    jitter_factor : float
        Multiple of the observed jitter a residual must exceed to count as a gap (adaptive mode).
    initial_jitter_s : float
        Jitter assumed before any residual has been seen.
    """

    def __init__(
        self,
        sfreq: float,
        halftime_s: float = 90.0,
        prior_s: float = 1.0,
        gap_threshold_s: float | None = None,
        jitter_factor: float = 4.0,
        initial_jitter_s: float = 0.5e-3,
    ) -> None:
        self.sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
        self.halftime_s = ensure_float(halftime_s, "halftime_s", minimum=0.0, strict_minimum=True)
        self.prior_s = ensure_float(prior_s, "prior_s", minimum=0.0, strict_minimum=True)
        self.gap_threshold_s = (
            None
            if gap_threshold_s is None
            else ensure_float(gap_threshold_s, "gap_threshold_s", minimum=0.0, strict_minimum=True)
        )
        self.jitter_factor = ensure_float(jitter_factor, "jitter_factor", minimum=1.0)
        self.initial_jitter_s = ensure_float(initial_jitter_s, "initial_jitter_s", minimum=0.0)
        self.nominal_period = 1.0 / self.sfreq
        # Forgetting per sample; the prior's weight as a spread of k (variance of prior_s s of data).
        self._decay_per_sample = math.log(2.0) / (self.halftime_s * self.sfreq)
        n_prior = self.sfreq * self.prior_s
        self._prior_ckk = n_prior * n_prior * n_prior / 12.0
        self._half_sample_s = 0.5 / self.sfreq
        self.reset()

    def reset(self) -> None:
        """Forget the fit (the next chunk anchors a new one)."""
        self._anchored = False
        self._k0 = 0
        self._k_last = 0.0
        self._t0 = 0.0
        self._w = 0.0
        self._kbar = 0.0
        self._tbar = 0.0
        self._ckk = 0.0
        self._ckt = 0.0
        self._period = self.nominal_period
        self._jitter_s = self.initial_jitter_s

    @property
    def anchored(self) -> bool:
        return self._anchored

    @property
    def period_s(self) -> float:
        """Current estimate of the sample period in seconds (nominal until data arrive)."""
        return self._period

    @property
    def jitter_s(self) -> float:
        """Decaying peak of recent absolute residuals of chunk stamps (seconds)."""
        return self._jitter_s

    def threshold_s(self) -> float:
        """Residual above which a chunk is preceded by a gap."""
        if self.gap_threshold_s is not None:
            return max(self.gap_threshold_s, self._half_sample_s)
        return max(self.jitter_factor * self._jitter_s, self._half_sample_s)

    def predict(self, k: float) -> float:
        """LSL time of sample ``k`` according to the current fit."""
        return self._t0 + self._tbar + (k - self._k0 - self._kbar) * self._period

    def judge(self, k_expected: int, t_first: float) -> ClockVerdict:
        """Compare a chunk's first stamp with the fit; return the gap before it (in samples).

        Call before :meth:`update`. A residual within the threshold is jitter (no gap); a late stamp
        beyond it is a gap of ``round(residual * sfreq)`` samples; an early stamp beyond it is a jump
        back in time, which restarts the fit at this chunk.
        """
        if not self._anchored:
            return ClockVerdict(0, 0.0)
        residual = t_first - self.predict(k_expected)
        threshold = self.threshold_s()
        if residual > threshold:
            gap = max(1, round(residual / self._period))
            # The part of the residual a whole number of samples does not explain is jitter.
            self._note_jitter(residual - gap * self._period)
            return ClockVerdict(gap, residual)
        if residual < -threshold:
            gap = min(-1, round(residual / self._period))
            self.reset()
            return ClockVerdict(gap, residual)
        self._note_jitter(residual)
        return ClockVerdict(0, residual)

    def first_break(self, stamps: npt.NDArray[np.float64], k_first: int) -> int:
        """Index of the first stamp after ``stamps[0]`` that does not continue the fit, else ``n``.

        A pull can hold several pushed chunks; a gap (or a jump back) inside it must split it, so
        that each part carries its own ``gap_before``. ``k_first`` is the index given to
        ``stamps[0]`` (after :meth:`judge`). Costs one comparison unless the last stamp is off.
        """
        n = stamps.shape[0]
        if n < 2:
            return n
        if self._anchored:
            base = self.predict(k_first)
        else:
            base = float(stamps[0])
        threshold = self.threshold_s()
        last = float(stamps[n - 1]) - (base + (n - 1) * self._period)
        if abs(last) <= threshold:
            # Stamps never run backwards within a pull (proc_monotonize), and a gap only makes
            # later stamps later, so an on-time last stamp means no break inside.
            return n
        residual = stamps[1:] - (base + np.arange(1, n, dtype=np.float64) * self._period)
        off = np.abs(residual) > threshold
        return int(np.argmax(off)) + 1 if off.any() else n

    def _note_jitter(self, residual: float) -> None:
        # Decaying peak: a single late chunk raises the tolerance at once, which then relaxes with a
        # half-life of 32 chunks, so one slow push does not make the next one look like a gap.
        self._jitter_s = max(abs(residual), self._jitter_s * 0.9786)

    def update(self, k_first: int, n: int, t_mean: float) -> None:
        """Add a chunk of ``n`` samples starting at index ``k_first`` whose stamps average ``t_mean``."""
        k_c = k_first + 0.5 * (n - 1)
        if not self._anchored:
            self._anchored = True
            self._k0 = k_first
            self._t0 = t_mean
            self._w = float(n)
            self._kbar = k_c - k_first
            self._tbar = 0.0
            self._ckk = 0.0
            self._ckt = 0.0
            self._period = self.nominal_period
            self._k_last = k_c
            return
        k_rel = k_c - self._k0
        t_rel = t_mean - self._t0
        # Forget by stream samples elapsed since the last centroid (gaps included).
        decay = math.exp(-self._decay_per_sample * max(k_c - self._k_last, 0.0))
        self._k_last = k_c
        w_old = self._w * decay
        w_new = w_old + n
        dk = k_rel - self._kbar
        dt = t_rel - self._tbar
        share = w_old * n / w_new
        self._ckk = self._ckk * decay + share * dk * dk
        self._ckt = self._ckt * decay + share * dk * dt
        self._kbar += n * dk / w_new
        self._tbar += n * dt / w_new
        self._w = w_new
        self._period = (self._ckt + self._prior_ckk * self.nominal_period) / (
            self._ckk + self._prior_ckk
        )


def deduced_from_zero(stamps: npt.NDArray[np.float64], period_s: float, before: int = 0) -> int:
    """How many leading ``stamps`` liblsl made up before the inlet received a real one, after
    ``before`` such samples already seen (in earlier pulls).

    An outlet that pushes a chunk with one time stamp sends it on the chunk's first sample and
    marks the others "deduced"; the inlet stamps a deduced sample as the previous stamp plus one
    period, and before it has received any real stamp the previous one is 0. An inlet that
    subscribes in the middle of a chunk therefore gets its first samples stamped 1, 2, 3...
    periods after 0 (liblsl issue 161, "First chunk_size - 1 samples getting bad timestamps";
    seen here: 6 samples of a 30-sample chunk, which the sample clock then took for a gap of
    63,125 s, the machine's uptime, before the first real stamp). Their true times are unknown.
    """
    n = stamps.shape[0]
    expected = np.arange(before + 1, before + n + 1, dtype=np.float64) * period_s
    # liblsl adds the period in double precision: exact to ~1e-12 s at these counts
    off = np.abs(stamps - expected) > 1e-6
    return int(np.argmax(off)) if off.any() else n
