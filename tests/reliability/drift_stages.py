"""A decoder for the soak's own check: one that slows down as it runs.

``bci run`` builds it by import path (``drift_stages:SlowingDecoder``; :func:`soak_session.soak`
puts this folder on ``PYTHONPATH``). It is the shipped decoder stage plus work that grows with
the chunks it has decoded, the way a loop slows down when it scans a buffer that keeps growing,
but without the memory: every ``every`` chunks one more pass over a fixed array. Its CPU time per
chunk therefore grows linearly in the chunks seen and scales with the host's speed like the rest
of the loop's work, which is what the soak's host-divided drift must still see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bci.stream import BinnedChunk, StateChunk
from decoders.stage import DecoderStage


class SlowingDecoder(DecoderStage, name="soak_slowing_decoder"):
    """The shipped decoder stage, one more pass over 4096 floats every ``every`` chunks."""

    def __init__(self, model: str | Path, every: int = 30) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        super().__init__(model)
        self.every = int(every)
        self.chunks = 0
        self._work = np.linspace(0.0, 1.0, 4096)

    def process(self, chunk: BinnedChunk) -> StateChunk | None:
        self.chunks += 1
        for _ in range(self.chunks // self.every):
            float(np.dot(self._work, self._work))
        return super().process(chunk)
