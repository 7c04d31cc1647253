"""The safety limiter's configuration: every limit in device units, checked once when it is made.

Charge limits
-------------
A pulse of ``amplitude_ma`` for ``pulse_width_us`` per phase carries
``Q = amplitude_ma * pulse_width_us * 1e-3`` uC per phase, and on an electrode of
``electrode_area_cm2`` a charge density ``D = Q / area`` uC/cm2 per phase. Two caps apply:

- Shannon (1992, IEEE Trans Biomed Eng 39:424): ``log10(D) + log10(Q) <= k``; tissue damage was seen
  at ``k >= 1.85`` and ``k = 1.75`` is the customary limit. It bounds ``Q <= sqrt(10**k * area)``.
- Device manuals warn above 30 uC/cm2/phase: ``D <= max_charge_density_uc_cm2``.

The tighter of the two gives :meth:`SafetyLimits.max_charge_per_phase_uc`. The default electrode is a
contact of the Medtronic 3387/3389 lead (1.27 mm diameter, 1.5 mm long: 0.06 cm2).
Charge limits apply to device units only: the plant's model current densities are not physical
charge (:mod:`stimulation.safety.units` maps one to the other).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from bci.checks import check_value, ensure_float
from bci.errors import ConfigError
from stimulation.errors import StimulationError

SafeState = Literal["off", "continuous"]
SAFE_STATES: tuple[str, ...] = ("off", "continuous")
OutOfRange = Literal["clamp", "safe_state"]
OUT_OF_RANGE: tuple[str, ...] = ("clamp", "safe_state")


class SafetyConfigError(StimulationError, ConfigError):
    """A safety-limiter setting is invalid or the limits contradict each other."""


def charge_per_phase_uc(amplitude_ma: float, pulse_width_us: float) -> float:
    """Charge of one phase (uC) of a pulse of ``amplitude_ma`` lasting ``pulse_width_us``.

    Examples
    --------
    >>> charge_per_phase_uc(2.5, 60.0)
    0.15
    """
    return float(amplitude_ma) * float(pulse_width_us) * 1e-3


def shannon_k(amplitude_ma: float, pulse_width_us: float, electrode_area_cm2: float) -> float:
    """Shannon's ``k = log10(D) + log10(Q)`` of a pulse (``-inf`` for a zero charge)."""
    q = charge_per_phase_uc(amplitude_ma, pulse_width_us)
    if q <= 0.0:
        return -math.inf
    return math.log10(q / electrode_area_cm2) + math.log10(q)


