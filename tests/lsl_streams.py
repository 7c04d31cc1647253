"""Test helpers: three paced LSL outlets (30 kHz int16, 100 Hz float32, string markers) that keep
every pushed sample, its explicit time stamp and when it was pushed."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import pylsl

from bci.acquisition.metadata import make_stream_info
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet

FAST_FS = 30_000.0
FAST_CH = 32
SLOW_FS = 100.0
SLOW_CH = 3
BLOCK_S = 0.01
MARKERS = ["stim_on", "stim off", "ünïcödé ✓", "", "unit=3 ch=12 sample=99", "x" * 300]


@dataclass
class Pushed:
    """What one outlet pushed: values, explicit stamps, and ``local_clock()`` at each push."""

    values: list = field(default_factory=list)  # arrays (numeric) or strings (markers)
    stamps: list = field(default_factory=list)
    push_times: list = field(default_factory=list)  # one per sample

    def arrays(self) -> tuple[np.ndarray | list, np.ndarray, np.ndarray]:
        if self.values and isinstance(self.values[0], np.ndarray):
            values: np.ndarray | list = np.concatenate(self.values)
        else:
            values = list(self.values)
        return values, np.asarray(self.stamps, dtype=np.float64), np.asarray(self.push_times)


class ThreeStreams:
    """The issue's three streams; ``source_ids`` are unique to this instance."""

    def __init__(self, seed: int = 0) -> None:
        tag = uuid.uuid4().hex[:10]
        self.names = {"fast": f"Fast-{tag}", "slow": f"Slow-{tag}", "markers": f"Mk-{tag}"}
        self.source_ids = {k: f"{k}-{tag}" for k in self.names}
        self.fast = SignalOutlet(
            make_stream_info(
                self.names["fast"], "Neural", FAST_CH, FAST_FS, "int16", self.source_ids["fast"]
            )
        )
        self.slow = SignalOutlet(
            make_stream_info(
                self.names["slow"],
                "Kinematics",
                SLOW_CH,
                SLOW_FS,
                "float32",
                self.source_ids["slow"],
                labels=["x", "y", "z"],
                units=["mm", "mm", "a.u."],
            )
        )
        self.markers = MarkerOutlet(
            make_stream_info(
                self.names["markers"], "Markers", 1, 0.0, "string", self.source_ids["markers"],
                units="",
            )
        )  # fmt: skip
        self.rng = np.random.default_rng(seed)
        self.pushed = {k: Pushed() for k in self.names}
        #: LSL time of the first fast sample
        self.t0: float | None = None

    def push_for(self, seconds: float, until: float | None = None) -> None:
        """Push paced 10 ms blocks of every stream for ``seconds`` (or until local_clock ``until``)."""
        n_fast, n_slow = len(self.pushed["fast"].stamps), len(self.pushed["slow"].stamps)
        if self.t0 is None:
            self.t0 = pylsl.local_clock()
        t0 = self.t0
        t_end = pylsl.local_clock() + seconds if until is None else until
        fast_block = int(FAST_FS * BLOCK_S)
        while pylsl.local_clock() < t_end:
            due = t0 + (n_fast + fast_block) / FAST_FS
            wait = due - pylsl.local_clock()
            if wait > 0:
                time.sleep(wait)
            data = self.rng.integers(-32768, 32768, size=(fast_block, FAST_CH), dtype=np.int16)
            data[0, :2] = (-32768, 32767)
            stamps = t0 + np.arange(n_fast, n_fast + fast_block) / FAST_FS
            # one explicit stamp per sample (liblsl would otherwise compute the earlier ones)
            self.fast.outlet.push_chunk(data, stamps.tolist())
            self._keep("fast", data, stamps)
            n_fast += fast_block
            while t0 + n_slow / SLOW_FS <= stamps[-1]:
                row = self.rng.normal(size=(1, SLOW_CH)).astype(np.float32)
                if n_slow % 17 == 5:
                    row[0] = (np.nan, -0.0, np.inf)
                stamp = t0 + n_slow / SLOW_FS
                self.slow.push(row, timestamp=stamp)
                self._keep("slow", row, np.array([stamp]))
                n_slow += 1
            if self.rng.random() < 0.15:
                text = MARKERS[int(self.rng.integers(len(MARKERS)))]
                stamp = float(stamps[int(self.rng.integers(fast_block))])
                self.markers.push(text, timestamp=stamp)
                self._keep("markers", text, np.array([stamp]))

    def _keep(self, key: str, values: np.ndarray | str, stamps: np.ndarray) -> None:
        p = self.pushed[key]
        p.values.append(values)
        p.stamps.extend(stamps.tolist())
        p.push_times.extend([pylsl.local_clock()] * len(stamps))

    def close(self) -> None:
        del self.fast, self.slow, self.markers
