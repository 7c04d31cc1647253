"""From the agent's normalised action to a stimulation setting, and its energy.

A controller sees normalised actions in [0, 1]; the environment turns them into a device setting
(amplitude in mA, frequency in Hz, pulse width in us: what a clinical stimulator and
:mod:`stimulation.safety` speak) and converts the amplitude to the model's current density with
:func:`stimulation.safety.model_amplitude_ua_cm2` (the toolkit's one mapping: 2.5 mA <-> 300
uA/cm2). Frequency and pulse width pass through.

- amplitude: ``a * amplitude_ma_at_full_action`` mA (default 3.0 mA, the clamp of Fleming, Dunn
  & Lowery 2020's PI controller);
- frequency: fixed ``frequency_hz``, or with ``control_frequency`` the second action entry ``b``
  sets ``f_min + b * (f_max - f_min)`` Hz within ``frequency_range_hz``;
- pulse width: fixed ``pulse_width_us``; monophasic cathodic or charge-balanced biphasic pulses.

Energy: the mean stimulation power relative to So, Kent & Grill (2012)'s therapeutic setting
(2.5 mA = 300 uA/cm2, 130 Hz, 300 us, monophasic; :data:`stimulation.safety.REFERENCE_AMPLITUDE_MA`
and its neighbours), :func:`stimulation_energy`: ``(A / 2.5 mA)^2 * (PW / 300 us) * phases *
(f / 130 Hz)``, since the power of a pulse train is ``I^2 R x PW x phases x f`` (the Joule
heating :meth:`~stimulation.pulses.PulseTrain.energy_j` sums pulse by pulse). It is 1 for So's
setting and 0 off; a biphasic pulse counts both phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from bci.checks import ensure_float
from stimulation.errors import PlantParameterError
from stimulation.pulses import PulseTrain, Waveform
from stimulation.safety import (
    REFERENCE_AMPLITUDE_MA,
    REFERENCE_FREQUENCY_HZ,
    REFERENCE_PULSE_WIDTH_US,
    model_amplitude_ua_cm2,
)

#: So et al. (2012)'s therapeutic STN-DBS in model units: the energy reference.
SO_2012_TRAIN = PulseTrain(
    model_amplitude_ua_cm2(REFERENCE_AMPLITUDE_MA),
    REFERENCE_FREQUENCY_HZ,
    REFERENCE_PULSE_WIDTH_US,
    "monophasic",
)


def stimulation_energy(train: PulseTrain, reference: PulseTrain = SO_2012_TRAIN) -> float:
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


@dataclass(frozen=True)
class Setting:
    """One control period's stimulation in device units, and the model train it stands for."""

    amplitude_ma: float
    frequency_hz: float
    pulse_width_us: float
    train: PulseTrain  # model units: amplitude in uA/cm2


class ActionMap:
    """The normalised action space of ``BasalGanglia-v0`` and its device settings.

    Parameters
    ----------
    amplitude_ma_at_full_action : float
        Amplitude (mA) at action 1, > 0.
    frequency_hz, pulse_width_us : float
        Fixed rate and pulse width (the rate only when ``control_frequency`` is False).
    waveform : {"monophasic", "biphasic"}
        Pulse shape.
    control_frequency : bool
        Add the normalised rate as a second action entry.
    frequency_range_hz : (float, float)
        Rate at action entry 0 and 1 with ``control_frequency``.

    Raises
    ------
    PlantParameterError
        For an amplitude that is not positive or a bad frequency range; a rate that does not fit
        the pulse raises :class:`~stimulation.errors.PulseParameterError`.
    """

    def __init__(
        self,
        amplitude_ma_at_full_action: float = 3.0,
        frequency_hz: float = REFERENCE_FREQUENCY_HZ,
        pulse_width_us: float = REFERENCE_PULSE_WIDTH_US,
        waveform: Waveform = "monophasic",
        control_frequency: bool = False,
        frequency_range_hz: tuple[float, float] = (10.0, 200.0),
    ) -> None:
        err = PlantParameterError
        self.amplitude_ma_at_full_action = ensure_float(
            amplitude_ma_at_full_action,
            "amplitude_ma_at_full_action",
            minimum=0.0,
            strict_minimum=True,
            error=err,
        )
        f_lo = ensure_float(
            frequency_range_hz[0], "frequency_range_hz[0]", minimum=0.0, strict_minimum=True,
            error=err,
        )  # fmt: skip
        f_hi = ensure_float(frequency_range_hz[1], "frequency_range_hz[1]", minimum=f_lo, error=err)
        self.frequency_range_hz = (f_lo, f_hi)
        self.control_frequency = bool(control_frequency)
        self.waveform: Waveform = waveform
        full_ua_cm2 = model_amplitude_ua_cm2(self.amplitude_ma_at_full_action)
        # PulseTrain checks the frequency and pulse width, and the largest rate the frequency
        # action can ask for must still fit the pulse (it raises otherwise)
        fixed = PulseTrain(full_ua_cm2, frequency_hz, pulse_width_us, waveform)
        if self.control_frequency:
            PulseTrain(full_ua_cm2, f_hi, pulse_width_us, waveform)
        self.frequency_hz = fixed.frequency_hz
        self.pulse_width_us = fixed.pulse_width_us
        n_act = 2 if self.control_frequency else 1
        self.space = spaces.Box(0.0, 1.0, shape=(n_act,), dtype=np.float32)

    def setting(self, action: Any) -> Setting:
        """The device setting (and model train) an action asks for.

        Raises
        ------
        PlantParameterError
            For an action of the wrong shape, NaN, or outside ``[0, 1]``: it is never clipped.
        """
        try:
            a = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise PlantParameterError(
                f"Invalid value for the 'action' parameter: expected numbers, but got {action!r}."
            ) from None
        if a.shape != self.space.shape:
            raise PlantParameterError(
                f"Invalid value for the 'action' parameter: expected shape {self.space.shape}, "
                f"but got {np.shape(action)} instead."
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
        amplitude_ma = values[0] * self.amplitude_ma_at_full_action
        train = PulseTrain(
            model_amplitude_ua_cm2(amplitude_ma), frequency, self.pulse_width_us, self.waveform
        )
        return Setting(amplitude_ma, train.frequency_hz, train.pulse_width_us, train)

    def action_for(self, amplitude_ma: float, frequency_hz: float | None = None) -> np.ndarray:
        """The normalised action of a device setting (clipped to [0, 1]): the inverse of
        :meth:`setting`, for controllers written in device units."""
        a = [amplitude_ma / self.amplitude_ma_at_full_action]
        if self.control_frequency:
            lo, hi = self.frequency_range_hz
            f = self.frequency_hz if frequency_hz is None else frequency_hz
            a.append((f - lo) / (hi - lo) if hi > lo else 0.0)
        return np.clip(np.array(a, dtype=np.float32), 0.0, 1.0)
