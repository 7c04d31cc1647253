"""What drives the basal-ganglia network: initial conditions, cortical pulses, DBS pulse schedules.

Shared by the compiled model (:mod:`stimulation.plant.network`) and the numpy oracle
(:mod:`stimulation.plant.reference`), so both integrate the same inputs from the same seed.
Everything here works on the integration grid: time ``k`` is global step ``k`` of ``dt_ms``.

Sources: So RQ, Kent AR, Grill WM (2012), J Comput Neurosci 32:499-519, ModelDB 141699
(``initial.m``, ``createSMC.m``, ``creatdbs.m``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stimulation.plant.parameters import (
    CA_INIT,
    GPE_I_APP_SD,
    I_APP,
    SMC_CV,
    SMC_PULSE_MS,
    SMC_RATE_HZ,
    V_INIT_MEAN_MV,
    V_INIT_SD_MV,
)
from stimulation.pulses import PulseTrain

# Projections averaging two presynaptic cells, in the kernel's order, as offsets on the ring of
# cells (So 2012 BGnetwork.m: S21(i) = S2(i-1), S31(i) = S3(i+1), S32(i) = S3(i-2)).
PROJECTIONS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("gpe->stn", (0, 1)),
    ("stn->gpe", (0, -1)),
    ("gpe->gpe", (1, -2)),
    ("stn->gpi", (0, -1)),
    ("gpe->gpi", (1, -2)),
)


def connectivity(n_cells: int) -> NDArray[np.int64]:
    """Presynaptic cell indices, shape (5, n_cells, 2), for the projections in ``PROJECTIONS``.

    With fewer than three cells the ring offsets wrap onto the same cells (one cell receives its
    own GPe twice, for instance), so every size >= 1 is a valid network.
    """
    cells = np.arange(n_cells)
    pre = np.empty((len(PROJECTIONS), n_cells, 2), dtype=np.int64)
    for p, (_, offsets) in enumerate(PROJECTIONS):
        for q, off in enumerate(offsets):
            pre[p, :, q] = (cells + off) % n_cells
    return pre


def _sig(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


@dataclass
class InitialConditions:
    """Initial state of every cell and the per-cell applied currents of one seeded network."""

    th: NDArray[np.float64]  # (3, n): v, h, r
    stn: NDArray[np.float64]  # (8, n): v, n, h, r, c, ca, s, z
    gpe: NDArray[np.float64]  # (6, n): v, n, h, r, ca, s
    gpi: NDArray[np.float64]  # (7, n): v, n, h, r, ca, s, z
    iapp: NDArray[np.float64]  # (3, n): STN, GPe, GPi applied currents (uA/cm2)
    gpe_offset: NDArray[np.float64]  # (n,): each GPe cell's applied-current offset (uA/cm2)


def applied_currents(state: str, gpe_offset: NDArray[np.float64]) -> NDArray[np.float64]:
    """STN, GPe, GPi applied currents (3, n) of ``state`` (So 2012), the GPe with its offsets."""
    currents = I_APP[state]
    n_cells = gpe_offset.size
    return np.stack(
        [
            np.full(n_cells, currents["stn"]),
            currents["gpe"] + gpe_offset,
            np.full(n_cells, currents["gpi"]),
        ]
    )


def initial_conditions(n_cells: int, state: str, rng: np.random.Generator) -> InitialConditions:
    """Draw the initial state as So 2012's ``initial.m`` and ``BGnetwork.m`` do.

    Membrane potentials ``v ~ N(-62, 5^2)`` mV per cell (TH, STN, GPe, GPi drawn in that order),
    then the GPe applied-current offsets ``N(0, 2^2)``; every gate starts at its steady state for
    the initial ``v``; calcium 0.1; synaptic variables 0.
    """
    v = V_INIT_MEAN_MV + V_INIT_SD_MV * rng.standard_normal((4, n_cells))
    gpe_offset = GPE_I_APP_SD * rng.standard_normal(n_cells)
    v_th, v_stn, v_gpe, v_gpi = v
    th = np.stack([v_th, _sig(-(v_th + 41.0) / 4.0), _sig(-(v_th + 84.0) / 4.0)])
    stn = np.stack(
        [
            v_stn,
            _sig((v_stn + 32.0) / 8.0),
            _sig(-(v_stn + 39.0) / 3.1),
            _sig(-(v_stn + 67.0) / 2.0),
            _sig((v_stn + 20.0) / 8.0),
            np.full(n_cells, CA_INIT),
            np.zeros(n_cells),
            np.zeros(n_cells),
        ]
    )

    def gp(vv: NDArray[np.float64], n_syn: int) -> NDArray[np.float64]:
        rows = [
            vv,
            _sig((vv + 50.0) / 14.0),
            _sig(-(vv + 58.0) / 12.0),
            _sig(-(vv + 70.0) / 2.0),
            np.full(n_cells, CA_INIT),
        ]
        return np.stack(rows + [np.zeros(n_cells)] * n_syn)

    iapp = applied_currents(state, gpe_offset)
    return InitialConditions(
        th=th, stn=stn, gpe=gp(v_gpe, 1), gpi=gp(v_gpi, 2), iapp=iapp, gpe_offset=gpe_offset
    )


def seed_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the initial conditions and for the cortical pulse train."""
    init_seq, smc_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init_seq), np.random.default_rng(smc_seq)


