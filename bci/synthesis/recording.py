"""Ground-truth recordings: a synthetic probe, units, spike trains and the voltage they make.

:func:`generate_recording` reads a :class:`~bci.synthesis.source.SyntheticSource` to the end and
returns a :class:`GroundTruthRecording`, so offline recordings and live streams of the same seed are
the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import ConfigError
from bci.stream.chunks import SignalChunk, SpikeChunk
from bci.synthesis.noise import LFPParams
from bci.synthesis.source import SyntheticSource
from bci.synthesis.templates import peak_channels


@dataclass
class GroundTruthRecording:
    """A synthetic recording and the truth about it.

    Attributes
    ----------
    traces : float32 array (n_samples, n_channels)
        Voltage in uV.
    sfreq : float
        Sampling rate in Hz.
    positions : float array (n_channels, 2)
        Contact positions in um.
    spikes : SPIKE_DTYPE array
        Every spike, sorted by ``sample_index`` (the trough sample); ``channel_index`` is the unit's
        peak channel, ``amplitude`` the trough in uV on that channel (jitter included).
    templates : float32 array (n_units, n_template_samples, n_channels)
        Mean waveform of each unit in uV.
    trough_offset : int
        Samples from a template's start to its trough.
    unit_positions : float array (n_units, 3)
        Unit positions in um (``z`` off the shank plane).
    artifact_samples : int64 array
        Onset samples of stimulation artifacts.
    noise_uv : float
        RMS of the spike-band noise.
    params : dict
        The arguments that made the recording (for provenance).
    """

    traces: npt.NDArray[np.float32]
    sfreq: float
    positions: npt.NDArray[np.float64]
    spikes: npt.NDArray[np.void]
    templates: npt.NDArray[np.float32]
    trough_offset: int
    unit_positions: npt.NDArray[np.float64]
    artifact_samples: npt.NDArray[np.int64]
    noise_uv: float = 0.0
    firing_rates_hz: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.traces.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.traces.shape[1])

    @property
    def n_units(self) -> int:
        return int(self.templates.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sfreq

    @property
    def peak_channels(self) -> npt.NDArray[np.int64]:
        """Channel of each unit's largest absolute template value."""
        return peak_channels(self.templates)

    def spike_trains(self) -> list[npt.NDArray[np.int64]]:
        """Per-unit arrays of spike sample indices (sorted)."""
        units = self.spikes["unit_index"]
        samples = self.spikes["sample_index"]
        return [samples[units == u].astype(np.int64) for u in range(self.n_units)]

    def spike_times_s(self) -> list[npt.NDArray[np.float64]]:
        """Per-unit arrays of spike times in s."""
        return [train / self.sfreq for train in self.spike_trains()]

    def iter_chunks(
        self, chunk_samples: int = 30, t0: float = 0.0
    ) -> Iterator[tuple[SignalChunk, SpikeChunk]]:
        """Yield the recording as pipeline chunks, for synchronous tests of online stages.

        Each step gives the :class:`~bci.stream.chunks.SignalChunk` of ``chunk_samples`` samples
        (time stamps ``t0 + sample / sfreq``) and the ground-truth
        :class:`~bci.stream.chunks.SpikeChunk` of the same span.
        """
        chunk_samples = ensure_int(chunk_samples, "chunk_samples", minimum=1)
        samples = self.spikes["sample_index"]
        for start in range(0, self.n_samples, chunk_samples):
            stop = min(start + chunk_samples, self.n_samples)
            lo, hi = np.searchsorted(samples, [start, stop], side="left")
            signal_chunk = SignalChunk(
                data=self.traces[start:stop],
                first_sample=start,
                sfreq=self.sfreq,
                t_lsl=t0 + np.arange(start, stop) / self.sfreq,
            )
            yield signal_chunk, SpikeChunk(self.spikes[lo:hi], start, stop - 1, self.sfreq)

    def to_spikeinterface(self) -> tuple[Any, Any]:
        """Return ``(recording, sorting)`` as SpikeInterface objects (needs ``spikeinterface``).

        The recording is a ``NumpyRecording`` in uV (gain 1, offset 0) with the probe attached
        (circular 6 um contacts at :attr:`positions`); the sorting is the ground truth as a
        ``NumpySorting`` with unit ids ``0..n_units-1``, ready for
        ``spikeinterface.comparison.compare_sorter_to_ground_truth``.
        """
        from probeinterface import Probe
        from spikeinterface.core import NumpyRecording, NumpySorting

        recording = NumpyRecording([self.traces], self.sfreq)
        recording.set_channel_gains(1.0)
        recording.set_channel_offsets(0.0)
        probe = Probe(ndim=2, si_units="um")
        probe.set_contacts(positions=self.positions, shapes="circle", shape_params={"radius": 6.0})
        probe.set_device_channel_indices(np.arange(self.n_channels))
        recording.set_probe(probe)  # in place in SpikeInterface >= 0.105
        sorting = NumpySorting.from_samples_and_labels(
            [self.spikes["sample_index"]],
            [self.spikes["unit_index"]],
            self.sfreq,
            unit_ids=np.arange(self.n_units),
        )
        return recording, sorting


