"""Publish a synthetic recording on LSL in real time, with its ground truth on a marker stream.

The voltage stream is paced to the wall clock: sample ``i`` is due at ``t0 + i / sfreq`` on the LSL
clock, each chunk is pushed once its last sample is due and stamped with that sample's LSL time.
Deadlines are computed from the sample count, never accumulated, so the stream does not drift
however long it runs; a chunk that could not be made in time is pushed at once and counted late.

Every ground-truth spike goes out as one string marker ``"unit=3 ch=12 sample=123456 amp=-85.3"``
(``sample`` is the trough's sample index since stream start, ``amp`` the trough in uV on the peak
channel) on the stream ``f"{name}-groundtruth"``, stamped with the trough's LSL time. When the
source has stimulation artifacts, each pulse onset goes out as ``"stim sample=123456"`` on
``f"{name}-stim"`` (a separate stream, so every marker of the ground-truth stream is a spike).

int16 streams carry integers of ``scale_uv_per_bit`` uV (0.195 uV per bit, the Intan RHD2000 step,
by default), written into the stream header at ``desc/acquisition/scale_uv_per_bit``; float32
streams carry uV directly (scale 1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl

from bci.acquisition.metadata import make_stream_info
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet
from bci.checks import check_value, ensure_float
from bci.errors import BCIError, ConfigError
from bci.stream.chunks import SPIKE_DTYPE
from bci.synthesis.recording import GroundTruthRecording
from bci.synthesis.source import SyntheticSource

#: Channel formats the publisher writes.
PUBLISH_FORMATS: tuple[str, ...] = ("int16", "float32")
#: How late (s) a chunk may be pushed before it counts as late.
LATE_TOLERANCE_S = 0.005
#: How far (s) behind the clock the publisher may fall before it warns that it cannot keep up.
BEHIND_WARNING_S = 0.5
#: Wall seconds between two such warnings while it stays behind.
BEHIND_WARNING_EVERY_S = 5.0

logger = logging.getLogger(__name__)


@dataclass
class PublishStats:
    """What a :meth:`SyntheticPublisher.run` call did."""

    chunks: int = 0
    samples: int = 0
    spikes: int = 0
    late_chunks: int = 0
    max_lag_s: float = 0.0
    clipped_samples: int = 0
    wall_s: float = 0.0
    #: warnings logged that the publisher fell behind the clock (``BEHIND_WARNING_S``)
    behind_warnings: int = 0


class _RecordingLoop:
    """Serve a finished recording chunk by chunk, optionally looping; sample indices keep rising."""

    def __init__(self, rec: GroundTruthRecording, loop: bool) -> None:
        self.rec = rec
        self.loop = loop
        self.pos = 0  # absolute sample index
        self.last_artifact_samples = np.zeros(0, dtype=np.int64)

    def read(self, n: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.void]] | None:
        total = self.rec.n_samples
        if not self.loop and self.pos >= total:
            return None
        if not self.loop:
            n = min(n, total - self.pos)
        idx = (self.pos + np.arange(n)) % total
        data = self.rec.traces[idx]
        spikes, artifacts = [], []
        start, end = self.pos, self.pos + n
        lap = start // total
        s = self.rec.spikes
        a = self.rec.artifact_samples
        while lap * total < end:
            base = lap * total
            sel = (s["sample_index"] + base >= start) & (s["sample_index"] + base < end)
            part = s[sel].copy()
            part["sample_index"] += base
            spikes.append(part)
            artifacts.append(a[(a + base >= start) & (a + base < end)] + base)
            lap += 1
        self.pos = end
        self.last_artifact_samples = (
            np.concatenate(artifacts) if artifacts else np.zeros(0, dtype=np.int64)
        )
        return data, (np.concatenate(spikes) if spikes else np.zeros(0, SPIKE_DTYPE))


class SyntheticPublisher:
    """Stream a synthetic recording over LSL at real-time pace, with ground-truth spike markers.

    Parameters
    ----------
    source : GroundTruthRecording, SyntheticSource, mapping or None
        A finished recording (played, looped with ``loop=True``), a live source, or the arguments
        of :class:`~bci.synthesis.source.SyntheticSource` (also accepted as ``**params``).
        A live source generates on the fly and runs for as long as asked, in constant memory.
    name : str
        Stream name; the ground truth goes out as ``f"{name}-groundtruth"``.
    source_id : str
        LSL source_id of the voltage stream (the marker stream adds ``"-groundtruth"``).
    channel_format : {"int16", "float32"}
        Sample format on the wire.
    chunk_ms : float
        Chunk length in ms (1 ms = 30 samples at 30 kHz).
    loop : bool
        Replay a finished recording from the start when it ends.
    scale_uv_per_bit : float
        uV per integer step of int16 streams.
    ground_truth : bool
        Publish the marker streams (spikes; stimulation onsets when there are artifacts).
    synchronous : bool
        Use liblsl's synchronous transport (lower latency for one local consumer).
    **params
        Arguments of :class:`~bci.synthesis.source.SyntheticSource` when ``source`` is None.
    """

    def __init__(
        self,
        source: GroundTruthRecording | SyntheticSource | Mapping[str, Any] | None = None,
        name: str = "synthetic",
        source_id: str = "",
        channel_format: str = "int16",
        chunk_ms: float = 1.0,
        *,
        loop: bool = True,
        scale_uv_per_bit: float = 0.195,
        ground_truth: bool = True,
        synchronous: bool = False,
        **params: Any,
    ) -> None:
        check_value(channel_format, PUBLISH_FORMATS, "channel_format")
        if isinstance(source, GroundTruthRecording):
            if params:
                raise ConfigError(
                    f"Generator parameters {sorted(params)} make no sense with a finished recording."
                )
            self._reader: Any = _RecordingLoop(source, loop)
            sfreq, positions, n_units = source.sfreq, source.positions, source.n_units
            n_channels, seed = source.n_channels, source.params.get("seed")
            has_stim = source.artifact_samples.size > 0
        else:
            if isinstance(source, SyntheticSource):
                if params:
                    raise ConfigError(
                        f"Generator parameters {sorted(params)} are already fixed by the given source."
                    )
                live = source
            elif source is None or isinstance(source, Mapping):
                live = SyntheticSource(**{**dict(source or {}), **params})
            else:
                raise ConfigError(
                    "Invalid type for the 'source' parameter. Allowed types are GroundTruthRecording, "
                    f"SyntheticSource, dict, None, but got {type(source).__name__} instead."
                )
            self._reader = live
            sfreq, positions, n_units = live.sfreq, live.positions, live.n_units
            n_channels, seed = live.n_channels, live.seed
            has_stim = live.artifact_samples.size > 0 or live.artifact_rate_hz > 0
        self.source = (
            source if source is not None and not isinstance(source, Mapping) else self._reader
        )
        self.sfreq = float(sfreq)
        self.n_channels = int(n_channels)
        self.n_units = int(n_units)
        self.name = name
        self.source_id = source_id
        self.channel_format = channel_format
        chunk_ms = ensure_float(chunk_ms, "chunk_ms", minimum=0.0, strict_minimum=True)
        self.chunk_samples = max(int(round(chunk_ms * 1e-3 * self.sfreq)), 1)
        self.scale_uv_per_bit = (
            ensure_float(scale_uv_per_bit, "scale_uv_per_bit", minimum=0.0, strict_minimum=True)
            if channel_format == "int16"
            else 1.0
        )
        info = make_stream_info(
            name,
            "Neural",
            self.n_channels,
            self.sfreq,
            channel_format,
            source_id,
            units="uV",
            channel_types="Neural",
            positions=positions,
            model="bci.synthesis",
        )
        acq = info.desc().child("acquisition")
        acq.append_child_value("scale_uv_per_bit", repr(self.scale_uv_per_bit))
        acq.append_child_value("ground_truth_stream", f"{name}-groundtruth" if ground_truth else "")
        syn = info.desc().append_child("synthesis")
        syn.append_child_value("n_units", str(self.n_units))
        syn.append_child_value("seed", "" if seed is None else str(seed))
        self.outlet = SignalOutlet(info, chunk_size=self.chunk_samples, synchronous=synchronous)
        self.marker_outlet: MarkerOutlet | None = None
        if ground_truth:
            minfo = make_stream_info(
                f"{name}-groundtruth",
                "Markers",
                1,
                0.0,
                "string",
                f"{source_id}-groundtruth" if source_id else "",
                labels=["spike"],
                units="",
                model="bci.synthesis",
            )
            minfo.desc().append_child("synthesis").append_child_value("data_stream", name)
            self.marker_outlet = MarkerOutlet(minfo)
        self.stim_outlet: MarkerOutlet | None = None
        if ground_truth and has_stim:
            sinfo = make_stream_info(
                f"{name}-stim",
                "Markers",
                1,
                0.0,
                "string",
                f"{source_id}-stim" if source_id else "",
                labels=["stim"],
                units="",
                model="bci.synthesis",
            )
            sinfo.desc().append_child("synthesis").append_child_value("data_stream", name)
            self.stim_outlet = MarkerOutlet(sinfo)
        self.t0: float | None = None  # LSL time of sample 0 (set when the first chunk is made)
        self.next_sample = 0
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.stats = PublishStats()

    # --- pacing -----------------------------------------------------------------------------------
    def run(
        self,
        duration_s: float | None = None,
        *,
        on_chunk: Callable[[npt.NDArray[np.float32], npt.NDArray[np.void]], None] | None = None,
    ) -> PublishStats:
        """Publish until ``duration_s`` of signal has gone out, the recording ends, or :meth:`stop`.

        Returns the statistics of this call (also kept in :attr:`stats`).
        """
        if self._closed:
            raise BCIError(f"The publisher {self.name!r} is closed.")
        n_limit = None
        if duration_s is not None:
            duration_s = ensure_float(duration_s, "duration_s", minimum=0.0)
            n_limit = self.next_sample + int(round(duration_s * self.sfreq))
        stats = PublishStats()
        self.stats = stats
        wall_start = time.perf_counter()
        sfreq = self.sfreq
        t0 = self.t0
        lo, hi = -32768 * self.scale_uv_per_bit, 32767 * self.scale_uv_per_bit
        next_warning = -np.inf
        while not self._stop.is_set():
            n = self.chunk_samples
            if n_limit is not None:
                n = min(n, n_limit - self.next_sample)
                if n <= 0:
                    break
            got = self._reader.read(n)
            if got is None:
                break
            if t0 is None:
                # the clock starts once the first chunk exists: generating it (compiling the
                # renderer on first use) is start-up, not lateness
                self.t0 = t0 = pylsl.local_clock()
            data, spikes = got
            n = data.shape[0]
            if n == 0:
                break
            end = self.next_sample + n
            t_last = t0 + (end - 1) / sfreq
            wait = t_last - pylsl.local_clock()
            if wait > 0:
                if wait > 0.02:  # long waits (a slow chunk size) stay interruptible by stop()
                    self._stop.wait(wait)
                else:
                    time.sleep(wait)
                if self._stop.is_set():
                    break
            else:
                stats.max_lag_s = max(stats.max_lag_s, -wait)
                if -wait > LATE_TOLERANCE_S:
                    stats.late_chunks += 1
                if -wait > BEHIND_WARNING_S and time.perf_counter() >= next_warning:
                    next_warning = time.perf_counter() + BEHIND_WARNING_EVERY_S
                    stats.behind_warnings += 1
                    logger.warning(
                        "Publisher %r cannot keep real time: %.2f s behind the clock after %.1f s "
                        "of signal (%d ch x %g Hz, %d-sample chunks); chunks go out late.",
                        self.name,
                        -wait,
                        end / sfreq,
                        self.n_channels,
                        sfreq,
                        self.chunk_samples,
                    )
            if self.channel_format == "int16":
                stats.clipped_samples += int(np.count_nonzero((data < lo) | (data > hi)))
                out = data / np.float32(self.scale_uv_per_bit)
            else:
                out = data
            self.outlet.push(out, t_last)
            if self.marker_outlet is not None:
                for s in spikes:
                    self.marker_outlet.push(
                        f"unit={int(s['unit_index'])} ch={int(s['channel_index'])} "
                        f"sample={int(s['sample_index'])} amp={float(s['amplitude']):.1f}",
                        t0 + int(s["sample_index"]) / sfreq,
                    )
            if self.stim_outlet is not None:
                for onset in self._reader.last_artifact_samples:
                    self.stim_outlet.push(f"stim sample={int(onset)}", t0 + int(onset) / sfreq)
            if on_chunk is not None:
                on_chunk(data, spikes)
            self.next_sample = end
            stats.chunks += 1
            stats.samples += n
            stats.spikes += len(spikes)
        stats.wall_s = time.perf_counter() - wall_start
        return stats

    def start(self, duration_s: float | None = None) -> None:
        """Run :meth:`run` in a background thread (stop it with :meth:`stop`)."""
        if self._thread is not None and self._thread.is_alive():
            raise ConfigError("The publisher is already running.")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(duration_s,), name=f"publisher-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop publishing (after the current chunk) and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait until an inlet is connected to the voltage stream."""
        return self.outlet.wait_for_consumers(timeout)

    def close(self) -> None:
        """Stop and close the outlets (inlets see the streams end)."""
        self.stop()
        self._closed = True
        for outlet in (self.outlet, self.marker_outlet, self.stim_outlet):
            if outlet is not None:
                del outlet.outlet  # liblsl closes the outlet when its last reference goes

    def __enter__(self) -> SyntheticPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
