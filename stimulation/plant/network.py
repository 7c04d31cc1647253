"""The basal-ganglia network of Rubin & Terman (2004) with the parameters of So, Kent & Grill (2012).

``reset(seed=None)`` restarts with the current seed (same initial conditions and cortical pulses);
pass a seed for a different network. ``snapshot()`` / ``restore()`` copy and restore the whole
simulation state. Every network integrates on the one compiled loop
(:func:`stimulation.plant._kernel.integrate`) as a batch of one; several networks of the same size
integrate together in one call, bit for bit as alone, with
:class:`stimulation.plant.batch.NetworkBatch`, through the public pieces of :meth:`step` and
:meth:`run`: :meth:`BasalGangliaNetwork.plan_step` / :meth:`~BasalGangliaNetwork.plan_run` (the
inputs of the next interval), :attr:`~BasalGangliaNetwork.variables` (the state the loop advances)
and :meth:`~BasalGangliaNetwork.complete` (the record of an integrated interval).

Model
-----
Four nuclei of ``n`` conductance-based cells each: thalamocortical relay cells (TH), subthalamic
nucleus (STN), globus pallidus externus (GPe) and internus (GPi). Units: mV, ms, mS/cm2, uA/cm2,
C_m = 1 uF/cm2. Every cell obeys ``C_m dv/dt = -sum(I_ion) - I_syn + I_app (+ I_ext)`` with

- TH: ``I_L + I_Na + I_K + I_T``; ``I_Na = g_Na m_inf^3 h (v - E_Na)``,
  ``I_K = g_K (0.75 (1 - h))^4 (v - E_K)``, ``I_T = g_T p_inf^2 r (v - E_T)``; driven by the
  sensorimotor-cortex pulses ``I_SMC`` (3.5 uA/cm2, 5 ms, mean 14 Hz, CV 0.2; as in So 2012's
  ``createSMC.m`` the instantaneous rate, not the interval, is gamma distributed, see
  :class:`stimulation.plant.inputs.CorticalPulses`) and inhibited one-to-one by GPi:
  ``I_GPi->TH = 1.4 * 0.08 (v + 85) s_GPi``.
- STN: ``I_L + I_K + I_Na + I_T + I_Ca + I_AHP``; ``I_K = g_K n^4 (v - E_K)``,
  ``I_Na = g_Na m_inf^3 h (v - E_Na)``, ``I_T = g_T a_inf^3 b_inf(r)^2 (v - E_Ca)``,
  ``I_Ca = g_Ca c^2 (v - E_Ca)``, ``I_AHP = g_AHP (v - E_K) Ca / (Ca + k1)``,
  ``Ca' = eps (-I_Ca - I_T - k_Ca Ca)``; inhibited by two GPe cells.
- GPe, GPi: ``I_L + I_K + I_Na + I_T + I_Ca + I_AHP`` with ``I_T = g_T a_inf^3 r (v - E_Ca)``,
  ``I_Ca = g_Ca s_inf^2 (v - E_Ca)``; each excited by two STN cells and inhibited by two GPe cells.
- Gates ``x`` in (n, h, r, c) relax as ``x' = phi_x (x_inf(v) - x) / tau_x(v)``.
- Synapses: STN and GPi cells send alpha functions (tau 5 ms, peak 0.43 and 0.3) kicked at each
  upward crossing of -10 mV; GPe cells first-order kinetics
  ``s' = 2 (1 - s) H_inf(v - 20) - 0.04 s``. A two-cell projection is the mean of the two
  presynaptic ``s`` (ring connectivity, see :func:`stimulation.plant.inputs.connectivity`).
- Applied currents (So 2012): healthy STN 33, GPe 21, GPi 22 uA/cm2; Parkinsonian ("pd") STN 23,
  GPe 8, GPi 16; every GPe cell adds its own fixed ``N(0, 2^2)`` offset. A fluctuating plant
  (``plant="fluctuating"``) switches between the two settings at random times, with short ramps
  (protocol in :mod:`stimulation.plant.fluctuation`).
- DBS: a rectangular current (uA/cm2) added to every cell of the target nucleus (STN by default;
  So 2012: 300 uA/cm2, 0.3 ms, 130 Hz); pulse onsets and widths are rounded to whole steps.
- LFP proxy of a nucleus: the sum over its cells of the synaptic currents onto them (uA/cm2),
  averaged over each sample period of ``1 / lfp_sfreq``.

All rate functions, constants and their sources are in :mod:`stimulation.plant.parameters` and
:mod:`stimulation.plant._kernel`. Integration: forward Euler at ``dt_ms`` (0.01 ms, as So 2012's
MATLAB), compiled with numba; the input at step ``k`` (from ``k dt`` to ``(k+1) dt``) is the pulse
current on at time ``k dt``. Spike times are upward threshold crossings (TH -40 mV, others
-10 mV) linearly interpolated between steps.

References
----------
- Rubin JE, Terman D (2004). High frequency stimulation of the subthalamic nucleus eliminates
  pathological thalamic rhythmicity in a computational model. J Comput Neurosci 16:211-235.
- So RQ, Kent AR, Grill WM (2012). Relative contributions of local cell and passing fiber
  activation and silencing to changes in thalamic fidelity during deep brain stimulation and
  lesioning: a computational modeling study. J Comput Neurosci 32:499-519 (ModelDB 141699).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bci.checks import check_value, ensure_float, ensure_int
from stimulation.errors import PlantParameterError, PulseParameterError
from stimulation.plant.fluctuation import PLANTS, Fluctuation, SeverityProcess
from stimulation.plant.inputs import (
    CorticalPulses,
    DbsPulses,
    applied_currents,
    fluctuation_stream,
    initial_conditions,
    seed_streams,
    train_on_grid,
    train_onsets,
)
from stimulation.plant.integrator import (
    TARGET_CODES,
    Interval,
    IntervalOutput,
    LaneIntegrator,
    NetworkState,
)
from stimulation.plant.parameters import DBS_TARGETS, NUCLEI, STATES
from stimulation.plant.record import PlantRecord
from stimulation.pulses import PulseTrain

_MAX_DT_MS = 0.05  # forward Euler of these equations is not trustworthy beyond this


class BasalGangliaNetwork:
    """The STN-GPe-GPi-thalamus network (Rubin & Terman 2004; So et al. 2012), compiled with numba.

    Parameters
    ----------
    state : {"pd", "healthy"}
        Parkinsonian or healthy applied currents (So 2012).
    cells_per_nucleus : int
        Cells in each of TH, STN, GPe, GPi; >= 1 (So 2012: 10).
    seed : int
        Seeds the initial conditions, the GPe current offsets and the cortical pulse train.
    dbs_target : {"stn", "gpe", "gpi"}
        Nucleus that receives the DBS current.
    dt_ms : float
        Forward-Euler step in ms, in (0, 0.05]; 0.01 as in So 2012.
    lfp_sfreq : float
        Sampling rate of the LFP proxies (Hz); ``1000 / (lfp_sfreq * dt_ms)`` must be a whole number
        of steps.
    plant : {"stationary", "fluctuating"}
        Stationary: the applied currents of ``state`` throughout. Fluctuating: they switch between
        the healthy and the Parkinsonian ones, starting in ``state``
        (:mod:`stimulation.plant.fluctuation`; the switch times come from the seed).
    fluctuation : Fluctuation, optional
        Dwell and ramp times of the fluctuating plant (default ``Fluctuation()``: 2 s mean
        dwells, 0.1 s ramps).

    Examples
    --------
    >>> net = BasalGangliaNetwork(state="pd", seed=1)
    >>> rec = net.run(4.0, dbs=PulseTrain(300.0, 130.0, 300.0))  # doctest: +SKIP
    >>> rec.error_index(discard_s=2.0)  # doctest: +SKIP
    """

    def __init__(
        self,
        state: str = "pd",
        cells_per_nucleus: int = 10,
        seed: int = 0,
        dbs_target: str = "stn",
        dt_ms: float = 0.01,
        lfp_sfreq: float = 1000.0,
        plant: str = "stationary",
        fluctuation: Fluctuation | None = None,
    ) -> None:
        err = PlantParameterError
        self._plant = check_value(plant, PLANTS, "plant", error=err)
        if fluctuation is not None and not isinstance(fluctuation, Fluctuation):
            raise PlantParameterError(
                "Invalid value for the 'fluctuation' parameter: expected a Fluctuation or None, "
                f"but got {type(fluctuation).__name__} instead."
            )
        self._fluctuation = Fluctuation() if fluctuation is None else fluctuation
        self._state_name = check_value(state, STATES, "state", error=err)
        self._n = ensure_int(cells_per_nucleus, "cells_per_nucleus", minimum=1, error=err)
        self._target = check_value(dbs_target, DBS_TARGETS, "dbs_target", error=err)
        self._dt = ensure_float(dt_ms, "dt_ms", minimum=0.0, strict_minimum=True, error=err)
        self._lfp_sfreq = ensure_float(
            lfp_sfreq, "lfp_sfreq", minimum=0.0, strict_minimum=True, error=err
        )
        if self._dt > _MAX_DT_MS:
            raise PlantParameterError(
                f"Invalid value for the 'dt_ms' parameter. Allowed values are in (0, {_MAX_DT_MS}] "
                f"ms (forward Euler), but got {dt_ms} instead."
            )
        decim = 1000.0 / (self._lfp_sfreq * self._dt)
        if decim < 1.0 - 1e-9 or abs(decim - round(decim)) > 1e-6:
            raise PlantParameterError(
                f"Invalid value for the 'lfp_sfreq' parameter: 1000 / (lfp_sfreq * dt_ms) must be a "
                f"whole number >= 1 of steps, but got lfp_sfreq={lfp_sfreq} with dt_ms={dt_ms}."
            )
        self._decim = round(decim)
        self._seed = self._check_seed(seed)
        self._integrator = LaneIntegrator(self._n, 1, self._dt, self._decim)
        self.reset()

    @staticmethod
    def _check_seed(seed: Any) -> int:
        return ensure_int(seed, "seed", minimum=0, error=PlantParameterError)

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """Restart at t = 0: fresh initial conditions and cortical pulse train from the seed.

        Parameters
        ----------
        seed : int, optional
            New seed; None keeps the current one (the same network again).
        """
        if seed is not None:
            self._seed = self._check_seed(seed)
        init_rng, smc_rng = seed_streams(self._seed)
        ic = initial_conditions(self._n, self._state_name, init_rng)
        self._variables = NetworkState(ic.th, ic.stn, ic.gpe, ic.gpi, ic.iapp, np.zeros(4))
        self._severity: SeverityProcess | None = None
        self._iapp_healthy: NDArray[np.float64] | None = None
        self._iapp_shift: NDArray[np.float64] | None = None
        if self._plant == "fluctuating":
            self._severity = SeverityProcess(
                fluctuation_stream(self._seed),
                self._dt,
                self._fluctuation,
                start_pd=self._state_name == "pd",
            )
            self._iapp_healthy = applied_currents("healthy", ic.gpe_offset)
            self._iapp_shift = applied_currents("pd", ic.gpe_offset) - self._iapp_healthy
        self._smc = CorticalPulses(smc_rng, self._dt)
        self._k = 0
        self._dbs_carry = DbsPulses.empty()
        self._dbs_last_exact: float | None = None  # onset (in steps, unrounded) of the last pulse

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the whole simulation state (restore it with :meth:`restore`)."""
        keys = (
            *("_variables", "_smc", "_k", "_seed", "_severity", "_iapp_healthy", "_iapp_shift"),
            *("_dbs_carry", "_dbs_last_exact"),
        )
        return {key: copy.deepcopy(getattr(self, key)) for key in keys}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Go back to a state taken by :meth:`snapshot` of a network of the same configuration."""
        if snapshot["_variables"].th.shape != self._variables.th.shape:
            raise PlantParameterError("The snapshot comes from a network of another size.")
        for key, value in snapshot.items():
            setattr(self, key, copy.deepcopy(value))

    @property
    def t_s(self) -> float:
        """Simulated time so far (s)."""
        return self._k * self._dt * 1e-3

    @property
    def n_cells(self) -> int:
        """Cells per nucleus."""
        return self._n

    @property
    def state(self) -> str:
        """ "pd" or "healthy"."""
        return self._state_name

    @property
    def plant(self) -> str:
        """ "stationary" or "fluctuating"."""
        return self._plant

    @property
    def fluctuation(self) -> Fluctuation:
        """Dwell and ramp times (used when :attr:`plant` is "fluctuating")."""
        return self._fluctuation

    @property
    def pd_state(self) -> tuple[int, float]:
        """Nominal state (0 healthy, 1 Parkinsonian) and severity in [0, 1] of the last step
        integrated (of t = 0 before any): the ground truth of a fluctuating plant, constant
        for a stationary one."""
        if self._severity is None:
            pd = int(self._state_name == "pd")
            return pd, float(pd)
        return self._severity.state_at(max(0, self._k - 1))

    def state_switches(self) -> list[tuple[float, int]]:
        """(start time in s, nominal state) of every dwell so far; one entry at t = 0 for a
        stationary plant."""
        if self._severity is None:
            return [(0.0, int(self._state_name == "pd"))]
        dt_s = self._dt * 1e-3
        return [(k * dt_s, pd) for k, pd in self._severity.switches(max(1, self._k))]

    @property
    def seed(self) -> int:
        """Seed of the current initial conditions and cortical pulses."""
        return self._seed

    @property
    def dbs_target(self) -> str:
        """Nucleus receiving the DBS current."""
        return self._target

    @property
    def dt_ms(self) -> float:
        """Integration step (ms)."""
        return self._dt

    @property
    def lfp_sfreq(self) -> float:
        """Sampling rate of the LFP proxies (Hz)."""
        return self._lfp_sfreq

    @property
    def steps_per_lfp_sample(self) -> int:
        """Integration steps averaged into one LFP sample."""
        return self._decim

    @property
    def variables(self) -> NetworkState:
        """The state the compiled loop advances (live arrays: a batch integrates them in place)."""
        return self._variables

    # ------------------------------------------------------------------ running
    def _n_steps(self, duration_s: Any) -> int:
        duration_s = ensure_float(
            duration_s, "duration_s", minimum=0.0, strict_minimum=True, error=PlantParameterError
        )
        n_steps = round(duration_s * 1e3 / self._dt)
        if n_steps < 1:
            raise PlantParameterError(
                f"Invalid value for the 'duration_s' parameter: {duration_s} s is shorter than one "
                f"integration step ({self._dt} ms)."
            )
        return n_steps

    def run(self, duration_s: float, dbs: PulseTrain | None = None) -> PlantRecord:
        """Simulate ``duration_s`` seconds from the current state.

        Parameters
        ----------
        duration_s : float
            Simulated time (s), at least one step.
        dbs : PulseTrain, optional
            Stimulation of the target nucleus; amplitude in uA/cm2. Its onsets are absolute
            simulated times (``start_s + k / frequency_hz``), so ``run(a, dbs)`` followed by
            ``run(b, dbs)`` equals ``run(a + b, dbs)``.

        Returns
        -------
        PlantRecord
            Spikes, pulses and LFP proxies of the interval.
        """
        return self._integrate(self.plan_run(duration_s, dbs))

    def plan_run(self, duration_s: float, dbs: PulseTrain | None = None) -> Interval:
        """The inputs of :meth:`run` over the next ``duration_s`` (moves the pulse clock).

        :meth:`run` is ``complete(interval, output)`` of this interval integrated from
        :attr:`variables`; :class:`~stimulation.plant.batch.NetworkBatch` integrates several
        networks' intervals in one call. Each planned interval must be integrated and completed
        before the next is planned.
        """
        n_steps = self._n_steps(duration_s)
        return self._interval(n_steps, self._run_schedule(n_steps, dbs))

    def _run_schedule(self, n_steps: int, dbs: PulseTrain | None) -> DbsPulses:
        """The new DBS pulses of :meth:`run` over the next ``n_steps`` (records the last onset)."""
        if dbs is not None and not isinstance(dbs, PulseTrain):
            raise PlantParameterError(
                f"Invalid value for the 'dbs' parameter: expected a PulseTrain or None, but got "
                f"{type(dbs).__name__} instead."
            )
        k0, k1 = self._k, self._k + n_steps
        if dbs is None or dbs.amplitude == 0.0:
            return DbsPulses.empty()
        new = train_on_grid(dbs, train_onsets(dbs, k0, k1, self._dt), self._dt)
        if len(new):
            self._dbs_last_exact = float(new.onsets[-1])
        return new

    def step(
        self,
        duration_s: float,
        amplitude: float,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        biphasic: bool = False,
        interphase_us: float = 0.0,
    ) -> PlantRecord:
        """Closed-loop step: continue for ``duration_s`` with this stimulation.

        The pulse clock runs across steps: the next pulse comes one period (at this step's
        frequency) after the previous one, wherever a step boundary falls; the first pulse ever
        starts at the beginning of the step. An amplitude of 0 delivers nothing but keeps the
        clock running.

        Parameters
        ----------
        duration_s : float
            Simulated time (s), at least one step.
        amplitude : float
            Pulse amplitude in uA/cm2, >= 0.
        frequency_hz, pulse_width_us : float
            Pulse rate and phase width (validated as :class:`~stimulation.pulses.PulseTrain`).
        biphasic : bool
            Charge-balanced pulses (a negative phase after ``interphase_us``).
        """
        try:
            train = PulseTrain(
                amplitude=amplitude,
                frequency_hz=frequency_hz,
                pulse_width_us=pulse_width_us,
                waveform="biphasic" if biphasic else "monophasic",
                interphase_us=interphase_us,
            )
        except PulseParameterError as err:
            raise PlantParameterError(str(err)) from None
        return self._integrate(self.plan_step(duration_s, train))

    def plan_step(self, duration_s: float, train: PulseTrain) -> Interval:
        """The inputs of :meth:`step` with ``train`` over the next ``duration_s`` (moves the
        pulse clock; see :meth:`plan_run`)."""
        if not isinstance(train, PulseTrain):
            raise PlantParameterError(
                f"Invalid value for the 'train' parameter: expected a PulseTrain, but got "
                f"{type(train).__name__} instead."
            )
        n_steps = self._n_steps(duration_s)
        return self._interval(n_steps, self._step_schedule(n_steps, train))

    def _step_schedule(self, n_steps: int, train: PulseTrain) -> DbsPulses:
        """The new DBS pulses of :meth:`step` over the next ``n_steps`` (moves the pulse clock)."""
        k0, k1 = self._k, self._k + n_steps
        period = 1e3 / (train.frequency_hz * self._dt)  # in steps
        nxt = float(k0) if self._dbs_last_exact is None else self._dbs_last_exact + period
        if nxt < k0:  # the clock lagged (a run() without stimulation): keep its phase
            nxt += math.ceil((k0 - nxt) / period) * period
        exact = []
        while round(nxt) < k1:
            exact.append(nxt)
            nxt += period
        if exact:
            self._dbs_last_exact = exact[-1]
        if train.amplitude == 0.0 or not exact:
            return DbsPulses.empty()
        onsets = np.maximum(np.rint(np.asarray(exact)).astype(np.int64), k0)
        return train_on_grid(train, onsets, self._dt)

    # ------------------------------------------------------------------ core
    def _interval(self, n_steps: int, new_dbs: DbsPulses) -> Interval:
        """The interval of the next ``n_steps``: the DBS pulses the loop needs (the one in
        progress, then ``new_dbs``) and the cortical onsets (for the loop, and the new ones)."""
        k0 = self._k
        carry = self._dbs_carry
        if len(carry) and carry.end_step(0) <= k0:
            dbs = new_dbs
        elif len(new_dbs) == 0:
            dbs = carry
        else:
            dbs = DbsPulses.join(carry, new_dbs)
        smc_kernel, smc_new = self._smc.onsets(k0, k0 + n_steps)
        return Interval(
            k0=k0,
            n_steps=n_steps,
            target=TARGET_CODES[self._target],
            smc_width=self._smc.width_steps,
            smc_onsets=smc_kernel,
            smc_new=smc_new,
            dbs=dbs,
            new_dbs=new_dbs,
            severity=(self._severity.values(k0, k0 + n_steps) if self._severity else _NO_SEVERITY),
            iapp_healthy=self._iapp_healthy,
            iapp_shift=self._iapp_shift,
        )

    def _integrate(self, interval: Interval) -> PlantRecord:
        (output,) = self._integrator.integrate([self._variables], [interval])
        return self.complete(interval, output)

    def complete(self, interval: Interval, output: IntervalOutput) -> PlantRecord:
        """Advance the clock past an integrated ``interval`` and return its record.

        ``output`` is what :class:`~stimulation.plant.integrator.LaneIntegrator` returned for
        this network, whose :attr:`variables` it advanced.

        Raises
        ------
        PlantParameterError
            When the interval does not start at the network's current step, or the simulation
            diverged.
        """
        k0 = self._k
        if interval.k0 != k0:
            raise PlantParameterError(
                f"The interval starts at step {interval.k0}, but the network is at step {k0}."
            )
        k1 = k0 + interval.n_steps
        self._k = k1
        if not self._variables.is_finite():
            raise PlantParameterError(
                "The simulation diverged (a membrane potential is not finite): the stimulation "
                f"amplitude is too large for forward Euler at dt_ms={self._dt}. Call reset()."
            )
        if len(interval.dbs):
            self._dbs_carry = interval.dbs.last()
        dt_s = self._dt * 1e-3
        first_end = (k0 // self._decim + 1) * self._decim
        lfp32 = output.lfp.astype(np.float32)
        return PlantRecord(
            t_start_s=k0 * dt_s,
            t_stop_s=k1 * dt_s,
            spike_times=output.spike_times,
            cortex_pulse_times=interval.smc_new.astype(np.float64) * dt_s,
            dbs_pulse_times=interval.new_dbs.onsets.astype(np.float64) * dt_s,
            lfp={name: lfp32[nu] for nu, name in enumerate(NUCLEI)},
            lfp_sfreq=self._lfp_sfreq,
            lfp_t_start_s=(first_end - self._decim) * dt_s,
        )


_NO_SEVERITY = np.empty(0)
