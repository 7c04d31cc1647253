"""Gymnasium environment ``BasalGanglia-v0``: adaptive DBS of the simulated Parkinsonian network.

The agent sets the stimulation once per control period (20 ms by default) and the network of
:class:`~stimulation.plant.BasalGangliaNetwork` (Rubin & Terman 2004; So, Kent & Grill 2012) is
integrated over that period with it; the pulse phase runs on across periods, as on a real
stimulator whose amplitude is changed on the fly.

Action
------
``Box(0, 1, shape=(1,))``: the normalised amplitude ``a``; the stimulator delivers
``a * amplitude_ma_at_full_action`` mA (3.0 mA by default, the clamp of Fleming, Dunn & Lowery
2020), which the network receives as a current density through the toolkit's one device-to-model
mapping (:func:`stimulation.safety.model_amplitude_ua_cm2`: 2.5 mA, So et al. 2012's therapeutic
setting, is 300 uA/cm2), at a fixed ``frequency_hz`` (130 Hz) and ``pulse_width_us`` (300 us). With
``control_frequency=True`` the action is ``Box(0, 1, shape=(2,))`` and its second entry ``b`` sets
the rate ``f_min + b * (f_max - f_min)`` Hz within ``frequency_range_hz``. The mapping is
:class:`stimulation.plant.actions.ActionMap`; an action outside the box (or NaN) raises
:class:`~stimulation.errors.PlantParameterError`, it is never clipped silently.

Observation
-----------
``observation="biomarkers"`` (default): a float32 vector of sliding-window biomarkers (relative
beta power, firing rates, synchrony, error index) named in ``features``; ``observation="spikes"``:
binned spike counts of the recorded cells over the last control period. Both are defined in
:mod:`stimulation.plant.observations`.

Reward
------
``reward = -symptom - energy_weight * energy``, each term in ``info`` (``reward_symptom``,
``reward_energy``, and the raw ``symptom`` and ``energy``).

*Symptom* (``symptom="beta"``, default): the relative beta power of the ``symptom_nucleus`` LFP
proxy over the sliding window. Exaggerated beta synchrony in the STN and GPi is the biomarker
adaptive DBS uses in patients (Little et al. 2013, Ann Neurol 74:449), it is defined at every
control step, and it is the feedback signal of Fleming, Dunn & Lowery (2020, Front Neurosci
14:166), who used the STN LFP. ``symptom="error_index"`` uses the thalamic error index of So et al. (2012)
instead: the model's most direct measure of motor symptoms (failed thalamocortical relay), but
cortical pulses come at about 14 Hz, so a 20-ms period holds at most one and the index only makes
sense over a window of several pulses; it is also reported in ``info`` either way.
The GPi is the default symptom nucleus: it is the output of the circuit, and in this model its
beta follows STN stimulation within the window, while STN beta (the GPe -> STN synaptic current)
falls only after about a second of DBS (measured in the README's plant section).

*Energy*: the mean stimulation power relative to So et al. (2012)'s setting (2.5 mA, 130 Hz,
300 us, monophasic), :func:`stimulation.plant.actions.stimulation_energy`:
``(A / 2.5 mA)^2 * (PW / 300 us) * phases * (f / 130 Hz)``. It is 1 for So's setting and 0 off, so
``energy_weight`` reads as "the symptom reduction that would justify continuous So-2012 DBS"; the
default, 0.02, is a fraction of the GPi beta reduction that setting brings (README), so
stimulation pays but not at any amplitude. It follows the action, not the count of pulse onsets
that happen to fall in the period (2 or 3 at 130 Hz and 20 ms; ``n_pulses`` in ``info``).

Info
----
Every step: ``symptom``, ``beta`` (relative beta of ``symptom_nucleus``), ``error_index``,
``t_s`` (since the episode's first observation), ``pd_state`` and ``severity`` (the true state,
below); after an action also ``energy``, ``reward_symptom``, ``reward_energy``, the setting
delivered in device units (``amplitude_ma``, ``frequency_hz``, ``pulse_width_us``) and model
units (``amplitude_ua_cm2``), and ``n_pulses``; after a reset ``network_seed``.

Plant
-----
``plant="stationary"`` (default): the network stays in ``state``. ``plant="fluctuating"``: its
applied currents switch between the healthy and the Parkinsonian settings with exponentially
distributed dwell times (mean 2 s each, so Parkinsonian half of the time) and 0.1-s ramps, the
switch times drawn from the episode's network seed (protocol in
:mod:`stimulation.plant.fluctuation`; ``fluctuation`` changes its times). ``info["pd_state"]``
(0 healthy, 1 Parkinsonian) and ``info["severity"]`` (in [0, 1]) give the true state at the end
of the period, for evaluation only: it is never part of the observation.

Episodes end with ``truncated=True`` after ``episode_s`` (the time limit); ``terminated`` is always
False (the plant has no terminal state).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from bci.checks import check_value, ensure_float, ensure_int
from stimulation.errors import PlantParameterError
from stimulation.plant import BasalGangliaNetwork, PlantRecord
from stimulation.plant.actions import SO_2012_TRAIN, ActionMap, Setting, stimulation_energy
from stimulation.plant.fluctuation import Fluctuation
from stimulation.plant.monitor import BiomarkerMonitor
from stimulation.plant.observations import (
    DEFAULT_FEATURES,
    OBSERVATIONS,
    BiomarkerObservation,
    SpikeObservation,
)
from stimulation.plant.parameters import DBS_TARGETS, NUCLEI, STATES
from stimulation.pulses import PulseTrain, Waveform
from stimulation.safety import device_amplitude_ma

SYMPTOMS: tuple[str, ...] = ("beta", "error_index")


class BasalGangliaEnv(gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """Adaptive DBS of the simulated basal-ganglia network, one control period per step.

    See the module docstring for the action, observation, reward and episode conventions.

    Parameters
    ----------
    state : {"healthy", "pd"}
        Network state (So et al. 2012 applied currents); with a fluctuating plant, the state at
        the start of each episode's network.
    cells_per_nucleus : int
        Cells in each of TH, STN, GPe and GPi.
    dbs_target : {"stn", "gpe", "gpi"}
        Nucleus that receives the stimulation current.
    control_period_s : float
        Simulated time per step (20 ms).
    episode_s : float
        Episode length; ``truncated`` turns True on the step that reaches it.
    warmup_s : float
        Simulated without stimulation after each reset, before the first observation, so the
        network leaves its random initial conditions and the sliding window is full.
    window_s : float
        Length of the sliding window of the biomarkers and the symptom.
    observation : {"biomarkers", "spikes"}
        Observation type (module docstring).
    features : tuple of str
        Biomarker features, from :data:`stimulation.plant.monitor.FEATURES`.
    recorded_nuclei : tuple of str
        Nuclei whose cells are observed with ``observation="spikes"``.
    bin_s : float
        Spike-count bin with ``observation="spikes"``; must divide ``control_period_s``.
    symptom : {"beta", "error_index"}
        What the reward penalises (module docstring).
    symptom_nucleus : str
        Nucleus of the beta symptom.
    energy_weight : float
        ``lambda`` of the reward, >= 0.
    amplitude_ma_at_full_action : float
        Device amplitude (mA) at action 1 (3.0 mA: Fleming 2020's clamp; So 2012's 300 uA/cm2 is
        2.5 mA).
    frequency_hz, pulse_width_us : float
        Fixed rate and pulse width (frequency only when ``control_frequency`` is False).
    biphasic : bool
        Charge-balanced biphasic pulses instead of monophasic cathodic ones.
    control_frequency : bool
        Add the normalised rate as a second action entry.
    frequency_range_hz : (float, float)
        Rate at action entry 0 and 1 with ``control_frequency``.
    rate_scale_hz : float
        Divisor of the ``rate_*`` features.
    dt_ms, lfp_sfreq : float
        Integration step (ms) and LFP proxy rate (Hz) of the network. The env integrates at
        0.025 ms, 2.5 times So et al. (2012)'s 0.01 ms (the network's default): the step at which
        the plant's science table (error index and GPi beta healthy, Parkinsonian, with 130 and
        20 Hz DBS; firing rates; seeds 1-5) still holds side by side with 0.01 ms
        (``benchmarks/bench_plant.py --dt-compare 0.01 0.025``, numbers in the README), for
        2.5 times fewer steps. Pass 0.01 for the reference step.
    plant : {"stationary", "fluctuating"}
        A network that stays in ``state``, or one whose Parkinsonian state comes and goes
        (module docstring).
    fluctuation : Fluctuation, optional
        Dwell and ramp times of the fluctuating plant (:class:`~stimulation.plant.fluctuation.
        Fluctuation`; default 2-s mean dwells, 0.1-s ramps).
    render_mode : None
        No rendering.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        state: str = "pd",
        cells_per_nucleus: int = 10,
        dbs_target: str = "stn",
        *,
        control_period_s: float = 0.02,
        episode_s: float = 2.0,
        warmup_s: float = 0.5,
        window_s: float = 0.25,
        observation: str = "biomarkers",
        features: tuple[str, ...] | list[str] = DEFAULT_FEATURES,
        recorded_nuclei: tuple[str, ...] | list[str] = ("stn", "gpi"),
        bin_s: float = 0.005,
        symptom: str = "beta",
        symptom_nucleus: str = "gpi",
        energy_weight: float = 0.02,
        amplitude_ma_at_full_action: float = 3.0,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        biphasic: bool = False,
        control_frequency: bool = False,
        frequency_range_hz: tuple[float, float] = (10.0, 200.0),
        rate_scale_hz: float = 100.0,
        dt_ms: float = 0.025,
        lfp_sfreq: float = 1000.0,
        plant: str = "stationary",
        fluctuation: Fluctuation | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.state = check_value(state, STATES, "state", error=PlantParameterError)
        self.cells_per_nucleus = ensure_int(
            cells_per_nucleus, "cells_per_nucleus", minimum=1, error=PlantParameterError
        )
        self.dbs_target = check_value(
            dbs_target, DBS_TARGETS, "dbs_target", error=PlantParameterError
        )
        self.control_period_s = ensure_float(
            control_period_s,
            "control_period_s",
            minimum=0.0,
            strict_minimum=True,
            error=PlantParameterError,
        )
        self.episode_s = ensure_float(
            episode_s, "episode_s", minimum=self.control_period_s, error=PlantParameterError
        )
        self.warmup_s = ensure_float(warmup_s, "warmup_s", minimum=0.0, error=PlantParameterError)
        self.window_s = ensure_float(
            window_s, "window_s", minimum=0.0, strict_minimum=True, error=PlantParameterError
        )
        self.observation = check_value(
            observation, OBSERVATIONS, "observation", error=PlantParameterError
        )
        self.symptom = check_value(symptom, SYMPTOMS, "symptom", error=PlantParameterError)
        self.symptom_nucleus = check_value(
            symptom_nucleus, NUCLEI, "symptom_nucleus", error=PlantParameterError
        )
        self.energy_weight = ensure_float(
            energy_weight, "energy_weight", minimum=0.0, error=PlantParameterError
        )
        self.biphasic = bool(biphasic)
        self.control_frequency = bool(control_frequency)
        if render_mode is not None:
            raise PlantParameterError(
                f"Invalid value for the 'render_mode' parameter. Allowed values are None, but got "
                f"{render_mode!r} instead."
            )
        self.render_mode = render_mode
        waveform: Waveform = "biphasic" if self.biphasic else "monophasic"
        self.waveform: Waveform = waveform
        self.action_map = ActionMap(
            amplitude_ma_at_full_action,
            frequency_hz,
            pulse_width_us,
            waveform,
            self.control_frequency,
            frequency_range_hz,
        )
        self.amplitude_ma_at_full_action = self.action_map.amplitude_ma_at_full_action
        self.frequency_range_hz = self.action_map.frequency_range_hz
        self.frequency_hz = self.action_map.frequency_hz
        self.pulse_width_us = self.action_map.pulse_width_us
        self.reference_train = SO_2012_TRAIN
        self.n_steps_per_episode = int(round(self.episode_s / self.control_period_s))

        self._observer: BiomarkerObservation | SpikeObservation
        if self.observation == "biomarkers":
            self._observer = BiomarkerObservation(features, rate_scale_hz)
        else:
            self._observer = SpikeObservation(
                recorded_nuclei, self.cells_per_nucleus, bin_s, self.control_period_s
            )
        self.features = tuple(features)
        self.recorded_nuclei = tuple(recorded_nuclei)
        self.bin_s = float(bin_s)
        self.rate_scale_hz = float(rate_scale_hz)
        self.observation_space = self._observer.space

        self.network = BasalGangliaNetwork(
            state=self.state,
            cells_per_nucleus=self.cells_per_nucleus,
            seed=0,
            dbs_target=self.dbs_target,
            dt_ms=dt_ms,
            lfp_sfreq=lfp_sfreq,
            plant=plant,
            fluctuation=fluctuation,
        )
        self.plant = self.network.plant
        self.lfp_sfreq = float(lfp_sfreq)
        self.monitor = BiomarkerMonitor(self.lfp_sfreq, self.window_s)

        self.action_space = self.action_map.space
        self._step_index = 0
        self._needs_reset = True
        self._last_record: PlantRecord | None = None
        self._network_seed: int | None = None
        self._warming = False  # between begin_reset and observe_reset

    # ------------------------------------------------------------------ actions
    def action_to_train(self, action: Any) -> PulseTrain:
        """The pulse train (model units, uA/cm2) an action asks for; see :meth:`action_to_setting`.

        Raises
        ------
        PlantParameterError
            For an action of the wrong shape, NaN, or outside ``[0, 1]``.
        """
        return self.action_map.setting(action).train

    def action_to_setting(self, action: Any) -> Setting:
        """The device setting (mA, Hz, us) an action asks for, with its model pulse train."""
        return self.action_map.setting(action)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start an episode on a freshly drawn network (cells, connections, initial state).

        With ``seed`` the network is drawn from it, so the same seed gives the same episode;
        without, from the environment's random stream (different each episode).
        """
        warmup_s = self.begin_reset(seed=seed)
        warm = self.network.step(warmup_s, 0.0, self.frequency_hz, self.pulse_width_us)
        return self.observe_reset(warm)

    def begin_reset(self, *, seed: int | None = None) -> float:
        """First half of :meth:`reset`: draw the episode's network and forget the last one.

        Returns the warm-up to integrate next, without stimulation (``warmup_s``, or one
        control period when it is 0: the observation needs some network activity); its record
        goes to :meth:`observe_reset`. :meth:`reset` integrates it with the network's own
        ``step``, the vector env with a :class:`~stimulation.plant.batch.NetworkBatch`
        (:attr:`warmup_train` is the stimulation to give it).
        """
        super().reset(seed=seed)
        self._network_seed = int(self.np_random.integers(0, 2**63 - 1))
        self.network.reset(seed=self._network_seed)
        self.monitor.reset()
        self._step_index = 0
        self._t_episode_start_s = self.network.t_s
        self._needs_reset = True  # until the warm-up has been observed
        self._warming = True
        return self.warmup_s if self.warmup_s > 0.0 else self.control_period_s

    @property
    def warmup_train(self) -> PulseTrain:
        """The stimulation of the warm-up: amplitude 0 at the fixed rate and pulse width (it
        only moves the pulse clock, as :meth:`reset` does)."""
        return PulseTrain(0.0, self.frequency_hz, self.pulse_width_us, "monophasic")

    def observe_reset(self, warm: PlantRecord) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Second half of :meth:`reset`: the first observation and info, from the warm-up."""
        if not self._warming:
            raise PlantParameterError("Call begin_reset() before observe_reset().")
        t0, t1 = self._t_episode_start_s, self.network.t_s
        if abs(warm.t_start_s - t0) > 1e-9 or abs(warm.t_stop_s - t1) > 1e-9:
            raise PlantParameterError(
                f"The warm-up record covers {warm.t_start_s}-{warm.t_stop_s} s, but the network "
                f"ran {t0}-{t1} s since begin_reset()."
            )
        self.monitor.update(warm)
        self._warming = False
        self._last_record = warm
        self._t_episode_start_s = self.network.t_s
        self._needs_reset = False
        info = self._biomarker_info()
        info["network_seed"] = self._network_seed
        return self._observe(warm), info

    def step(
        self, action: Any
    ) -> tuple[NDArray[np.float32], SupportsFloat, bool, bool, dict[str, Any]]:
        """Stimulate for one control period with ``action`` and observe the result."""
        if self._needs_reset:
            raise PlantParameterError("Call reset() before step() (and after an episode ends).")
        train = self.action_to_train(action)
        return self.observe_step(train, self.integrate_step(train))

    def integrate_step(self, train: PulseTrain) -> PlantRecord:
        """First half of :meth:`step`: integrate the network over one control period.

        ``train`` comes from :meth:`action_to_train`. A caller that integrates the network
        otherwise (:class:`~stimulation.plant.batch.NetworkBatch` in the vector env) skips this
        and hands its record to :meth:`observe_step`.
        """
        if self._needs_reset:
            raise PlantParameterError("Call reset() before step() (and after an episode ends).")
        return self.network.step(
            self.control_period_s,
            train.amplitude,
            frequency_hz=train.frequency_hz,
            pulse_width_us=train.pulse_width_us,
            biphasic=self.biphasic,
        )

    def observe_step(
        self, train: PulseTrain, rec: PlantRecord
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Second half of :meth:`step`: observation, reward, flags and info of the period
        ``rec`` that the network just ran with ``train`` (the monitor refuses a record that
        does not follow the previous one)."""
        if self._needs_reset:
            raise PlantParameterError("Call reset() before step() (and after an episode ends).")
        self.monitor.update(rec)
        self._last_record = rec
        self._step_index += 1
        info = self._biomarker_info()
        symptom = info["symptom"]
        energy = stimulation_energy(train, self.reference_train)
        amplitude_ma = device_amplitude_ma(train.amplitude)
        reward_symptom = -symptom
        reward_energy = -self.energy_weight * energy
        info.update(
            energy=energy,
            reward_symptom=reward_symptom,
            reward_energy=reward_energy,
            amplitude_ma=amplitude_ma,
            amplitude_ua_cm2=train.amplitude,
            frequency_hz=train.frequency_hz,
            pulse_width_us=train.pulse_width_us,
            n_pulses=int(rec.dbs_pulse_times.size),
        )
        truncated = self._step_index >= self.n_steps_per_episode
        if truncated:
            self._needs_reset = True
        return self._observe(rec), float(reward_symptom + reward_energy), False, truncated, info

    def close(self) -> None:
        """Nothing to release (the network lives in this process)."""

    # ------------------------------------------------------------------ internals
    @property
    def record(self) -> PlantRecord | None:
        """The network's record of the last step (or of the warm-up after reset)."""
        return self._last_record

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the observation entries with ``observation="biomarkers"``."""
        return self.features

    def _symptom(self) -> float:
        if self.symptom == "beta":
            value = self.monitor.beta_power(self.symptom_nucleus)
        else:
            value = self.monitor.error_index()
        return float(value) if np.isfinite(value) else 0.0

    def _biomarker_info(self) -> dict[str, Any]:
        beta = self.monitor.beta_power(self.symptom_nucleus)
        ei = self.monitor.error_index()
        pd_state, severity = self.network.pd_state
        return {
            "symptom": self._symptom(),
            "beta": float(beta) if np.isfinite(beta) else 0.0,
            "error_index": float(ei) if np.isfinite(ei) else 0.0,
            "t_s": float(self.network.t_s - self._t_episode_start_s),
            "pd_state": pd_state,
            "severity": severity,
        }

    def _observe(self, rec: PlantRecord) -> NDArray[np.float32]:
        if isinstance(self._observer, BiomarkerObservation):
            return self._observer.observe(self.monitor)
        return self._observer.observe(rec)