def fluctuation_stream(seed: int) -> np.random.Generator:
    """A third independent generator of ``seed``, for a fluctuating plant's switch times (the
    third child of the same seed sequence, so the other two streams stay as they are)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))


@dataclass
class CorticalPulses:
    """The sensorimotor-cortex (SMC) pulse train into the thalamus, drawn lazily on the step grid.

    So 2012 (``createSMC.m``): pulses of 3.5 uA/cm2 lasting 5 ms; each inter-pulse interval is
    ``1 / f`` with the instantaneous rate ``f ~ Gamma(shape 1/CV^2, scale rate * CV^2)`` (mean
    14 Hz, CV 0.2), rounded to whole steps; the first pulse comes one interval after t = 0.
    Drawing is sequential, so the train does not depend on how a run is split into calls.
    """

    rng: np.random.Generator
    dt_ms: float
    rate_hz: float = SMC_RATE_HZ
    cv: float = SMC_CV
    width_steps: int = field(init=False)
    _onsets: list[int] = field(init=False, default_factory=list)
    _next: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.width_steps = max(1, round(SMC_PULSE_MS / self.dt_ms))
        self._next = self._interval()

    def _interval(self) -> int:
        if self.cv == 0.0:
            rate = self.rate_hz
        else:
            shape = 1.0 / (self.cv * self.cv)
            rate = float(self.rng.gamma(shape, self.rate_hz / shape))
        return max(1, round(1000.0 / rate / self.dt_ms))

    def onsets(self, k0: int, k1: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Onset steps for an integration call over steps ``[k0, k1)``.

        Returns
        -------
        for_kernel : int64 array
            The pulse still on at ``k0`` (if any) followed by the onsets in ``[k0, k1)``.
        new : int64 array
            The onsets in ``[k0, k1)`` (to report in the record).
        """
        while self._next < k1:
            self._onsets.append(self._next)
            self._next += self._interval()
        new = [k for k in self._onsets if k >= k0]
        old = [k for k in self._onsets if k < k0]
        carry = [old[-1]] if old and old[-1] + self.width_steps > k0 else []
        # forget what no later call can need
        self._onsets = carry + new
        return np.asarray(carry + new, dtype=np.int64), np.asarray(new, dtype=np.int64)


@dataclass
class DbsPulses:
    """DBS pulses on the step grid, in the arrays the kernel takes (see ``_kernel.integrate``)."""

    onsets: NDArray[np.int64]
    amps: NDArray[np.float64]
    pw: NDArray[np.int64]
    gap: NDArray[np.int64]
    biphasic: NDArray[np.uint8]

    @classmethod
    def empty(cls) -> DbsPulses:
        return cls(
            np.empty(0, np.int64),
            np.empty(0, np.float64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.uint8),
        )

    def __len__(self) -> int:
        return int(self.onsets.size)

    def end_step(self, i: int) -> int:
        """First step after pulse ``i``."""
        span = self.pw[i] * (2 if self.biphasic[i] else 1) + (
            self.gap[i] if self.biphasic[i] else 0
        )
        return int(self.onsets[i] + span)

    def last(self) -> DbsPulses:
        """The last pulse alone (empty if none)."""
        return DbsPulses(
            self.onsets[-1:], self.amps[-1:], self.pw[-1:], self.gap[-1:], self.biphasic[-1:]
        )

    @staticmethod
    def join(a: DbsPulses, b: DbsPulses) -> DbsPulses:
        return DbsPulses(
            np.concatenate([a.onsets, b.onsets]),
            np.concatenate([a.amps, b.amps]),
            np.concatenate([a.pw, b.pw]),
            np.concatenate([a.gap, b.gap]),
            np.concatenate([a.biphasic, b.biphasic]),
        )


def train_on_grid(train: PulseTrain, onsets: NDArray[np.int64], dt_ms: float) -> DbsPulses:
    """``train``'s pulses at the given onset steps, widths rounded to whole steps (>= 1)."""
    m = onsets.size
    pw = max(1, round(train.pulse_width_us * 1e-3 / dt_ms))
    gap = round(train.interphase_us * 1e-3 / dt_ms)
    return DbsPulses(
        onsets=onsets.astype(np.int64),
        amps=np.full(m, train.amplitude, dtype=np.float64),
        pw=np.full(m, pw, dtype=np.int64),
        gap=np.full(m, gap, dtype=np.int64),
        biphasic=np.full(m, train.waveform == "biphasic", dtype=np.uint8),
    )


def train_onsets(train: PulseTrain, k0: int, k1: int, dt_ms: float) -> NDArray[np.int64]:
    """Onset steps in ``[k0, k1)`` of a train whose onsets are absolute simulated times.

    Times are rounded to the nearest step and selected by step (not by time), so splitting a run
    anywhere gives the same pulses.
    """
    dt_s = dt_ms * 1e-3
    times = train.pulse_times(max(0.0, (k0 - 1) * dt_s - train.period_s), (k1 + 1) * dt_s)
    steps = np.rint(times / dt_s).astype(np.int64)
    return np.unique(steps[(steps >= k0) & (steps < k1)])
