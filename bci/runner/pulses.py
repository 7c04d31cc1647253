"""Stimulation pulse onsets for the stages that remove artifacts (blanker, sorter).

The stimulator reports every pulse it delivers (the plant's ``-stim`` markers, ``"stim sample=S
amp=A"`` stamped with the onset's time). :class:`PulseFeed` reads them and turns each stamp into a
sample index of the loop's stream (the plant's sample ``S`` is not the loop's when the loop joined
late), and hands them to every stage with an ``add_pulses`` method before the chunk that holds them
is processed: :class:`~bci.preprocessing.ArtifactBlanker` and :class:`~bci.sorting.OnlineSorter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.util import LostError

__all__ = ["PulseFeed"]


class PulseFeed:
    """Pulse onsets from a marker stream, as sample indices of the loop's stream."""

    def __init__(self, source_id: str, stages: Sequence[Any], timeout_s: float = 10.0) -> None:
        self.stages = [s for s in stages if callable(getattr(s, "add_pulses", None))]
        found = pylsl.resolve_byprop("source_id", source_id, 1, timeout_s)
        self.inlet: pylsl.StreamInlet | None = None
        if found:
            self.inlet = pylsl.StreamInlet(found[0], max_buflen=600, recover=False)
            self.inlet.open_stream(timeout=timeout_s)
        self.n_pulses = 0

    @property
    def active(self) -> bool:
        return self.inlet is not None and bool(self.stages)

    def poll(self, t0_lsl: float, sfreq: float) -> npt.NDArray[np.int64]:
        """Pulses that have arrived, registered with the stages; their sample indices."""
        if self.inlet is None:
            return np.zeros(0, np.int64)
        try:
            _, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=100_000)
        except LostError:
            self.inlet = None
            return np.zeros(0, np.int64)
        if not stamps:
            return np.zeros(0, np.int64)
        onsets = np.rint((np.asarray(stamps, dtype=np.float64) - t0_lsl) * sfreq).astype(np.int64)
        onsets = onsets[onsets >= 0]
        for stage in self.stages:
            stage.add_pulses(onsets)
        self.n_pulses += int(onsets.size)
        return onsets

    def close(self) -> None:
        if self.inlet is not None:
            self.inlet.close_stream()
            self.inlet = None
