"""Gymnasium environment ``BasalGanglia-v0``: adaptive DBS of the simulated Parkinsonian network.

The agent sets the stimulation once per control period (20 ms by default) and the network of
:class:`~stimulation.plant.BasalGangliaNetwork` (Rubin & Terman 2004; So, Kent & Grill 2012) is
integrated over that period with it; the pulse phase runs on across periods, as on a real
stimulator whose amplitude is changed on the fly.

Action
------
``Box(0, 1, shape=(1,))``: the normalised amplitude ``a``; the network receives
``a * max_amplitude`` (300 uA/cm2 by default, the therapeutic STN-DBS amplitude of So et al. 2012)
at a fixed ``frequency_hz`` (130 Hz) and ``pulse_width_us`` (300 us). With
``control_frequency=True`` the action is ``Box(0, 1, shape=(2,))`` and its second entry ``b`` sets
the rate ``f_min + b * (f_max - f_min)`` within ``frequency_range_hz``. Physical and model units
appear only in :class:`stimulation.pulses.PulseTrain`; an action outside the box (or NaN) raises
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

*Energy*: the mean stimulation power relative to the reference train (``max_amplitude``,
``pulse_width_us``, 130 Hz, same waveform), :func:`stimulation_energy`:
``(A / A_max)^2 * (PW / PW_ref) * (f / 130 Hz)``, since the power of a pulse train is
``I^2 R x PW x phases x f`` (the Joule heating :meth:`PulseTrain.energy_j` sums pulse by pulse).
It is 1 for full So-2012 DBS and 0 off, so ``energy_weight`` reads as "the symptom reduction that
would justify continuous full-amplitude DBS"; the default, 0.02, is a fraction of the GPi beta
reduction full DBS brings (README), so stimulation pays but not at any amplitude. It follows the action, not the count of pulse onsets that happen to fall in the period (2 or 3 at
130 Hz and 20 ms; ``n_pulses`` in ``info``).

Episodes end with ``truncated=True`` after ``episode_s`` (the time limit); ``terminated`` is always
False (the plant has no terminal state).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from bci.checks import check_value, ensure_float, ensure_int
from stimulation.errors import PlantParameterError
from stimulation.plant import BasalGangliaNetwork, PlantRecord
from stimulation.plant.monitor import BiomarkerMonitor
from stimulation.plant.observations import (
    DEFAULT_FEATURES,
    OBSERVATIONS,
    BiomarkerObservation,
    SpikeObservation,
)
from stimulation.plant.parameters import DBS_TARGETS, NUCLEI, STATES
from stimulation.pulses import PulseTrain, Waveform

SYMPTOMS: tuple[str, ...] = ("beta", "error_index")
#: Reference stimulation rate of the energy term (So et al. 2012 therapeutic DBS).
REFERENCE_FREQUENCY_HZ = 130.0


def stimulation_energy(train: PulseTrain, reference: PulseTrain) -> float:
    """Mean stimulation power of ``train`` relative to ``reference`` (both in the same units).

    Power is ``I^2 R x PW x phases x f`` (the same Joule heating :meth:`PulseTrain.energy_j`
    sums pulse by pulse), so the ratio needs no impedance and no unit conversion.
    """
    ref = reference.amplitude**2 * reference.pulse_width_us * reference.n_phases
    ref *= reference.frequency_hz
    if ref <= 0.0:
        raise PlantParameterError("The reference pulse train must have a positive amplitude.")
    own = train.amplitude**2 * train.pulse_width_us * train.n_phases * train.frequency_hz
    return float(own / ref)


class BasalGangliaEnv(gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """Adaptive DBS of the simulated basal-ganglia network, one control period per step.

    See the module docstring for the action, observation, reward and episode conventions.

    Parameters
    ----------
    state : {"healthy", "pd"}
        Network state (So et al. 2012 applied currents).
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
    max_amplitude : float
        Amplitude (uA/cm2) at action 1.
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
        Integration step (ms) and LFP proxy rate (Hz) of the network.
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
        max_amplitude: float = 300.0,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        biphasic: bool = False,
        control_frequency: bool = False,
        frequency_range_hz: tuple[float, float] = (10.0, 200.0),
        rate_scale_hz: float = 100.0,
        dt_ms: float = 0.01,
        lfp_sfreq: float = 1000.0,
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
        self.max_amplitude = ensure_float(
            max_amplitude,
            "max_amplitude",
            minimum=0.0,
            strict_minimum=True,
            error=PlantParameterError,
        )
        self.biphasic = bool(biphasic)
        self.control_frequency = bool(control_frequency)
        f_lo = ensure_float(
            frequency_range_hz[0],
            "frequency_range_hz[0]",
            minimum=0.0,
            strict_minimum=True,
            error=PlantParameterError,
        )
        f_hi = ensure_float(
            frequency_range_hz[1], "frequency_range_hz[1]", minimum=f_lo, error=PlantParameterError
        )
        self.frequency_range_hz = (f_lo, f_hi)
        if render_mode is not None:
            raise PlantParameterError(
                f"Invalid value for the 'render_mode' parameter. Allowed values are None, but got "
                f"{render_mode!r} instead."
            )
        self.render_mode = render_mode
        waveform: Waveform = "biphasic" if self.biphasic else "monophasic"
        self.waveform: Waveform = waveform
        # the reference train checks frequency and pulse width, and the largest rate the
        # frequency action can ask for must still fit the pulse (PulseTrain raises otherwise)
        self.reference_train = PulseTrain(
            self.max_amplitude, REFERENCE_FREQUENCY_HZ, pulse_width_us, waveform
        )
        self.fixed_train = PulseTrain(self.max_amplitude, frequency_hz, pulse_width_us, waveform)
        if self.control_frequency:
            PulseTrain(self.max_amplitude, f_hi, pulse_width_us, waveform)
        self.pulse_width_us = self.fixed_train.pulse_width_us
        self.frequency_hz = self.fixed_train.frequency_hz

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
        )
        self.lfp_sfreq = float(lfp_sfreq)
        self.monitor = BiomarkerMonitor(self.lfp_sfreq, self.window_s)

        n_act = 2 if self.control_frequency else 1
        self.action_space = spaces.Box(0.0, 1.0, shape=(n_act,), dtype=np.float32)
        self._step_index = 0
        self._needs_reset = True
        self._last_record: PlantRecord | None = None
        self._network_seed: int | None = None
        self._warming = False  # between begin_reset and observe_reset

    # ------------------------------------------------------------------ actions
    def action_to_train(self, action: Any) -> PulseTrain:
        """The pulse train an action asks for (validated: NaN or outside the box raises).

        Raises
        ------
        PlantParameterError
            For an action of the wrong shape, NaN, or outside ``[0, 1]``.
        """
        try:
            a = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise PlantParameterError(
                f"Invalid value for the 'action' parameter: expected numbers, but got {action!r}."
            ) from None
        shape = self.action_space.shape
        if a.shape != shape:
            raise PlantParameterError(
                f"Invalid value for the 'action' parameter: expected shape {shape}, but got "
                f"{np.shape(action)} instead."
            )
        values = a.tolist()
        if not all(0.0 <= v <= 1.0 for v in values):  # NaN fails both comparisons
            raise PlantParameterError(
                "Invalid value for the 'action' parameter. Allowed values are in [0, 1] "
                f"(normalised stimulation), but got {values} instead."
            )
        frequency = self.frequency_hz
        if self.control_frequency:
            lo, hi = self.frequency_range_hz
            frequency = lo + values[1] * (hi - lo)
        return PulseTrain(
            values[0] * self.max_amplitude,
            frequency,
            self.pulse_width_us,
            self.waveform,
        )

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
        reward_symptom = -symptom
        reward_energy = -self.energy_weight * energy
        info.update(
            energy=energy,
            reward_symptom=reward_symptom,
            reward_energy=reward_energy,
            amplitude=train.amplitude,
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
        return {
            "symptom": self._symptom(),
            "beta": float(beta) if np.isfinite(beta) else 0.0,
            "error_index": float(ei) if np.isfinite(ei) else 0.0,
            "t_s": float(self.network.t_s - self._t_episode_start_s),
        }

    def _observe(self, rec: PlantRecord) -> NDArray[np.float32]:
        if isinstance(self._observer, BiomarkerObservation):
            return self._observer.observe(self.monitor)
        return self._observer.observe(rec)
