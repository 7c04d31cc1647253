"""The only path from a controller to a stimulator: device units, limits, and the plant's units.

- :mod:`stimulation.safety.units`: the one mapping between device units (mA) and the plant's
  model units (uA/cm2).
- :mod:`stimulation.safety.limits`: :class:`SafetyLimits`, the limiter's configuration (hard
  ranges, Shannon and charge-density caps, slew rate, watchdog, safe state, accepted source).
- :mod:`stimulation.safety.limiter`: :class:`SafetyLimiter` and its :class:`SafetyEvent`.
- :mod:`stimulation.safety.events`: :class:`SafetyEventOutlet`, the events on LSL.

Every controller emits :class:`bci.stream.StimCommand` (device units); every stimulator (the
plant's LSL bridge, :class:`stimulation.plant.bridge.PlantBridge`) obeys only what a
:class:`SafetyLimiter` let out.
"""

from stimulation.safety.limiter import DROPS, EVENT_KINDS, SafetyEvent, SafetyLimiter
from stimulation.safety.limits import (
    SafetyConfigError,
    SafetyLimits,
    charge_per_phase_uc,
    shannon_k,
)
from stimulation.safety.units import (
    MODEL_UA_CM2_PER_MA,
    REFERENCE_AMPLITUDE_MA,
    REFERENCE_FREQUENCY_HZ,
    REFERENCE_PULSE_WIDTH_US,
    device_amplitude_ma,
    model_amplitude_ua_cm2,
)

__all__ = [
    "DROPS",
    "EVENT_KINDS",
    "MODEL_UA_CM2_PER_MA",
    "REFERENCE_AMPLITUDE_MA",
    "REFERENCE_FREQUENCY_HZ",
    "REFERENCE_PULSE_WIDTH_US",
    "SafetyConfigError",
    "SafetyEvent",
    "SafetyLimiter",
    "SafetyLimits",
    "charge_per_phase_uc",
    "device_amplitude_ma",
    "model_amplitude_ua_cm2",
    "shannon_k",
]
