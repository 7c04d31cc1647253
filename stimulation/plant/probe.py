"""A virtual multichannel probe in one nucleus of the plant: spikes, LFP and artifacts as voltage.

:class:`VirtualProbe` turns consecutive :class:`~stimulation.plant.PlantRecord` objects into the
broadband voltage a probe placed among a subset of the nucleus' cells would record, through
:mod:`bci.synthesis`:

- each recorded cell is one unit with a spatial template (:func:`bci.synthesis.make_unit_templates`)
  whose troughs fall on the cell's spike times;
- band-limited recording noise (:class:`bci.synthesis.StreamingRenderer`);
- the LFP: the nucleus' own LFP proxy (summed synaptic currents, so its beta follows the network
  state and the stimulation), causally high-passed at ``lfp_highpass_hz``, held at 30 kHz and
  smoothed by a one-pole low-pass at ``lfp_lowpass_hz``, scaled to ``lfp_uv`` RMS (the scale is
  fixed by :meth:`VirtualProbe.calibrate_lfp` on a stretch of unstimulated activity, then frozen);
- a stimulation artifact at each DBS pulse onset, scaled by the pulse amplitude relative to
  ``reference_amplitude`` (the artifact's shape is that of a ``artifact_pulse_us`` pulse; see
  :mod:`bci.synthesis.artifacts`).

Sample ``n`` of the output is model time ``t_origin_s + n / sfreq``. The renderer must know a
spike ``latency_samples`` before its trough, so after a record ending at ``t`` the voltage is
complete up to ``t - latency_samples / sfreq``; the rest follows with the next record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal

from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import ConfigError
from bci.stream.chunks import SPIKE_DTYPE
from bci.synthesis import StreamingRenderer, make_probe, make_unit_templates
from bci.synthesis.artifacts import make_artifact_kernel
from stimulation.errors import PlantParameterError
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.record import PlantRecord


@dataclass(frozen=True)
class ProbeChunk:
    """What one record adds to the probe's output.

    Attributes
    ----------
    data : float32 array (n_samples, n_channels)
        Voltage (uV) of absolute samples ``[first_sample, first_sample + n_samples)``.
    first_sample : int
        Absolute index of ``data[0]``.
    spikes : SPIKE_DTYPE array
        Ground truth of the record's spikes of recorded cells: trough sample, peak channel, unit
        (index into :attr:`VirtualProbe.cells`) and trough amplitude (uV). Their voltage may lie in
        this chunk or the next.
    pulse_samples : int64 array
        Onset samples of the record's DBS pulses.
    pulse_amplitudes : float64 array
        Amplitude of each pulse (plant units).
    """

    data: npt.NDArray[np.float32]
    first_sample: int
    spikes: npt.NDArray[np.void]
    pulse_samples: npt.NDArray[np.int64]
    pulse_amplitudes: npt.NDArray[np.float64]


class VirtualProbe:
    """Render the recording of ``n_units`` cells of ``nucleus`` on a synthetic probe.

    Parameters
    ----------
    cells_per_nucleus : int
        Cells in each nucleus of the network (the recorded cells are drawn among them).
    nucleus : str
        Where the probe sits (``"stn"`` by default: a microelectrode along the DBS lead's track).
    n_units : int
        Recorded cells, <= ``cells_per_nucleus``.
    n_channels : int
        Probe contacts.
    layout : str
        Probe geometry (:func:`bci.synthesis.make_probe`).
    sfreq : float
        Sampling rate (Hz); must be a multiple of the records' LFP rate.
    seed : int
        Seeds the choice of cells, their templates and the noise.
    noise_uv : float
        Noise RMS per channel (uV).
    lfp_uv : float
        RMS of the LFP after calibration (uV); 0 for none.
    lfp_highpass_hz, lfp_lowpass_hz : float
        Corners of the causal filters applied to the LFP proxy.
    artifact_amplitude_uv : float
        Artifact peak at ``reference_amplitude``; 0 for no artifacts.
    reference_amplitude : float
        Stimulation amplitude (plant units) whose artifact peaks at ``artifact_amplitude_uv``.
    artifact_pulse_us : float
        Pulse width the artifact's shape stands for.
    saturation_uv : float or None
        Amplifier input range (output clipped), None for none.
    """

    def __init__(
        self,
        cells_per_nucleus: int,
        nucleus: str = "stn",
        n_units: int = 8,
        n_channels: int = 16,
        layout: str = "linear",
        sfreq: float = 30000.0,
        seed: int = 0,
        *,
        noise_uv: float = 5.0,
        lfp_uv: float = 50.0,
        lfp_highpass_hz: float = 1.0,
        lfp_lowpass_hz: float = 300.0,
        artifact_amplitude_uv: float = 2000.0,
        reference_amplitude: float = 300.0,
        artifact_pulse_us: float = 300.0,
        saturation_uv: float | None = None,
    ) -> None:
        err = PlantParameterError
        cells_per_nucleus = ensure_int(cells_per_nucleus, "cells_per_nucleus", minimum=1, error=err)
        self.nucleus = check_value(nucleus, NUCLEI, "nucleus", error=err)
        self.n_units = ensure_int(n_units, "n_units", minimum=1, error=err)
        if self.n_units > cells_per_nucleus:
            raise PlantParameterError(
                f"Invalid value for the 'n_units' parameter: must be <= cells_per_nucleus "
                f"({cells_per_nucleus}), but got {self.n_units}."
            )
        self.sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True, error=err)
        self.lfp_uv = ensure_float(lfp_uv, "lfp_uv", minimum=0.0, error=err)
        self.lfp_highpass_hz = ensure_float(
            lfp_highpass_hz, "lfp_highpass_hz", minimum=0.0, strict_minimum=True, error=err
        )
        self.lfp_lowpass_hz = ensure_float(
            lfp_lowpass_hz, "lfp_lowpass_hz", minimum=0.0, strict_minimum=True, error=err
        )
        self.reference_amplitude = ensure_float(
            reference_amplitude, "reference_amplitude", minimum=0.0, strict_minimum=True, error=err
        )
        artifact_amplitude_uv = ensure_float(
            artifact_amplitude_uv, "artifact_amplitude_uv", minimum=0.0, error=err
        )
        artifact_pulse_us = ensure_float(
            artifact_pulse_us, "artifact_pulse_us", minimum=0.0, strict_minimum=True, error=err
        )
        # the probe, templates, artifact and renderer come from bci.synthesis, whose checks
        # raise its ConfigError (layout, n_channels, noise_uv, saturation_uv): reported as the
        # plant's own error, like every other bad argument of the probe
        try:
            self.positions = make_probe(n_channels, layout)
            self.n_channels = int(self.positions.shape[0])
            rng = np.random.default_rng(seed)
            self.cells = np.sort(rng.choice(cells_per_nucleus, self.n_units, replace=False))
            self.units = make_unit_templates(
                self.n_units, self.positions, self.sfreq, seed=int(rng.integers(2**31))
            )
            artifact = make_artifact_kernel(
                self.sfreq,
                self.n_channels,
                amplitude_uv=artifact_amplitude_uv,
                width_ms=artifact_pulse_us * 1e-3,
                positions=self.positions,
                site_um=(0.0, -200.0),  # the DBS contact sits below the probe's first contact
            ).astype(np.float32)
            # The artifact rides along as one more "unit" whose template starts at the pulse
            # onset, so the renderer scales each pulse's artifact by its amplitude and carries its
            # tail across chunks like a spike's.
            tpl = self.units.templates
            off = self.units.trough_offset
            length = max(tpl.shape[1], artifact.shape[0])
            kernels = np.zeros((self.n_units + 1, length, self.n_channels), dtype=np.float32)
            kernels[: self.n_units, : tpl.shape[1]] = tpl
            kernels[self.n_units, : artifact.shape[0]] = artifact  # queued at onset + off
            self.renderer = StreamingRenderer(
                kernels,
                off,
                self.n_channels,
                self.sfreq,
                noise_uv=noise_uv,
                lfp=None,
                seed=int(rng.integers(2**31)),
                positions=self.positions,
                saturation_uv=saturation_uv,
            )
        except ConfigError as error:
            raise PlantParameterError(str(error)) from None
        self.lfp_scale = 0.0
        self.reset(0.0)

    @property
    def latency_samples(self) -> int:
        """Samples by which the voltage lags the records fed (see the module docstring)."""
        return int(self.renderer.latency_samples)

    def reset(self, t_origin_s: float) -> None:
        """Start a new stream whose sample 0 is model time ``t_origin_s`` (the LFP scale stays)."""
        self.t_origin_s = float(t_origin_s)
        self.renderer.reset()
        # 30 kHz LFP not yet rendered; _lfp_pending[0] is sample renderer.next_sample
        self._lfp_pending = np.zeros(0, dtype=np.float32)
        self._fed_until = 0  # absolute sample up to which records were fed
        self._hp: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
        self._hp_zi: npt.NDArray[np.float64] | None = None
        self._lp_zi: npt.NDArray[np.float64] | None = None

    # ------------------------------------------------------------------ LFP
    def _highpass(self, x: npt.NDArray[np.float64], lfp_sfreq: float) -> npt.NDArray[np.float64]:
        if self._hp is None:
            b, a = signal.butter(1, self.lfp_highpass_hz, "highpass", fs=lfp_sfreq)
            self._hp = (b, a)
            self._hp_zi = signal.lfilter_zi(b, a) * (x[0] if x.size else 0.0)
        b, a = self._hp
        y, self._hp_zi = signal.lfilter(b, a, x, zi=self._hp_zi)
        return np.asarray(y)

    def calibrate_lfp(self, record: PlantRecord) -> float:
        """Fix the LFP scale so that the second half of this (unstimulated) record's LFP, high-passed,
        has ``lfp_uv`` RMS (the first half holds the network's start-up transient: its LFP is
        about 4x larger over the first 0.25 s).

        Returns the scale (uV per plant unit). Filter state is not kept: calibration does not
        touch the stream.
        """
        x = np.asarray(record.lfp[self.nucleus], dtype=np.float64)
        if x.size < 2:
            raise PlantParameterError("calibrate_lfp needs a record with LFP samples.")
        b, a = signal.butter(1, self.lfp_highpass_hz, "highpass", fs=record.lfp_sfreq)
        y, _ = signal.lfilter(b, a, x, zi=signal.lfilter_zi(b, a) * x[0])
        y = y[y.size // 2 :]  # past the network's start-up transient and the filter's settling
        rms = float(np.sqrt(np.mean(y * y)))
        self.lfp_scale = self.lfp_uv / rms if rms > 0 else 0.0
        return self.lfp_scale

    def _lfp_samples(self, record: PlantRecord) -> npt.NDArray[np.float32]:
        ratio = self.sfreq / record.lfp_sfreq
        if abs(ratio - round(ratio)) > 1e-9:
            raise PlantParameterError(
                f"The probe's rate ({self.sfreq} Hz) must be a multiple of the LFP rate "
                f"({record.lfp_sfreq} Hz)."
            )
        x = np.asarray(record.lfp[self.nucleus], dtype=np.float64)
        y = self._highpass(x, record.lfp_sfreq) * self.lfp_scale
        held = np.repeat(y, int(round(ratio)))
        b, a = signal.butter(1, self.lfp_lowpass_hz, fs=self.sfreq)
        if self._lp_zi is None:
            self._lp_zi = signal.lfilter_zi(b, a) * (held[0] if held.size else 0.0)
        smooth, self._lp_zi = signal.lfilter(b, a, held, zi=self._lp_zi)
        return np.asarray(smooth, dtype=np.float32)

    # ------------------------------------------------------------------ feeding
    def sample_of(self, t_s: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Absolute sample index of model times ``t_s``."""
        t = np.asarray(t_s, dtype=np.float64)
        return np.rint((t - self.t_origin_s) * self.sfreq).astype(np.int64)

    def feed(self, record: PlantRecord, pulse_amplitude: float) -> ProbeChunk:
        """Add the record's spikes, LFP and pulses (of ``pulse_amplitude``); render what is ready.

        Records must be consecutive, the first starting at ``t_origin_s``.
        """
        start = int(self.sample_of(record.t_start_s))
        stop = int(self.sample_of(record.t_stop_s))
        if start != self._fed_until:
            raise PlantParameterError(
                f"Records are not consecutive: the probe has samples up to {self._fed_until} and "
                f"the record starts at sample {start}."
            )
        self._fed_until = stop
        samples, units = [], []
        for u, cell in enumerate(self.cells):
            s = self.sample_of(record.spike_times[self.nucleus][int(cell)])
            samples.append(s)
            units.append(np.full(s.size, u, dtype=np.int64))
        spike_samples = np.concatenate(samples) if samples else np.zeros(0, np.int64)
        spike_units = np.concatenate(units) if units else np.zeros(0, np.int64)
        order = np.argsort(spike_samples, kind="stable")
        spike_samples, spike_units = spike_samples[order], spike_units[order]
        pulses = self.sample_of(record.dbs_pulse_times)
        pulse_amps = np.full(pulses.size, float(pulse_amplitude))
        scale = np.concatenate([np.ones(spike_samples.size), pulse_amps / self.reference_amplitude])
        if self.lfp_uv > 0.0:
            # zeros until calibrate_lfp() has set the scale, so the LFP stays aligned
            lfp = self._lfp_samples(record)[: stop - start]
            if lfp.size < stop - start:
                last = float(lfp[-1]) if lfp.size else 0.0
                lfp = np.concatenate([lfp, np.full(stop - start - lfp.size, last, np.float32)])
            self._lfp_pending = np.concatenate([self._lfp_pending, lfp])
        end = max(stop - self.latency_samples, self.renderer.next_sample)
        first = self.renderer.next_sample
        n = end - first
        data = self.renderer.render(
            n,
            np.concatenate([spike_samples, pulses + self.units.trough_offset]),
            np.concatenate([spike_units, np.full(pulses.size, self.n_units, dtype=np.int64)]),
            scale,
        )
        if self._lfp_pending.size:
            take = min(n, self._lfp_pending.size)
            data[:take] += self._lfp_pending[:take, None]
            self._lfp_pending = self._lfp_pending[take:]
        truth = np.zeros(spike_samples.size, dtype=SPIKE_DTYPE)
        truth["sample_index"] = spike_samples
        truth["unit_index"] = spike_units
        truth["channel_index"] = self.units.peak_channels[spike_units]
        truth["amplitude"] = self.units.trough_uv[spike_units]
        return ProbeChunk(data, first, truth, pulses, pulse_amps)
