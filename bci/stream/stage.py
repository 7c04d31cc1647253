"""The Stage base class: one causal, stateful, single-threaded step of the online pipeline."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bci.errors import StageCompatibilityError
from bci.stream.registry import get_stage_class, register_stage
from bci.stream.spec import StreamKind, StreamSpec


def _to_plain(value: Any) -> Any:
    """Turn a constructor argument into something YAML/JSON can hold."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, Stage):
        return value.to_dict()
    return value


class Stage:
    """One causal step: chunks in, chunks out, state carried between calls.

    Subclasses set ``accepts`` (the chunk kinds they take), override :meth:`prepare` (call
    ``super().prepare(spec)`` first; return the spec they emit), :meth:`process` and :meth:`reset`.
    Constructor arguments are captured automatically, so :meth:`to_dict` needs no code in
    subclasses whose arguments are plain values. Register a stage for configs with
    ``class MyStage(Stage, name="my_stage")``.

    ``process`` returns ``None`` when nothing is ready yet (e.g. a partial bin); it must never look
    ahead, and it is called from one thread, in order.
    """

    accepts: ClassVar[tuple[StreamKind, ...]] = ("signal",)
    stage_name: ClassVar[str | None] = None
    _init_params: dict[str, Any]
    input_spec: StreamSpec | None
    output_spec: StreamSpec | None

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.stage_name = name
            register_stage(name, cls)

    def __new__(cls, *args: Any, **kwargs: Any) -> Stage:
        obj = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        bound = signature.bind(obj, *args, **kwargs)
        bound.apply_defaults()
        params: dict[str, Any] = {}
        for key, value in list(bound.arguments.items())[1:]:  # skip self
            kind = signature.parameters[key].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                params.update(value)
            elif kind is not inspect.Parameter.VAR_POSITIONAL:
                params[key] = value
        obj._init_params = params
        obj.input_spec = None
        obj.output_spec = None
        return obj

    def __getnewargs_ex__(self) -> tuple[tuple[()], dict[str, Any]]:
        """``copy.deepcopy`` (a snapshot of a calibrated stage, its state copied) rebuilds the
        object through :meth:`__new__`, which binds the constructor's arguments: give it those."""
        return (), dict(self._init_params)

    # -- the contract ---------------------------------------------------------------------------
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Check the upstream spec once, before the loop; return the spec this stage emits."""
        if upstream.kind not in self.accepts:
            raise StageCompatibilityError(
                f"{type(self).__name__} accepts {', '.join(self.accepts)} chunks, "
                f"but the stage before it emits {upstream.kind} chunks."
            )
        self.input_spec = upstream
        self.output_spec = upstream
        return upstream

    def process(self, chunk: Any) -> Any:
        """Consume one chunk; return the output chunk, or ``None`` if nothing is ready yet."""
        raise NotImplementedError(f"{type(self).__name__} does not implement process().")

    def reset(self) -> None:
        """Clear carried state (filter memory, partial bins); parameters stay."""

    # -- persistence ----------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The constructor arguments this stage was built with."""
        return dict(self._init_params)

    def to_dict(self) -> dict[str, Any]:
        """Class and constructor arguments, plain enough for YAML; rebuild with :func:`stage_from_dict`."""
        cls = type(self)
        return {
            "stage": cls.stage_name or f"{cls.__module__}:{cls.__qualname__}",
            "params": _to_plain(self._init_params),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_params.items())
        return f"{type(self).__name__}({args})"


class Source:
    """Base of the chunk producers that feed a pipeline from outside it (an LSL inlet, a player).

    A source is opened explicitly (no I/O in ``__init__``) and describes itself with the same
    ``{"stage": "module:Class", "params": {...}}`` shape as :meth:`Stage.to_dict`, so
    :func:`stage_from_dict` rebuilds it (unopened). Only :class:`Stage` and :class:`Source`
    subclasses can be named by import path in a config.
    """


def stage_from_dict(description: Mapping[str, Any]) -> Stage:
    """Rebuild a stage from :meth:`Stage.to_dict` output (or a session config entry)."""
    cls = get_stage_class(str(description["stage"]))
    if hasattr(cls, "from_dict"):
        return cls.from_dict(description)
    return cls(**dict(description.get("params", {})))
