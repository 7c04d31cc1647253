"""A stream's clock offset, measured on short-lived inlets so that memory stays bounded.

liblsl starts an inlet's time receiver at its first ``time_correction()`` and from then on probes the
outlet every ``TimeUpdateInterval`` (2 s) until the inlet is destroyed. In the liblsl that pylsl
bundles, every probe round leaves a little memory behind that only the inlet's destruction frees
(each round arms one more pending UDP receive, see ``time_receiver::start_time_estimation``). A
recorder or a source that asked its long-lived data inlets for the offset would therefore grow with
wall time, by the number of streams, for as long as it runs.

:class:`ClockProbe` asks a fresh inlet (no data stream opened, no recovery) for one offset and
destroys it with the answer: one probe round per measurement, nothing kept between two. The value
is liblsl's own estimate either way (the lowest round-trip probe of a round, as in NTP).
:class:`ClockTracker` keeps such a measurement current from a daemon thread, for readers that must
never wait for one (:class:`bci.acquisition.source.LSLSource`'s pull path).
"""

from __future__ import annotations

import logging
import threading
import time

import pylsl
from pylsl.util import TimeoutError as LSLTimeoutError

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)
from bci.checks import ensure_float

__all__ = ["ClockProbe", "ClockTracker"]

logger = logging.getLogger(__name__)

#: Longest wait inside liblsl between two looks at a stop request (s).
STOP_POLL_S = 0.05


class ClockProbe:
    """Clock offsets of one stream, each measured by an inlet that lives only for that measurement.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream as a resolve found it (``inlet.info()`` lacks the outlet's address).

    Examples
    --------
    >>> probe = ClockProbe(pylsl.resolve_bypred("source_id='amp-1'")[0])  # doctest: +SKIP
    >>> offset_s = probe.measure(timeout_s=2.0)  # doctest: +SKIP
    """

    def __init__(self, info: pylsl.StreamInfo) -> None:
        self.info = info
        #: measurements that returned an offset
        self.measurements = 0

    def measure(self, timeout_s: float, stop: threading.Event | None = None) -> float:
        """The offset (seconds to add to the stream's time stamps to get this host's clock).

        A probe round takes a few hundred ms. With ``stop``, the wait gives up within
        :data:`STOP_POLL_S` once the event is set (raising the timeout error).

        Raises
        ------
        pylsl.util.TimeoutError
            No probe round answered within ``timeout_s`` (e.g. the source is gone).
        """
        inlet = pylsl.StreamInlet(self.info, max_buflen=1, recover=False)
        try:
            if stop is None:
                offset = float(inlet.time_correction(timeout=timeout_s))
            else:
                offset = _wait_for_offset(inlet, timeout_s, stop)
        finally:
            # the last reference: CPython destroys the liblsl inlet (and its time receiver) here
            del inlet
        self.measurements += 1
        return offset

    def refresh(self, timeout_s: float) -> bool:
        """Look the stream up again (same source_id and name); True if it moved to a new outlet.

        A source that restarts keeps its source_id but gets new ports; a data inlet follows it
        (liblsl's recovery) but a stored info would keep pointing at the old outlet.
        """
        source_id = self.info.source_id()
        if not source_id:
            return False
        name = self.info.name().replace("'", "")
        pred = f"source_id='{source_id.replace(chr(39), '')}' and name='{name}'"
        try:
            found = pylsl.resolve_bypred(pred, 1, timeout_s)
        except Exception:  # a failed lookup only delays the next offset
            logger.debug("looking up %r again failed", self.info.name(), exc_info=True)
            return False
        if found and found[0].uid() != self.info.uid():
            self.info = found[0]
            return True
        return False


def _wait_for_offset(inlet: pylsl.StreamInlet, timeout_s: float, stop: threading.Event) -> float:
    # liblsl's wait cannot be interrupted: wait in slices on the same round (a timed-out call
    # leaves the round running, the next call waits for the same answer)
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return float(inlet.time_correction(timeout=max(0.0, min(STOP_POLL_S, remaining))))
        except LSLTimeoutError:
            if stop.is_set() or remaining <= STOP_POLL_S:
                raise


class ClockTracker:
    """A stream's clock offset, measured again every ``interval_s`` by a daemon thread.

    The thread (named ``bci-clock-<name>``) measures with a :class:`ClockProbe`; :attr:`offset_s`
    is the latest offset, read without waiting. A measurement that fails (the outlet is gone or
    restarting) keeps the last offset and looks the stream up again by its source_id, so that a
    restarted outlet is measured at its new address.

    Parameters
    ----------
    probe : ClockProbe
        Measures the stream.
    offset_s : float
        The offset until the thread's first measurement (the caller's own first one).
    interval_s : float
        Seconds from the start of one measurement to the start of the next.
    timeout_s : float
        Seconds one measurement may wait for its probe round.

    Examples
    --------
    >>> tracker = ClockTracker(probe, probe.measure(timeout_s=5.0)).start()  # doctest: +SKIP
    >>> stamps_local = stamps + tracker.offset_s  # doctest: +SKIP
    >>> tracker.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        probe: ClockProbe,
        offset_s: float,
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
    ) -> None:
        self.probe = probe
        self.interval_s = ensure_float(interval_s, "interval_s", minimum=0.0)
        self.timeout_s = ensure_float(timeout_s, "timeout_s", minimum=0.0, strict_minimum=True)
        # written by the thread only (a rebound float: readers see the old or the new one)
        self._offset_s = float(offset_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def offset_s(self) -> float:
        """The latest offset (seconds to add to the stream's time stamps)."""
        return self._offset_s

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ClockTracker:
        """Start the thread; return ``self``. Once only: a closed tracker does not start again."""
        if self._thread is None and not self._stop.is_set():
            name = self.probe.info.name()
            self._thread = threading.Thread(target=self._run, name=f"bci-clock-{name}", daemon=True)
            self._thread.start()
        return self

    def close(self, wait: bool = True) -> None:
        """Stop the thread; with ``wait``, wait for it.

        A measurement under way gives up within :data:`STOP_POLL_S`; a lookup after a failed one
        (while the outlet is gone) within 0.5 s.
        """
        self._stop.set()
        thread = self._thread
        if not wait or thread is None or thread is threading.current_thread():
            return
        thread.join(self.timeout_s + 1.0)
        if thread.is_alive():
            logger.warning("The clock thread %r did not stop in time.", thread.name)

    def _run(self) -> None:
        stop, probe = self._stop, self.probe
        failing = False
        t_next = time.monotonic() + self.interval_s
        while not stop.wait(max(0.0, t_next - time.monotonic())):
            t_next = time.monotonic() + self.interval_s
            try:
                offset_s = probe.measure(self.timeout_s, stop=stop)
            except Exception as err:  # any failure only delays the next offset
                if stop.is_set():
                    return
                if not failing:
                    failing = True
                    reason = (
                        f"no answer within {self.timeout_s:g} s"
                        if isinstance(err, LSLTimeoutError)
                        else f"{type(err).__name__}: {err}"
                    )
                    logger.warning(
                        "No clock offset from stream %r (%s); keeping the last one (%.3f ms) "
                        "until it answers again.",
                        probe.info.name(),
                        reason,
                        self._offset_s * 1e3,
                    )
                probe.refresh(timeout_s=0.5)
                continue
            if failing:
                failing = False
                logger.info("Clock offset of stream %r measured again.", probe.info.name())
            self._offset_s = offset_s
