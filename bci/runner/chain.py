"""The loop's stages in one chain: pipeline, decoder, controller; timed; calibrated in place.

:class:`StageChain` pushes one chunk through every stage, keeps what each kind of stage emitted
(spikes, binned counts, decoded state, a command) for the loop to publish, and times every call.
A stage that needs per-session calibration (:func:`bci.runner.parts.needs_calibration`) receives
nothing until it is fitted: the chain collects ``calibration_s`` of its input, fits it (in the
loop's thread, or in a helper thread while the stages before it keep running and their output is
dropped), prepares it and the stages after it, and goes on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bci.errors import StageCompatibilityError
from bci.runner.parts import needs_calibration
from bci.stream import (
    BinnedChunk,
    SignalChunk,
    SpikeChunk,
    Stage,
    StageTimer,
    StateChunk,
    StimCommand,
    StreamSpec,
)

__all__ = ["CalibrationGate", "ChainOutput", "Rechunker", "StageChain"]


def _length(x: Any) -> int:
    return int(x.n_samples if isinstance(x, SignalChunk) else x.n_bins)


def _first_index(x: Any) -> int:
    return int(x.first_sample if isinstance(x, SignalChunk) else x.first_bin)


def _tail(x: Any, k: int) -> Any:
    """``x`` without its first ``k`` samples or bins; None when nothing is left."""
    if k >= _length(x):
        return None
    if isinstance(x, SignalChunk):
        return SignalChunk(x.data[k:], x.first_sample + k, x.sfreq, x.t_lsl[k:], x.t_arrival)
    return BinnedChunk(x.counts[k:], x.first_bin + k, x.bin_s)


@dataclass
class ChainOutput:
    """What one chunk produced along the chain."""

    spikes: list[SpikeChunk] = field(default_factory=list)
    binned: list[BinnedChunk] = field(default_factory=list)
    state: list[tuple[StateChunk, BinnedChunk | None]] = field(default_factory=list)
    commands: list[StimCommand] = field(default_factory=list)


class _Calibration:
    """Input collected for one stage's fit, and the fit itself."""

    def __init__(self, index: int, stage: Stage, spec: StreamSpec, seconds: float) -> None:
        self.index = index
        self.stage = stage
        self.spec = spec
        if spec.kind == "signal":
            self.needed = max(1, int(round(seconds * spec.rate_hz)))
        elif spec.kind == "binned":
            self.needed = max(1, int(round(seconds * spec.rate_hz)))
        else:
            raise StageCompatibilityError(
                f"{type(stage).__name__} needs calibration on {spec.kind} chunks; the runner "
                "calibrates stages on signal or binned input only."
            )
        self.parts: list[np.ndarray] = []
        self.have = 0
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.wall_s = 0.0

    def add(self, chunk: Any) -> bool:
        data = chunk.data if isinstance(chunk, SignalChunk) else chunk.counts
        self.parts.append(np.asarray(data))
        self.have += int(data.shape[0])
        return self.have >= self.needed

    def fit(self) -> None:
        t0 = time.perf_counter()
        try:
            fit = getattr(self.stage, "fit")  # noqa: B009 (needs_calibration checked it exists)
            fit(np.concatenate(self.parts)[: self.needed])
        except BaseException as err:  # re-raised in the loop's thread
            self.error = err
        finally:
            self.parts = []
            self.wall_s = time.perf_counter() - t0


