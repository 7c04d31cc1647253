"""LSLSource: the pipeline's inlet for a regularly sampled LSL stream of neural signals.

It resolves one stream (by name, type and/or source_id), checks it against what the session
expects, and turns whatever has arrived into :class:`bci.stream.SignalChunk` objects whose
``first_sample`` counts samples since the start, gaps included. Problems are reported, never hidden:

- **gaps**: a chunk whose first (clock-corrected, not smoothed) time stamp is later than the
  sample clock predicts by more than the tolerance follows missing samples; the chunk carries
  ``gap_before`` and ``first_sample`` skips them, and a ``"gap"`` event says how many. See
  :mod:`bci.acquisition.clock` for why we dejitter ourselves rather than with liblsl's
  ``proc_dejitter`` (which would smooth the gap away).
- **dead stream**: once no data have come for ``stall_after_s`` a ``"stall"`` event says "no data
  for X ms"; when data flow again a ``"reconnect"`` event gives the silence and the gap length (what
  the outlet pushed before liblsl reconnected is lost). The events, counts and stall detection are
  kept by :class:`bci.acquisition.health.StreamHealth`.
- **NaN samples** pass through untouched, are counted, and show in ``SignalChunk.nan_rows``.

The pull path is lean: liblsl writes into a preallocated buffer, the only allocations per chunk are
the output arrays (float32 data and float64 stamps), and nothing loops over samples in Python. It
never waits for a clock offset: a daemon thread measures those (:mod:`bci.acquisition.clock_probe`).
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)
from bci.acquisition.clock import SampleClock, deduced_from_zero
from bci.acquisition.clock_probe import ClockProbe, ClockTracker
from bci.acquisition.health import (
    EARLY_STALL_S,
    FIRST_DATA_STALL_S,
    SourceEvent,
    StreamHealth,
)
from bci.acquisition.metadata import (
    FORMAT_NAMES,
    NUMPY_DTYPES,
    read_scale_uv_per_bit,
    read_signal_spec,
)
from bci.acquisition.puller import ChunkPuller
from bci.acquisition.resolve import (
    check_stream_info,
    describe_info,
    resolve_stream_info,
    stream_query,
)
from bci.checks import check_type, check_value, ensure_float, ensure_int
from bci.errors import BCIError, ConfigError, StreamNotFoundError
from bci.stream.chunks import SignalChunk
from bci.stream.spec import StreamSpec
from bci.stream.stage import Source

logger = logging.getLogger(__name__)

__all__ = [
    "EARLY_STALL_S",
    "FIRST_DATA_STALL_S",
    "LSLSource",
    "SourceClosedError",
    "SourceEvent",
    "StreamLostError",
]


class StreamLostError(BCIError, ConnectionError):
    """The stream's outlet is gone and the source was told not to wait for it (``recover=False``)."""


class SourceClosedError(BCIError, RuntimeError):
    """The source was used before :meth:`LSLSource.open` or after :meth:`LSLSource.close`."""


_NOT_OPEN = "The LSLSource is not open yet: call open() (or use it in a 'with' block) first."


