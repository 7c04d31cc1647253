"""Typed chunks: what flows between pipeline stages.

Arrays are time-first, ``(n_samples, n_channels)``; sample indices since the start of the stream are
the time base of a signal, LSL timestamps ride alongside. Chunks are immutable containers that hold
references, not copies: a stage that changes data returns a new chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bci.errors import BCIError

#: One spike: sample index since stream start, channel of the peak, unit (-1: unsorted), amplitude.
SPIKE_DTYPE = np.dtype(
    [
        ("sample_index", np.int64),
        ("channel_index", np.int32),
        ("unit_index", np.int32),
        ("amplitude", np.float32),
    ]
)

#: Unit index of a spike that was detected but not assigned to any template.
UNSORTED = -1


class ChunkError(BCIError, ValueError):
    """A chunk was built with arrays of the wrong shape or type."""


def empty_spikes(n: int = 0) -> npt.NDArray[np.void]:
    """Return a zeroed spike array of length ``n`` with :data:`SPIKE_DTYPE`."""
    return np.zeros(n, dtype=SPIKE_DTYPE)


@dataclass(frozen=True, slots=True)
class SignalChunk:
    """A block of regularly sampled multichannel data.

    Parameters
    ----------
    data : float32 array, shape (n_samples, n_channels)
        Samples; NaN marks a sample the source could not deliver (see :attr:`nan_rows`).
    first_sample : int
        Index of ``data[0]`` since the start of the stream (the time base).
    sfreq : float
        Nominal sampling rate in Hz.
    t_lsl : float64 array, shape (n_samples,)
        LSL timestamps (local clock, after clock correction where the source applies it).
    t_arrival : float
        ``pylsl.local_clock()`` when the chunk became available to the pipeline.
    gap_before : int
        Samples the source found missing just before this chunk (0: contiguous). Gaps are reported,
        never filled in: ``first_sample`` already skips them.
    """

    data: npt.NDArray[np.float32]
    first_sample: int
    sfreq: float
    t_lsl: npt.NDArray[np.float64]
    t_arrival: float = 0.0
    gap_before: int = 0

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ChunkError(
                f"SignalChunk.data must be 2-D (n_samples, n_channels), got shape {self.data.shape}."
            )
        if self.data.dtype != np.float32:
            raise ChunkError(f"SignalChunk.data must be float32, got {self.data.dtype}.")
        if self.t_lsl.shape != (self.data.shape[0],):
            raise ChunkError(
                f"SignalChunk.t_lsl must have one timestamp per sample: {self.data.shape[0]} "
                f"samples but t_lsl has shape {self.t_lsl.shape}."
            )

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def last_sample(self) -> int:
        """Index of the last sample in the chunk (inclusive)."""
        return self.first_sample + self.n_samples - 1

    @property
    def nan_rows(self) -> npt.NDArray[np.bool_]:
        """Boolean mask of samples holding at least one NaN."""
        return np.asarray(np.isnan(self.data).any(axis=1), dtype=np.bool_)


def _no_spans() -> npt.NDArray[np.int64]:
    return np.zeros((0, 2), dtype=np.int64)


def mask_spans(mask: npt.ArrayLike, offset: int = 0) -> npt.NDArray[np.int64]:
    """The runs of True in ``mask`` as ``(k, 2)`` spans ``[start, stop)``, shifted by ``offset``."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    if not mask.any():
        return _no_spans()
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return np.column_stack([starts, stops]).astype(np.int64) + int(offset)


@dataclass(frozen=True, slots=True)
class SpikeChunk:
    """Spikes found in the sample span ``[first_sample, last_sample]`` (both inclusive).

    An empty ``spikes`` array still tells downstream stages that the span is complete, so a binner
    can close its bins. ``invalid`` lists sample spans ``[start, stop)`` (in this span, or in a later
    one a detector that holds spikes back has not emitted yet) in which the detector could not see
    spikes (NaN/inf input, samples lost in a gap): no spike there does not mean no activity, and a
    binner marks the bins they touch invalid.
    """

    spikes: npt.NDArray[np.void]
    first_sample: int
    last_sample: int
    sfreq: float
    invalid: npt.NDArray[np.int64] = field(default_factory=_no_spans)

    def __post_init__(self) -> None:
        if self.spikes.dtype != SPIKE_DTYPE:
            raise ChunkError(f"SpikeChunk.spikes must have SPIKE_DTYPE, got {self.spikes.dtype}.")
        if self.invalid.ndim != 2 or self.invalid.shape[1] != 2:
            raise ChunkError(
                f"SpikeChunk.invalid must be (k, 2) sample spans, got shape {self.invalid.shape}."
            )
        if self.last_sample < self.first_sample - 1:
            raise ChunkError(
                f"SpikeChunk span is reversed: first_sample={self.first_sample}, "
                f"last_sample={self.last_sample}."
            )

    @property
    def n_spikes(self) -> int:
        return int(self.spikes.shape[0])


