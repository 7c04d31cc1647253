"""The one mapping between device units (mA, us, Hz) and the plant's model units (uA/cm2).

This module owns the one mapping between device units (what a controller commands and a clinical
stimulator delivers: mA, us, Hz) and the simulated plant's model units (an applied current density
in uA/cm2, So, Kent & Grill 2012). Nothing else in the toolkit converts between the two.

Device units -> model units
---------------------------
The basal-ganglia model takes a current density, not a current. We anchor the two scales at the
settings each literature calls therapeutic: So et al. (2012) stimulate STN at 300 uA/cm2, and
Fleming, Dunn & Lowery (2020) use 2.5 mA as their open-loop clinical reference (range 0-3 mA). So

    amplitude_ua_cm2 = amplitude_ma * MODEL_UA_CM2_PER_MA,   MODEL_UA_CM2_PER_MA = 120

and frequency and pulse width pass through unchanged (the model's pulses are in Hz and us too).
Model current densities are not physical charge: charge limits apply to device units only.
"""

from __future__ import annotations

import math

from stimulation.errors import PulseParameterError

#: Model current density (uA/cm2) per device milliampere: 2.5 mA (Fleming 2020's open-loop
#: reference) <-> 300 uA/cm2 (So 2012's therapeutic STN-DBS amplitude).
MODEL_UA_CM2_PER_MA: float = 120.0

#: So et al. (2012)'s therapeutic setting, in device units: 2.5 mA, 130 Hz, 300 us monophasic.
REFERENCE_AMPLITUDE_MA: float = 300.0 / MODEL_UA_CM2_PER_MA
REFERENCE_FREQUENCY_HZ: float = 130.0
REFERENCE_PULSE_WIDTH_US: float = 300.0


def model_amplitude_ua_cm2(amplitude_ma: float) -> float:
    """Model current density (uA/cm2) that stands for a device amplitude in mA.

    Examples
    --------
    >>> model_amplitude_ua_cm2(2.5)
    300.0
    """
    if not math.isfinite(amplitude_ma):
        raise PulseParameterError(f"amplitude_ma must be finite, got {amplitude_ma!r}")
    return float(amplitude_ma) * MODEL_UA_CM2_PER_MA


def device_amplitude_ma(amplitude_ua_cm2: float) -> float:
    """Device amplitude (mA) that the model current density ``amplitude_ua_cm2`` stands for.

    Examples
    --------
    >>> device_amplitude_ma(300.0)
    2.5
    """
    if not math.isfinite(amplitude_ua_cm2):
        raise PulseParameterError(f"amplitude_ua_cm2 must be finite, got {amplitude_ua_cm2!r}")
    return float(amplitude_ua_cm2) / MODEL_UA_CM2_PER_MA
