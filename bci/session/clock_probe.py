"""Measure a recorded stream's clock offset with a short-lived inlet, so the recorder stays bounded.

liblsl starts an inlet's time receiver at its first ``time_correction()`` and from then on probes the
outlet every ``TimeUpdateInterval`` (2 s) until the inlet is destroyed. In the liblsl that pylsl
bundles, every probe round leaves a little memory behind that only the inlet's destruction frees
(each round arms one more pending UDP receive, see ``time_receiver::start_time_estimation``). A
recorder that asked its recording inlets for the offset would therefore grow with wall time, by the
number of streams, for as long as it records.

:class:`ClockProbe` asks a fresh inlet (no data stream opened, no recovery) for one offset and
destroys it with the answer: one probe round per measurement, nothing kept between two. The value
is liblsl's own estimate either way (the lowest round-trip probe of a round, as in NTP).
"""

from __future__ import annotations

import logging

import pylsl

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)

__all__ = ["ClockProbe"]

logger = logging.getLogger(__name__)


class ClockProbe:
    """Clock offsets of one stream, each measured by an inlet that lives only for that measurement.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream as a resolve found it (``inlet.info()`` lacks the outlet's address).

    Examples
    --------
    >>> probe = ClockProbe(find_streams(["Neural"])[0])  # doctest: +SKIP
    >>> offset_s = probe.measure(timeout_s=2.0)  # doctest: +SKIP
    """

    def __init__(self, info: pylsl.StreamInfo) -> None:
        self.info = info
        #: measurements that returned an offset
        self.measurements = 0

    def measure(self, timeout_s: float) -> float:
        """The offset (seconds to add to the stream's time stamps to get this host's clock).

        Raises
        ------
        pylsl.util.TimeoutError
            No probe round answered within ``timeout_s`` (e.g. the source is gone).
        """
        inlet = pylsl.StreamInlet(self.info, max_buflen=1, recover=False)
        try:
            offset = float(inlet.time_correction(timeout=timeout_s))
        finally:
            # the last reference: CPython destroys the liblsl inlet (and its time receiver) here
            del inlet
        self.measurements += 1
        return offset

    def refresh(self, timeout_s: float) -> bool:
        """Look the stream up again (same source_id and name); True if it moved to a new outlet.

        A source that restarts keeps its source_id but gets new ports; the recording inlet follows
        it (liblsl's recovery) but a stored info would keep pointing at the old outlet.
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