def generate_recording(
    duration_s: float = 10.0,
    source: SyntheticSource | None = None,
    **params: Any,
) -> GroundTruthRecording:
    """Read ``duration_s`` of a synthetic preparation into a recording with its ground truth.

    Units sit at random 3-D positions 10-50 um off a synthetic probe; each has a spatial template
    (:mod:`bci.synthesis.templates`), fires as a Poisson process with a refractory period (or at the
    given ``spike_times``), and the sum of templates, band-limited noise, optional LFP and optional
    stimulation artifacts is rendered by :class:`~bci.synthesis.renderer.StreamingRenderer` (the
    same code path as a live stream).

    Parameters
    ----------
    duration_s : float
        Length of the recording in s.
    source : SyntheticSource, optional
        The preparation to read, from its current position (default: one built from ``params``).
    **params
        Arguments of :class:`~bci.synthesis.source.SyntheticSource` (``n_channels``, ``n_units``,
        ``sfreq``, ``seed``, ``noise_uv``, ``spike_times``, ``lfp``, ``artifact_times_s``, ...)
        when no ``source`` is given.

    Returns
    -------
    GroundTruthRecording

    Examples
    --------
    >>> rec = generate_recording(0.5, n_channels=8, n_units=3, seed=1)
    >>> rec.traces.shape
    (15000, 8)
    """
    duration_s = ensure_float(duration_s, "duration_s", minimum=0.0, strict_minimum=True)
    if source is None:
        source = SyntheticSource(duration_s=duration_s, **params)
    elif params:
        raise ConfigError(
            f"Generator parameters {sorted(params)} make no sense with a given source; they are "
            "fixed when the SyntheticSource is built."
        )
    sfreq = source.sfreq
    n_total = int(round(duration_s * sfreq))
    if n_total < 1:
        raise ConfigError(
            f"Invalid value for the 'duration_s' parameter: {duration_s} s is less than one sample."
        )
    traces = np.empty((n_total, source.n_channels), dtype=np.float32)
    spikes, artifacts = [], []
    block = max(int(sfreq), 1)  # 1 s blocks bound the work buffers
    for start in range(0, n_total, block):
        n = min(block, n_total - start)
        traces[start : start + n], chunk_spikes = source.read(n)
        spikes.append(chunk_spikes)
        artifacts.append(source.last_artifact_samples)
    provenance = {
        **params,
        "n_channels": source.n_channels,
        "n_units": source.n_units,
        "duration_s": duration_s,
        "sfreq": sfreq,
        "seed": source.seed,
        "noise_uv": source.noise_uv,
        "lfp": None if source.lfp_params is None else source.lfp_params.to_dict(),
    }
    return GroundTruthRecording(
        traces=traces,
        sfreq=sfreq,
        positions=source.positions,
        spikes=np.concatenate(spikes),
        templates=source.templates,
        trough_offset=source.trough_offset,
        unit_positions=source.unit_positions,
        artifact_samples=np.concatenate(artifacts).astype(np.int64),
        noise_uv=source.noise_uv,
        firing_rates_hz=source.firing_rates_hz,
        params=provenance,
    )


__all__ = [
    "GroundTruthRecording",
    "LFPParams",
    "SyntheticSource",
    "generate_recording",
]  # re-exported
