"""Pulse trains for deep-brain stimulation: timing, charge per phase, energy, time on stimulation.

The amplitude is in the units of whatever receives the train: uA/cm2 for the basal-ganglia model
(:mod:`stimulation.plant`), mA for a device. Charge and energy are only meaningful in device units
(mA, us, Ohm); model current densities are not physical charge (see Shannon 1992 for the
charge-density limits that apply to real electrodes).

Conventions
-----------
- A monophasic pulse is one phase of ``+amplitude`` lasting ``pulse_width_us``.
- A biphasic (charge-balanced) pulse is ``+amplitude`` for ``pulse_width_us``, a gap of
  ``interphase_us``, then ``-amplitude`` for ``pulse_width_us``.
- Pulse onsets are ``start_s + k / frequency_hz`` for ``k = 0, 1, ...`` while ``< stop_s``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from bci.checks import check_value, ensure_float
from bci.errors import ConfigError
from stimulation.errors import PulseParameterError

Waveform = Literal["monophasic", "biphasic"]
WAVEFORMS: tuple[str, ...] = ("monophasic", "biphasic")


def _float(value: Any, name: str, **bounds: Any) -> float:
    try:
        return ensure_float(value, name, **bounds)
    except ConfigError as err:
        raise PulseParameterError(str(err)) from None


@dataclass(frozen=True)
class PulseTrain:
    """A regular train of rectangular stimulation pulses.

    Parameters
    ----------
    amplitude : float
        Pulse amplitude, >= 0, in the target's units (uA/cm2 for the model, mA for a device).
        0 means stimulation off.
    frequency_hz : float
        Pulse rate in Hz, > 0.
    pulse_width_us : float
        Width of one phase in microseconds, > 0. The whole pulse (both phases and the interphase
        gap for biphasic pulses) must be shorter than the period.
    waveform : {"monophasic", "biphasic"}
        Pulse shape (see the module docstring).
    interphase_us : float
        Gap between the two phases of a biphasic pulse, >= 0 (ignored for monophasic pulses).
    start_s : float
        Onset of the first pulse in seconds.
    stop_s : float or None
        No pulse starts at or after this time; None for a train without end.

    Raises
    ------
    PulseParameterError
        (a :class:`bci.BCIError` and a ``ValueError``) on a negative or NaN amplitude, a frequency
        <= 0, a pulse width <= 0, or a pulse longer than the period.

    Examples
    --------
    >>> dbs = PulseTrain(amplitude=3.0, frequency_hz=130.0, pulse_width_us=60.0)
    >>> round(dbs.charge_per_phase_uc(), 3)
    0.18
    """

    amplitude: float
    frequency_hz: float = 130.0
    pulse_width_us: float = 300.0
    waveform: Waveform = "monophasic"
    interphase_us: float = 0.0
    start_s: float = 0.0
    stop_s: float | None = None

    def __post_init__(self) -> None:
        amplitude = _float(self.amplitude, "amplitude", minimum=0.0)
        frequency_hz = _float(self.frequency_hz, "frequency_hz", minimum=0.0, strict_minimum=True)
        pulse_width_us = _float(
            self.pulse_width_us, "pulse_width_us", minimum=0.0, strict_minimum=True
        )
        try:
            check_value(self.waveform, WAVEFORMS, "waveform")
        except ConfigError as err:
            raise PulseParameterError(str(err)) from None
        interphase_us = _float(self.interphase_us, "interphase_us", minimum=0.0)
        start_s = _float(self.start_s, "start_s")
        stop_s = None if self.stop_s is None else _float(self.stop_s, "stop_s")
        if stop_s is not None and stop_s < start_s:
            raise PulseParameterError(
                f"Invalid value for the 'stop_s' parameter: must be >= start_s ({start_s}), "
                f"but got {stop_s}."
            )
        object.__setattr__(self, "amplitude", amplitude)
        object.__setattr__(self, "frequency_hz", frequency_hz)
        object.__setattr__(self, "pulse_width_us", pulse_width_us)
        object.__setattr__(self, "interphase_us", interphase_us)
        object.__setattr__(self, "start_s", start_s)
        object.__setattr__(self, "stop_s", stop_s)
        period_us = 1e6 / frequency_hz
        if self.pulse_duration_us >= period_us:
            raise PulseParameterError(
                f"The pulse ({self.pulse_duration_us:g} us for a {self.waveform} pulse of "
                f"{pulse_width_us:g} us per phase) must be shorter than the period "
                f"({period_us:g} us at {frequency_hz:g} Hz)."
            )

    # ------------------------------------------------------------------ timing
    @property
    def period_s(self) -> float:
        """Time between pulse onsets in seconds."""
        return 1.0 / self.frequency_hz

    @property
    def n_phases(self) -> int:
        """1 for monophasic, 2 for biphasic pulses."""
        return 2 if self.waveform == "biphasic" else 1

    @property
    def pulse_duration_us(self) -> float:
        """Duration of one whole pulse (phases plus interphase gap) in microseconds."""
        if self.waveform == "biphasic":
            return 2.0 * self.pulse_width_us + self.interphase_us
        return self.pulse_width_us

    def pulse_times(self, t0_s: float, t1_s: float) -> NDArray[np.float64]:
        """Onsets (s) of the pulses that start in ``[t0_s, t1_s)``.

        Parameters
        ----------
        t0_s, t1_s : float
            Window in seconds, ``t1_s >= t0_s``.

        Returns
        -------
        numpy.ndarray of float64
            Sorted onset times; empty when the amplitude is 0.
        """
        t0_s = _float(t0_s, "t0_s")
        t1_s = _float(t1_s, "t1_s")
        if t1_s < t0_s:
            raise PulseParameterError(f"Invalid window: t1_s ({t1_s}) must be >= t0_s ({t0_s}).")
        if self.amplitude == 0.0:
            return np.empty(0, dtype=np.float64)
        end = t1_s if self.stop_s is None else min(t1_s, self.stop_s)
        lo = self.start_s if t0_s <= self.start_s else t0_s
        if end <= lo:
            return np.empty(0, dtype=np.float64)
        f = self.frequency_hz
        k0 = max(0, math.floor((lo - self.start_s) * f) - 1)
        k1 = math.ceil((end - self.start_s) * f) + 1
        onsets = self.start_s + np.arange(k0, k1 + 1, dtype=np.float64) / f
        return onsets[(onsets >= lo) & (onsets < end)]

    def n_pulses(self, duration_s: float) -> int:
        """Number of pulses that start in ``[0, duration_s)``."""
        return int(self.pulse_times(0.0, _float(duration_s, "duration_s", minimum=0.0)).size)

    # ------------------------------------------------------------------ dose
    def charge_per_phase_uc(self, amplitude_ma: float | None = None) -> float:
        """Charge per phase in microcoulombs: ``mA x us x 1e-3``.

        Parameters
        ----------
        amplitude_ma : float, optional
            Amplitude in mA; defaults to this train's amplitude read as mA (device units).
        """
        amp = (
            self.amplitude
            if amplitude_ma is None
            else _float(amplitude_ma, "amplitude_ma", minimum=0.0)
        )
        return amp * self.pulse_width_us * 1e-3

    def charge_per_second_uc(self) -> float:
        """Charge delivered per second in microcoulombs (all phases), amplitude read as mA."""
        return self.charge_per_phase_uc() * self.n_phases * self.frequency_hz

    def energy_j(self, duration_s: float, impedance_ohm: float = 1000.0) -> float:
        """Energy delivered over ``[0, duration_s)`` in joules: ``sum I^2 R PW`` over phases.

        The amplitude is read as mA (device units); both phases count for biphasic pulses.

        Parameters
        ----------
        duration_s : float
            Length of the window starting at t = 0, >= 0.
        impedance_ohm : float
            Electrode impedance, > 0 (about 1 kOhm is typical for DBS leads).
        """
        impedance_ohm = _float(impedance_ohm, "impedance_ohm", minimum=0.0, strict_minimum=True)
        current_a = self.amplitude * 1e-3
        per_phase_j = current_a * current_a * impedance_ohm * self.pulse_width_us * 1e-6
        return self.n_pulses(duration_s) * self.n_phases * per_phase_j

    def time_on_s(self, duration_s: float) -> float:
        """Time within ``[0, duration_s)`` during which the train is on (amplitude > 0)."""
        duration_s = _float(duration_s, "duration_s", minimum=0.0)
        if self.amplitude == 0.0:
            return 0.0
        stop = duration_s if self.stop_s is None else min(duration_s, self.stop_s)
        return max(0.0, stop - max(0.0, self.start_s))

    def to_dict(self) -> dict[str, Any]:
        """The train's parameters as a plain dict (for session configs)."""
        return asdict(self)
