"""The plant bridge's small configuration objects, and the bridge from flat settings.

:class:`~stimulation.plant.bridge.PlantBridge` is composed of the objects it runs (the network,
the virtual probe, the safety limits) and small settings objects (:class:`BridgeTiming`,
:class:`RawFormat`, :class:`StimSetting`). A session config or a command line has flat keys
instead; :func:`bridge_from_settings` hands each key to the object that owns it, read from that
object's own signature (no parameter list is repeated here):

- the network (:class:`~stimulation.plant.BasalGangliaNetwork`): ``state``, ``seed``,
  ``cells_per_nucleus``, ``dbs_target``, ``plant``, ...;
- the probe (:class:`~stimulation.plant.probe.VirtualProbe`): ``n_units``, ``n_channels``,
  ``noise_uv``, ... and ``recorded_nucleus`` for its ``nucleus``;
- :class:`BridgeTiming`, :class:`RawFormat` and :class:`StimSetting` fields;
- the safety limits (:class:`~stimulation.safety.SafetyLimits`): its fields, with
  ``controller_source_id`` for its ``source_id``;
- the bridge's own ``name``, ``source_id``, ``command_stream`` and ``biphasic``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bci.checks import check_value, ensure_float
from stimulation.errors import PlantParameterError
from stimulation.plant.streams import RAW_FORMATS

if TYPE_CHECKING:
    from stimulation.plant.bridge import PlantBridge


@dataclass(frozen=True)
class BridgeTiming:
    """How the bridge paces the plant.

    Parameters
    ----------
    control_period_s : float
        Simulated time per period (and per command in lockstep).
    window_s : float
        Sliding window of the biomarkers.
    warmup_s : float
        Simulated, unpublished and unstimulated, before the streams start (the network leaves its
        initial conditions; the LFP scale is calibrated on it).
    lockstep : bool
        One control period per accepted command instead of wall-clock pacing.
    lead_s : float or None
        How far the model runs ahead of the wall clock in real time, and at most in a paced
        lockstep (default one period).
    max_speed : float or None
        Lockstep only: the most model seconds per wall second. None runs as fast as the commands
        come (deterministic, often faster than real time); ``1.0`` never lets the model time
        published get more than ``lead_s`` ahead of the wall time since the first period began
        (a stimulator's pace). A plant that fell behind (slow commands) catches up as fast as
        the commands come. Pacing changes only when periods run, never what they hold.

    Raises
    ------
    PlantParameterError
        A non-positive or non-finite duration or speed, or ``max_speed`` without ``lockstep``.
    """

    control_period_s: float = 0.02
    window_s: float = 0.25
    warmup_s: float = 0.5
    lockstep: bool = False
    lead_s: float | None = None
    max_speed: float | None = None

    def __post_init__(self) -> None:
        err = PlantParameterError
        period = ensure_float(
            self.control_period_s, "control_period_s", minimum=0.0, strict_minimum=True, error=err
        )
        object.__setattr__(self, "control_period_s", period)
        object.__setattr__(
            self,
            "window_s",
            ensure_float(self.window_s, "window_s", minimum=0.0, strict_minimum=True, error=err),
        )
        object.__setattr__(
            self, "warmup_s", ensure_float(self.warmup_s, "warmup_s", minimum=0.0, error=err)
        )
        lead = period if self.lead_s is None else self.lead_s
        object.__setattr__(self, "lead_s", ensure_float(lead, "lead_s", minimum=0.0, error=err))
        object.__setattr__(self, "lockstep", bool(self.lockstep))
        if self.max_speed is not None:
            speed = ensure_float(
                self.max_speed, "max_speed", minimum=0.0, strict_minimum=True, error=err
            )
            if not self.lockstep:
                raise PlantParameterError(
                    "Invalid value for the 'max_speed' parameter: it paces lockstep only (a "
                    "real-time plant already runs at the wall clock's speed); drop it or use "
                    "lockstep."
                )
            object.__setattr__(self, "max_speed", speed)


@dataclass(frozen=True)
class RawFormat:
    """Sample format of the ``-raw`` stream.

    Parameters
    ----------
    channel_format : {"float32", "int16"}
        LSL sample format.
    scale_uv_per_bit : float
        uV per integer step of an int16 stream (written to the stream's metadata).
    chunk_ms : float
        Chunk length pushed at once.
    """

    channel_format: str = "float32"
    scale_uv_per_bit: float = 0.195
    chunk_ms: float = 1.0

    def __post_init__(self) -> None:
        err = PlantParameterError
        check_value(self.channel_format, RAW_FORMATS, "channel_format", error=err)
        ensure_float(
            self.scale_uv_per_bit, "scale_uv_per_bit", minimum=0.0, strict_minimum=True, error=err
        )
        ensure_float(self.chunk_ms, "chunk_ms", minimum=0.0, strict_minimum=True, error=err)


@dataclass(frozen=True)
class StimSetting:
    """A stimulation setting in device units (mA, Hz, us per phase), e.g. the open-loop one."""

    amplitude_ma: float = 0.0
    frequency_hz: float = 130.0
    pulse_width_us: float = 300.0


_BRIDGE_KEYS = ("name", "source_id", "command_stream", "biphasic")
_PROBE_DERIVED = ("self", "cells_per_nucleus", "seed", "nucleus", "reference_amplitude")


def _parameters(fn: Any, skip: tuple[str, ...] = ("self",)) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if name not in skip and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _groups() -> dict[str, dict[str, Any]]:
    """Flat key -> default, per owner."""
    from stimulation.plant import BasalGangliaNetwork
    from stimulation.plant.probe import VirtualProbe
    from stimulation.safety import SafetyLimits

    limits = {f.name: f.default for f in fields(SafetyLimits) if f.name != "source_id"}
    limits["controller_source_id"] = None
    probe = _parameters(VirtualProbe.__init__, _PROBE_DERIVED)
    probe["recorded_nucleus"] = "stn"
    probe.pop("artifact_pulse_us", None)  # the initial pulse width's
    return {
        "network": _parameters(BasalGangliaNetwork.__init__),
        "probe": probe,
        "timing": {f.name: f.default for f in fields(BridgeTiming)},
        "raw": {f.name: f.default for f in fields(RawFormat)},
        "initial": {f.name: f.default for f in fields(StimSetting)},
        "limits": limits,
        "bridge": {"name": "plant", "source_id": None, "command_stream": None, "biphasic": False},
    }


def default_settings() -> dict[str, Any]:
    """Every flat setting :func:`bridge_from_settings` takes, with its default."""
    out: dict[str, Any] = {}
    for group in _groups().values():
        out.update(group)
    return out


def bridge_from_settings(**settings: Any) -> PlantBridge:
    """Build a :class:`~stimulation.plant.bridge.PlantBridge` from flat settings (module
    docstring). An unknown key raises :class:`~stimulation.errors.PlantParameterError` listing
    the known ones."""
    from stimulation.plant import BasalGangliaNetwork
    from stimulation.plant.bridge import PlantBridge
    from stimulation.plant.probe import VirtualProbe
    from stimulation.safety import REFERENCE_AMPLITUDE_MA, SafetyLimits, model_amplitude_ua_cm2

    groups = _groups()
    owner = {key: name for name, group in groups.items() for key in group}
    if "amplitude_scale" in settings:
        raise PlantParameterError(
            "Invalid setting 'amplitude_scale': commands are in device units (mA) and the "
            "bridge maps them to the plant's units itself (stimulation.safety); drop it."
        )
    split: dict[str, dict[str, Any]] = {name: {} for name in groups}
    for key, value in settings.items():
        if key not in owner:
            known = ", ".join(sorted(owner))
            raise PlantParameterError(
                f"Unknown plant bridge setting {key!r}. Known settings are {known}."
            )
        split[owner[key]][key] = value
    net = split["network"]
    network = BasalGangliaNetwork(**net)
    initial = StimSetting(**split["initial"])
    probe_kw = dict(split["probe"])
    nucleus = probe_kw.pop("recorded_nucleus", "stn")
    probe = VirtualProbe(
        network.n_cells,
        nucleus,
        seed=network.seed,
        reference_amplitude=model_amplitude_ua_cm2(REFERENCE_AMPLITUDE_MA),
        artifact_pulse_us=initial.pulse_width_us,
        **probe_kw,
    )
    limits_kw = dict(split["limits"])
    controller = limits_kw.pop("controller_source_id", None)
    if controller is None:
        limits_kw.setdefault("watchdog_timeout_s", None)  # open loop: nobody to watch
    limits = SafetyLimits(source_id=controller, **limits_kw)
    return PlantBridge(
        network,
        probe,
        limits=limits,
        initial=initial,
        timing=BridgeTiming(**split["timing"]),
        raw_format=RawFormat(**split["raw"]),
        **split["bridge"],
    )
