"""Streaming renderer: spike times (and stimulation times) -> multichannel broadband voltage.

The renderer is causal and stateful. Sample indices are absolute since the stream start; each call
to :meth:`StreamingRenderer.render` produces the next ``n_samples``. A spike's template starts
``trough_offset`` samples before its trough; the part that spills past the end of a chunk is carried
into the next one, and so is the noise and LFP filter state. Given the same spikes, cutting the
stream into chunks of any size gives bit-identical samples to rendering it in one piece.

Spikes may be passed early (any time before their template starts): they wait in the renderer until
their chunk. A spike passed after its template start has begun (its trough less than
``trough_offset`` samples into the chunk, or already in the past) can only be drawn from the
current chunk on; the part that would lie in already emitted samples is dropped and counted in
:attr:`StreamingRenderer.n_late_spikes`. A real-time source that learns spike times only as they
happen (a simulated network) should therefore lag its voltage output by ``trough_offset`` samples,
:attr:`StreamingRenderer.latency_samples`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import ConfigError
from bci.synthesis.artifacts import make_artifact_kernel
from bci.synthesis.noise import LFPGenerator, LFPParams, SpikeBandNoise
from bci.synthesis.probe import check_positions

_ARTIFACT = -1  # kernel id of a stimulation artifact in the pending queue


class StreamingRenderer:
    """Render spikes, noise, LFP and stimulation artifacts chunk by chunk.

    Parameters
    ----------
    templates : float array (n_units, n_template_samples, n_channels)
        Spike templates in uV (see :func:`bci.synthesis.templates.make_templates`).
    trough_offset : int
        Samples from a template's start to its trough; spike sample indices are trough samples.
    n_channels : int
        Channels (must match the templates).
    sfreq : float
        Sampling rate in Hz.
    noise_uv : float
        RMS of the band-limited noise on each channel (0: none).
    lfp : None, bool, dict or LFPParams
        LFP component (``True``: :class:`~bci.synthesis.noise.LFPParams` defaults).
    seed : int, numpy.random.SeedSequence or None
        Seeds the noise and LFP streams.
    positions : float array (n_channels, 2), optional
        Contact positions in um; needed for an LFP gradient and an artifact site.
    noise_band_hz : (float, float)
        Pass band of the noise.
    noise_common_fraction : float
        Fraction of noise power shared by all channels.
    artifact_amplitude_uv, artifact_width_ms, artifact_recovery_ms : float
        Stimulation artifact model (see :mod:`bci.synthesis.artifacts`).
    artifact_site_um : array (2,) or (3,), optional
        Stimulation site; artifacts fall off with distance from it (default: uniform).
    saturation_uv : float, optional
        Amplifier input range: output is clipped to +/- this value (e.g. 5000 for Intan RHD).
    """

    def __init__(
        self,
        templates: npt.ArrayLike,
        trough_offset: int,
        n_channels: int,
        sfreq: float,
        noise_uv: float = 5.0,
        lfp: Any = None,
        seed: int | np.random.SeedSequence | None = 0,
        *,
        positions: npt.ArrayLike | None = None,
        noise_band_hz: tuple[float, float] = (300.0, 6000.0),
        noise_common_fraction: float = 0.0,
        artifact_amplitude_uv: float = 2000.0,
        artifact_width_ms: float = 0.2,
        artifact_recovery_ms: float = 1.0,
        artifact_site_um: npt.ArrayLike | None = None,
        saturation_uv: float | None = None,
    ) -> None:
        self.n_channels = ensure_int(n_channels, "n_channels", minimum=1)
        self.sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
        tpl = np.asarray(templates, dtype=np.float32)
        if tpl.ndim != 3 or tpl.shape[2] != self.n_channels or tpl.shape[1] < 1:
            raise ConfigError(
                "Invalid value for the 'templates' parameter: expected shape (n_units, "
                f"n_template_samples, {self.n_channels}), got {tpl.shape}."
            )
        if not np.isfinite(tpl).all():
            raise ConfigError("Invalid value for the 'templates' parameter: contains NaN or inf.")
        self.templates = tpl
        self.trough_offset = ensure_int(trough_offset, "trough_offset", minimum=0)
        if self.trough_offset >= tpl.shape[1]:
            raise ConfigError(
                f"Invalid value for the 'trough_offset' parameter: {self.trough_offset} is outside "
                f"templates of {tpl.shape[1]} samples."
            )
        self.noise_uv = ensure_float(noise_uv, "noise_uv", minimum=0.0)
        self.positions = None if positions is None else check_positions(positions, self.n_channels)
        self.lfp_params = LFPParams.coerce(lfp)
        self.saturation_uv = (
            None
            if saturation_uv is None
            else ensure_float(saturation_uv, "saturation_uv", minimum=0.0, strict_minimum=True)
        )
        self.artifact_kernel = make_artifact_kernel(
            self.sfreq,
            self.n_channels,
            amplitude_uv=artifact_amplitude_uv,
            width_ms=artifact_width_ms,
            recovery_ms=artifact_recovery_ms,
            positions=self.positions,
            site_um=artifact_site_um,
        ).astype(np.float32)
        if artifact_site_um is not None and self.positions is None:
            raise ConfigError(
                "Invalid value for the 'artifact_site_um' parameter: a stimulation site needs the "
                "contact 'positions'."
            )
        self._seed = seed
        self._noise_band_hz = noise_band_hz
        self._noise_common_fraction = noise_common_fraction
        self._carry_len = max(tpl.shape[1], self.artifact_kernel.shape[0]) - 1
        self.reset()

    @property
    def n_units(self) -> int:
        return int(self.templates.shape[0])

    @property
    def latency_samples(self) -> int:
        """How far ahead of its trough a spike must be known to be drawn whole."""
        return self.trough_offset

    def reset(self) -> None:
        """Go back to sample 0: clear carried tails, pending spikes, and restart noise and LFP."""
        self.next_sample = 0
        self.n_late_spikes = 0
        self._carry = np.zeros((self._carry_len, self.n_channels), dtype=np.float32)
        self._pending_start = np.zeros(0, dtype=np.int64)
        self._pending_kernel = np.zeros(0, dtype=np.int64)
        self._pending_scale = np.zeros(0, dtype=np.float64)
        root = np.random.default_rng(self._seed)
        noise_rng, lfp_rng = root.spawn(2)
        self._noise = (
            SpikeBandNoise(
                self.n_channels,
                self.sfreq,
                self.noise_uv,
                noise_rng,
                band_hz=self._noise_band_hz,
                common_fraction=self._noise_common_fraction,
            )
            if self.noise_uv > 0
            else None
        )
        self._lfp = (
            LFPGenerator(self.lfp_params, self.n_channels, self.sfreq, lfp_rng, self.positions)
            if self.lfp_params is not None
            else None
        )

    def _queue(
        self,
        spike_samples: npt.ArrayLike,
        spike_units: npt.ArrayLike,
        spike_amplitudes: npt.ArrayLike | None,
        artifact_samples: npt.ArrayLike | None,
    ) -> None:
        s = np.asarray(spike_samples, dtype=np.int64).ravel()
        u = np.asarray(spike_units, dtype=np.int64).ravel()
        if s.shape != u.shape:
            raise ConfigError(
                f"spike_samples and spike_units differ in length: {s.size} and {u.size}."
            )
        if u.size and (u.min() < 0 or u.max() >= self.n_units):
            raise ConfigError(
                f"Invalid value for the 'spike_units' parameter: unit indices must lie in "
                f"[0, {self.n_units}), got {int(u.min())}..{int(u.max())}."
            )
        if spike_amplitudes is None:
            a = np.ones(s.shape)
        else:
            a = np.asarray(spike_amplitudes, dtype=np.float64).ravel()
            if a.shape != s.shape or not np.isfinite(a).all():
                raise ConfigError(
                    "Invalid value for the 'spike_amplitudes' parameter: need one finite scale "
                    f"factor per spike ({s.size}), got shape {a.shape}."
                )
        starts = [self._pending_start, s - self.trough_offset]
        kernels = [self._pending_kernel, u]
        scales = [self._pending_scale, a]
        if artifact_samples is not None:
            art = np.asarray(artifact_samples, dtype=np.int64).ravel()
            starts.append(art)
            kernels.append(np.full(art.shape, _ARTIFACT, dtype=np.int64))
            scales.append(np.ones(art.shape))
        self._pending_start = np.concatenate(starts)
        self._pending_kernel = np.concatenate(kernels)
        self._pending_scale = np.concatenate(scales)

    def render(
        self,
        n_samples: int,
        spike_samples: npt.ArrayLike = (),
        spike_units: npt.ArrayLike = (),
        spike_amplitudes: npt.ArrayLike | None = None,
        artifact_samples: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.float32]:
        """Render the next ``n_samples`` samples.

        Parameters
        ----------
        n_samples : int
            Length of the chunk; it covers absolute samples
            ``[next_sample, next_sample + n_samples)``.
        spike_samples : int array (k,)
            Absolute trough sample of each new spike (may lie in later chunks).
        spike_units : int array (k,)
            Unit of each spike (index into the templates).
        spike_amplitudes : float array (k,), optional
            Scale factor of each spike's template (default 1).
        artifact_samples : int array, optional
            Absolute onset samples of stimulation pulses.

        Returns
        -------
        float32 array (n_samples, n_channels)
            Voltage in uV.
        """
        n = ensure_int(n_samples, "n_samples", minimum=0)
        self._queue(spike_samples, spike_units, spike_amplitudes, artifact_samples)
        start = self.next_sample
        end = start + n
        due = self._pending_start < end
        d_start = self._pending_start[due]
        d_kernel = self._pending_kernel[due]
        d_scale = self._pending_scale[due]
        keep = ~due
        self._pending_start = self._pending_start[keep]
        self._pending_kernel = self._pending_kernel[keep]
        self._pending_scale = self._pending_scale[keep]
        # a total order on (start, kernel, scale) makes the summation order, hence the float result,
        # independent of how the stream is chunked
        order = np.lexsort((d_scale, d_kernel, d_start))
        buf = np.zeros((n + self._carry_len, self.n_channels), dtype=np.float32)
        buf[: self._carry_len] += self._carry
        for i in order:
            kernel = (
                self.artifact_kernel if d_kernel[i] == _ARTIFACT else self.templates[d_kernel[i]]
            )
            pos = int(d_start[i] - start)
            skip = 0
            if pos < 0:
                skip = -pos
                pos = 0
                self.n_late_spikes += 1
                if skip >= kernel.shape[0]:
                    continue
            length = kernel.shape[0] - skip
            buf[pos : pos + length] += np.float32(d_scale[i]) * kernel[skip:]
        self._carry = buf[n:].copy()
        out = buf[:n]
        if self._noise is not None:
            out += self._noise.next(n)
        if self._lfp is not None:
            out += self._lfp.next(n).astype(np.float32)
        if self.saturation_uv is not None:
            np.clip(out, -self.saturation_uv, self.saturation_uv, out=out)
        self.next_sample = end
        return out
