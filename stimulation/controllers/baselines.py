"""The clinical and modelling baselines: off, continuous DBS, threshold and dual-threshold
adaptive DBS, and PI amplitude control.

Each reads the symptom (a beta biomarker, in the decoder's units) once per control period and
sets the amplitude; the safety limiter then applies its own hard limits and slew rate, whatever a
controller asks.

- :class:`OffController` ("off"): no stimulation.
- :class:`ContinuousController` ("continuous"): open-loop DBS at a fixed setting; the default is
  So, Kent & Grill (2012)'s therapeutic setting in device units (2.5 mA, 130 Hz, 300 us).
- :class:`ThresholdController` ("threshold"): Little et al. (2013, Ann Neurol 74:449): stimulation
  ramps on while beta exceeds a threshold and off when it falls below, with a minimum time on; as
  in the clinic, the threshold is set from a calibration period without stimulation (a
  percentile of the beta seen).
- :class:`DualThresholdController` ("dual_threshold"): Velisar et al. (2019, Brain Stimul
  12:868): the amplitude steps up while beta is above an upper threshold, down while it is below
  a lower one, and holds between them.
- :class:`PIController` ("pi"): Fleming, Dunn & Lowery (2020, Front Neurosci 14:166): amplitude
  ``u = Kp (e + (1 / Ti) integral(e dt))`` with ``e = beta - setpoint``, every 20 ms, clamped to
  ``[0, max_amplitude_ma]``, the integrator frozen while the output is clamped and the error
  pushes further (conditional integration, the usual anti-windup). The setpoint is set from a
  calibration period when not given.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from stimulation.controllers.base import (
    Calibration,
    Controller,
    ControllerConfigError,
    ramp_toward,
)

_ERR = ControllerConfigError


def _nonneg(value: float, name: str) -> float:
    return ensure_float(value, name, minimum=0.0, error=_ERR)


def _percent(value: float, name: str) -> float:
    return ensure_float(value, name, minimum=0.0, maximum=100.0, error=_ERR)


class OffController(Controller, name="off"):
    """No stimulation, ever (the reference for relief)."""

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        return 0.0, self.frequency_hz


class ContinuousController(Controller, name="continuous"):
    """Open-loop DBS at a fixed amplitude and rate (module docstring).

    Parameters
    ----------
    amplitude_ma : float
        Amplitude (mA).
    **kwargs
        :class:`~stimulation.controllers.base.Controller` parameters (``frequency_hz``...).
    """

    def __init__(self, amplitude_ma: float = 2.5, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.amplitude_ma = _nonneg(amplitude_ma, "amplitude_ma")

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        return self.amplitude_ma, self.frequency_hz


class ThresholdController(Controller, name="threshold"):
    """Beta-triggered adaptive DBS after Little et al. (2013) (module docstring).

    Parameters
    ----------
    amplitude_ma : float
        Amplitude while on (mA).
    threshold : float or None
        Beta above which stimulation turns on; None: the ``percentile``-th percentile of the beta
        seen during the first ``calibration_s`` (no stimulation meanwhile).
    calibration_s : float
        Length of the calibration period (used when ``threshold`` is None).
    percentile : float
        Percentile of the calibration beta that becomes the threshold.
    ramp_ma_per_s : float
        How fast the amplitude ramps on and off (Little et al. ramped over 250 ms).
    min_on_s : float
        Once on, stay on at least this long.
    **kwargs
        :class:`~stimulation.controllers.base.Controller` parameters.
    """

    def __init__(
        self,
        amplitude_ma: float = 2.5,
        threshold: float | None = None,
        calibration_s: float = 1.0,
        percentile: float = 50.0,
        ramp_ma_per_s: float = 10.0,
        min_on_s: float = 0.1,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.amplitude_ma = _nonneg(amplitude_ma, "amplitude_ma")
        self.threshold = None if threshold is None else _nonneg(threshold, "threshold")
        self.calibration = Calibration(_nonneg(calibration_s, "calibration_s"))
        self.percentile = _percent(percentile, "percentile")
        self.ramp_ma_per_s = _nonneg(ramp_ma_per_s, "ramp_ma_per_s")
        self.min_on_s = _nonneg(min_on_s, "min_on_s")
        self.reset_state()

    def reset_state(self) -> None:
        self.calibration.reset()
        self.active_threshold = self.threshold
        self.on = False
        self._on_since = 0.0
        self._amplitude = 0.0

    @property
    def is_calibrated(self) -> bool:
        return self.active_threshold is not None

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        beta = self.symptom(observation)
        if self.active_threshold is None:
            if self.calibration.collecting(beta, t_s):
                return 0.0, self.frequency_hz
            self.active_threshold = self.calibration.percentile(self.percentile)
        above = beta > self.active_threshold
        if above and not self.on:
            self.on, self._on_since = True, t_s
        elif self.on and not above and t_s - self._on_since >= self.min_on_s - 1e-9:
            self.on = False
        target = self.amplitude_ma if self.on else 0.0
        self._amplitude = ramp_toward(self._amplitude, target, self.ramp_ma_per_s * self.period_s)
        return self._amplitude, self.frequency_hz


class DualThresholdController(Controller, name="dual_threshold"):
    """Dual-threshold adaptive DBS after Velisar et al. (2019) (module docstring).

    Parameters
    ----------
    max_amplitude_ma, min_amplitude_ma : float
        The amplitude moves within these bounds (mA).
    lower, upper : float or None
        Beta thresholds; None: the ``lower_percentile`` / ``upper_percentile`` of the beta seen
        during the first ``calibration_s``.
    calibration_s : float
        Length of the calibration period.
    lower_percentile, upper_percentile : float
        Percentiles of the calibration beta that become the thresholds.
    step_ma_per_s : float
        How fast the amplitude moves while beta is outside the band.
    **kwargs
        :class:`~stimulation.controllers.base.Controller` parameters.
    """

    def __init__(
        self,
        max_amplitude_ma: float = 2.5,
        min_amplitude_ma: float = 0.0,
        lower: float | None = None,
        upper: float | None = None,
        calibration_s: float = 1.0,
        lower_percentile: float = 25.0,
        upper_percentile: float = 75.0,
        step_ma_per_s: float = 5.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.max_amplitude_ma = _nonneg(max_amplitude_ma, "max_amplitude_ma")
        self.min_amplitude_ma = _nonneg(min_amplitude_ma, "min_amplitude_ma")
        if self.min_amplitude_ma > self.max_amplitude_ma:
            raise ControllerConfigError(
                f"Invalid value for the 'min_amplitude_ma' parameter: must be <= "
                f"max_amplitude_ma ({self.max_amplitude_ma:g}), but got {self.min_amplitude_ma:g}."
            )
        self.lower = None if lower is None else _nonneg(lower, "lower")
        self.upper = None if upper is None else _nonneg(upper, "upper")
        self.calibration = Calibration(_nonneg(calibration_s, "calibration_s"))
        self.lower_percentile = _percent(lower_percentile, "lower_percentile")
        self.upper_percentile = _percent(upper_percentile, "upper_percentile")
        if self.lower_percentile > self.upper_percentile:
            raise ControllerConfigError(
                "Invalid value for the 'lower_percentile' parameter: must be <= upper_percentile."
            )
        self.step_ma_per_s = _nonneg(step_ma_per_s, "step_ma_per_s")
        self.reset_state()

    def reset_state(self) -> None:
        self.calibration.reset()
        self.band = (self.lower, self.upper)
        self._amplitude = self.min_amplitude_ma

    @property
    def is_calibrated(self) -> bool:
        return self.band[0] is not None and self.band[1] is not None

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        beta = self.symptom(observation)
        lower, upper = self.band
        if lower is None or upper is None:
            if self.calibration.collecting(beta, t_s):
                return 0.0, self.frequency_hz
            lower = self.calibration.percentile(self.lower_percentile) if lower is None else lower
            upper = self.calibration.percentile(self.upper_percentile) if upper is None else upper
            self.band = (lower, upper)
        step = self.step_ma_per_s * self.period_s
        if beta > upper:
            self._amplitude = min(self._amplitude + step, self.max_amplitude_ma)
        elif beta < lower:
            self._amplitude = max(self._amplitude - step, self.min_amplitude_ma)
        return self._amplitude, self.frequency_hz


class PIController(Controller, name="pi"):
    """PI amplitude control after Fleming et al. (2020) (module docstring).

    Parameters
    ----------
    kp : float
        Proportional gain (mA per unit of the symptom).
    ti_s : float
        Integral time (s); Fleming et al. used 0.2 s.
    setpoint : float or None
        Target beta; None: the ``percentile``-th percentile of the beta seen during the first
        ``calibration_s`` without stimulation.
    calibration_s, percentile : float
        The calibration period and percentile (used when ``setpoint`` is None).
    max_amplitude_ma : float
        Output clamp (mA); Fleming et al. clamped to [0, 3] mA.
    **kwargs
        :class:`~stimulation.controllers.base.Controller` parameters (``period_s``: 20 ms).
    """

    def __init__(
        self,
        kp: float = 20.0,
        ti_s: float = 0.2,
        setpoint: float | None = None,
        calibration_s: float = 1.0,
        percentile: float = 20.0,
        max_amplitude_ma: float = 3.0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.kp = _nonneg(kp, "kp")
        self.ti_s = ensure_float(ti_s, "ti_s", minimum=0.0, strict_minimum=True, error=_ERR)
        self.setpoint = None if setpoint is None else _nonneg(setpoint, "setpoint")
        self.calibration = Calibration(_nonneg(calibration_s, "calibration_s"))
        self.percentile = _percent(percentile, "percentile")
        self.max_amplitude_ma = _nonneg(max_amplitude_ma, "max_amplitude_ma")
        self.reset_state()

    def reset_state(self) -> None:
        self.calibration.reset()
        self.active_setpoint = self.setpoint
        self.integral = 0.0

    @property
    def is_calibrated(self) -> bool:
        return self.active_setpoint is not None

    def decide(self, observation: npt.NDArray[np.float64], t_s: float) -> tuple[float, float]:
        beta = self.symptom(observation)
        if self.active_setpoint is None:
            if self.calibration.collecting(beta, t_s):
                return 0.0, self.frequency_hz
            self.active_setpoint = self.calibration.percentile(self.percentile)
        if not np.isfinite(beta):
            beta = self.active_setpoint  # no information: hold the integral, act on it alone
        error = beta - self.active_setpoint
        candidate = self.integral + error * self.period_s
        u = self.kp * (error + candidate / self.ti_s)
        saturated_high = u > self.max_amplitude_ma and error > 0
        saturated_low = u < 0.0 and error < 0
        if not (saturated_high or saturated_low):
            self.integral = candidate  # conditional integration (anti-windup)
        u = self.kp * (error + self.integral / self.ti_s)
        return min(max(u, 0.0), self.max_amplitude_ma), self.frequency_hz
