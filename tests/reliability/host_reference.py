"""A reference workload timed beside a soak, to tell the host's speed from the loop's.

On a shared virtual machine the processor's speed for the same code changes by tens of percent
over minutes: the loop thread's CPU time for identical chunks moves with it, and so does its
latency, which is mostly that CPU time. A soak that compares the loop's p99 latency at two times
then measures the host as much as the loop. :class:`HostReference` runs the soak session's own
chain (its stages, decoder and controller, built from the same config by the runner's
:func:`~bci.runner.parts.build_parts`) in a thread of the soak's driver process, every
``every_s`` seconds: a fresh copy (``copy.deepcopy``) of the chain as it stood after its
calibration takes the same ``warm + chunks`` chunks of the loop's size of a fixed synthetic
recording, and the CPU time (``time.thread_time_ns``) of each of the last ``chunks`` is measured
(the first ones after a pause run on cold caches, which a loop busy every 20 ms does not) and
tagged with the runner's window it fell in (the thread watches ``windows.csv`` grow). The very
same work every time, from the very same state: what changes in its CPU time is the host, and a
loop that slows down as it runs (state that grows with the chunks it has seen) cannot slow the
reference with it. The loop's latency per chunk divided by the reference's, window by window, is
the loop's with the host's speed removed; the reference costs about 1% of one core.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

#: The loop's chunk in a lockstep plant session: one 20-ms control period of the probe.
CHUNK_S = 0.02


class HostReference:
    """Time the soak session's chain on fixed data in a background thread (module docstring).

    Parameters
    ----------
    session : dict
        The soak's session config (its pipeline, decoder and controller are rebuilt here).
    runs_root : Path
        Where ``bci run`` makes the run folder whose ``windows.csv`` tags the samples.
    every_s, chunks, warm : float, int, int
        ``chunks`` chunks are timed every ``every_s`` seconds of wall time, after ``warm``
        untimed ones.
    seed : int
        The synthetic recording's seed.
    """

    def __init__(
        self,
        session: dict[str, Any],
        runs_root: Path,
        *,
        every_s: float = 1.0,
        chunks: int = 10,
        warm: int = 2,
        seed: int = 0,
    ) -> None:
        self.runs_root = Path(runs_root)
        self.every_s = float(every_s)
        self.chunks = int(chunks)
        self.warm = int(warm)
        #: (window index, CPU ms) of every timed chunk; the window is the one being filled
        self.samples: list[tuple[int, float]] = []
        self._chain, data, sfreq, first = _build(session, seed)
        n = int(round(CHUNK_S * sfreq))
        if (self.warm + self.chunks) * n > data.shape[0]:
            raise ValueError(f"warm + chunks must fit {data.shape[0] // n} chunks of fixed data")
        self._burst = [
            _chunk(data[i * n : (i + 1) * n], first + i * n, sfreq)
            for i in range(self.warm + self.chunks)
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-host-reference", daemon=True)
        self._windows_csv: Path | None = None

    def start(self) -> HostReference:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def per_window_ms(self, n_windows: int) -> list[float]:
        """Median CPU ms per reference chunk in each of ``n_windows`` windows (NaN: none)."""
        out: list[list[float]] = [[] for _ in range(n_windows)]
        for window, ms in self.samples:
            if window < n_windows:
                out[window].append(ms)
        return [float(np.median(v)) if v else float("nan") for v in out]

    # ------------------------------------------------------------------ internals
    def _window(self) -> int:
        """Rows the runner has written so far: the index of the window being filled."""
        if self._windows_csv is None:
            found = sorted(self.runs_root.glob("*/windows.csv"))
            if not found:
                return 0
            self._windows_csv = found[-1]
        with self._windows_csv.open("rb") as f:
            return max(0, f.read().count(b"\n") - 1)

    def _run(self) -> None:
        import copy

        from bci.runner.chain import ChainOutput

        while not self._stop.wait(self.every_s):
            window = self._window()
            chain = copy.deepcopy(self._chain)  # the calibrated chain, as it was
            for i, chunk in enumerate(self._burst):
                t0 = time.thread_time_ns()
                chain.process(chunk, ChainOutput())
                if i >= self.warm:
                    self.samples.append((window, (time.thread_time_ns() - t0) / 1e6))


def _chunk(data: np.ndarray, first: int, sfreq: float) -> Any:
    """A chunk of the synthetic recording from sample ``first``, stamped on its sample clock."""
    from bci.stream.chunks import SignalChunk

    stamps = (first + np.arange(data.shape[0])) / sfreq
    return SignalChunk(data, first, sfreq, stamps, time.monotonic())


def _build(session: dict[str, Any], seed: int) -> tuple[Any, np.ndarray, float, int]:
    """The session's chain, calibrated on the first seconds of a synthetic recording of the
    probe's shape, the next second of that recording to time it on, its rate and the index of
    the next sample the chain expects."""
    from bci.runner.chain import ChainOutput, StageChain
    from bci.runner.parts import build_parts
    from bci.session.config import parse_session
    from bci.stream.spec import StreamSpec
    from bci.synthesis.source import SyntheticSource

    config = parse_session(session)
    probe = session["source"].get("probe", {})
    n_channels = int(probe.get("n_channels", 4))
    sfreq = 30000.0
    parts = build_parts(config)
    stages = parts.chain_stages
    chain = StageChain(stages, config.calibration.duration_s, background_fit=False)
    chain.prepare(StreamSpec("signal", n_channels, sfreq, unit="uV"))
    source = SyntheticSource(n_channels, int(probe.get("n_units", 2)), sfreq, seed=seed)
    calibration_s = 3.0 * max(1.0, config.calibration.duration_s)
    data, _ = source.read(int((calibration_s + 1.0) * sfreq))
    n = int(round(CHUNK_S * sfreq))
    first = 0
    while first + n <= calibration_s * sfreq:
        chain.process(_chunk(data[first : first + n], first, sfreq), ChainOutput())
        first += n
    if chain.is_calibrating or chain.ready < len(stages):
        raise RuntimeError(f"the reference chain did not finish calibrating in {calibration_s} s")
    return chain, np.ascontiguousarray(data[first:]), sfreq, first