class LSLSource(Source):
    """Pull a regularly sampled numeric LSL stream as :class:`~bci.stream.SignalChunk` objects.

    Building one only checks the arguments; :meth:`open` (or ``with``) resolves the stream and
    connects. Its :meth:`to_dict` is in :meth:`bci.stream.Stage.to_dict`'s format.

    Parameters
    ----------
    name, stype, source_id : str, optional
        Properties the stream must have (at least one). ``source_id`` is the reliable one: liblsl
        recovers a restarted outlet by it.
    n_channels, sfreq, channel_format : optional
        What the session expects; a stream that differs is refused with
        :class:`bci.StreamMismatchError` naming both values. ``channel_format`` is a key of
        :data:`~bci.acquisition.metadata.CHANNEL_FORMATS` (string streams are always refused).
    timeout_s : float
        Seconds :meth:`open` waits for the stream to be found and to answer.
    max_pull_s : float
        Capacity of the pull buffer in seconds of data: one :meth:`pull` returns at most this much.
    scale : float or None
        Factor applied to every value on conversion to float32 (e.g. the uV per count of an int16
        amplifier stream). ``None`` (default): the stream header's
        ``desc/acquisition/scale_uv_per_bit`` when it has one (our publishers, the plant and
        replays of their recordings do), else 1.
    clocksync : bool
        Map stamps into the local clock with liblsl's clock-offset estimate (``time_correction()``),
        measured in :meth:`open` and then about every second by a daemon thread
        (``bci-clock-<name>``, :class:`~bci.acquisition.clock_probe.ClockTracker`) on short-lived
        inlets of its own: the data inlet never starts liblsl's time receiver, whose memory grows
        for as long as its inlet lives, and :meth:`pull` never waits for a measurement. While the
        outlet is gone the last offset stays. The correction is added to the output stamps only:
        gaps are judged on the outlet's own stamps, so a new offset estimate (they wander by tens
        of us even on loopback) is never mistaken for a missing sample.
    dejitter : bool
        Replace stamps by the sample clock's linear fit (gap-aware, see
        :mod:`bci.acquisition.clock`); ``False`` passes the clock-corrected, monotonized stamps.
    dejitter_halftime_s : float
        Forgetting half-time of the sample-clock fit.
    gap_threshold_s : float or None
        Lateness of a chunk's first stamp that counts as a gap; ``None`` adapts to the observed
        jitter (at least half a sample). Raise it for outlets that stamp chunks at push time on a
        busy machine, whose late pushes would otherwise look like gaps.
    stall_after_s : float or None
        Silence that raises a ``"stall"`` event; ``None``: 10x the observed interval between
        chunks, at least 0.1 s. Before the first sample the threshold is
        :data:`FIRST_DATA_STALL_S` (start-up is not a stall).
    recover : bool
        Let liblsl reconnect to a restarted outlet with the same source_id. ``False`` raises
        :class:`StreamLostError` when the outlet disappears.
    max_buffered_s : float
        Seconds of data liblsl keeps for this inlet while the pipeline is busy.
    max_events : int
        Events kept (oldest dropped first).
    unit : str or None
        Unit of the converted values for :meth:`spec`; ``None``: the stream's own channel unit.

    Examples
    --------
    >>> with LSLSource(source_id="amp-1", n_channels=384, sfreq=30000) as source:  # doctest: +SKIP
    ...     spec = source.spec()
    ...     chunk = source.pull(timeout=0.01)
    >>> source = LSLSource(source_id="amp-1").open()  # doctest: +SKIP
    """

    def __init__(
        self,
        name: str | None = None,
        stype: str | None = None,
        source_id: str | None = None,
        *,
        n_channels: int | None = None,
        sfreq: float | None = None,
        channel_format: str | None = None,
        timeout_s: float = 5.0,
        max_pull_s: float = 0.05,
        scale: float | None = None,
        clocksync: bool = True,
        dejitter: bool = True,
        dejitter_halftime_s: float = 90.0,
        gap_threshold_s: float | None = None,
        stall_after_s: float | None = None,
        recover: bool = True,
        max_buffered_s: float = 10.0,
        max_events: int = 256,
        unit: str | None = None,
    ) -> None:
        # every constructor argument, as given (first statement: locals() holds only them)
        self._params: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        self._query = stream_query(name, stype, source_id)
        if n_channels is not None:
            n_channels = ensure_int(n_channels, "n_channels", minimum=1)
        if sfreq is not None:
            sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
        if channel_format is not None:
            check_value(channel_format, NUMPY_DTYPES, "channel_format")
        self._expected = (n_channels, sfreq, channel_format)
        self._timeout_s = ensure_float(timeout_s, "timeout_s", minimum=0.0)
        self._max_pull_s = ensure_float(max_pull_s, "max_pull_s", minimum=0.0, strict_minimum=True)
        if scale is not None:
            scale = ensure_float(scale, "scale")
            if scale == 0.0:
                raise ConfigError(
                    "Invalid value for the 'scale' parameter: 0 would erase the signal."
                )
        self._given_scale = scale
        #: factor from wire values to the values delivered (the header's, on open, if not given)
        self.scale: float = 1.0 if scale is None else scale
        self.dejitter = bool(check_type(dejitter, bool, "dejitter"))
        self.clocksync = bool(check_type(clocksync, bool, "clocksync"))
        self.recover = bool(check_type(recover, bool, "recover"))
        stall_after_s = (
            None
            if stall_after_s is None
            else ensure_float(stall_after_s, "stall_after_s", minimum=0.0, strict_minimum=True)
        )
        self._max_buffered_s = ensure_float(
            max_buffered_s, "max_buffered_s", minimum=0.0, strict_minimum=True
        )
        self._dejitter_halftime_s = ensure_float(
            dejitter_halftime_s, "dejitter_halftime_s", minimum=0.0, strict_minimum=True
        )
        self._gap_threshold_s = (
            None
            if gap_threshold_s is None
            else ensure_float(gap_threshold_s, "gap_threshold_s", minimum=0.0, strict_minimum=True)
        )
        self._unit = None if unit is None else check_type(unit, str, "unit")

        # what the stream turns out to be: the query ("" where not given) until open() resolves it
        self.name: str = name or ""
        self.stype: str = stype or ""
        self.source_id: str = source_id or ""
        self.n_channels: int = n_channels or 0
        self.sfreq: float = sfreq or 0.0
        self.channel_format: str = channel_format or ""
        self.max_samples = 0
        self._clock_offset: ClockTracker | None = None
        self._inlet: pylsl.StreamInlet | None = None
        self._full_info: pylsl.StreamInfo | None = None
        self._opened = False

        #: events, counts and the stall detector
        self.health = StreamHealth(stall_after_s, max_events, logger)
        self._last_t_out = -np.inf
        self._closed = False
        self._pending: tuple[int, npt.NDArray[np.float64]] | None = None
        #: liblsl has given this source a real time stamp (before one, see :meth:`_unstamped`)
        self._stamped = False
        self._unstamped_n = 0

    def open(self) -> LSLSource:
        """Resolve the stream, check it against the expectations, and connect; return ``self``.

        The only method that touches the network before :meth:`pull` (``with LSLSource(...)``
        calls it). Calling it again on an open source does nothing.

        Raises
        ------
        bci.StreamNotFoundError
            No matching stream within ``timeout_s`` (the message lists what exists), or it did not
            answer.
        AmbiguousStreamError
            Several streams match.
        bci.StreamMismatchError
            The stream differs from ``n_channels``, ``sfreq`` or ``channel_format``.
        SourceClosedError
            The source was closed.
        """
        if self._closed:
            raise SourceClosedError("The LSLSource is closed; create a new one to open again.")
        if self._opened:
            return self
        timeout_s = self._timeout_s
        info = resolve_stream_info(
            self._query.get("name"),
            self._query.get("type"),
            self._query.get("source_id"),
            timeout_s,
        )
        check_stream_info(info, *self._expected)
        self.name = info.name()
        self.stype = info.type()
        self.source_id = info.source_id()
        self.n_channels = info.channel_count()
        self.sfreq = float(info.nominal_srate())
        self.channel_format = FORMAT_NAMES[info.channel_format()]
        self._dtype = np.dtype(NUMPY_DTYPES[self.channel_format])
        inlet = pylsl.StreamInlet(
            info,
            max_buflen=max(1, int(np.ceil(self._max_buffered_s))),
            recover=self.recover,
            processing_flags=pylsl.proc_monotonize,
        )
        probe = ClockProbe(info)  # this info, from a resolve, has the outlet's address
        offset_s = 0.0
        try:
            inlet.open_stream(timeout=timeout_s)
            if self.clocksync:
                # a probe round takes a few hundred ms: the first offset now, not in a pull
                offset_s = probe.measure(timeout_s)
            full_info = inlet.info(timeout=timeout_s)
        except (LSLTimeoutError, LostError) as err:
            raise StreamNotFoundError(
                f"Found the LSL stream {describe_info(info)} but it did not answer within "
                f"{timeout_s:g} s ({err})."
            ) from err
        if self._given_scale is None:
            self.scale = read_scale_uv_per_bit(full_info) or 1.0
        self.max_samples = max(1, int(round(self._max_pull_s * self.sfreq)))
        self._puller = ChunkPuller(inlet, self.max_samples, self._dtype)
        self._clock = SampleClock(
            self.sfreq,
            halftime_s=self._dejitter_halftime_s,
            gap_threshold_s=self._gap_threshold_s,
        )
        self._is_float = np.issubdtype(self._dtype, np.floating)
        self._index_offsets = np.arange(self.max_samples, dtype=np.float64)
        if self.clocksync:
            self._clock_offset = ClockTracker(probe, offset_s).start()
            # a source dropped without close() must not leave its thread probing forever
            weakref.finalize(self, self._clock_offset.close, False)
        self._inlet, self._full_info, self._opened = inlet, full_info, True
        self.health.t_connected = pylsl.local_clock()
        self._event("connected", f"Connected to {describe_info(info)}.")
        return self

    # ---------------------------------------------------------------- set-up
    def spec(self) -> StreamSpec:
        """Describe the stream for :meth:`bci.stream.Pipeline.prepare` (labels, unit, positions)."""
        info = self._full_info
        if info is None:
            raise SourceClosedError(_NOT_OPEN)
        return read_signal_spec(info, scale_uv_per_bit=self.scale, unit=self._unit)

    def to_dict(self) -> dict[str, Any]:
        """Class and constructor arguments in :meth:`bci.stream.Stage.to_dict`'s format.

        ``{"stage": "bci.acquisition.source:LSLSource", "params": {...}}``, for the session's
        ``config.yaml``; :func:`bci.stream.stage_from_dict` (or :meth:`from_dict`) rebuilds an
        unopened source from it.
        """
        return {"stage": f"{__name__}:{type(self).__qualname__}", "params": dict(self._params)}

    @classmethod
    def from_dict(cls, description: Mapping[str, Any]) -> LSLSource:
        """Rebuild an (unopened) source from :meth:`to_dict` output."""
        return cls(**dict(description.get("params", {})))

    # ------------------------------------------------------------------ data
    def pull(self, timeout: float = 0.0) -> SignalChunk | None:
        """Return the samples that have arrived (at most ``max_samples``), or ``None``.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the first sample; whatever else is ready comes with it.

        Raises
        ------
        StreamLostError
            The outlet is gone and ``recover`` is False.
        """
        inlet = self._inlet
        if inlet is None:
            raise SourceClosedError(
                _NOT_OPEN
                if not self._closed
                else "The LSLSource is closed; create a new one to pull again."
            )
        buffer = self._puller.data
        if self._pending is not None:
            # The rest of the last pull, split off at a gap: it is already here, serve it first.
            offset, rest = self._pending
            self._pending = None
            return self._make_chunk(buffer[offset:], rest, offset, pylsl.local_clock())
        try:
            n = self._puller.pull(timeout)
        except LostError as err:
            self._event("lost", f"Stream {self.name!r} lost: its outlet is gone ({err}).")
            raise StreamLostError(
                f"The LSL stream {self.name!r} (source_id {self.source_id!r}) was lost and "
                "recover=False; restart the outlet and the source, or use recover=True."
            ) from err
        now = pylsl.local_clock()
        if n == 0:
            self._check_stall(now)
            return None
        skip = 0 if self._stamped else self._unstamped(n)
        if skip == n:
            return None
        return self._make_chunk(buffer[skip:], self._puller.stamps[skip:n], skip, now)

    def _unstamped(self, n: int) -> int:
        """How many samples to drop at the start of the stream: those liblsl stamped before it
        had a real stamp (:func:`~bci.acquisition.clock.deduced_from_zero`); one event says how
        many, with the first real stamp."""
        skip = deduced_from_zero(self._puller.stamps[:n], 1.0 / self.sfreq, self._unstamped_n)
        self._unstamped_n += skip
        self._stamped = skip < n
        if self._stamped and self._unstamped_n:
            self._event(
                "unstamped",
                f"Dropped the first {self._unstamped_n} samples of {self.name!r}: liblsl stamped "
                "them before it had received a real time stamp, so when they were taken is "
                "unknown (liblsl issue 161: an inlet that subscribes in the middle of a pushed "
                "chunk).",
                n_samples=self._unstamped_n,
            )
        return skip

    def _make_chunk(
        self, buffer: npt.NDArray[Any], stamps: npt.NDArray[np.float64], offset: int, now: float
    ) -> SignalChunk:
        clock = self._clock
        verdict = clock.judge(self.health.next_sample, float(stamps[0]))
        gap = verdict.gap if verdict.gap > 0 else 0
        first_sample = self.health.next_sample + gap
        n = clock.first_break(stamps, first_sample)
        if n < stamps.shape[0]:
            self._pending = (offset + n, stamps[n:])
            stamps = stamps[:n]
        if verdict.gap < 0:
            self._event(
                "time_jump",
                f"Time stamps of {self.name!r} jumped back by {-verdict.residual_s * 1e3:.1f} ms "
                f"({-verdict.gap} samples) at sample {first_sample}; the sample clock restarts.",
                n_samples=-verdict.gap,
                sample_index=first_sample,
            )
        clock.update(first_sample, n, float(np.add.reduce(stamps)) / n)

        if self.dejitter:
            t_lsl = np.multiply(self._index_offsets[:n], clock.period_s)
            t_lsl += clock.predict(first_sample) + self._correction()
            if t_lsl[0] <= self._last_t_out:
                # Early in the fit a new chunk can pull the line back a little: keep time moving.
                t_lsl += self._last_t_out - t_lsl[0] + 1e-3 * clock.period_s
        else:
            t_lsl = stamps + self._correction()  # new array: the stamp buffer is reused
        self._last_t_out = float(t_lsl[-1])

        data = np.empty((n, self.n_channels), dtype=np.float32)
        if self.scale == 1.0:
            np.copyto(data, buffer[:n], casting="unsafe")
        else:
            np.multiply(buffer[:n], self.scale, out=data, casting="unsafe")

        nan_count = 0
        if self._is_float and not np.isfinite(np.add.reduce(data, axis=None)):
            nan_count = int(np.isnan(data).any(axis=1).sum())
        health = self.health
        health.note_nan(self.name, nan_count, first_sample, n)
        health.note_gap(self.name, self.sfreq, gap, first_sample, now)
        health.note_data(now, first_sample, n)
        return SignalChunk(
            data=data,
            first_sample=first_sample,
            sfreq=self.sfreq,
            t_lsl=t_lsl,
            t_arrival=now,
            gap_before=gap,
        )

    def _correction(self) -> float:
        """The latest clock offset of the outlet's host (0 without clocksync); never waits."""
        tracker = self._clock_offset
        return 0.0 if tracker is None else tracker.offset_s

    # ---------------------------------------------------------------- health
    @property
    def events(self) -> deque[SourceEvent]:
        """The most recent events (at most ``max_events``), oldest first."""
        return self.health.events

    @property
    def events_total(self) -> int:
        """Events noticed since construction (including those dropped from :attr:`events`)."""
        return self.health.events_total

    def stall_after_s(self) -> float:
        """Silence (s) that counts as a stall; see :meth:`StreamHealth.stall_after_s`."""
        return self.health.stall_after_s()

    def _check_stall(self, now: float) -> None:
        if self._inlet is None:
            return
        inlet = self._inlet
        self.health.check_stall(
            now,
            self.name,
            self.recover,
            lambda: self._pending is not None or inlet.samples_available() > 0,
        )

    def _event(self, kind: str, message: str, n_samples: int = 0, sample_index: int = -1) -> None:
        self.health.event(kind, message, n_samples, sample_index)

    def status(self) -> dict[str, Any]:
        """Health of the source: connection, data age, counts of samples, gaps, NaNs and events."""
        now = pylsl.local_clock()
        if self._inlet is not None:
            self._check_stall(now)
        if self._closed:
            state = "closed"
        elif not self._opened:
            state = "not opened"
        elif self.health.stalled:
            state = "stalled"
        elif self.health.t_last_data is None:
            state = "waiting"
        else:
            state = "connected"
        return {
            "name": self.name,
            "type": self.stype,
            "source_id": self.source_id,
            "state": state,
            "connected": state == "connected",
            **self.health.counts(now),
            "effective_rate_hz": 1.0 / self._clock.period_s if self._opened else self.sfreq,
            "jitter_ms": self._clock.jitter_s * 1e3 if self._opened else 0.0,
            "events_total": self.health.events_total,
            "recent_events": self.health.recent_events(5),
        }

    def close(self) -> None:
        """Disconnect from the stream and stop the clock thread (idempotent)."""
        if self._clock_offset is not None:
            self._clock_offset.close()
        if self._inlet is None:
            self._closed = True
            return
        inlet, self._inlet = self._inlet, None
        inlet.close_stream()
        del inlet
        self._closed = True
        self._event("closed", f"Closed the source of {self.name!r}.")

    def __enter__(self) -> LSLSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"LSLSource(name={self.name!r}, source_id={self.source_id!r}, "
            f"{self.n_channels} ch @ {self.sfreq:g} Hz {self.channel_format})"
        )
