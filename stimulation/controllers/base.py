"""What every controller is: a stage from decoded state to stimulation commands, in device units.

A controller sees, once per control period (20 ms by default, as in Fleming et al. 2020), the
decoded symptom (a row of a :class:`~bci.stream.StateChunk`, e.g. the GPi beta biomarker) and
emits one :class:`~bci.stream.StimCommand` (mA, Hz, us), numbered by ``seq`` and signed with its
``source_id`` and the session's token. The command goes to a
:class:`~stimulation.safety.SafetyLimiter`, never straight to a stimulator.

Two ways to drive the same object:

- online, as a registered :class:`~bci.stream.Stage`: :meth:`Controller.process` takes a
  ``StateChunk`` and acts on each of its rows, returning the last command;
- in simulation (the Gymnasium env, :func:`stimulation.controllers.evaluate`):
  :meth:`Controller.act` takes one observation vector and the time.

Subclasses implement :meth:`Controller.decide` (observation vector, time -> amplitude and
frequency) and :meth:`Controller.reset_state`; the base class numbers and stamps the commands.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import ConfigError, StageCompatibilityError
from bci.stream.chunks import StateChunk, StimCommand
from bci.stream.spec import StreamKind, StreamSpec
from bci.stream.stage import Stage
from stimulation.errors import StimulationError


class ControllerError(StimulationError, ValueError):
    """A controller got an observation it cannot use (wrong size, NaN where it must decide)."""


class ControllerConfigError(StimulationError, ConfigError):
    """A controller parameter is invalid."""


class Controller(Stage):
    """Base of every controller (module docstring).

    Parameters
    ----------
    input_index : int
        Which entry of the observation (column of the decoded state) is the symptom.
    period_s : float
        Control period: :meth:`act` is called once per period.
    frequency_hz, pulse_width_us : float
        Pulse rate and width of the commands (a controller that sets the rate overrides it).
    source_id, session_token : str
        Signed into every command (the limiter accepts only the session's controller).
    invalid_hold_s : float
        How long invalid decoded rows (no measurement: NaN/inf or lost signal) hold the last
        command before the controller asks for stimulation off (:meth:`process`).
    """

    accepts: ClassVar[tuple[StreamKind, ...]] = ("state",)

    def __init__(
        self,
        *,
        input_index: int = 0,
        period_s: float = 0.02,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        source_id: str = "controller",
        session_token: str = "",
        invalid_hold_s: float = 0.2,
    ) -> None:
        err = ControllerConfigError
        self.invalid_hold_s = ensure_float(invalid_hold_s, "invalid_hold_s", minimum=0.0, error=err)
        self._invalid_since: float | None = None
        self.input_index = ensure_int(input_index, "input_index", minimum=0, error=err)
        self.period_s = ensure_float(
            period_s, "period_s", minimum=0.0, strict_minimum=True, error=err
        )
        self.frequency_hz = ensure_float(
            frequency_hz, "frequency_hz", minimum=0.0, strict_minimum=True, error=err
        )
        self.pulse_width_us = ensure_float(
            pulse_width_us, "pulse_width_us", minimum=0.0, strict_minimum=True, error=err
        )
        self.source_id = str(source_id)
        self.session_token = str(session_token)
        self.seq = 0
        self.n_acted = 0

    # -- what subclasses implement ---------------------------------------------------------------
    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        """Amplitude (mA) and frequency (Hz) for the next period, from one observation."""
        raise NotImplementedError(f"{type(self).__name__} does not implement decide().")

    def reset_state(self) -> None:
        """Clear what the controller learned during a run (integrators, calibration)."""

    # -- the two ways to drive it ------------------------------------------------------------------
    def symptom(self, observation: npt.NDArray[np.float64]) -> float:
        """The observation's symptom entry (``input_index``)."""
        if observation.size <= self.input_index:
            raise ControllerError(
                f"{type(self).__name__} reads entry {self.input_index} of the observation, "
                f"but it has {observation.size} entries."
            )
        return float(observation[self.input_index])

    def act(self, observation: Any, t_s: float | None = None) -> StimCommand:
        """One control period: the command for the observation at time ``t_s`` (seconds;
        default ``n_acted * period_s``)."""
        obs = np.asarray(observation, dtype=np.float64).reshape(-1)
        t = float(self.n_acted * self.period_s if t_s is None else t_s)
        amplitude_ma, frequency_hz = self.decide(obs, t)
        command = StimCommand(
            float(amplitude_ma),
            float(frequency_hz),
            self.pulse_width_us,
            t,
            self.source_id,
            self.seq,
            self.session_token,
        )
        self.seq += 1
        self.n_acted += 1
        return command

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Check that the decoded state has the symptom column; emit commands."""
        super().prepare(upstream)
        if upstream.n_channels <= self.input_index:
            raise StageCompatibilityError(
                f"{type(self).__name__} reads output {self.input_index} of the decoded state, "
                f"but the stage before it emits {upstream.n_channels} output(s)."
            )
        names = upstream.channel_names
        self.output_spec = StreamSpec(
            kind="command",
            n_channels=3,
            rate_hz=upstream.rate_hz,
            channel_names=("amplitude_ma", "frequency_hz", "pulse_width_us"),
            unit="device",
            origin=upstream.origin,
        )
        self.input_name = names[self.input_index] if names else ""
        return self.output_spec

    def process(self, chunk: StateChunk) -> StimCommand | None:
        """Act on every valid row of the decoded state (in order); return the last command.

        A row marked invalid (:attr:`bci.stream.StateChunk.valid`: decoded from no measurement)
        is not acted on: the controller's state does not step, and no command is made, so the
        loop holds the last one (the limiter's watchdog and slew still apply). Once rows have
        been invalid for ``invalid_hold_s`` in a row, each further invalid row gives a command
        with stimulation off (amplitude 0) instead, until a valid row comes.
        """
        command = None
        valid = chunk.valid
        for i, (values, t) in enumerate(zip(chunk.values, chunk.t, strict=True)):
            if valid is None or valid[i]:
                self._invalid_since = None
                command = self.act(values, float(t))
                continue
            if self._invalid_since is None:
                self._invalid_since = float(t)
            if float(t) - self._invalid_since >= self.invalid_hold_s - 1e-9:
                command = self._off(float(t))
        return command

    def _off(self, t: float) -> StimCommand:
        """Stimulation off (no information to act on); the controller's state is untouched."""
        command = StimCommand(
            0.0, self.frequency_hz, self.pulse_width_us, t, self.source_id, self.seq,
            self.session_token,
        )  # fmt: skip
        self.seq += 1
        return command

    @property
    def is_calibrated(self) -> bool:
        """False while the controller still learns from the session's own signal (a threshold or
        set-point from its first seconds); the runner keeps stimulation off until it is True."""
        return True

    def reset(self) -> None:
        """Forget the run (sequence numbers restart at 0) and the controller's own state."""
        self.seq = 0
        self.n_acted = 0
        self._invalid_since = None
        self.reset_state()


def ramp_toward(current: float, target: float, max_step: float) -> float:
    """``current`` moved toward ``target`` by at most ``max_step``."""
    return min(max(target, current - max_step), current + max_step)


class Calibration:
    """Collect the symptom over a calibration period, then give its percentiles.

    Parameters
    ----------
    duration_s : float
        How long to collect (the controller stimulates nothing meanwhile, as in the clinic's
        off-stimulation recording).
    """

    def __init__(self, duration_s: float) -> None:
        self.duration_s = float(duration_s)
        self.values: list[float] = []
        self.t_start: float | None = None

    def collecting(self, value: float, t_s: float) -> bool:
        """Add ``value``; True while the calibration period lasts."""
        if self.t_start is None:
            self.t_start = t_s
        if t_s - self.t_start < self.duration_s - 1e-9:
            if np.isfinite(value):
                self.values.append(value)
            return True
        return False

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile of what was collected."""
        if not self.values:
            raise ControllerError(
                "The calibration period saw no finite symptom value: no threshold can be set."
            )
        return float(np.percentile(self.values, q))

    def reset(self) -> None:
        self.values = []
        self.t_start = None
