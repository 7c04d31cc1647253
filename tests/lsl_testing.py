"""Helpers shared by the LSL tests: waiting on a condition, inlets, pulling what arrived, XDF bits.

Imported normally (``from lsl_testing import wait_until``): ``tests/`` is on ``sys.path`` because
``tests/conftest.py`` lives there.
"""

from __future__ import annotations

import struct
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pylsl
import pytest


def wait_until(condition: Callable[[], object], timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition`` until it is true or ``timeout_s`` passes; return its last truth value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(poll_s)


class TimeCorrectionSpy:
    """Wrap ``pylsl.StreamInlet.time_correction``: remember every inlet asked and how many lived.

    ``extra_s(n_inlets)`` (optional) is added to every answer, ``n_inlets`` being the number of
    distinct inlets asked so far, including this call's: a clock offset a test can tell apart.
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, extra_s: Callable[[int], float] | None = None
    ) -> None:
        self.inlets: list[weakref.ref] = []
        self.calls = 0
        self.max_alive = 0
        self._lock = threading.Lock()
        original = pylsl.StreamInlet.time_correction
        spy = self

        def time_correction(inlet: pylsl.StreamInlet, timeout: float = pylsl.FOREVER) -> float:
            with spy._lock:
                spy.calls += 1
                if not any(ref() is inlet for ref in spy.inlets):
                    spy.inlets.append(weakref.ref(inlet))
                spy.max_alive = max(spy.max_alive, spy.alive())
                n_inlets = len(spy.inlets)
            offset = original(inlet, timeout=timeout)
            return offset if extra_s is None else offset + extra_s(n_inlets)

        monkeypatch.setattr(pylsl.StreamInlet, "time_correction", time_correction)

    def alive(self) -> int:
        """Inlets asked that still exist."""
        return sum(ref() is not None for ref in self.inlets)

    def asked(self, inlet: pylsl.StreamInlet) -> bool:
        """True if ``inlet`` was ever asked for its clock offset."""
        return any(ref() is inlet for ref in self.inlets)


def open_inlet(
    source_id: str, timeout_s: float = 10.0, max_buflen: int = 30, recover: bool = True
) -> pylsl.StreamInlet:
    """Resolve the stream with ``source_id`` and return an opened inlet (the test fails if absent)."""
    found = pylsl.resolve_byprop("source_id", source_id, 1, timeout_s)
    assert found, f"stream {source_id} not resolved within {timeout_s:g} s"
    inlet = pylsl.StreamInlet(found[0], max_buflen=max_buflen, recover=recover)
    inlet.open_stream(timeout=timeout_s)
    return inlet


def pull_numeric(
    inlet: pylsl.StreamInlet, n_expected: int, n_channels: int, timeout_s: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pull until ``n_expected`` samples arrived (or ``timeout_s``): values (n, ch) and stamps."""
    data, stamps = [], []
    got = 0
    deadline = pylsl.local_clock() + timeout_s
    while got < n_expected and pylsl.local_clock() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.5, max_samples=4096)
        if ts:
            data.append(np.asarray(chunk).reshape(len(ts), n_channels))
            stamps.append(np.asarray(ts))
            got += len(ts)
    if not data:
        return np.zeros((0, n_channels)), np.zeros(0)
    return np.concatenate(data), np.concatenate(stamps)


def xdf_chunk(tag: int, content: bytes) -> bytes:
    """One XDF chunk with an 8-byte length field (for hand-made test files)."""
    body = struct.pack("<H", tag) + content
    return b"\x08" + struct.pack("<Q", len(body)) + body


def streams_by_name(streams: list[dict]) -> dict[str, dict]:
    """pyxdf stream dicts keyed by stream name."""
    return {s["info"]["name"][0]: s for s in streams}


def wait_until_recorded(
    path: Path,
    *,
    last_stamps: Mapping[str, float] | None = None,
    counts: Mapping[str, int] | None = None,
    timeout_s: float = 10.0,
) -> bool:
    """Wait until the XDF file a recorder is writing holds, per stream name, a sample stamped at
    least ``last_stamps[name]`` and at least ``counts[name]`` samples (a partly written file is
    read with :func:`bci.session.xdf_read.scan_xdf`, which tolerates a cut tail)."""
    from bci.errors import BCIError
    from bci.session.xdf_read import scan_xdf

    def done() -> bool:
        try:
            scan = scan_xdf(path)
        except (BCIError, OSError):
            return False
        got = {s.name: s for s in scan.streams.values()}
        for name, stamp in (last_stamps or {}).items():
            last = got[name].last_timestamp if name in got else None
            if last is None or last < stamp:
                return False
        return all(
            name in got and got[name].sample_count >= n for name, n in (counts or {}).items()
        )

    return wait_until(done, timeout_s, poll_s=0.05)


#: LabRecorder (the peer) pulls its inlets every 500 ms and takes nothing more when stopped.
LABRECORDER_PULL_INTERVAL_S = 0.5


def let_labrecorder_pull() -> None:
    """Give LabRecorder one pull interval (and a margin) to take what was pushed, before stop().

    The one wait in these tests that no condition can replace: LabRecorder does not pull at stop
    (stopping right after the last push lost the last ~0.1 s of samples when tried) and writes
    through a file buffer, so what it has pulled is not visible from outside until it stops.
    """
    time.sleep(LABRECORDER_PULL_INTERVAL_S + 0.2)
