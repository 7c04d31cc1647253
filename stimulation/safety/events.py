"""Publish the safety limiter's events on LSL, so the session's recorder keeps them.

Format
------
An irregular-rate LSL marker stream (type ``"Markers"``, one ``string`` channel labelled
``safety``), one JSON object per :class:`~stimulation.safety.limiter.SafetyEvent`::

    {"count": 3, "delivered": 3.0, "event": "clamp_amplitude", "requested": 9.0,
     "seq": 41, "source_id": "pi-controller", "t": 1234.56}

``event`` is one of :data:`~stimulation.safety.limiter.EVENT_KINDS`, ``count`` how many events of
that kind the limiter has had so far, ``t`` the limiter time (also the marker's LSL stamp when it
is finite). The stream's ``desc/safety`` holds the limits (:meth:`SafetyLimits.to_dict`).
"""

from __future__ import annotations

import math

import pylsl

from bci.acquisition.metadata import make_stream_info
from bci.acquisition.outlet import MarkerOutlet
from stimulation.safety.limiter import SafetyEvent
from stimulation.safety.limits import SafetyLimits

#: LSL content type of the safety event stream.
SAFETY_STREAM_TYPE = "Markers"


def safety_stream_info(name: str, source_id: str, limits: SafetyLimits) -> pylsl.StreamInfo:
    """``StreamInfo`` of a safety event stream (module docstring)."""
    info = make_stream_info(
        name,
        SAFETY_STREAM_TYPE,
        1,
        0.0,
        "string",
        source_id,
        labels=["safety"],
        units="",
        model="stimulation.safety",
    )
    desc = info.desc().append_child("safety")
    for key, value in limits.to_dict().items():
        desc.append_child_value(key, "" if value is None else str(value))
    return info


class SafetyEventOutlet:
    """An LSL outlet for limiter events; pass :meth:`publish` as the limiter's ``events``.

    Parameters
    ----------
    name, source_id : str
        Stream name and source_id (the bridge uses ``<plant>-safety``).
    limits : SafetyLimits
        Written into the stream's metadata.
    """

    def __init__(self, name: str, source_id: str, limits: SafetyLimits) -> None:
        self.name = name
        self._outlet: MarkerOutlet | None = MarkerOutlet(
            safety_stream_info(name, source_id, limits)
        )
        self.n_published = 0

    def publish(self, event: SafetyEvent) -> None:
        """Push one event (stamped with its limiter time when finite, else now)."""
        if self._outlet is None:
            return
        stamp = event.t if math.isfinite(event.t) else pylsl.local_clock()
        self._outlet.push(event.to_marker(), stamp)
        self.n_published += 1

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait until an inlet (a recorder) is connected."""
        return self._outlet is not None and bool(self._outlet.outlet.wait_for_consumers(timeout))

    def close(self) -> None:
        """Close the stream (inlets see it end)."""
        self._outlet = None
