"""LSL acquisition: the inlet source the pipeline pulls from, outlets, stream metadata, replay.

``LSLSource`` resolves a stream, checks it against the session's expectations, and delivers
:class:`bci.stream.SignalChunk` objects with gaps, stalls and NaNs reported as events.
"""

from bci.acquisition.clock import SampleClock
from bci.acquisition.metadata import (
    CHANNEL_FORMATS,
    NUMPY_DTYPES,
    ChannelInfo,
    make_stream_info,
    read_channel_info,
)
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet
from bci.acquisition.resolve import AmbiguousStreamError, list_streams, resolve_stream_info
from bci.acquisition.source import (
    LSLSource,
    SourceClosedError,
    SourceEvent,
    StreamLostError,
)

__all__ = [
    "AmbiguousStreamError",
    "CHANNEL_FORMATS",
    "NUMPY_DTYPES",
    "ChannelInfo",
    "LSLSource",
    "MarkerOutlet",
    "SampleClock",
    "SignalOutlet",
    "SourceClosedError",
    "SourceEvent",
    "StreamLostError",
    "list_streams",
    "make_stream_info",
    "read_channel_info",
    "resolve_stream_info",
]
