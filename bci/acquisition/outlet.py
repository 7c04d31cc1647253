"""Outlets that publish numpy chunks and markers on LSL."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pylsl

from bci.acquisition.metadata import FORMAT_NAMES, NUMPY_DTYPES
from bci.errors import StreamMismatchError


class SignalOutlet:
    """Publish time-first numpy chunks ``(n_samples, n_channels)`` on an LSL outlet.

    Data are cast to the stream's channel format (int16 values are rounded and clipped, never
    wrapped). ``timestamp`` is the LSL time of the *last* sample of the chunk, as liblsl expects;
    when omitted, liblsl stamps the chunk with the push time.

    Parameters
    ----------
    info : pylsl.StreamInfo
        Usually from :func:`bci.acquisition.metadata.make_stream_info`.
    chunk_size : int
        Preferred chunk size hint for inlets (0: as pushed).
    max_buffered : int
        Seconds of data the outlet keeps for slow inlets.
    synchronous : bool
        Use liblsl's synchronous transport (lower latency for a single local consumer).
    """

    def __init__(
        self,
        info: pylsl.StreamInfo,
        chunk_size: int = 0,
        max_buffered: int = 360,
        synchronous: bool = False,
    ) -> None:
        fmt = FORMAT_NAMES.get(info.channel_format())
        if fmt not in NUMPY_DTYPES:
            raise StreamMismatchError(
                f"SignalOutlet needs a numeric channel format, got {fmt!r}; use MarkerOutlet for strings."
            )
        self.dtype = np.dtype(NUMPY_DTYPES[fmt])
        self.n_channels = info.channel_count()
        flags = pylsl.transp_sync_blocking if synchronous else 0
        self.outlet = pylsl.StreamOutlet(info, chunk_size, max_buffered, flags)
        self.samples_pushed = 0

    def push(self, data: npt.ArrayLike, timestamp: float = 0.0) -> None:
        """Push one chunk; ``timestamp`` is the LSL time of its last sample (0: now)."""
        arr = np.asarray(data)
        if arr.ndim != 2 or arr.shape[1] != self.n_channels:
            raise StreamMismatchError(
                f"SignalOutlet expects chunks of shape (n, {self.n_channels}), got {arr.shape}."
            )
        if arr.dtype != self.dtype:
            if np.issubdtype(self.dtype, np.integer):
                lim = np.iinfo(self.dtype)
                arr = np.clip(np.rint(arr), lim.min, lim.max)
            arr = arr.astype(self.dtype)
        self.outlet.push_chunk(np.ascontiguousarray(arr), timestamp)
        self.samples_pushed += arr.shape[0]

    def have_consumers(self) -> bool:
        return bool(self.outlet.have_consumers())

    def wait_for_consumers(self, timeout: float) -> bool:
        return bool(self.outlet.wait_for_consumers(timeout))


class MarkerOutlet:
    """Publish string markers (one channel, irregular rate), e.g. ground-truth spikes as text."""

    def __init__(self, info: pylsl.StreamInfo) -> None:
        if info.channel_format() != pylsl.cf_string or info.channel_count() != 1:
            raise StreamMismatchError(
                "MarkerOutlet needs a 1-channel string stream, got "
                f"{info.channel_count()} channel(s) of {FORMAT_NAMES.get(info.channel_format())!r}."
            )
        self.outlet = pylsl.StreamOutlet(info)

    def push(self, marker: str, timestamp: float = 0.0) -> None:
        self.outlet.push_sample([marker], timestamp)

    def have_consumers(self) -> bool:
        return bool(self.outlet.have_consumers())