def _check_valid(valid: npt.NDArray[np.bool_] | None, n: int, what: str) -> None:
    if valid is not None and (valid.dtype != np.bool_ or valid.shape != (n,)):
        raise ChunkError(
            f"{what}.valid must be a boolean array of one entry per row ({n}), got "
            f"{valid.dtype} {valid.shape}."
        )


@dataclass(frozen=True, slots=True)
class BinnedChunk:
    """Spike counts in consecutive bins: ``counts[i, u]`` is unit ``u`` in bin ``first_bin + i``.

    ``valid[i]`` False: bin ``i`` covers signal in which spikes could not be seen (NaN/inf input,
    a gap), so its counts are not a measurement (they read as silence); None: every bin is valid.
    """

    counts: npt.NDArray[np.float32]
    first_bin: int
    bin_s: float
    valid: npt.NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        if self.counts.ndim != 2:
            raise ChunkError(
                f"BinnedChunk.counts must be 2-D (n_bins, n_units), got shape {self.counts.shape}."
            )
        _check_valid(self.valid, self.counts.shape[0], "BinnedChunk")

    @property
    def n_bins(self) -> int:
        return int(self.counts.shape[0])

    @property
    def valid_mask(self) -> npt.NDArray[np.bool_]:
        """``valid`` as an array (all True when it is None)."""
        return np.ones(self.n_bins, bool) if self.valid is None else self.valid


@dataclass(frozen=True, slots=True)
class StateChunk:
    """Decoded or derived variables: ``values[i]`` holds at time ``t[i]`` (LSL clock, seconds).

    ``valid[i]`` False: row ``i`` was not decoded from a measurement (its bin was invalid); a
    decoder holds its last value there, and a controller does not act on it. None: all valid.
    """

    values: npt.NDArray[np.float32]
    t: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[0] != self.t.shape[0]:
            raise ChunkError(
                f"StateChunk.values must be (n, n_outputs) with one time per row; got values "
                f"{self.values.shape} and t {self.t.shape}."
            )
        _check_valid(self.valid, self.values.shape[0], "StateChunk")

    @property
    def valid_mask(self) -> npt.NDArray[np.bool_]:
        """``valid`` as an array (all True when it is None)."""
        return np.ones(self.values.shape[0], bool) if self.valid is None else self.valid


@dataclass(frozen=True, slots=True)
class StimCommand:
    """One stimulation command in device units: what every controller emits, the safety limiter
    checks and a stimulator (or the simulated plant's bridge) obeys.

    Parameters
    ----------
    amplitude_ma : float
        Pulse amplitude in mA (0: stimulation off).
    frequency_hz : float
        Pulse rate in Hz.
    pulse_width_us : float
        Width of one phase in microseconds.
    t_issue : float
        When the controller issued it (seconds, on the clock of the loop that issued it: the LSL
        clock online, model time in simulation).
    source_id : str
        The controller that issued it.
    seq : int
        Increases by one per command from a source, so the limiter can drop replayed and
        out-of-order commands and notice lost ones.
    session_token : str
        A token the session hands its controller, so commands of an earlier session (a replayed
        recording with the same ``source_id``) are told apart; "" when the session uses none.

    Values are not validated here: a controller may emit NaN or a negative amplitude, and it is
    the safety limiter's job (:class:`stimulation.safety.SafetyLimiter`) to turn any command into a
    safe one. Device units are mapped to the plant's model units only in :mod:`stimulation.safety`.
    """

    amplitude_ma: float
    frequency_hz: float
    pulse_width_us: float
    t_issue: float
    source_id: str
    seq: int
    session_token: str = ""