class StageChain:
    """Pipeline stages, then the decoder, then the controller, run chunk by chunk.

    Parameters
    ----------
    stages : list of Stage
        In order; the decoder and controller are the last ones when present.
    calibration_s : float
        Input each uncalibrated stage gets for its fit.
    background_fit : bool
        Fit in a helper thread while the stages before keep running (real time); else block
        (lockstep: the plant waits, so runs stay exactly repeatable).
    """

    def __init__(self, stages: list[Stage], calibration_s: float, background_fit: bool) -> None:
        self.stages = stages
        self.timers = [StageTimer(window=1 << 16) for _ in stages]
        self.calibration_s = float(calibration_s)
        self.background_fit = background_fit
        self.specs: list[StreamSpec] = []
        self.ready = 0  # stages [0, ready) are prepared and run
        self.calibrating: _Calibration | None = None
        self.calibrations: list[dict[str, Any]] = []
        #: first sample (signal) or bin (binned) of the calibrated stage's input that it processed
        #: online, when it was fitted in the loop's thread
        self.online_from: int | None = None
        self.online_from_rate = 0.0  # samples (or bins) per second of that index

    def prepare(self, spec: StreamSpec) -> None:
        """Prepare the stages in order, up to the first one that needs calibration."""
        self.specs = [spec]
        self._prepare_from(0)

    def _prepare_from(self, i: int) -> None:
        spec = self.specs[-1]
        while i < len(self.stages):
            stage = self.stages[i]
            if needs_calibration(stage) and self.calibrating is None:
                stage.prepare(spec)
                self.calibrating = _Calibration(i, stage, spec, self.calibration_s)
                self.ready = i
                return
            try:
                spec = stage.prepare(spec)
            except StageCompatibilityError as err:
                before = "the source" if i == 0 else type(self.stages[i - 1]).__name__
                raise StageCompatibilityError(
                    f"Stage {i} ({type(stage).__name__}) cannot follow {before}: {err}"
                ) from err
            self.specs.append(spec)
            i += 1
        self.ready = len(self.stages)

    @property
    def is_calibrating(self) -> bool:
        return self.calibrating is not None

    def _finish_calibration(self) -> None:
        cal = self.calibrating
        assert cal is not None
        if cal.error is not None:
            raise cal.error
        cal.stage.prepare(cal.spec)  # again: the output now knows what was learned
        self.calibrations.append(
            {
                "stage": type(cal.stage).__name__,
                "input": cal.spec.kind,
                "samples": cal.needed,
                "fit_wall_s": cal.wall_s,
                "n_units": getattr(cal.stage, "n_units", None),
            }
        )
        self.calibrating = None
        self.specs.append(cal.stage.output_spec or cal.spec)
        self.ready = cal.index + 1
        self._prepare_from(cal.index + 1)

    def process(self, chunk: SignalChunk, out: ChainOutput) -> None:
        """Run ``chunk`` through the ready stages; collect outputs into ``out``."""
        cal = self.calibrating
        if cal is not None and cal.thread is not None and not cal.thread.is_alive():
            self._finish_calibration()
        self._run(chunk, 0, out)

    def _run(self, x: Any, start: int, out: ChainOutput) -> None:
        last_binned: BinnedChunk | None = None
        for i in range(start, self.ready):
            stage = self.stages[i]
            t0 = time.perf_counter_ns()
            x = stage.process(x)
            self.timers[i].add(time.perf_counter_ns() - t0)
            if x is None:
                return
            if isinstance(x, SpikeChunk):
                out.spikes.append(x)
            elif isinstance(x, BinnedChunk):
                out.binned.append(x)
                last_binned = x
            elif isinstance(x, StateChunk):
                out.state.append((x, last_binned))
            elif isinstance(x, StimCommand):
                out.commands.append(x)
        cal = self.calibrating
        if cal is None or cal.thread is not None:
            return  # fully ready, or a background fit is running: the output is dropped
        n_before = cal.have
        if not cal.add(x):
            return
        if self.background_fit:
            cal.thread = threading.Thread(target=cal.fit, name="bci-calibration", daemon=True)
            cal.thread.start()
            return
        cal.fit()
        index = cal.index
        self._finish_calibration()
        # the fit took exactly the samples it needed: the rest of this chunk goes on online, so
        # where calibration ends does not depend on how the stream was cut into chunks
        rest = _tail(x, cal.needed - n_before)
        self.online_from_rate = float(cal.spec.rate_hz)
        if rest is not None:
            self.online_from = _first_index(rest)
            self._run(rest, index, out)
        else:
            self.online_from = _first_index(x) + _length(x)

    def timing(self) -> list[dict[str, Any]]:
        """Compute time per stage (ms) and its share of the chain's total."""
        rows: list[dict[str, Any]] = [
            {"stage": type(s).__name__, **t.summary(), "total_ms": t.total_ns / 1e6}
            for s, t in zip(self.stages, self.timers, strict=True)
        ]
        total = float(sum(float(r["total_ms"]) for r in rows)) or 1.0
        for r in rows:
            r["share"] = float(r["total_ms"]) / total
        return rows


