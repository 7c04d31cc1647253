"""Streaming core: chunk types, the Stage base class, Pipeline, and the stage registry."""

from bci.stream.chunks import (
    SPIKE_DTYPE,
    UNSORTED,
    BinnedChunk,
    ChunkError,
    SignalChunk,
    SpikeChunk,
    StateChunk,
    StimCommand,
    empty_spikes,
    mask_spans,
)
from bci.stream.pipeline import Pipeline, StageTimer
from bci.stream.registry import available_stages, get_stage_class, register_stage
from bci.stream.spec import StreamOrigin, StreamSpec
from bci.stream.stage import Source, Stage, stage_from_dict

__all__ = [
    "SPIKE_DTYPE",
    "UNSORTED",
    "BinnedChunk",
    "ChunkError",
    "Pipeline",
    "SignalChunk",
    "SpikeChunk",
    "Source",
    "Stage",
    "StageTimer",
    "StateChunk",
    "StimCommand",
    "StreamOrigin",
    "StreamSpec",
    "available_stages",
    "empty_spikes",
    "get_stage_class",
    "mask_spans",
    "register_stage",
    "stage_from_dict",
]
