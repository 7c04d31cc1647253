"""What the loop needs from a decoder, a controller and a safety limiter, and how configs build them.

The runner knows these parts only through small protocols, so the real ones (``decoders``,
``stimulation.controllers``, ``stimulation.safety``) plug in by name in the session config:

- **pipeline stages** and the **decoder** are :class:`bci.stream.Stage` objects from the registry;
  the decoder accepts ``binned`` chunks and emits :class:`~bci.stream.StateChunk`.
- a **controller** is a registered Stage that accepts ``state`` chunks and whose ``process``
  returns a :class:`~bci.stream.StimCommand` in device units (mA, Hz, us) or ``None``.
- the **limiter** (:class:`CommandLimiter`) takes every command and returns the one that may reach
  the stimulator; the loop never sends anything it did not return.
- a stage needs per-session **calibration** when it has ``is_fitted`` False and a ``fit(data)``
  method taking its input as an array (``(n_samples, n_channels)`` for signals, ``(n_bins,
  n_units)`` for binned counts), called after ``prepare``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bci.errors import StageCompatibilityError
from bci.session.config import (
    ControllerConfig,
    DecoderConfig,
    SafetyConfig,
    SessionConfig,
    SessionConfigError,
    StageConfig,
    stage_class,
)
from bci.stream import Stage, StimCommand, StreamSpec

__all__ = [
    "CommandLimiter",
    "LoopParts",
    "build_controller",
    "build_limiter",
    "build_parts",
    "needs_calibration",
    "off_command",
    "safe_command",
]


@runtime_checkable
class CommandLimiter(Protocol):
    """The only path from a controller to a stimulator (:class:`stimulation.safety.SafetyLimiter`).

    ``apply`` returns what the stimulator delivers from ``now`` on (clamped, slew-limited, or the
    safe state), or None when it drops the command (foreign source, replay); ``now`` is the loop's
    clock (the LSL clock in real time, the plant's model time in lockstep).
    """

    def apply(self, command: StimCommand, now: float) -> StimCommand | None: ...


def needs_calibration(stage: Stage) -> bool:
    """Whether ``stage`` must be fitted on the first seconds of this session."""
    return getattr(stage, "is_fitted", True) is False and callable(getattr(stage, "fit", None))


def make_command(
    amplitude_ma: float,
    frequency_hz: float,
    pulse_width_us: float,
    t_issue: float,
    source_id: str,
    seq: int,
    session_token: str = "",
) -> StimCommand:
    """A :class:`~bci.stream.StimCommand` (signed with the token where the type carries one)."""
    extra = {"session_token": session_token} if "session_token" in _COMMAND_FIELDS else {}
    return StimCommand(amplitude_ma, frequency_hz, pulse_width_us, t_issue, source_id, seq, **extra)


_COMMAND_FIELDS = set(StimCommand.__dataclass_fields__)


def off_command(source_id: str, seq: int, t_issue: float, session_token: str = "") -> StimCommand:
    """Stimulation off (amplitude 0 at So 2012's frequency and pulse width)."""
    return make_command(0.0, 130.0, 300.0, t_issue, source_id, seq, session_token)


def safe_command(
    limiter: CommandLimiter, source_id: str, seq: int, t_issue: float, session_token: str = ""
) -> StimCommand:
    """The limiter's configured safe state as a command (off when it names none)."""
    limits = getattr(limiter, "limits", None)
    amplitude = getattr(limits, "safe_amplitude", 0.0)
    frequency = getattr(limits, "safe_frequency_hz", 130.0)
    width = getattr(limits, "safe_pulse_width_us", 300.0)
    return make_command(
        float(amplitude), float(frequency), float(width), t_issue, source_id, seq, session_token
    )


def _build_stage(entry: StageConfig, key: str, extra: dict[str, Any] | None = None) -> Stage:
    cls = stage_class(entry.stage)
    params = {**entry.params, **(extra or {})}
    try:
        stage = cls(**params)
    except TypeError as err:
        raise SessionConfigError(f"Invalid value for '{key}.params': {err}") from None
    if not isinstance(stage, Stage):
        raise SessionConfigError(
            f"Invalid value for '{key}.stage': {entry.stage!r} is a {cls.__name__}, not a "
            "bci.stream.Stage."
        )
    return stage


def _model_params(entry: DecoderConfig | ControllerConfig) -> dict[str, Any]:
    return {} if entry.model is None else {"model": str(entry.model)}


def _accepts(cls: type, name: str, var_keyword: bool = True) -> bool:
    init = getattr(cls, "__init__")  # noqa: B009 (its signature, not __new__'s)
    params = inspect.signature(init).parameters
    return name in params or (var_keyword and any(p.kind is p.VAR_KEYWORD for p in params.values()))


def build_controller(
    entry: ControllerConfig, source_id: str, session_token: str, key: str = "controller"
) -> Stage:
    """Build the controller stage, signed with the session's source_id and token if it takes them."""
    cls = stage_class(entry.stage)
    extra = _model_params(entry)
    for name, value in (("source_id", source_id), ("session_token", session_token)):
        if name not in entry.params and _accepts(cls, name):
            extra[name] = value
    stage = _build_stage(entry, key, extra)
    if "state" not in stage.accepts:
        raise SessionConfigError(
            f"Invalid value for '{key}.stage': {entry.stage!r} accepts "
            f"{', '.join(stage.accepts)} chunks; a controller takes decoded state (StateChunk)."
        )
    return stage


def _import(path: str, key: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise SessionConfigError(
            f"Invalid value for '{key}': {path!r} cannot be imported ({err}). Every command must "
            "pass a safety limiter; none is available, so nothing runs."
        ) from None


def build_limiter(
    safety: SafetyConfig,
    source_id: str,
    session_token: str,
    name: str,
    events: Callable[[Any], None] | None = None,
) -> CommandLimiter:
    """Import and build the configured safety limiter with its limits.

    The limits accept only ``source_id`` signed with ``session_token`` (the session's controller)
    unless the config names others; ``events`` receives every safety event the limiter reports.
    """
    cls = _import(safety.limiter, "safety.limiter")
    if not (isinstance(cls, type) and callable(getattr(cls, "apply", None))):
        # checked before the call: a config must not run arbitrary callables
        raise SessionConfigError(
            f"Invalid value for 'safety.limiter': {safety.limiter!r} is not a limiter class "
            "(a class with an apply(command, now) method)."
        )
    try:
        if safety.limits_class is None or not _accepts(cls, "limits", var_keyword=False):
            # a limiter that takes its limits as keywords
            limiter = cls(**safety.limits)
        else:
            limits_cls = _import(safety.limits_class, "safety.limits_class")
            if not isinstance(limits_cls, type):
                raise SessionConfigError(
                    f"Invalid value for 'safety.limits_class': {safety.limits_class!r} is not a "
                    "class."
                )
            given = dict(safety.limits)
            given.setdefault("source_id", source_id)
            given.setdefault("session_token", session_token or None)
            limiter = cls(limits_cls(**given), events=events, name=name)
    except TypeError as err:
        raise SessionConfigError(f"Invalid value for 'safety.limits': {err}") from None
    if not isinstance(limiter, CommandLimiter):
        raise SessionConfigError(
            f"Invalid value for 'safety.limiter': {safety.limiter!r} has no apply(command, now)."
        )
    return limiter


@dataclass
class LoopParts:
    """Everything the loop runs, built and checked before any process starts."""

    stages: list[Stage]
    decoder: Stage | None
    controller: Stage | None
    limiter: CommandLimiter | None
    #: who the limiter accepts commands from (the controller, and the runner speaking for it)
    source_id: str = "controller"
    session_token: str = ""

    @property
    def chain_stages(self) -> list[Stage]:
        """What the loop's chain runs, in order: the pipeline, the decoder, the controller."""
        return [*self.stages, *(s for s in (self.decoder, self.controller) if s is not None)]

    def describe(self) -> dict[str, Any]:
        """Every stage's ``to_dict()``, for ``config.yaml``."""
        out: dict[str, Any] = {"pipeline": [s.to_dict() for s in self.stages]}
        out["decoder"] = None if self.decoder is None else self.decoder.to_dict()
        out["controller"] = None if self.controller is None else self.controller.to_dict()
        out["limiter"] = None if self.limiter is None else _describe(self.limiter)
        return out


def _describe(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return {"class": f"{type(obj).__module__}:{type(obj).__qualname__}"}


def build_parts(
    config: SessionConfig,
    controller: ControllerConfig | None = None,
    *,
    run_id: str = "session",
    session_token: str = "",
    events: Callable[[Any], None] | None = None,
) -> LoopParts:
    """Build the pipeline, decoder, controller and limiter of ``config``.

    ``controller`` replaces the session's controller (compare runs). The controller signs its
    commands ``<run_id>-controller`` with ``session_token``, and the limiter accepts only those.
    Raises :class:`SessionConfigError` or :class:`~bci.StageCompatibilityError` before anything
    starts.
    """
    stages = [_build_stage(entry, f"pipeline.{i}") for i, entry in enumerate(config.pipeline)]
    decoder = None
    if config.decoder is not None:
        decoder = _build_stage(config.decoder, "decoder", _model_params(config.decoder))
        if "binned" not in decoder.accepts:
            raise StageCompatibilityError(
                f"The decoder {config.decoder.stage!r} accepts {', '.join(decoder.accepts)} "
                "chunks; the loop feeds it binned spike counts."
            )
    entry = controller if controller is not None else config.controller
    source_id = f"{run_id}-controller"
    ctrl = None if entry is None else build_controller(entry, source_id, session_token)
    if ctrl is not None and decoder is None:
        raise SessionConfigError(
            "Invalid session config: a controller acts on decoded state; add a 'decoder'."
        )
    names = getattr(decoder, "output_names", None)
    rate_hz = getattr(decoder, "output_rate_hz", None)
    if ctrl is not None and names and rate_hz:
        # the controller meets the decoded columns now: behind a calibrating sorter the chain
        # prepares it only after calibration, with the session (plant, recorder) running
        ctrl.prepare(StreamSpec("state", len(names), rate_hz, channel_names=tuple(names)))
    # the plant is a stimulator: even without a controller it gets "off" through the limiter
    stimulating = ctrl is not None or config.source.kind == "plant"
    limiter = (
        build_limiter(config.safety, source_id, session_token, f"{run_id}-limiter", events)
        if stimulating
        else None
    )
    return LoopParts(stages, decoder, ctrl, limiter, source_id, session_token)
