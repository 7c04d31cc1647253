"""A synthetic preparation streamed chunk by chunk: probe, units, spike trains, renderer.

:class:`SyntheticSource` holds one synthetic preparation (probe, unit positions, templates, spike
generator, renderer) and produces it chunk by chunk, with the ground-truth spikes of each chunk; it
never needs the whole recording in memory. Offline recordings
(:func:`bci.synthesis.recording.generate_recording`) and live streams
(:class:`bci.synthesis.publisher.SyntheticPublisher`) both read one, so the same seed gives the
same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import ConfigError
from bci.stream.chunks import SPIKE_DTYPE
from bci.synthesis.probe import PROBE_LAYOUTS, check_positions, make_probe
from bci.synthesis.renderer import StreamingRenderer
from bci.synthesis.spiketrains import GivenSpikeTrains, PoissonSpikeTrains, times_to_samples
from bci.synthesis.templates import make_templates, peak_channels, place_units


def _range_or_array(
    value: Any, n: int, name: str, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """A (low, high) pair draws ``n`` uniform values; an array of length ``n`` is taken as is."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ConfigError(
            f"Invalid value for the '{name}' parameter: values must be finite and >= 0, got {value!r}."
        )
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape == (n,) and not (n == 2 and isinstance(value, tuple)):
        return arr
    if arr.shape == (2,):
        if arr[0] > arr[1]:
            raise ConfigError(
                f"Invalid value for the '{name}' parameter: range ({arr[0]}, {arr[1]}) is reversed."
            )
        return rng.uniform(arr[0], arr[1], size=n)
    raise ConfigError(
        f"Invalid value for the '{name}' parameter: expected a (low, high) range or {n} values, "
        f"got shape {arr.shape}."
    )


