"""What a stage promises about the stream it emits, checked once before the loop starts."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

StreamKind = Literal["signal", "spikes", "binned", "state"]


@dataclass(frozen=True)
class StreamSpec:
    """Shape and rate of a stream between two stages.

    Parameters
    ----------
    kind : {"signal", "spikes", "binned", "state"}
        Which chunk type flows: SignalChunk, SpikeChunk, BinnedChunk or StateChunk.
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
    meta : dict
        Anything else a stage wants to pass downstream (e.g. filter group delay in samples).
    """

    kind: StreamKind
    n_channels: int
    rate_hz: float
    channel_names: tuple[str, ...] = ()
    unit: str = ""
    positions: tuple[tuple[float, float], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def evolve(self, **changes: Any) -> StreamSpec:
        """Return a copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)
