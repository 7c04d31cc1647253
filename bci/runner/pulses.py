"""Stimulation pulse onsets for the stages that remove artifacts (blanker, sorter).

The stimulator reports every pulse it delivers (the plant's ``-stim`` markers, ``"stim sample=S
amp=A"`` stamped with the onset's time, ``S`` the onset's sample on the plant's raw stream).
:class:`PulseFeed` reads them, moves ``S`` onto the loop's sample count (the same in lockstep,
where the loop hears the stream from its first sample; in real time the loop joined late, and the
offset is measured once from the stamps), and hands them to every stage with an ``add_pulses``
method before the chunk that holds them is processed: :class:`~bci.preprocessing.ArtifactBlanker`
and :class:`~bci.sorting.OnlineSorter`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.util import LostError

__all__ = ["PulseFeed"]

_SAMPLE = re.compile(r"\bsample=(-?\d+)")


class PulseFeed:
    """Pulse onsets from a marker stream, as sample indices of the loop's stream."""

    def __init__(
        self,
        source_id: str,
        stages: Sequence[Any],
        timeout_s: float = 10.0,
        sample_offset: int | None = None,
    ) -> None:
        #: plant sample index of the loop's sample 0 (None: measured from the first marker)
        self.sample_offset = sample_offset
        #: the plant's sample of the latest pulse marker read (-1: none yet)
        self.last_plant_sample = -1
        self.stages = [s for s in stages if callable(getattr(s, "add_pulses", None))]
        self.inlet: pylsl.StreamInlet | None = None
        # no stage takes pulses: no inlet (one opened and never pulled would buffer up to 600 s
        # of markers in liblsl, a long session's memory growing for ten minutes)
        found = pylsl.resolve_byprop("source_id", source_id, 1, timeout_s) if self.stages else []
        if found:
            self.inlet = pylsl.StreamInlet(found[0], max_buflen=600, recover=False)
            self.inlet.open_stream(timeout=timeout_s)
        self.n_pulses = 0

    @property
    def active(self) -> bool:
        return self.inlet is not None and bool(self.stages)

    def poll(self, t0_lsl: float, sfreq: float, settle_s: float = 0.0) -> npt.NDArray[np.int64]:
        """Pulses that have arrived, registered with the stages; their sample indices.

        ``settle_s`` > 0 keeps pulling until no marker has come for that long (lockstep: the
        plant has published the period, and its markers are on their way on their own
        connection).
        """
        if self.inlet is None:
            return np.zeros(0, np.int64)
        samples: list[list[str]] = []
        stamps: list[float] = []
        try:
            while True:
                got, got_t = self.inlet.pull_chunk(timeout=settle_s, max_samples=100_000)
                samples += got
                stamps += got_t
                if not got_t or settle_s <= 0.0:
                    break
        except LostError:
            self.inlet = None
        onsets = []
        for (text,), stamp in zip(samples, stamps, strict=True):
            match = _SAMPLE.search(text)
            if match is None:
                continue
            sample = int(match.group(1))
            self.last_plant_sample = max(self.last_plant_sample, sample)
            if self.sample_offset is None:
                # once: the plant's sample at the loop's sample 0, from this marker's stamp
                self.sample_offset = sample - int(round((stamp - t0_lsl) * sfreq))
            onsets.append(sample - self.sample_offset)
        out = np.asarray(onsets, dtype=np.int64)
        out = out[out >= 0]
        if out.size:
            for stage in self.stages:
                stage.add_pulses(out)
            self.n_pulses += int(out.size)
        return out

    def close(self) -> None:
        if self.inlet is not None:
            self.inlet.close_stream()
            self.inlet = None