class SyntheticSource:
    """A synthetic preparation that produces voltage and ground-truth spikes chunk by chunk.

    :func:`~bci.synthesis.recording.generate_recording` reads one to a finished recording;
    :class:`~bci.synthesis.publisher.SyntheticPublisher` streams one live.

    Parameters
    ----------
    n_channels : int
        Contacts on the probe (must match ``positions`` when given).
    n_units : int or None
        Units (default 20; 0 gives noise only); with ``spike_times`` it defaults to (and must
        equal) ``len(spike_times)``.
    sfreq : float
        Sampling rate in Hz.
    seed : int or None
        Everything random derives from it: same seed, same samples.
    noise_uv : float
        RMS of the spike-band (300-6000 Hz) noise per channel, in uV.
    firing_rates_hz : (low, high) tuple, scalar, or array (n_units,)
        Rates drawn uniformly from the range (a tuple is always a range), one rate for all, or
        given per unit (a list or array).
    refractory_ms : float
        No two spikes of a unit closer than this.
    spike_times : list of arrays, optional
        Per-unit spike times in s (replace the Poisson trains).
    positions : array (n_channels, 2), optional
        Contact positions in um (default: :func:`~bci.synthesis.probe.make_probe` with ``layout``
        and ``pitch_um``, linear at 25 um).
    amplitude_uv : (low, high) or array (n_units,)
        Trough depth on each unit's nearest contact, in uV.
    lfp : bool, dict or LFPParams
        Add a slow LFP (see :class:`~bci.synthesis.noise.LFPParams`).
    artifact_times_s : array, optional
        Onset times of stimulation pulses in s.
    artifact_amplitude_uv, artifact_width_ms : float
        Artifact size and biphasic pulse width.
    duration_s : float, optional
        Length the given ``spike_times`` cover (their trains' rates are counted over it).
    layout, pitch_um, unit_positions, amplitude_jitter, template_ms, trough_ms, falloff_um
        Probe layout and pitch, unit positions (n_units, 2 or 3) um, relative SD of per-spike
        amplitude (default 0.05), template length, trough time and spatial fall-off.
    noise_band_hz, noise_common_fraction
        Band of the noise and the fraction of it common to all channels.
    artifact_recovery_ms, artifact_site_um, saturation_uv
        Artifact tail, the stimulation site, and the amplifier's saturation.
    artifact_rate_hz, artifact_start_s
        Periodic stimulation (e.g. 130 Hz DBS) on top of ``artifact_times_s``, and its first pulse.
    """

    def __init__(
        self,
        n_channels: int = 32,
        n_units: int | None = None,
        sfreq: float = 30000.0,
        seed: int | None = 0,
        noise_uv: float = 5.0,
        firing_rates_hz: Any = (2.0, 15.0),
        refractory_ms: float = 2.0,
        spike_times: Sequence[npt.ArrayLike] | None = None,
        positions: npt.ArrayLike | None = None,
        amplitude_uv: Any = (50.0, 200.0),
        lfp: Any = False,
        artifact_times_s: npt.ArrayLike | None = None,
        artifact_amplitude_uv: float = 2000.0,
        artifact_width_ms: float = 0.2,
        *,
        duration_s: float | None = None,
        layout: str = "linear",
        pitch_um: float = 25.0,
        unit_positions: npt.ArrayLike | None = None,
        amplitude_jitter: float = 0.05,
        template_ms: float = 3.0,
        trough_ms: float = 1.0,
        falloff_um: float = 30.0,
        noise_band_hz: tuple[float, float] = (300.0, 6000.0),
        noise_common_fraction: float = 0.0,
        artifact_recovery_ms: float = 1.0,
        artifact_site_um: npt.ArrayLike | None = None,
        saturation_uv: float | None = None,
        artifact_rate_hz: float = 0.0,
        artifact_start_s: float = 0.0,
    ) -> None:
        self.sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
        if seed is not None:
            seed = ensure_int(seed, "seed", minimum=0)
        self.seed = seed
        check_value(layout, PROBE_LAYOUTS, "layout")
        if positions is None:
            n_channels = ensure_int(n_channels, "n_channels", minimum=1)
            self.positions = make_probe(n_channels, layout, pitch_um)
        else:
            n_channels = ensure_int(n_channels, "n_channels", minimum=1)
            self.positions = check_positions(positions, n_channels)
        self.n_channels = n_channels
        if spike_times is not None:
            if (
                isinstance(spike_times, np.ndarray)
                and spike_times.ndim == 1
                and spike_times.dtype != object
            ):
                raise ConfigError(
                    "Invalid value for the 'spike_times' parameter: expected a list with one array "
                    "of spike times (s) per unit, got a single flat array."
                )
            n_given = len(spike_times)
            if n_given == 0 or n_units == 0:
                raise ConfigError(
                    "Invalid value for the 'spike_times' parameter: spike times were requested for "
                    "0 units; give at least one train (and n_units >= 1 or None)."
                )
            if n_units is not None and ensure_int(n_units, "n_units", minimum=0) != n_given:
                raise ConfigError(
                    f"Invalid value for the 'n_units' parameter: {n_units} units but spike_times "
                    f"holds {n_given} trains."
                )
            n_units = n_given
        else:
            n_units = ensure_int(20 if n_units is None else n_units, "n_units", minimum=0)
        self.n_units = n_units
        self.noise_uv = ensure_float(noise_uv, "noise_uv", minimum=0.0)
        self.amplitude_jitter = ensure_float(
            amplitude_jitter, "amplitude_jitter", minimum=0.0, maximum=0.5
        )
        ss = np.random.SeedSequence(seed)
        geo_ss, train_ss, render_ss, jitter_ss = ss.spawn(4)
        geo_rng = np.random.default_rng(geo_ss)
        # the preparation: where units sit, how big and how fast they are, their waveforms
        if unit_positions is None:
            self.unit_positions = place_units(self.positions, n_units, geo_rng)
        else:
            upos = np.asarray(unit_positions, dtype=np.float64)
            if upos.shape[0] != n_units or upos.ndim != 2 or not np.isfinite(upos).all():
                raise ConfigError(
                    f"Invalid value for the 'unit_positions' parameter: expected {n_units} finite "
                    f"rows of (x, y[, z]) um, got shape {upos.shape}."
                )
            self.unit_positions = upos
        self.amplitudes_uv = _range_or_array(amplitude_uv, n_units, "amplitude_uv", geo_rng)
        if spike_times is None:
            self.firing_rates_hz = _range_or_array(
                firing_rates_hz, n_units, "firing_rates_hz", geo_rng
            )
        self.templates, self.trough_offset = make_templates(
            self.positions,
            self.unit_positions,
            self.amplitudes_uv,
            self.sfreq,
            geo_rng,
            template_ms=template_ms,
            trough_ms=trough_ms,
            falloff_um=falloff_um,
        )
        self.peak_channels = peak_channels(self.templates)
        units = np.arange(n_units)
        self.trough_uv = self.templates[units, self.trough_offset, self.peak_channels].astype(
            np.float64
        )
        self._trains: PoissonSpikeTrains | GivenSpikeTrains
        if spike_times is None:
            self._trains = PoissonSpikeTrains(
                self.firing_rates_hz, refractory_ms, self.sfreq, np.random.default_rng(train_ss)
            )
        else:
            trains = times_to_samples(spike_times, self.sfreq, duration_s)
            self.firing_rates_hz = np.array(
                [len(t) / duration_s if duration_s else np.nan for t in trains]
            )
            self._trains = GivenSpikeTrains(trains)
        self._jitter_rng = np.random.default_rng(jitter_ss)
        if artifact_times_s is None:
            self.artifact_samples = np.zeros(0, dtype=np.int64)
        else:
            art = np.asarray(artifact_times_s, dtype=np.float64).ravel()
            if not np.isfinite(art).all() or (art < 0).any():
                raise ConfigError(
                    "Invalid value for the 'artifact_times_s' parameter: times must be finite and >= 0."
                )
            self.artifact_samples = np.sort(np.round(art * self.sfreq).astype(np.int64))
        # periodic stimulation (e.g. 130 Hz DBS) on top of the listed pulses, generated as the
        # stream advances so an endless stream needs no list
        self.artifact_rate_hz = ensure_float(artifact_rate_hz, "artifact_rate_hz", minimum=0.0)
        if self.artifact_rate_hz > self.sfreq / 2:
            raise ConfigError(
                f"Invalid value for the 'artifact_rate_hz' parameter: {artifact_rate_hz} Hz is "
                f"above half the sampling rate ({self.sfreq / 2} Hz)."
            )
        self._art_start_s = ensure_float(artifact_start_s, "artifact_start_s", minimum=0.0)
        self._art_k = 0  # index of the next periodic pulse
        #: onset samples of the artifacts in the chunk last returned by :meth:`read`
        self.last_artifact_samples = np.zeros(0, dtype=np.int64)
        self.renderer = StreamingRenderer(
            self.templates,
            self.trough_offset,
            n_channels,
            self.sfreq,
            noise_uv=self.noise_uv,
            lfp=lfp,
            seed=render_ss,
            positions=self.positions,
            noise_band_hz=noise_band_hz,
            noise_common_fraction=noise_common_fraction,
            artifact_amplitude_uv=artifact_amplitude_uv,
            artifact_width_ms=artifact_width_ms,
            artifact_recovery_ms=artifact_recovery_ms,
            artifact_site_um=artifact_site_um,
            saturation_uv=saturation_uv,
        )
        self.lfp_params = self.renderer.lfp_params
        self._art_pos = 0
        # spikes generated for the renderer's look-ahead but not yet reported as ground truth
        self._gt = np.zeros(0, dtype=SPIKE_DTYPE)

    @property
    def next_sample(self) -> int:
        """Absolute index of the first sample of the next chunk."""
        return self.renderer.next_sample

    def read(self, n_samples: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.void]]:
        """Return the next ``n_samples`` of voltage (uV) and the ground-truth spikes whose trough
        lies in them (``SPIKE_DTYPE``, sorted by sample)."""
        n = ensure_int(n_samples, "n_samples", minimum=0)
        start = self.renderer.next_sample
        end = start + n
        # templates start trough_offset samples before the trough: look that far ahead
        samples, units = self._trains.next(end + self.trough_offset)
        if self.amplitude_jitter > 0 and samples.size:
            scales = 1.0 + self.amplitude_jitter * self._jitter_rng.standard_normal(samples.size)
        else:
            scales = np.ones(samples.size)
        new = np.zeros(samples.size, dtype=SPIKE_DTYPE)
        new["sample_index"] = samples
        new["unit_index"] = units
        new["channel_index"] = self.peak_channels[units] if units.size else 0
        new["amplitude"] = self.trough_uv[units] * scales if units.size else 0
        art_stop = int(np.searchsorted(self.artifact_samples, end, side="left"))
        arts = self.artifact_samples[self._art_pos : art_stop]
        self._art_pos = art_stop
        if self.artifact_rate_hz > 0:
            periodic = []
            while True:
                onset = int(
                    round((self._art_start_s + self._art_k / self.artifact_rate_hz) * self.sfreq)
                )
                if onset >= end:
                    break
                periodic.append(onset)
                self._art_k += 1
            if periodic:
                arts = np.union1d(arts, np.asarray(periodic, dtype=np.int64))
        self.last_artifact_samples = arts
        data = self.renderer.render(n, samples, units, scales, arts)
        pending = np.concatenate([self._gt, new])
        done = pending["sample_index"] < end
        self._gt = pending[~done]
        return data, pending[done]
