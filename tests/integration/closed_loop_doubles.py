"""Trivial stand-ins for a decoder, a controller and a safety limiter, to test the runner alone.

They only follow the interfaces the runner needs (:mod:`bci.runner.parts`); the real ones live in
``decoders``, ``stimulation.controllers`` and ``stimulation.safety``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from bci.stream import BinnedChunk, Stage, StateChunk, StimCommand, StreamSpec


class MeanCountDecoder(Stage, name="test_mean_count_decoder"):
    """Decodes the mean spike count per unit in each bin (one output)."""

    accepts = ("binned",)

    def __init__(self, scale: float = 1.0, model: str | None = None) -> None:
        self.scale = float(scale)
        self.model = model

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        super().prepare(upstream)
        self.output_spec = StreamSpec("state", 1, upstream.rate_hz, ("mean_count",))
        return self.output_spec

    def process(self, chunk: BinnedChunk) -> StateChunk:
        values = (chunk.counts.mean(axis=1, keepdims=True) * self.scale).astype(np.float32)
        t = (chunk.first_bin + np.arange(1, chunk.n_bins + 1)) * chunk.bin_s
        return StateChunk(values, t.astype(np.float64))


class BuggyDecoder(MeanCountDecoder, name="test_buggy_decoder"):
    """A decoder with a bug: divides by zero once it has decoded ``after_bins`` bins."""

    def __init__(self, after_bins: int = 100) -> None:
        super().__init__()
        self.after_bins = int(after_bins)
        self.bins = 0

    def process(self, chunk: BinnedChunk) -> StateChunk:
        self.bins += chunk.n_bins
        if self.bins > self.after_bins:
            return self.bins / 0  # type: ignore[return-value]
        return super().process(chunk)


class ThresholdStepController(Stage, name="test_threshold_step_controller"):
    """On (``amplitude_ma``) while the decoded value exceeds ``threshold``, else off."""

    accepts = ("state",)

    def __init__(
        self,
        threshold: float = 0.0,
        amplitude_ma: float = 2.5,
        source_id: str = "test",
        session_token: str = "",
    ) -> None:
        self.threshold = float(threshold)
        self.amplitude_ma = float(amplitude_ma)
        self.source_id = source_id
        self.session_token = session_token
        self.seq = 0

    def process(self, chunk: StateChunk) -> StimCommand:
        on = float(chunk.values[-1, 0]) > self.threshold
        amplitude = self.amplitude_ma if on else 0.0
        command = StimCommand(
            amplitude,
            130.0,
            60.0,
            float(chunk.t[-1]),
            self.source_id,
            self.seq,
            self.session_token,
        )
        self.seq += 1
        return command


class ClampLimiter:
    """Clamps the amplitude to ``max_amplitude_ma`` (NaN or negative: off); drops commands of
    another source than ``source_id`` when one is given."""

    def __init__(self, max_amplitude_ma: float = 3.0, source_id: str | None = None) -> None:
        self.max_amplitude_ma = float(max_amplitude_ma)
        self.source_id = source_id

    def apply(self, command: StimCommand, now: float) -> StimCommand | None:
        if self.source_id is not None and command.source_id != self.source_id:
            return None
        amp = command.amplitude_ma
        if not math.isfinite(amp) or amp < 0:
            amp = 0.0
        return dataclasses.replace(command, amplitude_ma=min(amp, self.max_amplitude_ma))
