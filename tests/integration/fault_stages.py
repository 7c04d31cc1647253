"""A decoder and a controller for the fault rig's sessions, that fail on request.

``bci run`` builds them by import path (``fault_stages:FaultyDecoder``, the rig puts this folder
on ``PYTHONPATH``). Each runs normally until the file ``trigger`` exists (checked every 50 ms of
wall time); from then on it does what ``fault`` says: ``raise`` an exception, return ``nan``, or
``hang`` (sleeps, never returns), at its next output. The LSL time of that first failed output
is written to ``<trigger>.at``, so the rig measures from the moment the stage failed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pylsl

from bci.stream import BinnedChunk, Stage, StateChunk, StimCommand, StreamSpec

FAULTS = ("raise", "nan", "hang")


class _Trigger:
    """Whether the rig asked for the fault (the file exists); notes when it began."""

    def __init__(self, fault: str | None, trigger: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        self.fault = fault
        self.path = None if trigger is None else Path(trigger)
        self.on = False
        self._next_check = 0.0

    def check(self) -> str | None:
        """The fault to commit now, or None."""
        if self.fault is None or self.path is None:
            return None
        if not self.on:
            now = time.monotonic()
            if now < self._next_check:
                return None
            self._next_check = now + 0.05
            if not self.path.exists():
                return None
            self.on = True
        return self.fault

    def commit(self, fault: str, value: float) -> float:
        """Fail now (the first time: note the LSL time for the rig)."""
        assert self.path is not None
        at = self.path.with_name(self.path.name + ".at")
        if not at.exists():
            at.write_text(repr(pylsl.local_clock()))
        if fault == "raise":
            raise RuntimeError(f"injected failure at LSL time {pylsl.local_clock():.3f}")
        if fault == "nan":
            return math.nan
        while True:  # hang: the loop thread never gets this call back
            time.sleep(1.0)


class FaultyDecoder(Stage, name="fault_rig_decoder"):
    """Mean spike count per unit in each bin; fails on request (module docstring)."""

    accepts = ("binned",)

    def __init__(self, fault: str | None = None, trigger: str | None = None) -> None:
        self.trigger = _Trigger(fault, trigger)

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        super().prepare(upstream)
        self.output_spec = StreamSpec("state", 1, upstream.rate_hz, ("mean_count",))
        return self.output_spec

    def process(self, chunk: BinnedChunk) -> StateChunk:
        values = chunk.counts.mean(axis=1, keepdims=True).astype(np.float32)
        fault = self.trigger.check() if chunk.n_bins else None  # fails when it has to decode
        if fault is not None:
            values[:] = self.trigger.commit(fault, 0.0)
        t = (chunk.first_bin + np.arange(1, chunk.n_bins + 1)) * chunk.bin_s
        return StateChunk(values, t.astype(np.float64), chunk.valid)


class FaultyController(Stage, name="fault_rig_controller"):
    """``amplitude_ma`` times the decoded value's level between ``low`` and ``high`` (clipped to
    [0, 1]; NaN stays NaN, as numpy arithmetic keeps it); fails on request.

    The rig's sessions set ``low`` below any spike count, so it asks for the full amplitude
    whenever the decoder gives a number.
    """

    accepts = ("state",)

    def __init__(
        self,
        amplitude_ma: float = 1.0,
        low: float = -2.0,
        high: float = -1.0,
        fault: str | None = None,
        trigger: str | None = None,
        source_id: str = "fault-rig",
        session_token: str = "",
    ) -> None:
        self.amplitude_ma = float(amplitude_ma)
        self.low, self.high = float(low), float(high)
        self.trigger = _Trigger(fault, trigger)
        self.source_id = source_id
        self.session_token = session_token
        self.seq = 0

    def process(self, chunk: StateChunk) -> StimCommand | None:
        if chunk.values.shape[0] == 0 or not chunk.valid_mask[-1]:
            return None  # nothing measured: the loop holds the last command
        value = float(chunk.values[-1, 0])
        level = float(np.clip((value - self.low) / (self.high - self.low), 0.0, 1.0))
        amplitude = self.amplitude_ma * level
        fault = self.trigger.check()
        if fault is not None:
            amplitude = self.trigger.commit(fault, amplitude)
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
