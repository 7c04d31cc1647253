"""Pipeline: stages run in order, in one thread, each one timed."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from bci.errors import StageCompatibilityError
from bci.stream.spec import StreamSpec
from bci.stream.stage import Stage, stage_from_dict


class ChunkSource(Protocol):
    """Anything the pipeline can pull from (e.g. :class:`bci.acquisition.LSLSource`)."""

    def pull(self) -> Any: ...

    def status(self) -> dict[str, Any]: ...


class StageTimer:
    """Per-stage compute time: count, mean, max and percentiles over the last ``window`` calls."""

    def __init__(self, window: int = 4096) -> None:
        # written now, so its memory is taken at once, not page by page as calls fill it (a long
        # session's resident memory would seem to grow for the first ``window`` calls)
        self._ring = np.full(window, 0, dtype=np.int64)
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def add(self, duration_ns: int) -> None:
        self._ring[self.count % self._ring.size] = duration_ns
        self.count += 1
        self.total_ns += duration_ns
        if duration_ns > self.max_ns:
            self.max_ns = duration_ns

    def summary(self) -> dict[str, float]:
        """Milliseconds: mean, p50, p99, max, and the number of calls."""
        if self.count == 0:
            return {"calls": 0, "mean_ms": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        recent = self._ring[: min(self.count, self._ring.size)]
        p50, p99 = np.percentile(recent, [50, 99]) / 1e6
        return {
            "calls": self.count,
            "mean_ms": self.total_ns / self.count / 1e6,
            "p50_ms": float(p50),
            "p99_ms": float(p99),
            "max_ms": self.max_ns / 1e6,
        }


class Pipeline:
    """An ordered chain of stages, optionally fed by a source.

    :meth:`prepare` checks that each stage accepts what the one before emits and names the first
    pair that does not; :meth:`process` pushes one chunk through (stopping at the first stage that
    has nothing ready); :meth:`step` pulls from the source first. Every stage call is timed.
    """

    def __init__(self, stages: Sequence[Stage], source: ChunkSource | None = None) -> None:
        if not stages:
            raise StageCompatibilityError("A Pipeline needs at least one stage.")
        for i, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise StageCompatibilityError(
                    f"Pipeline stage {i} is a {type(stage).__name__}, not a bci.stream.Stage."
                )
        self.stages: list[Stage] = list(stages)
        self.source = source
        self.timers = [StageTimer() for _ in self.stages]
        self.output_spec: StreamSpec | None = None

    def prepare(self, spec: StreamSpec) -> StreamSpec:
        """Check the whole chain against the input ``spec``; return the final output spec."""
        for i, stage in enumerate(self.stages):
            try:
                spec = stage.prepare(spec)
            except StageCompatibilityError as err:
                raise StageCompatibilityError(
                    f"Pipeline stage {i} ({type(stage).__name__}) cannot follow "
                    f"{'the input' if i == 0 else type(self.stages[i - 1]).__name__}: {err}"
                ) from err
        self.output_spec = spec
        return spec

    def process(self, chunk: Any) -> Any:
        """Run ``chunk`` through every stage; ``None`` if a stage had nothing ready."""
        if self.output_spec is None:
            raise StageCompatibilityError("Pipeline.prepare(spec) must be called before process().")
        for stage, timer in zip(self.stages, self.timers, strict=True):
            t0 = time.perf_counter_ns()
            chunk = stage.process(chunk)
            timer.add(time.perf_counter_ns() - t0)
            if chunk is None:
                return None
        return chunk

    def step(self) -> Any:
        """Pull one chunk from the source and process it; ``None`` if nothing arrived or was ready."""
        if self.source is None:
            raise StageCompatibilityError("Pipeline.step() needs a source; use process(chunk).")
        chunk = self.source.pull()
        if chunk is None:
            return None
        return self.process(chunk)

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()

    def timing(self) -> list[dict[str, Any]]:
        """One row per stage: name and compute-time summary in ms."""
        return [
            {"stage": type(stage).__name__, **timer.summary()}
            for stage, timer in zip(self.stages, self.timers, strict=True)
        ]

    def status(self) -> dict[str, Any]:
        """Source health (connection, data age, gaps, events) and per-stage timing."""
        return {
            "source": self.source.status() if self.source is not None else None,
            "stages": self.timing(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"stages": [stage.to_dict() for stage in self.stages]}

    @classmethod
    def from_dict(cls, description: Mapping[str, Any]) -> Pipeline:
        return cls([stage_from_dict(d) for d in description["stages"]])
