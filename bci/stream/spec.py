"""What a stage promises about the stream it emits, checked once before the loop starts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

StreamKind = Literal["signal", "spikes", "binned", "state", "command"]


@dataclass(frozen=True)
class StreamOrigin:
    """Where a stream came from: the LSL stream an acquisition stage resolved.

    Parameters
    ----------
    name, stream_type, source_id, hostname : str
        The LSL stream's name, content type, source id and sending host.
    channel_format : str
        The LSL sample format on the wire ("float32", "int16", ...).
    scale_uv_per_bit : float or None
        The factor the source applied to turn wire values into microvolts (None: the wire values
        were already in physical units).
    """

    name: str = ""
    stream_type: str = ""
    source_id: str = ""
    hostname: str = ""
    channel_format: str = ""
    scale_uv_per_bit: float | None = None


@dataclass(frozen=True)
class StreamSpec:
    """Shape, rate and timing facts of a stream between two stages.

    Every fact a stage passes downstream is a typed field with one meaning; there is no free-form
    dictionary.

    Parameters
    ----------
    kind : {"signal", "spikes", "binned", "state", "command"}
        Which chunk type flows: SignalChunk, SpikeChunk, BinnedChunk, StateChunk or StimCommand
        (a controller's output, one command per chunk).
    n_channels : int
        Channels (signal, spikes), units (binned) or outputs (state).
    rate_hz : float
        Sampling rate (signal, spikes: the sample clock of ``sample_index``), bin rate (binned) or
        nominal output rate (state; 0 for irregular).
    channel_names : tuple of str
        One name per channel, unit or output, or empty when unnamed.
    unit : str
        Physical unit of the values ("uV", "count", ...).
    positions : tuple of (x, y) tuples
        Probe contact positions in um, one per channel, or empty when unknown.
    group_delay_samples : float
        Delay, in samples of ``rate_hz``, by which features in this stream lag the source signal
        and that sample indices do *not* yet account for (causal filters add to it).
    corrected_delay_samples : int
        Delay already subtracted from the sample indices of spikes (spike stages move spike times
        back onto the source's clock by the rounded group delay and record it here).
    origin : StreamOrigin or None
        The acquired stream this one derives from, when known.
    """

    kind: StreamKind
    n_channels: int
    rate_hz: float
    channel_names: tuple[str, ...] = ()
    unit: str = ""
    positions: tuple[tuple[float, float], ...] = ()
    group_delay_samples: float = 0.0
    corrected_delay_samples: int = 0
    origin: StreamOrigin | None = None

    def evolve(self, **changes: Any) -> StreamSpec:
        """Return a copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)