class CalibrationGate:
    """Stimulation stays in the safe state until every stage that calibrates is ready.

    Two kinds of stage calibrate on the session's own signal: one the chain fits
    (:func:`bci.runner.parts.needs_calibration`: nothing after it runs until its fit is done), and
    one that learns by itself from what it processes and says so with ``is_calibrated`` (False
    until it has: threshold crossings learning their thresholds, a controller learning its
    threshold or set-point). The loop asks :meth:`update` after every chunk; until it opens, the
    controller's commands are recorded but not sent (the stimulator keeps getting the safe state),
    and counted in :attr:`held`. It opens once, for the rest of the run.
    """

    def __init__(self, chain: StageChain) -> None:
        self.chain = chain
        #: seconds of signal at which stimulation was enabled (None: not yet)
        self.enabled_at_s: float | None = None
        self.held = 0  # controller commands not sent while it was closed

    @property
    def open(self) -> bool:
        return self.enabled_at_s is not None

    def waiting(self) -> list[str]:
        """The stages still calibrating, by class name."""
        names = [
            type(s).__name__
            for s in self.chain.stages
            if getattr(s, "is_calibrated", True) is False
        ]
        cal = self.chain.calibrating
        if cal is not None:
            names.insert(0, type(cal.stage).__name__)
        return list(dict.fromkeys(names))

    def update(self, signal_s: float) -> bool:
        """True the first time nothing is calibrating any more (at ``signal_s`` of signal)."""
        if self.enabled_at_s is not None or self.waiting():
            return False
        self.enabled_at_s = float(signal_s)
        return True


class Rechunker:
    """Cut a signal into pieces of ``size`` samples whose boundaries are the samples ``b`` with
    ``(b + offset) % size == 0``.

    Lockstep runs feed the stages identical chunks whatever pieces LSL delivered, so every stage
    sees the same calls in every run (not all stages are invariant to chunking). The remainder of a
    pull waits for the next; a gap (``first_sample`` not following on) flushes it first.
    """

    def __init__(self, size: int, offset: int = 0) -> None:
        self.size = max(1, int(size))
        self.offset = int(offset) % self.size
        self._held: SignalChunk | None = None

    def feed(self, chunk: SignalChunk) -> list[SignalChunk]:
        held = self._held
        if held is not None and chunk.first_sample == held.last_sample + 1 and not chunk.gap_before:
            chunk = SignalChunk(
                np.concatenate([held.data, chunk.data]),
                held.first_sample,
                chunk.sfreq,
                np.concatenate([held.t_lsl, chunk.t_lsl]),
                chunk.t_arrival,
                held.gap_before,
            )
            out: list[SignalChunk] = []
        else:
            out = [held] if held is not None else []
        self._held = None
        start = 0
        n = chunk.n_samples
        while start < n:
            at = chunk.first_sample + start + self.offset
            stop = (at // self.size + 1) * self.size - self.offset - chunk.first_sample
            if stop > n:
                self._held = _slice(chunk, start, n)
                break
            out.append(_slice(chunk, start, stop))
            start = stop
        return out


def _slice(x: SignalChunk, a: int, b: int) -> SignalChunk:
    if a == 0 and b == x.n_samples:
        return x
    return SignalChunk(
        x.data[a:b],
        x.first_sample + a,
        x.sfreq,
        x.t_lsl[a:b],
        x.t_arrival,
        x.gap_before if a == 0 else 0,
    )
