"""The health of one inlet stream: its events, counts, and when silence counts as a stall.

:class:`~bci.acquisition.source.LSLSource` pulls and converts; what it notices on the way (a gap,
a run of NaN samples, a stall, a reconnect, a jump back in time) is recorded here, as
:class:`SourceEvent` objects and counters that :meth:`StreamHealth.status` reports.

Stalls: with ``recover=True`` liblsl reconnects silently and pulls just come back empty, so once no
data have come for :meth:`StreamHealth.stall_after_s` a ``"stall"`` event says "no data for X ms";
when data flow again a ``"reconnect"`` event gives the silence and the gap length.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pylsl

from bci.checks import ensure_int

#: Silence after connecting, before the first sample, that counts as a stall: start-up (an outlet
#: process importing, compiling, calibrating) is not a stall, so this is long.
FIRST_DATA_STALL_S = 10.0
#: Silence that counts as a stall after the first chunk, before the chunk interval is known.
EARLY_STALL_S = 1.0


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """Something the source noticed about its stream.

    Parameters
    ----------
    kind : str
        ``"connected"``, ``"gap"``, ``"stall"``, ``"reconnect"``, ``"time_jump"``, ``"nan"``,
        ``"lost"`` or ``"closed"``.
    t : float
        ``pylsl.local_clock()`` when it was noticed.
    message : str
        One human-readable line.
    n_samples : int
        Samples concerned: missing samples (gap, reconnect), samples the stamps jumped back
        (time_jump), NaN samples (nan); 0 otherwise.
    sample_index : int
        Stream sample index where it happened (first sample after a gap), or -1.
    """

    kind: str
    t: float
    message: str
    n_samples: int = 0
    sample_index: int = -1


class StreamHealth:
    """Events and counts of one stream, and the stall detector.

    Parameters
    ----------
    stall_after_s : float or None
        Silence that raises a ``"stall"`` event; ``None``: 10x the observed interval between
        chunks, at least 0.1 s. Before the first sample it is :data:`FIRST_DATA_STALL_S`.
    max_events : int
        Events kept (oldest dropped first).
    logger : logging.Logger
        Where each event is logged (info for connected/reconnect/closed, warning otherwise).
    """

    def __init__(
        self, stall_after_s: float | None, max_events: int, logger: logging.Logger
    ) -> None:
        self._stall_after_s = stall_after_s
        self._logger = logger
        self.events: deque[SourceEvent] = deque(
            maxlen=ensure_int(max_events, "max_events", minimum=1)
        )
        self.events_total = 0
        self.next_sample = 0
        self.samples_received = 0
        self.chunks_received = 0
        self.gaps = 0
        self.gap_samples = 0
        self.nan_samples = 0
        self._in_nan_run = False
        self.t_connected = 0.0
        self.t_last_data: float | None = None
        self._chunk_interval_s: float | None = None
        self.stalled = False
        self._stall_started: float | None = None

    def event(self, kind: str, message: str, n_samples: int = 0, sample_index: int = -1) -> None:
        """Record (and log) one event."""
        event = SourceEvent(kind, pylsl.local_clock(), message, n_samples, sample_index)
        self.events.append(event)
        self.events_total += 1
        level = logging.INFO if kind in ("connected", "reconnect", "closed") else logging.WARNING
        self._logger.log(level, message)

    # ------------------------------------------------------------ per chunk
    def note_nan(self, name: str, nan_count: int, first_sample: int, n: int) -> None:
        """Count a chunk's NaN samples; the first chunk of a NaN run raises a ``"nan"`` event."""
        if nan_count:
            self.nan_samples += nan_count
            if not self._in_nan_run:
                self.event(
                    "nan",
                    f"{nan_count} NaN sample(s) from {name!r} in samples "
                    f"{first_sample}..{first_sample + n - 1}; passed through (see nan_rows).",
                    n_samples=nan_count,
                    sample_index=first_sample,
                )
            self._in_nan_run = True
        else:
            self._in_nan_run = False

    def note_gap(self, name: str, sfreq: float, gap: int, first_sample: int, now: float) -> None:
        """Count a gap before ``first_sample`` (if any) and end a stall (``"reconnect"``)."""
        if gap:
            self.gaps += 1
            self.gap_samples += gap
            self.event(
                "gap",
                f"{gap} samples ({gap / sfreq * 1e3:.1f} ms) missing from {name!r} "
                f"before sample {first_sample}; not filled in.",
                n_samples=gap,
                sample_index=first_sample,
            )
        if self.stalled:
            silence_ms = (now - (self._stall_started or now)) * 1e3
            self.stalled = False
            self.event(
                "reconnect",
                f"Data from {name!r} flowing again after {silence_ms:.0f} ms of silence; "
                f"{gap} samples ({gap / sfreq:.3f} s) were lost.",
                n_samples=gap,
                sample_index=first_sample,
            )

    def note_data(self, now: float, first_sample: int, n: int) -> None:
        """Count a delivered chunk and update the interval between chunks."""
        if self.t_last_data is not None:
            interval = now - self.t_last_data
            if self._chunk_interval_s is None:
                self._chunk_interval_s = interval
            else:
                self._chunk_interval_s += 0.05 * (interval - self._chunk_interval_s)
        self.t_last_data = now
        self.next_sample = first_sample + n
        self.samples_received += n
        self.chunks_received += 1

    # ---------------------------------------------------------------- stalls
    def stall_after_s(self) -> float:
        """Silence (s) that counts as a stall: the set value, or 10x the chunk interval, >= 0.1 s.

        Before the first sample it is :data:`FIRST_DATA_STALL_S` whatever was set: a stream that
        has not started yet is ``"waiting"``, not stalled.
        """
        if self.t_last_data is None:
            return FIRST_DATA_STALL_S
        if self._stall_after_s is not None:
            return self._stall_after_s
        if self._chunk_interval_s is None:
            return EARLY_STALL_S
        return max(0.1, 10.0 * self._chunk_interval_s)

    def check_stall(
        self, now: float, name: str, recover: bool, data_waiting: Callable[[], bool]
    ) -> None:
        """Raise a ``"stall"`` event once the silence exceeds :meth:`stall_after_s`.

        ``data_waiting`` is asked only then: data already here mean a busy consumer, not a silent
        stream.
        """
        if self.stalled:
            return
        since = self.t_last_data if self.t_last_data is not None else self.t_connected
        silence = now - since
        if silence > self.stall_after_s():
            if data_waiting():
                return  # data are waiting: the consumer is busy, the stream is not silent
            self.stalled = True
            self._stall_started = since
            what = "since the last chunk" if self.t_last_data is not None else "since connecting"
            self.event(
                "stall",
                f"No data from {name!r} for {silence * 1e3:.0f} ms {what} "
                f"(threshold {self.stall_after_s() * 1e3:.0f} ms); "
                + ("waiting for the outlet to come back." if recover else "stream may be gone."),
                sample_index=self.next_sample,
            )

    # ---------------------------------------------------------------- report
    def counts(self, now: float) -> dict[str, Any]:
        """The health fields of :meth:`LSLSource.status <bci.acquisition.LSLSource.status>`."""
        age_ms = None if self.t_last_data is None else (now - self.t_last_data) * 1e3
        return {
            "stalled": self.stalled,
            "samples_received": self.samples_received,
            "chunks_received": self.chunks_received,
            "next_sample": self.next_sample,
            "last_data_age_ms": age_ms,
            "gaps": self.gaps,
            "gap_samples": self.gap_samples,
            "nan_samples": self.nan_samples,
        }

    def recent_events(self, n: int = 5) -> list[dict[str, Any]]:
        """The last ``n`` events as dicts."""
        return [asdict(e) for e in list(self.events)[-n:]]
