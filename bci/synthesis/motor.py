"""A synthetic motor cortex: cosine-tuned units driven by reaching movements.

Each unit fires as an inhomogeneous Poisson process with an absolute refractory period whose rate
follows the hand velocity a little ahead of time (Georgopoulos et al. 1982, J Neurosci 2:1527;
velocity tuning as in Moran & Schwartz 1999, J Neurophysiol 82:2676)::

    drive_u(t) = baseline_hz[u] + (modulation_hz[u] * (v . d_u) + speed_hz[u] * |v|) / speed_ref
    rate_u(t)  = max(0, drive_u(t)) * exp(gain_sd * g_u(t) - gain_sd**2 / 2)

with ``v = v(t + lead_s[u])``, ``d_u = (cos pd_u, sin pd_u)`` the preferred direction,
``speed_ref`` = 20 cm/s, and ``g_u`` a unit-variance Ornstein-Uhlenbeck process (time constant
``gain_tau_s``): slow fluctuations of excitability that make the counts over-dispersed, as
recorded counts are (Goris, Movshon & Simoncelli 2014, Nat Neurosci 17:858). The hand
makes minimum-jerk reaches (Flash & Hogan 1985, J Neurosci 5:1688), either centre-out (centre ->
one of 8 targets -> centre, as in the classic task) or between random targets in a square
workspace, with holds in between.

Spikes are drawn by time rescaling: a unit spikes when its integrated rate since the end of its
last refractory period reaches an exponential(1) draw; rates are piecewise constant over 1-ms
steps. The trains depend only on the seed, never on how a stream is cut into chunks.

Two uses:

- :func:`simulate_reaching` gives binned counts and velocities for offline decoding (no voltage);
- :class:`MotorSource` renders the same units to broadband voltage through the toolkit's renderer
  (one unit next to each contact of a Utah-like grid) for a live stream; ``bci source motor``
  publishes it with a kinematics stream (:mod:`bci.synthesis.motor_stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import ConfigError
from bci.synthesis.probe import make_probe
from bci.synthesis.source import SyntheticSource

#: Reaching tasks :class:`ReachingTrajectory` can generate.
TASKS: tuple[str, ...] = ("center_out", "random")
#: Speed (cm/s) at which a unit's rate is ``baseline_hz +/- modulation_hz``.
SPEED_REF_CM_S = 20.0
#: Step of the rate functions (s).
RATE_DT_S = 0.001


class ReachingTrajectory:
    """Hand position and velocity (cm, cm/s) of an endless sequence of minimum-jerk reaches.

    Parameters
    ----------
    task : {"center_out", "random"}
        Centre-out to 8 targets at ``radius_cm`` and back, or random targets in a square of side
        ``2 * radius_cm``.
    seed : int
        Seeds the targets and timing.
    radius_cm : float
        Target distance (centre-out) or half the workspace side (random).
    reach_s : (float, float)
        Range of movement durations.
    hold_s : (float, float)
        Range of holds at each target.
    """

    def __init__(
        self,
        task: str = "center_out",
        seed: int = 0,
        radius_cm: float = 10.0,
        reach_s: tuple[float, float] = (0.5, 0.9),
        hold_s: tuple[float, float] = (0.1, 0.4),
    ) -> None:
        self.task = check_value(task, TASKS, "task")
        self.radius_cm = ensure_float(radius_cm, "radius_cm", minimum=0.0, strict_minimum=True)
        self.reach_s = reach_s
        self.hold_s = hold_s
        if not (0 < reach_s[0] <= reach_s[1]) or not (0 <= hold_s[0] <= hold_s[1]):
            raise ConfigError(
                f"Invalid value for the 'reach_s'/'hold_s' parameters: ranges must be increasing "
                f"and positive, got {reach_s} and {hold_s}."
            )
        self._rng = np.random.default_rng(ensure_int(seed, "seed", minimum=0))
        # segments: start time, duration, start point, end point (a hold has equal points)
        self._t0: list[float] = []
        self._dur: list[float] = []
        self._p0: list[npt.NDArray[np.float64]] = []
        self._p1: list[npt.NDArray[np.float64]] = []
        self._end_t = 0.0
        self._pos = np.zeros(2)
        self._k = 0
        self._arrays: tuple[npt.NDArray[np.float64], ...] | None = None

    def _next_target(self) -> npt.NDArray[np.float64]:
        if self.task == "center_out":
            if self._k % 2 == 1:
                return np.zeros(2)
            angle = 2 * np.pi * int(self._rng.integers(8)) / 8
            return self.radius_cm * np.array([np.cos(angle), np.sin(angle)])
        return self._rng.uniform(-self.radius_cm, self.radius_cm, size=2)

    def _add(self, duration: float, target: npt.NDArray[np.float64]) -> None:
        self._t0.append(self._end_t)
        self._dur.append(duration)
        self._p0.append(self._pos)
        self._p1.append(target)
        self._end_t += duration
        self._pos = target
        self._arrays = None

    def _extend(self, t_s: float) -> None:
        while self._end_t <= t_s:
            self._add(float(self._rng.uniform(*self.hold_s)) + 1e-9, self._pos)
            self._add(float(self._rng.uniform(*self.reach_s)), self._next_target())
            self._k += 1

    def state(self, t_s: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Position and velocity at times ``t_s`` (>= 0): two arrays of shape ``(n, 2)``."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        if t.size and t.min() < 0:
            raise ConfigError("Trajectory times must be >= 0.")
        self._extend(float(t.max()) if t.size else 0.0)
        if self._arrays is None:
            self._arrays = (
                np.asarray(self._t0),
                np.asarray(self._dur),
                np.asarray(self._p0),
                np.asarray(self._p1),
            )
        t0, dur, p0, p1 = self._arrays
        k = np.searchsorted(t0, t, side="right") - 1
        tau = np.clip((t - t0[k]) / dur[k], 0.0, 1.0)[:, None]
        delta = p1[k] - p0[k]
        shape = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        dshape = (30 * tau**2 - 60 * tau**3 + 30 * tau**4) / dur[k][:, None]
        return p0[k] + delta * shape, delta * dshape


@dataclass(frozen=True)
class MotorUnits:
    """Tuning of a population of motor-cortex units (all arrays of shape ``(n_units,)``)."""

    preferred_direction_rad: npt.NDArray[np.float64]
    baseline_hz: npt.NDArray[np.float64]
    modulation_hz: npt.NDArray[np.float64]
    lead_s: npt.NDArray[np.float64]
    speed_hz: npt.NDArray[np.float64]
    gain_sd: float = 0.0
    gain_tau_s: float = 0.2

    @property
    def n_units(self) -> int:
        return int(self.baseline_hz.shape[0])

    def rates_hz(
        self, trajectory: ReachingTrajectory, t_s: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """Firing rates ``(n_times, n_units)`` at times ``t_s`` (velocity read ``lead_s`` ahead),
        before the gain fluctuations."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        times = t[:, None] + self.lead_s[None, :]
        _, vel = trajectory.state(times.reshape(-1))
        return self.rates_from_velocity(vel.reshape(t.size, self.n_units, 2))

    def rates_from_velocity(self, vel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Rates ``(n, n_units)`` from each unit's (lead-shifted) velocity ``(n, n_units, 2)``."""
        proj = vel[..., 0] * np.cos(self.preferred_direction_rad) + vel[..., 1] * np.sin(
            self.preferred_direction_rad
        )
        speed = np.hypot(vel[..., 0], vel[..., 1])
        drive = (
            self.baseline_hz + (self.modulation_hz * proj + self.speed_hz * speed) / SPEED_REF_CM_S
        )
        return np.maximum(0.0, drive)


def make_motor_units(
    n_units: int = 96,
    seed: int = 0,
    *,
    baseline_hz: tuple[float, float] = (5.0, 20.0),
    modulation_hz: tuple[float, float] = (2.0, 8.0),
    speed_hz: tuple[float, float] = (0.0, 10.0),
    lead_s: tuple[float, float] = (0.05, 0.15),
    gain_sd: float = 0.4,
    gain_tau_s: float = 0.2,
) -> MotorUnits:
    """Draw a population: uniform preferred directions, and uniform ranges for the rest."""
    n_units = ensure_int(n_units, "n_units", minimum=1)
    rng = np.random.default_rng(ensure_int(seed, "seed", minimum=0))
    for name, (lo, hi) in (
        ("baseline_hz", baseline_hz),
        ("modulation_hz", modulation_hz),
        ("speed_hz", speed_hz),
        ("lead_s", lead_s),
    ):
        if not (0 <= lo <= hi):
            raise ConfigError(
                f"Invalid value for the '{name}' parameter: expected 0 <= low <= high, got {(lo, hi)}."
            )
    return MotorUnits(
        rng.uniform(0, 2 * np.pi, n_units),
        rng.uniform(*baseline_hz, n_units),
        rng.uniform(*modulation_hz, n_units),
        np.round(rng.uniform(*lead_s, n_units) / RATE_DT_S) * RATE_DT_S,  # on the rate grid
        rng.uniform(*speed_hz, n_units),
        ensure_float(gain_sd, "gain_sd", minimum=0.0),
        ensure_float(gain_tau_s, "gain_tau_s", minimum=0.0, strict_minimum=True),
    )


@numba.njit(cache=True, nogil=True)
def _rescale_spikes(rates, dt, t_start, refractory, need, dead_until, exps, exp_pos, out_t, out_u):
    """Time-rescaling spikes of piecewise-constant rates ``(n_steps, n_units)``; returns count.

    ``need[u]`` is the integrated rate still needed for unit ``u``'s next spike, ``dead_until[u]``
    the end of its refractory period; both are carried. ``exps[u, exp_pos[u]]`` is the next
    exponential(1) draw of unit ``u``.
    """  # pragma: no cover (jitted)
    k = 0
    n_steps, n_units = rates.shape
    for i in range(n_steps):
        t0 = t_start + i * dt
        t1 = t0 + dt
        for u in range(n_units):
            r = rates[i, u]
            s = max(t0, dead_until[u])
            while s < t1 and r > 0.0:
                hazard = r * (t1 - s)
                if need[u] <= hazard:
                    s = s + need[u] / r
                    out_t[k] = s
                    out_u[k] = u
                    k += 1
                    need[u] = exps[u, exp_pos[u]]
                    exp_pos[u] += 1
                    dead_until[u] = s + refractory
                    s = dead_until[u]
                else:
                    need[u] -= hazard
                    break
    return k


class MotorSpikeTrains:
    """Streaming spike trains of :class:`MotorUnits` on a :class:`ReachingTrajectory`.

    Generated in blocks of ``block_s`` seconds; :meth:`until` and :meth:`next` hand out spikes in
    time order. Unit ``u``'s random stream is its own, so the trains do not depend on the chunking.
    """

    def __init__(
        self,
        units: MotorUnits,
        trajectory: ReachingTrajectory,
        seed: int = 0,
        refractory_ms: float = 2.0,
        sfreq: float = 30000.0,
        block_s: float = 1.0,
    ) -> None:
        self.units = units
        self.trajectory = trajectory
        self.refractory_s = ensure_float(refractory_ms, "refractory_ms", minimum=0.0) * 1e-3
        self.sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
        self.block_steps = max(1, int(round(block_s / RATE_DT_S)))
        root = np.random.default_rng(ensure_int(seed, "seed", minimum=0))
        self._gain_rng = root.spawn(1)[0]
        self._rngs = root.spawn(units.n_units)
        self._gain = self._gain_rng.standard_normal(units.n_units)
        self._need = np.array([r.exponential() for r in self._rngs])
        self._dead = np.zeros(units.n_units)
        self._step = 0
        self._times = np.zeros(0)
        self._units = np.zeros(0, dtype=np.int64)
        self.n_units = units.n_units

    def _block(self) -> None:
        n = self.block_steps
        # velocity on the 1-ms grid, each unit reading it lead_steps ahead
        lead_steps = np.round(self.units.lead_s / RATE_DT_S).astype(np.int64)
        grid = (self._step + np.arange(n + int(lead_steps.max()) + 1)) * RATE_DT_S
        _, vel = self.trajectory.state(grid)
        ahead = vel[np.arange(n)[:, None] + lead_steps[None, :]]
        rates = self.units.rates_from_velocity(ahead)
        if self.units.gain_sd > 0:
            rates *= np.exp(self.units.gain_sd * self._ou(n) - self.units.gain_sd**2 / 2)
        max_per_unit = int(n * RATE_DT_S / max(self.refractory_s, 1e-4)) + 2
        max_per_unit = min(max_per_unit, int(rates.max(initial=0.0) * n * RATE_DT_S * 3) + 20)
        exps = np.stack([r.exponential(size=max_per_unit) for r in self._rngs])
        exp_pos = np.zeros(self.n_units, dtype=np.int64)
        cap = max_per_unit * self.n_units
        out_t = np.zeros(cap)
        out_u = np.zeros(cap, dtype=np.int64)
        k = _rescale_spikes(
            rates, RATE_DT_S, self._step * RATE_DT_S, self.refractory_s, self._need, self._dead,
            exps, exp_pos, out_t, out_u,
        )  # fmt: skip
        # the draws a unit did not use are dropped, so the next block starts from fresh ones
        order = np.argsort(out_t[:k], kind="stable")
        self._times = np.concatenate([self._times, out_t[:k][order]])
        self._units = np.concatenate([self._units, out_u[:k][order]])
        self._step += n

    def _ou(self, n: int) -> npt.NDArray[np.float64]:
        """``n`` steps of the unit-variance OU gain process of every unit, carried across blocks."""
        a = np.exp(-RATE_DT_S / self.units.gain_tau_s)
        noise = self._gain_rng.standard_normal((n, self.n_units)) * np.sqrt(1 - a * a)
        out, _ = lfilter([1.0], [1.0, -a], noise, axis=0, zi=a * self._gain[None, :])
        self._gain = out[-1].copy()
        return np.asarray(out)

    def until(self, t_s: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Spike times (s) and units of every spike before ``t_s`` not handed out yet."""
        while self._step * RATE_DT_S < t_s:
            self._block()
        stop = int(np.searchsorted(self._times, t_s, side="left"))
        out = self._times[:stop], self._units[:stop]
        self._times, self._units = self._times[stop:], self._units[stop:]
        return out

    def next(self, until_sample: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """The :class:`~bci.synthesis.spiketrains.PoissonSpikeTrains` interface: sample indices."""
        # a spike belongs to the sample it falls in; the search is on times, so round first
        t_lim = until_sample / self.sfreq
        times, units = self.until(t_lim)
        samples = np.floor(times * self.sfreq).astype(np.int64)
        order = np.lexsort((units, samples))
        return samples[order], units[order]


@dataclass(frozen=True)
class MotorDataset:
    """Binned counts and hand velocity of a simulated reaching session.

    ``counts[i, u]`` holds unit ``u``'s spikes in ``[i * bin_s, (i + 1) * bin_s)`` and
    ``velocity[i]`` the mean velocity (cm/s) over the same bin; ``position[i]`` the position at
    its end.
    """

    counts: npt.NDArray[np.float32]
    velocity: npt.NDArray[np.float64]
    position: npt.NDArray[np.float64]
    bin_s: float
    units: MotorUnits

    @property
    def output_names(self) -> tuple[str, str]:
        return ("vx", "vy")


def bin_velocity(
    trajectory: ReachingTrajectory, first_bin: int, n_bins: int, bin_s: float
) -> npt.NDArray[np.float64]:
    """Mean velocity (cm/s) over bins ``first_bin ..``: displacement over each bin / ``bin_s``."""
    edges = (first_bin + np.arange(n_bins + 1)) * bin_s
    pos, _ = trajectory.state(edges)
    return np.diff(pos, axis=0) / bin_s


def simulate_reaching(
    n_units: int = 96,
    duration_s: float = 600.0,
    bin_s: float = 0.02,
    seed: int = 0,
    task: str = "random",
    refractory_ms: float = 2.0,
    population_seed: int | None = None,
    **unit_kwargs: Any,
) -> MotorDataset:
    """Simulate a reaching session and bin it: the offline decoding data set (no voltage).

    The same ``seed`` (and ``population_seed``) gives the same units, movements and spikes as
    :class:`MotorSource`. ``population_seed`` draws the units' tuning instead of ``seed`` (see
    :class:`MotorSource`); ``None`` leaves it to ``seed``.
    """
    duration_s = ensure_float(duration_s, "duration_s", minimum=0.0, strict_minimum=True)
    bin_s = ensure_float(bin_s, "bin_s", minimum=0.0, strict_minimum=True)
    units, traj, trains = _population(
        n_units, seed, task, refractory_ms, 30000.0, unit_kwargs, population_seed
    )
    n_bins = int(duration_s / bin_s + 1e-9)
    times, unit_idx = trains.until(n_bins * bin_s)
    idx = np.minimum((times / bin_s).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx * n_units + unit_idx, minlength=n_bins * n_units)
    pos, _ = traj.state((np.arange(n_bins) + 1) * bin_s)
    return MotorDataset(
        counts.reshape(n_bins, n_units).astype(np.float32),
        bin_velocity(traj, 0, n_bins, bin_s),
        pos,
        bin_s,
        units,
    )


def _population(
    n_units: int,
    seed: int,
    task: str,
    refractory_ms: float,
    sfreq: float,
    unit_kwargs: dict[str, Any],
    population_seed: int | None = None,
) -> tuple[MotorUnits, ReachingTrajectory, MotorSpikeTrains]:
    seed = ensure_int(seed, "seed", minimum=0)
    ss = np.random.SeedSequence(seed)
    unit_seed, traj_seed, train_seed = (int(s.generate_state(1)[0]) for s in ss.spawn(3))
    if population_seed is not None:
        # the units ``seed == population_seed`` would draw: one population, many sessions
        pop = np.random.SeedSequence(ensure_int(population_seed, "population_seed", minimum=0))
        unit_seed = int(pop.spawn(3)[0].generate_state(1)[0])
    units = make_motor_units(n_units, unit_seed, **unit_kwargs)
    traj = ReachingTrajectory(task, traj_seed)
    trains = MotorSpikeTrains(units, traj, train_seed, refractory_ms, sfreq)
    return units, traj, trains


class MotorSource(SyntheticSource):
    """A live synthetic motor cortex: voltage of a Utah-like grid, one unit beside each contact.

    Reads like :class:`~bci.synthesis.source.SyntheticSource` (``read(n) -> (voltage, spikes)``),
    so :class:`~bci.synthesis.publisher.SyntheticPublisher` streams it; :meth:`velocity` gives the
    hand velocity that goes with it (``bci source motor`` publishes both).

    Parameters
    ----------
    n_units : int
        Units, one per contact (channels = units).
    seed : int
        Seeds units, movements, spikes, templates and noise (same units and spikes as
        :func:`simulate_reaching` with this seed).
    population_seed : int or None
        Seeds the units' tuning (preferred directions, rates, leads) instead of ``seed``: sessions
        with one ``population_seed`` and different ``seed`` record the same neurons (as an implant
        does from day to day) during other movements, with other spikes and noise, so a decoder
        trained on some of them applies to the others. ``None``: ``seed`` draws the tuning too.
    task : {"center_out", "random"}
        Reaching task.
    pitch_um : float
        Contact spacing of the grid (400 um: a Utah array); units sit 30 um from their contact.
    sfreq, noise_uv, amplitude_uv, refractory_ms
        As in :class:`~bci.synthesis.source.SyntheticSource`.
    """

    def __init__(
        self,
        n_units: int = 96,
        seed: int = 0,
        task: str = "random",
        *,
        pitch_um: float = 400.0,
        sfreq: float = 30000.0,
        noise_uv: float = 5.0,
        amplitude_uv: tuple[float, float] = (80.0, 200.0),
        refractory_ms: float = 2.0,
        population_seed: int | None = None,
        **unit_kwargs: Any,
    ) -> None:
        n_units = ensure_int(n_units, "n_units", minimum=1)
        positions = make_probe(n_units, "grid", pitch_um)
        unit_positions = np.column_stack([positions, np.full(n_units, 30.0)])
        super().__init__(
            n_channels=n_units,
            n_units=n_units,
            sfreq=sfreq,
            seed=seed,
            noise_uv=noise_uv,
            positions=positions,
            unit_positions=unit_positions,
            amplitude_uv=amplitude_uv,
            refractory_ms=refractory_ms,
        )
        self.task = task
        self.motor_units, self.trajectory, trains = _population(
            n_units, seed, task, refractory_ms, self.sfreq, unit_kwargs, population_seed
        )
        self.firing_rates_hz = self.motor_units.baseline_hz.copy()
        # the parent draws homogeneous Poisson trains; these units follow the movement instead
        self._trains = trains  # type: ignore[assignment]

    def velocity(self, first_bin: int, n_bins: int, bin_s: float) -> npt.NDArray[np.float64]:
        """Mean hand velocity (cm/s) over bins ``first_bin .. first_bin + n_bins - 1``."""
        return bin_velocity(self.trajectory, first_bin, n_bins, bin_s)
