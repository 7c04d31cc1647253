"""The session recorder: LSL streams to ``recording.xdf``, as LabRecorder does, crash-safe.

:class:`Recorder` subscribes to any number of LSL streams (regular or irregular rate, numeric or
string) and appends them to an XDF file (:mod:`bci.session.xdf`) with LabRecorder's chunks: one
StreamHeader per stream with the stream's full ``<info>`` XML, Samples chunks with the raw LSL time
stamps (no dejittering, no clock correction: the file keeps what arrived), a ClockOffset chunk per
stream when the recording starts, every ``clock_offset_interval_s`` (5 s, LabRecorder's interval)
and when it stops (liblsl's ``time_correction()``, asked of a short-lived inlet per measurement:
:class:`bci.acquisition.clock_probe.ClockProbe`, so that memory stays flat), a Boundary chunk every
``boundary_interval_s`` (10 s) and, on a clean stop, a StreamFooter per stream (first and last time
stamp, sample count, clock offsets).

Threads: one per stream pulls everything that has arrived every ``pull_interval_s`` into a
preallocated buffer (:class:`bci.acquisition.puller.ChunkPuller` for numeric streams) and encodes it
as one Samples chunk; one per stream measures clock offsets (the first measurement can take most of
a second and must not hold up the pulls); one writer hands the chunks to the OS every
``flush_interval_s`` (0.25 s). A recorder killed with SIGKILL therefore leaves a file that pyxdf
reads, with every sample up to the last flush (at most ``flush_interval_s + pull_interval_s`` lost);
``bci session repair`` adds the missing footers.

Run it as its own process (``bci record``, or :func:`bci.session.recorder_process.spawn_recorder`
from Python) so that a crash of the pipeline never loses what the recorder already has.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pylsl
from pylsl.util import TimeoutError as LSLTimeoutError

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)
from bci.acquisition.clock_probe import ClockProbe
from bci.acquisition.metadata import FORMAT_NAMES, NUMPY_DTYPES
from bci.acquisition.puller import ChunkPuller
from bci.acquisition.resolve import resolve_stream_info
from bci.checks import check_type, ensure_float
from bci.errors import BCIError, ConfigError
from bci.session.xdf import StreamSummary, XDFWriter

__all__ = [
    "Recorder",
    "RecorderError",
    "StreamQuery",
    "StreamSummary",
    "find_streams",
]

logger = logging.getLogger(__name__)

#: Samples one pull takes at most from an irregular stream.
IRREGULAR_PULL_SAMPLES = 4096


class RecorderError(BCIError, RuntimeError):
    """The recorder could not start, or one of its threads failed."""


@dataclass(frozen=True)
class StreamQuery:
    """Properties a stream to record must have (at least one; all given must match)."""

    name: str | None = None
    stype: str | None = None
    source_id: str | None = None

    def __post_init__(self) -> None:
        if self.name is None and self.stype is None and self.source_id is None:
            raise ConfigError(
                "A stream query needs at least one of 'name', 'stype' or 'source_id'."
            )

    def describe(self) -> str:
        given = {"name": self.name, "type": self.stype, "source_id": self.source_id}
        return ", ".join(f"{k}={v!r}" for k, v in given.items() if v is not None)


def find_streams(
    queries: Sequence[StreamQuery | Mapping[str, str] | str], timeout_s: float = 5.0
) -> list[pylsl.StreamInfo]:
    """Resolve one LSL stream per query (a plain string is a stream name), in order.

    Two queries that find the same stream give it once.

    Raises
    ------
    bci.StreamNotFoundError
        A query matched nothing within ``timeout_s``; the message names what was looked for and
        lists the streams that do exist.
    """
    if isinstance(queries, (str, StreamQuery, Mapping)):
        queries = [queries]
    if not queries:
        raise ConfigError("Invalid value for the 'queries' parameter: give at least one stream.")
    found: list[pylsl.StreamInfo] = []
    seen: set[str] = set()
    for q in queries:
        if isinstance(q, str):
            q = StreamQuery(name=q)
        elif isinstance(q, Mapping):
            q = StreamQuery(
                name=q.get("name"),
                stype=q.get("type", q.get("stype")),
                source_id=q.get("source_id"),
            )
        check_type(q, StreamQuery, "queries")
        info = resolve_stream_info(q.name, q.stype, q.source_id, timeout_s=timeout_s)
        if info.uid() not in seen:
            seen.add(info.uid())
            found.append(info)
    return found


class _Track:
    """One recorded stream: its inlet, its clock probe, its stats and its two threads."""

    def __init__(self, inlet: pylsl.StreamInlet, stats: StreamSummary, clock: ClockProbe) -> None:
        self.inlet = inlet
        self.stats = stats
        #: measures clock offsets with inlets of its own: the recording inlet never starts
        #: liblsl's time receiver, which grows for as long as its inlet lives
        self.clock = clock
        self.threads: list[threading.Thread] = []


class Recorder:
    """Record LSL streams into one XDF file, flushed at least every ``flush_interval_s``.

    Parameters
    ----------
    streams : sequence of pylsl.StreamInfo
        The streams to record (see :func:`find_streams`).
    path : str or Path
        The XDF file to create (its folder is created if missing).
    overwrite : bool
        Replace an existing file (default: refuse).
    flush_interval_s : float
        Longest time a pulled sample waits before it is handed to the OS (at most 1 s). Smaller,
        more frequent writes disturb the other processes less: with 384 ch x 30 kHz int16 on a
        2-core machine a pipeline consumer's p99 latency was 1.3 ms at 0.2 s against 4.4 ms at
        0.5 s (one run each of benchmarks/bench_lsl.py; 0.7-0.9 ms without a recorder).
    pull_interval_s : float
        Pause between two pulls of a stream (each pull takes everything that has arrived).
    clock_offset_interval_s : float
        Interval between two clock-offset measurements of a stream (LabRecorder: 5 s).
    boundary_interval_s : float
        Interval between two Boundary chunks (LabRecorder: 10 s).
    max_buffered_s : float
        Seconds of data liblsl keeps per inlet while the recorder is busy.
    open_timeout_s : float
        Seconds to wait for each stream to answer when the recording starts.
    fsync : bool
        ``fsync`` on every flush (survives an OS crash, not only a killed recorder).

    Examples
    --------
    >>> infos = find_streams(["Neural", "Markers"])  # doctest: +SKIP
    >>> with Recorder(infos, "run/recording.xdf") as rec:  # doctest: +SKIP
    ...     time.sleep(10)
    """

    def __init__(
        self,
        streams: Sequence[pylsl.StreamInfo],
        path: str | Path,
        *,
        overwrite: bool = False,
        flush_interval_s: float = 0.25,
        pull_interval_s: float = 0.1,
        clock_offset_interval_s: float = 5.0,
        boundary_interval_s: float = 10.0,
        max_buffered_s: float = 60.0,
        open_timeout_s: float = 10.0,
        fsync: bool = False,
    ) -> None:
        if isinstance(streams, pylsl.StreamInfo):
            streams = [streams]
        if not streams:
            raise ConfigError("Invalid value for the 'streams' parameter: nothing to record.")
        for info in streams:
            check_type(info, pylsl.StreamInfo, "streams")
        self.infos = list(streams)
        self.path = Path(path)
        self.overwrite = bool(check_type(overwrite, bool, "overwrite"))
        self.flush_interval_s = ensure_float(
            flush_interval_s, "flush_interval_s", minimum=0.0, maximum=1.0, strict_minimum=True
        )
        self.pull_interval_s = ensure_float(
            pull_interval_s, "pull_interval_s", minimum=0.0, maximum=1.0, strict_minimum=True
        )
        self.clock_offset_interval_s = ensure_float(
            clock_offset_interval_s, "clock_offset_interval_s", minimum=0.1
        )
        self.boundary_interval_s = ensure_float(
            boundary_interval_s, "boundary_interval_s", minimum=0.1
        )
        self.max_buffered_s = ensure_float(max_buffered_s, "max_buffered_s", minimum=1.0)
        self.open_timeout_s = ensure_float(open_timeout_s, "open_timeout_s", minimum=0.0)
        self.fsync = bool(check_type(fsync, bool, "fsync"))
        self._writer: XDFWriter | None = None
        self._tracks: list[_Track] = []
        self._stop = threading.Event()
        self._writer_thread: threading.Thread | None = None
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()
        self._stopped = False
        #: ``pylsl.local_clock()`` when the recording started (None before).
        self.t_start: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Recorder:
        """Open every inlet, write the file and stream headers, and start recording."""
        if self._writer is not None:
            raise RecorderError("This recorder has already been started; make a new one.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecorderError(
                f"Cannot create the folder of {self.path}: {err.strerror or err}."
            ) from err
        inlets = []
        try:
            for info in self.infos:
                inlet = pylsl.StreamInlet(
                    info, max_buflen=max(1, round(self.max_buffered_s)), recover=True
                )
                try:
                    inlet.open_stream(timeout=self.open_timeout_s)
                    full = inlet.info(timeout=self.open_timeout_s)
                except LSLTimeoutError as err:
                    raise RecorderError(
                        f"Stream {info.name()!r} (source_id {info.source_id()!r}) did not answer "
                        f"within {self.open_timeout_s:g} s."
                    ) from err
                inlets.append((inlet, full, info))
        except BaseException:
            for inlet, _, _ in inlets:
                inlet.close_stream()
            raise
        from bci import __version__

        try:
            self._writer = XDFWriter(
                self.path,
                overwrite=self.overwrite,
                fsync=self.fsync,
                header_fields={
                    "writer": f"bci-closed-loop {__version__} (bci.session.recorder)",
                    # streams stamped on this host share the recorder's clock: offset exactly 0
                    # (bci.session.clock_sync reads this back)
                    "hostname": socket.gethostname(),
                },
            )
        except BaseException:
            for inlet, _, _ in inlets:
                inlet.close_stream()
            raise
        for inlet, full, info in inlets:
            stream_id = self._writer.add_stream(full.as_xml())
            fmt = FORMAT_NAMES.get(full.channel_format(), "")
            stats = StreamSummary(
                stream_id=stream_id,
                header_xml=full.as_xml(),
                name=full.name(),
                source_id=full.source_id(),
                channel_format=fmt,
                n_channels=full.channel_count(),
                nominal_srate=full.nominal_srate(),
            )
            # the resolved info, not the full one: only the former holds the outlet's address
            self._tracks.append(_Track(inlet, stats, ClockProbe(info)))
        self._writer.flush()
        self.t_start = pylsl.local_clock()
        for track in self._tracks:
            pull = threading.Thread(
                target=self._guard,
                args=(self._pull_loop, track),
                name=f"bci-record-pull-{track.stats.name}",
                daemon=True,
            )
            clock = threading.Thread(
                target=self._guard,
                args=(self._clock_loop, track),
                name=f"bci-record-clock-{track.stats.name}",
                daemon=True,
            )
            track.threads = [pull, clock]
            pull.start()
            clock.start()
        self._writer_thread = threading.Thread(
            target=self._guard, args=(self._write_loop, None), name="bci-record-writer", daemon=True
        )
        self._writer_thread.start()
        return self

    def stop(self) -> list[StreamSummary]:
        """Take what has arrived, write the footers and close the file; return the stats."""
        if self._writer is None or self._stopped:
            return self.stats
        self._stopped = True
        self._stop.set()
        for track in self._tracks:
            for thread in track.threads:
                thread.join()
        if self._writer_thread is not None:
            self._writer_thread.join()
        writer = self._writer
        try:
            for track in self._tracks:
                s = track.stats
                writer.write_footer(s.stream_id, s.make_footer_xml())
        except BCIError as err:  # e.g. disk full: reported by check() below
            self._add_error(f"footers: {err}")
        finally:
            try:
                writer.close()
            except BCIError as err:
                self._add_error(f"closing: {err}")
            for track in self._tracks:
                try:
                    track.inlet.close_stream()
                except Exception:  # a lost stream cannot be closed twice; nothing to save
                    logger.debug("closing the inlet of %s failed", track.stats.name, exc_info=True)
        self.check()
        return self.stats

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------

    @property
    def stats(self) -> list[StreamSummary]:
        """Per-stream counts, first/last time stamps and clock offsets (live)."""
        return [t.stats for t in self._tracks]

    @property
    def is_recording(self) -> bool:
        return self._writer is not None and not self._stopped

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the OS so far."""
        return 0 if self._writer is None else self._writer.bytes_written

    def check(self) -> None:
        """Raise :class:`RecorderError` if a recording thread has failed."""
        with self._errors_lock:
            errors = list(self._errors)
        if errors:
            raise RecorderError(f"Recording to {self.path} failed: " + "; ".join(errors))

    # -- threads -----------------------------------------------------------------------------

    def _failed(self) -> bool:
        with self._errors_lock:
            return bool(self._errors)

    def _add_error(self, message: str) -> None:
        with self._errors_lock:
            self._errors.append(message)

    def _guard(self, loop: Any, track: _Track | None) -> None:
        try:
            loop(track) if track is not None else loop()
        except Exception as err:
            what = f"stream {track.stats.name!r}" if track is not None else "writer"
            logger.exception("Recorder thread for %s failed", what)
            self._add_error(f"{what}: {type(err).__name__}: {err}")

    def _pull_loop(self, track: _Track) -> None:
        stats, inlet = track.stats, track.inlet
        writer = self._writer
        if writer is None:  # start() sets it before the threads
            raise RecorderError("Recorder thread started before the file was opened.")
        if stats.channel_format in NUMPY_DTYPES:
            rate = stats.nominal_srate
            capacity = (
                max(1024, int(rate * self.pull_interval_s * 4))
                if rate > 0
                else IRREGULAR_PULL_SAMPLES
            )
            puller = ChunkPuller(inlet, capacity, NUMPY_DTYPES[stats.channel_format])

            def take() -> int:
                n = puller.pull(0.0)
                if n:
                    writer.write_numeric(
                        stats.stream_id, puller.stamps[:n], puller.data[:n], stats.channel_format
                    )
                    stats.add_samples(float(puller.stamps[0]), float(puller.stamps[n - 1]), n)
                return n
        elif stats.channel_format == "string":
            capacity = IRREGULAR_PULL_SAMPLES

            def take() -> int:
                rows, stamps = inlet.pull_chunk(timeout=0.0, max_samples=capacity)
                n = len(stamps)
                if n:
                    writer.write_strings(stats.stream_id, stamps, rows)
                    stats.add_samples(float(stamps[0]), float(stamps[-1]), n)
                return n
        else:
            raise RecorderError(
                f"Stream {stats.name!r} has channel format {stats.channel_format!r}, which XDF "
                "cannot store."
            )
        while True:
            stopping = self._stop.is_set()
            while take() == capacity:
                pass
            if stopping:
                return
            self._stop.wait(self.pull_interval_s)

    def _clock_loop(self, track: _Track) -> None:
        writer = self._writer
        if writer is None:
            raise RecorderError("Recorder thread started before the file was opened.")
        while True:
            stopping = self._stop.is_set()
            if stopping and self._failed():
                return  # the file takes no more: no last offset, so the recorder exits at once
            try:
                # a fresh inlet needs one probe round (about 0.6 s); 3 s allows a second one. A
                # stop interrupts it (then the last offset is taken, unless the recording failed)
                offset = track.clock.measure(
                    timeout_s=2.0 if stopping else 3.0, stop=None if stopping else self._stop
                )
            except LSLTimeoutError:
                if not stopping and self._stop.is_set():
                    continue
                logger.warning("No clock offset from stream %r in time.", track.stats.name)
                if not stopping:  # the source may have come back on other ports
                    track.clock.refresh(timeout_s=1.0)
            else:
                now = pylsl.local_clock()
                # like LabRecorder: the collection time is on the stream's own clock
                writer.write_clock_offset(track.stats.stream_id, now - offset, offset)
                track.stats.clock_offsets.append((now - offset, offset))
            if stopping:
                return
            self._stop.wait(self.clock_offset_interval_s)

    def _write_loop(self) -> None:
        writer = self._writer
        if writer is None:
            raise RecorderError("Recorder thread started before the file was opened.")
        next_boundary = time.monotonic() + self.boundary_interval_s
        while not self._stop.wait(self.flush_interval_s):
            if time.monotonic() >= next_boundary:
                writer.write_boundary()
                next_boundary += self.boundary_interval_s
            writer.flush()
        writer.flush()