@dataclass(frozen=True)
class SafetyLimits:
    """What may reach a stimulator, in device units. Invalid or contradictory values raise
    :class:`SafetyConfigError` naming the setting.

    Parameters
    ----------
    max_amplitude_ma : float
        Largest amplitude (mA); Fleming et al. (2020) allow 0-3 mA.
    min_frequency_hz, max_frequency_hz : float
        Pulse-rate range (Hz). Clinical DBS uses 130-185 Hz; devices allow about 2-250 Hz.
    min_pulse_width_us, max_pulse_width_us : float
        Pulse-width range (us per phase).
    electrode_area_cm2 : float
        Geometric area of the stimulating contact (module docstring).
    shannon_k : float
        ``k`` of the Shannon criterion (1.75 by default).
    max_charge_density_uc_cm2 : float
        Cap on the charge density per phase (30 uC/cm2).
    max_slew_ma_per_s : float
        Fastest amplitude change, up or down (mA/s); the default ramps 0 -> 3 mA in 250 ms, the
        ramp of Little et al. (2013). Transitions to the safe state obey it too.
    watchdog_timeout_s : float or None
        Without a fresh command for this long the limiter moves to the safe state; None: no
        watchdog.
    safe_state : {"off", "continuous"}
        Off (amplitude 0), or continuous DBS at ``safe_amplitude_ma``.
    safe_amplitude_ma, safe_frequency_hz, safe_pulse_width_us : float
        The safe state's setting (the amplitude is used only by ``"continuous"``; frequency and
        pulse width also by ``"off"``, so the pulse clock has a rate).
    out_of_range : {"clamp", "safe_state"}
        What a finite command outside the ranges gets: clamped to the range, or the safe state.
        NaN, infinite, negative or zero rates and widths always get the safe state.
    source_id : str or None
        The only controller whose commands are accepted; None accepts any (open loop, tests).
    session_token : str or None
        The token commands must carry (:attr:`bci.stream.StimCommand.session_token`); None: not
        checked.
    max_command_age_s : float or None
        Commands issued longer ago than this (``now - t_issue``, same clock) are dropped as stale;
        None: not checked.
    """

    max_amplitude_ma: float = 3.0
    min_frequency_hz: float = 2.0
    max_frequency_hz: float = 250.0
    min_pulse_width_us: float = 20.0
    max_pulse_width_us: float = 450.0
    electrode_area_cm2: float = 0.06
    shannon_k: float = 1.75
    max_charge_density_uc_cm2: float = 30.0
    max_slew_ma_per_s: float = 12.0
    watchdog_timeout_s: float | None = 0.1
    safe_state: SafeState = "off"
    safe_amplitude_ma: float = 2.5
    safe_frequency_hz: float = 130.0
    safe_pulse_width_us: float = 300.0
    out_of_range: OutOfRange = "clamp"
    source_id: str | None = None
    session_token: str | None = None
    max_command_age_s: float | None = None

    def __post_init__(self) -> None:
        err = SafetyConfigError

        def pos(name: str, strict: bool = True) -> float:
            value = ensure_float(
                getattr(self, name), name, minimum=0.0, strict_minimum=strict, error=err
            )
            object.__setattr__(self, name, value)
            return value

        for name in (
            "max_amplitude_ma",
            "min_frequency_hz",
            "max_frequency_hz",
            "min_pulse_width_us",
            "max_pulse_width_us",
            "electrode_area_cm2",
            "max_charge_density_uc_cm2",
            "max_slew_ma_per_s",
            "safe_frequency_hz",
            "safe_pulse_width_us",
        ):
            pos(name)
        pos("safe_amplitude_ma", strict=False)
        object.__setattr__(self, "shannon_k", ensure_float(self.shannon_k, "shannon_k", error=err))
        for name in ("watchdog_timeout_s", "max_command_age_s"):
            if getattr(self, name) is not None:
                pos(name)
        check_value(self.safe_state, SAFE_STATES, "safe_state", error=err)
        check_value(self.out_of_range, OUT_OF_RANGE, "out_of_range", error=err)
        for name in ("source_id", "session_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise err(
                    f"Invalid value for the '{name}' parameter: expected a non-empty string or "
                    f"None, but got {value!r}."
                )
        for lo, hi in (
            ("min_frequency_hz", "max_frequency_hz"),
            ("min_pulse_width_us", "max_pulse_width_us"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise err(
                    f"Invalid limits: {lo} ({getattr(self, lo):g}) is above {hi} "
                    f"({getattr(self, hi):g})."
                )
        period_us = 1e6 / self.max_frequency_hz
        if 2.0 * self.max_pulse_width_us >= period_us:
            raise err(
                f"Invalid limits: a biphasic pulse of max_pulse_width_us "
                f"({self.max_pulse_width_us:g} us per phase) does not fit the period at "
                f"max_frequency_hz ({period_us:g} us)."
            )
        q_max = self.max_charge_per_phase_uc
        if charge_per_phase_uc(self.max_amplitude_ma, self.min_pulse_width_us) > q_max:
            raise err(
                f"Invalid limits: max_amplitude_ma ({self.max_amplitude_ma:g}) at "
                f"min_pulse_width_us ({self.min_pulse_width_us:g}) already exceeds the charge "
                f"limit ({q_max:.4g} uC per phase); lower max_amplitude_ma or "
                "min_pulse_width_us."
            )
        if not (self.min_frequency_hz <= self.safe_frequency_hz <= self.max_frequency_hz):
            raise err(
                f"Invalid value for the 'safe_frequency_hz' parameter: must lie within "
                f"[{self.min_frequency_hz:g}, {self.max_frequency_hz:g}] Hz, but got "
                f"{self.safe_frequency_hz:g}."
            )
        if not (self.min_pulse_width_us <= self.safe_pulse_width_us <= self.max_pulse_width_us):
            raise err(
                f"Invalid value for the 'safe_pulse_width_us' parameter: must lie within "
                f"[{self.min_pulse_width_us:g}, {self.max_pulse_width_us:g}] us, but got "
                f"{self.safe_pulse_width_us:g}."
            )
        if self.safe_state == "continuous" and (
            self.safe_amplitude_ma > self.max_amplitude_ma
            or charge_per_phase_uc(self.safe_amplitude_ma, self.safe_pulse_width_us) > q_max
        ):
            raise err(
                f"Invalid value for the 'safe_amplitude_ma' parameter: {self.safe_amplitude_ma:g} "
                f"mA at {self.safe_pulse_width_us:g} us is above max_amplitude_ma or the charge "
                "limit."
            )

    # ------------------------------------------------------------------ derived limits
    @property
    def max_charge_per_phase_uc(self) -> float:
        """Largest charge per phase (uC) both the Shannon criterion and the density cap allow."""
        area = self.electrode_area_cm2
        shannon = math.sqrt(10.0**self.shannon_k * area)
        return min(shannon, self.max_charge_density_uc_cm2 * area)

    @property
    def safe_amplitude(self) -> float:
        """The safe state's amplitude (mA): 0 when off."""
        return self.safe_amplitude_ma if self.safe_state == "continuous" else 0.0

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a session's config file; rebuild with :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SafetyLimits:
        """Limits from a mapping; an unknown key is an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                options = ", ".join(sorted(known))
                raise SafetyConfigError(
                    f"Unknown safety limit {key!r}. Known limits are {options}."
                )
        return cls(**values)
