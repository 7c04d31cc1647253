"""Replay a recorded XDF session as live LSL streams.

Each recorded stream comes back as an LSL outlet with the metadata of its XDF header (name, type,
channel count and format, nominal rate and the full ``desc``: channel labels, units, probe positions)
and a source_id suffixed with ``-replay`` so that it never collides with the live device it was
recorded from. All streams share one time base: a sample recorded ``t`` seconds after the earliest
first time stamp of the file is pushed ``t / speed`` seconds after :meth:`Player.start`, stamped with
that LSL time, so the relative timing of every stream (jitter included) is preserved. With ``loop``
the recording restarts where it ended, time stamps still increasing.

Clock offsets recorded in the file are applied (one pooled fit per sending host, see
:mod:`bci.session.clock_sync`); time stamps are not dejittered, so what is replayed is what
arrived. The file is found and read by :mod:`bci.session.files`, the session room's reader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)
from bci.acquisition.metadata import CHANNEL_FORMATS, NUMPY_DTYPES
from bci.checks import check_type, ensure_float, ensure_int
from bci.errors import BCIError, ConfigError

# the recorder's file format is read in the session room
from bci.session.files import (
    RecordingFormatError,
    header_value,
    read_xdf,
    resolve_recording_path,
)

logger = logging.getLogger(__name__)


def _append_desc(element: pylsl.XMLElement, node: Mapping[str, Any]) -> None:
    """Copy a pyxdf XML dict (tag -> list of str | dict | None) under ``element``."""
    for tag, children in node.items():
        for child in children:
            if isinstance(child, Mapping):
                _append_desc(element.append_child(tag), child)
            else:
                element.append_child_value(tag, "" if child is None else str(child))


def stream_info_from_header(
    info: Mapping[str, Any],
    *,
    name: str | None = None,
    source_id: str | None = None,
) -> pylsl.StreamInfo:
    """Rebuild a ``pylsl.StreamInfo`` from the stream header pyxdf read (``stream["info"]``).

    Name, type, channel count and format, nominal rate and the whole ``desc`` tree are copied.

    Parameters
    ----------
    info : mapping
        pyxdf's parsed ``<info>`` element.
    name, source_id : str, optional
        Replace the recorded name or source_id.
    """
    fmt = header_value(info, "channel_format", "float32")
    if fmt not in CHANNEL_FORMATS:
        raise RecordingFormatError(
            f"Stream {header_value(info, 'name')!r} has channel format {fmt!r}, which LSL does not know."
        )
    out = pylsl.StreamInfo(
        name if name is not None else header_value(info, "name", "untitled"),
        header_value(info, "type"),
        int(header_value(info, "channel_count", "1")),
        float(header_value(info, "nominal_srate", "0")),
        CHANNEL_FORMATS[fmt],
        source_id if source_id is not None else header_value(info, "source_id"),
    )
    for desc in info.get("desc") or []:
        if isinstance(desc, Mapping):
            _append_desc(out.desc(), desc)
    return out


@dataclass
class _Track:
    """One stream being replayed: its outlet, samples and times relative to the recording start."""

    name: str
    outlet: pylsl.StreamOutlet
    samples: Any  # numeric: ndarray (n, ch); string: list of lists
    times_s: np.ndarray
    position: int = 0


class Player:
    """Play an XDF recording back as live LSL outlets, with its original timing.

    Outlets are created when the player is built, so inlets can resolve them before
    :meth:`start`. Playback runs in a background thread; :meth:`run` plays in the calling thread.

    Parameters
    ----------
    path : str or Path
        An ``.xdf`` file or a run folder holding ``recording.xdf``.
    speed : float
        Playback rate: 1 is real time, 4 plays four times faster (time stamps compressed alike).
    loop : bool
        Restart at the end until :meth:`stop`.
    streams : sequence of str, optional
        Names of the streams to play (default: all).
    source_id_suffix : str
        Appended to every recorded source_id, so a replayed stream never passes for the live one.
    source_ids : mapping of str to str, optional
        Explicit source_id per stream name; overrides the suffix for those streams.
    name_suffix : str
        Appended to every stream name (default: keep the recorded names, so a pipeline that
        resolves by name runs unchanged on the replay).
    chunk_s : float
        Shortest sleep between pushes; samples due within it go out as one chunk.
    synchronize_clocks : bool
        Apply the file's clock offsets before replaying.
    max_buffered_s : int
        Seconds of data each outlet keeps for a slow inlet (lower it for fast replays of wide
        streams: 384 channels at 30 kHz is 46 MB per buffered second).

    Examples
    --------
    >>> player = Player("sessions/runs/20250101-120000-demo", speed=2.0)  # doctest: +SKIP
    >>> player.start(); player.wait(); player.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        loop: bool = False,
        streams: Sequence[str] | None = None,
        source_id_suffix: str = "-replay",
        source_ids: Mapping[str, str] | None = None,
        name_suffix: str = "",
        chunk_s: float = 0.001,
        synchronize_clocks: bool = True,
        max_buffered_s: int = 360,
    ) -> None:
        self.speed = ensure_float(speed, "speed", minimum=0.0, strict_minimum=True)
        self.loop = bool(check_type(loop, bool, "loop"))
        self.chunk_s = ensure_float(chunk_s, "chunk_s", minimum=0.0, maximum=1.0)
        max_buffered_s = ensure_int(max_buffered_s, "max_buffered_s", minimum=1)
        check_type(source_id_suffix, str, "source_id_suffix")
        check_type(name_suffix, str, "name_suffix")
        self.path = resolve_recording_path(path)
        recorded, _ = read_xdf(self.path, synchronize_clocks=synchronize_clocks, dejitter=False)
        available = [header_value(s["info"], "name") for s in recorded]
        if streams is not None:
            if isinstance(streams, str):
                streams = [streams]
            unknown = [n for n in streams if n not in available]
            if unknown:
                raise ConfigError(
                    f"Invalid value for the 'streams' parameter. Allowed values are "
                    f"{', '.join(repr(a) for a in available)}, but got {unknown!r} instead "
                    f"(recording {self.path})."
                )
            recorded = [s for s in recorded if header_value(s["info"], "name") in streams]
        if not recorded:
            raise RecordingFormatError(f"Recording {self.path} holds no stream to replay.")
        source_ids = dict(source_ids or {})

        firsts = [float(s["time_stamps"][0]) for s in recorded if len(s["time_stamps"])]
        #: LSL time (recorder clock) of the earliest recorded sample: the replay's time zero.
        self.t0_recorded = min(firsts) if firsts else 0.0
        self.tracks: list[_Track] = []
        for s in recorded:
            info = s["info"]
            name = header_value(info, "name")
            sid = source_ids.get(name, header_value(info, "source_id") + source_id_suffix)
            lsl_info = stream_info_from_header(info, name=name + name_suffix, source_id=sid)
            replay = lsl_info.desc().append_child("replay")
            replay.append_child_value("file", str(self.path))
            replay.append_child_value("original_source_id", header_value(info, "source_id"))
            replay.append_child_value("speed", repr(self.speed))
            fmt = header_value(info, "channel_format", "float32")
            times = np.asarray(s["time_stamps"], dtype=np.float64) - self.t0_recorded
            if fmt in NUMPY_DTYPES:
                samples: Any = np.asarray(s["time_series"], dtype=NUMPY_DTYPES[fmt])
                if samples.ndim == 1:
                    samples = samples.reshape(len(times), -1)
            else:
                samples = [[str(v) for v in row] for row in s["time_series"]]
            if np.any(np.diff(times) < 0):  # hand-stamped or reset clocks: play in time order
                logger.warning("Stream %r has time stamps out of order; replaying sorted.", name)
                order = np.argsort(times, kind="stable")
                times = times[order]
                samples = (
                    samples[order]
                    if isinstance(samples, np.ndarray)
                    else [samples[i] for i in order]
                )
            outlet = pylsl.StreamOutlet(lsl_info, 0, max_buffered_s)
            self.tracks.append(_Track(name, outlet, samples, times))

        last = [float(t.times_s[-1]) for t in self.tracks if len(t.times_s)]
        #: Seconds from the first to the last recorded sample (recording time, not replay time).
        self.duration_s = max(last) if last else 0.0
        periods = [
            1.0 / float(header_value(s["info"], "nominal_srate", "0"))
            for s in recorded
            if float(header_value(s["info"], "nominal_srate", "0")) > 0
        ]
        # One loop lasts the recording plus one sample of the slowest regular stream, so that
        # stream keeps its spacing across the seam.
        self.loop_period_s = self.duration_s + (max(periods) if periods else self.chunk_s)
        #: LSL time at which recording time zero is (was) replayed; set by start().
        self.t_start_lsl: float | None = None
        self.loops_done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    @property
    def stream_names(self) -> list[str]:
        """Recorded names of the streams being replayed, in file order."""
        return [t.name for t in self.tracks]

    @property
    def infos(self) -> list[pylsl.StreamInfo]:
        """The outlets' stream infos (with the replay source_ids)."""
        return [t.outlet.get_info() for t in self.tracks]

    def wait_for_consumers(self, timeout: float) -> bool:
        """Block until every outlet has a consumer, or ``timeout`` seconds pass."""
        deadline = pylsl.local_clock() + timeout
        for track in self.tracks:
            left = deadline - pylsl.local_clock()
            if left <= 0 or not track.outlet.wait_for_consumers(left):
                return False
        return True

    def start(self, delay_s: float = 0.0) -> None:
        """Start playback in a background thread, recording time zero ``delay_s`` from now."""
        if self._thread is not None and self._thread.is_alive():
            raise BCIError("The player is already playing; call stop() first.")
        self._begin(delay_s)
        self._thread = threading.Thread(target=self._play, name="bci-replay", daemon=True)
        self._thread.start()

    def run(self, delay_s: float = 0.0) -> None:
        """Play in the calling thread until the end (or forever with ``loop``; stop from elsewhere)."""
        self._begin(delay_s)
        self._play()
        self._raise_error()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the playback thread to finish; return True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        self._raise_error()
        return not self._thread.is_alive()

    @property
    def is_playing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop playback (outlets stay open until :meth:`close`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._raise_error()

    def close(self, linger_s: float = 0.0) -> None:
        """Stop playback and destroy the outlets.

        Parameters
        ----------
        linger_s : float
            Keep the outlets open this long first (only if some have consumers), so inlets can
            pull the last samples: destroying an outlet drops what it has not yet sent.
        """
        linger_s = ensure_float(linger_s, "linger_s", minimum=0.0)
        self.stop()
        if linger_s > 0 and any(t.outlet.have_consumers() for t in self.tracks):
            time.sleep(linger_s)
        self.tracks = []  # dropping the last reference destroys each outlet

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _begin(self, delay_s: float) -> None:
        delay_s = ensure_float(delay_s, "delay_s", minimum=0.0)
        self._stop.clear()
        self._error = None
        self.loops_done = 0
        for track in self.tracks:
            track.position = 0
        self.t_start_lsl = pylsl.local_clock() + delay_s

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise BCIError(f"Replay of {self.path} failed: {err}") from err

    def _play(self) -> None:
        try:
            self._play_loop()
        except Exception as err:  # surfaced to the caller by run()/wait()/stop()
            logger.exception("Replay of %s failed", self.path)
            self._error = err

    def _play_loop(self) -> None:
        if self.t_start_lsl is None:  # only _begin() leads here
            raise BCIError("Player._play_loop called before start().")
        base = self.t_start_lsl
        offset_s = 0.0  # recording time added by completed loops
        while not self._stop.is_set():
            now_rec = (pylsl.local_clock() - base) * self.speed - offset_s
            next_due = np.inf
            for track in self.tracks:
                end = int(np.searchsorted(track.times_s, now_rec, side="right"))
                if end > track.position:
                    stamps = base + (track.times_s[track.position : end] + offset_s) / self.speed
                    track.outlet.push_chunk(track.samples[track.position : end], stamps.tolist())
                    track.position = end
                if track.position < len(track.times_s):
                    next_due = min(next_due, float(track.times_s[track.position]))
            if next_due == np.inf:
                if not self.loop:
                    return
                self.loops_done += 1
                offset_s += self.loop_period_s
                for track in self.tracks:
                    track.position = 0
                continue
            wait_s = (next_due - now_rec) / self.speed
            self._stop.wait(max(wait_s, self.chunk_s))
