"""A fluctuating plant: Parkinsonian severity that switches on and off, as symptoms come and go.

Patients' beta comes in bursts and their state drifts with medication and movement; a plant whose
Parkinsonian state never changes leaves adaptive DBS nothing to adapt to. With
``plant="fluctuating"`` the network's applied currents switch between the healthy and the
Parkinsonian settings of So, Kent & Grill (2012): STN 33 <-> 23, GPe 21 <-> 8 (each GPe cell
keeps its own fixed N(0, 2^2) offset in both), GPi 22 <-> 16 uA/cm2.

Protocol
--------
- The nominal state (0 healthy, 1 Parkinsonian) is a two-state Markov (telegraph) process: each
  dwell is exponentially distributed, with mean ``mean_dwell_healthy_s`` in the healthy state and
  ``mean_dwell_pd_s`` in the Parkinsonian one (2 s each by default, so the plant is Parkinsonian
  half of the time), rounded to whole integration steps (at least one). The first dwell starts at
  t = 0 in the network's ``state``.
- The severity ``s`` in [0, 1] follows the nominal state with a linear ramp: it moves towards the
  state at a rate of ``1 / ramp_s`` per second (0.1 s for a full switch by default), so a switch
  changes the currents over about 100 ms rather than in one 10-us step; a dwell shorter than the
  ramp reverses it part-way. ``ramp_s = 0`` switches in one step.
- Every cell's applied current is ``I_healthy + s (I_pd - I_healthy)`` during a step of severity
  ``s``.
- The switch times are drawn from their own random stream of the network's seed (independent of
  the initial conditions and of the cortical pulses, which stay those of the stationary network
  of the same seed), lazily and sequentially, so they do not depend on how a run is split.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from bci.checks import ensure_float
from stimulation.errors import PlantParameterError

PLANTS: tuple[str, ...] = ("stationary", "fluctuating")


@dataclass(frozen=True)
class Fluctuation:
    """Parameters of the fluctuating plant (module docstring).

    Attributes
    ----------
    mean_dwell_healthy_s, mean_dwell_pd_s : float
        Mean dwell time (s) in the healthy and in the Parkinsonian state, > 0.
    ramp_s : float
        Time (s) of a full severity change, >= 0.
    """

    mean_dwell_healthy_s: float = 2.0
    mean_dwell_pd_s: float = 2.0
    ramp_s: float = 0.1

    def __post_init__(self) -> None:
        err = PlantParameterError
        for name in ("mean_dwell_healthy_s", "mean_dwell_pd_s"):
            ensure_float(getattr(self, name), name, minimum=0.0, strict_minimum=True, error=err)
        ensure_float(self.ramp_s, "ramp_s", minimum=0.0, error=err)

    @property
    def pd_fraction(self) -> float:
        """Long-run fraction of time in the Parkinsonian state."""
        return self.mean_dwell_pd_s / (self.mean_dwell_pd_s + self.mean_dwell_healthy_s)


@dataclass
class _Segment:
    """A dwell: from step ``start`` the nominal state is ``pd``; ``s_before`` is the severity
    of step ``start - 1``."""

    start: int
    pd: int
    s_before: float


@dataclass
class SeverityProcess:
    """The severity of one network, drawn lazily on the step grid (module docstring).

    Parameters
    ----------
    rng : numpy.random.Generator
        Stream of the switch times.
    dt_ms : float
        Integration step (ms).
    params : Fluctuation
        Dwell and ramp times.
    start_pd : bool
        Nominal state of the first dwell.
    """

    rng: np.random.Generator
    dt_ms: float
    params: Fluctuation
    start_pd: bool
    _segments: list[_Segment] = field(init=False)
    _starts: list[int] = field(init=False)
    _next_start: int = field(init=False)
    _rate: float = field(init=False)  # severity change per step (inf: a jump)

    def __post_init__(self) -> None:
        s0 = 1.0 if self.start_pd else 0.0
        self._segments = [_Segment(0, int(self.start_pd), s0)]
        self._starts = [0]
        ramp_steps = self.params.ramp_s * 1e3 / self.dt_ms
        self._rate = math.inf if ramp_steps == 0.0 else 1.0 / ramp_steps
        self._next_start = self._dwell(int(self.start_pd))

    def _dwell(self, pd: int) -> int:
        mean_s = self.params.mean_dwell_pd_s if pd else self.params.mean_dwell_healthy_s
        return max(1, round(float(self.rng.exponential(mean_s)) * 1e3 / self.dt_ms))

    def _segment_values(self, seg: _Segment, j0: int, j1: int) -> NDArray[np.float64]:
        """Severity of steps ``seg.start + j`` for ``j0 <= j < j1``."""
        j = np.arange(j0 + 1, j1 + 1, dtype=np.float64)
        if seg.pd:
            return np.minimum(1.0, seg.s_before + j * self._rate)
        return np.maximum(0.0, seg.s_before - j * self._rate)

    def _extend(self, k1: int) -> None:
        while self._next_start < k1:
            last = self._segments[-1]
            start = self._next_start
            s_before = float(
                self._segment_values(last, start - 1 - last.start, start - last.start)[0]
            )
            pd = 1 - last.pd
            self._segments.append(_Segment(start, pd, s_before))
            self._starts.append(start)
            self._next_start = start + self._dwell(pd)

    def values(self, k0: int, k1: int) -> NDArray[np.float64]:
        """Severity of each step in ``[k0, k1)``."""
        self._extend(k1)
        out = np.empty(k1 - k0)
        segments = self._segments
        first = max(0, bisect.bisect_right(self._starts, k0) - 1)
        for i in range(first, len(segments)):
            seg = segments[i]
            end = segments[i + 1].start if i + 1 < len(segments) else self._next_start
            lo, hi = max(k0, seg.start), min(k1, end)
            if lo < hi:
                out[lo - k0 : hi - k0] = self._segment_values(seg, lo - seg.start, hi - seg.start)
        return out

    def state_at(self, k: int) -> tuple[int, float]:
        """Nominal state (0 healthy, 1 Parkinsonian) and severity of step ``k``."""
        self._extend(k + 1)
        seg = self._segments[bisect.bisect_right(self._starts, k) - 1]
        return seg.pd, float(self._segment_values(seg, k - seg.start, k - seg.start + 1)[0])

    def switches(self, k1: int) -> list[tuple[int, int]]:
        """(first step, nominal state) of every dwell that starts before step ``k1``."""
        self._extend(k1)
        return [(s.start, s.pd) for s in self._segments if s.start < k1]
