"""Background signals: band-limited recording noise and a slow local field potential (LFP).

Both are white Gaussian noise passed through causal IIR filters (second-order sections designed
with ``scipy.signal.butter``, run by a small numba kernel on time-first arrays) whose state is carried from chunk to chunk, so a stream generated in pieces equals one generated at once.
Each generator owns its random stream and warms its filters up on noise drawn before sample 0, so
the output is stationary from the first sample.

Models
------
* Spike-band noise: white noise band-passed (2nd-order Butterworth, default 300-6000 Hz, the band of
  extracellular spike recordings) and scaled to ``noise_uv`` RMS per channel. A fraction of its
  power (``common_fraction``) can be one component shared by all channels (reference and
  far-field noise), the rest is independent per channel.
* LFP: a 1/f^2 ("brown") spectrum above ``band_hz[0]`` and cut above ``band_hz[1]`` (LFP spectra fall
  as 1/f^a with a ~ 1-2 above a few Hz; Buzsaki, Anastassiou & Koch 2012, Nat Rev Neurosci 13:407),
  plus an optional narrow-band beta oscillation (e.g. 20 Hz, the Parkinsonian STN/GPi rhythm,
  Little et al. 2013, Ann Neurol 74:449) that waxes and wanes like beta bursts. Both are shared
  across channels with a linear spatial gradient along the probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from scipy import signal

from bci.checks import ensure_float
from bci.errors import ConfigError


@numba.njit(cache=True, nogil=True)
def _sosfilt_time_major(sos, x, zi):  # pragma: no cover (jitted)
    """Filter ``x`` (n_samples, n_channels) in place along axis 0, state ``zi`` (n_sections, 2, ch).

    Transposed direct form II per second-order section (the form ``scipy.signal.sosfilt`` uses),
    walking samples in memory order so time-first arrays need no transposed copy.
    """
    n_samples, n_channels = x.shape
    for s in range(sos.shape[0]):
        b0, b1, b2, a1, a2 = sos[s, 0], sos[s, 1], sos[s, 2], sos[s, 4], sos[s, 5]
        for i in range(n_samples):
            for c in range(n_channels):
                xi = x[i, c]
                yi = b0 * xi + zi[s, 0, c]
                zi[s, 0, c] = b1 * xi - a1 * yi + zi[s, 1, c]
                zi[s, 1, c] = b2 * xi - a2 * yi
                x[i, c] = yi


def _filter_gain(sos: npt.NDArray[np.float64], n_samples: int) -> float:
    """RMS of the filter's output for unit-variance white input (sqrt of impulse-response energy)."""
    impulse = np.zeros(n_samples)
    impulse[0] = 1.0
    return float(np.sqrt(np.sum(signal.sosfilt(sos, impulse) ** 2)))


class _FilteredNoise:
    """White Gaussian noise through a causal SOS filter, scaled to a target RMS, state carried."""

    def __init__(
        self,
        sos: npt.NDArray[np.float64],
        n_channels: int,
        rms: float,
        rng: np.random.Generator,
        settle_samples: int,
        dtype: type[np.floating] = np.float64,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.scale = self.dtype.type(rms / _filter_gain(sos, max(settle_samples, 16)))
        self.sos = sos.astype(self.dtype)
        self.n_channels = n_channels
        self.rng = rng
        self.zi = np.zeros((sos.shape[0], 2, n_channels), dtype=self.dtype)
        if settle_samples > 0:  # start in the stationary state: filter noise from "before" sample 0
            _sosfilt_time_major(self.sos, self._draw(settle_samples), self.zi)

    def _draw(self, n_samples: int) -> npt.NDArray[np.floating]:
        return self.rng.standard_normal((n_samples, self.n_channels), dtype=self.dtype)

    def next(self, n_samples: int) -> npt.NDArray[np.floating]:
        out = self._draw(n_samples)
        _sosfilt_time_major(self.sos, out, self.zi)
        out *= self.scale
        return out


class SpikeBandNoise:
    """Streaming band-limited Gaussian noise, ``noise_uv`` RMS on every channel.

    Parameters
    ----------
    n_channels : int
        Channels.
    sfreq : float
        Sampling rate in Hz.
    noise_uv : float
        RMS per channel in uV (0: silent).
    rng : numpy.random.Generator
        The generator's own random stream (not shared with anything that draws per chunk).
    band_hz : (float, float)
        Pass band; the upper edge is capped at 0.45 * sfreq, and a low edge of 0 gives a low-pass.
    common_fraction : float
        Fraction of the noise power shared by all channels (0-1).
    """

    def __init__(
        self,
        n_channels: int,
        sfreq: float,
        noise_uv: float,
        rng: np.random.Generator,
        *,
        band_hz: tuple[float, float] = (300.0, 6000.0),
        common_fraction: float = 0.0,
    ) -> None:
        self.noise_uv = ensure_float(noise_uv, "noise_uv", minimum=0.0)
        common_fraction = ensure_float(common_fraction, "common_fraction", minimum=0.0, maximum=1.0)
        low = ensure_float(band_hz[0], "band_hz[0]", minimum=0.0)
        high = min(
            ensure_float(band_hz[1], "band_hz[1]", minimum=0.0, strict_minimum=True), 0.45 * sfreq
        )
        if low >= high:
            raise ConfigError(
                f"Invalid value for the 'band_hz' parameter: ({low}, {high}) Hz is empty at "
                f"sfreq={sfreq} Hz."
            )
        if low > 0:
            sos = signal.butter(2, [low, high], btype="bandpass", fs=sfreq, output="sos")
            settle = int(10 * sfreq / low)
        else:
            sos = signal.butter(2, high, btype="lowpass", fs=sfreq, output="sos")
            settle = int(10 * sfreq / high) + 16
        self.n_channels = n_channels
        self._w_own = np.sqrt(1.0 - common_fraction)
        self._w_common = np.sqrt(common_fraction)
        # one random stream per component, so chunk sizes never change which draw goes where
        own_rng, common_rng = rng.spawn(2)
        # float32: half the memory traffic of float64, and plenty for noise at a 300 Hz corner
        self._own = _FilteredNoise(sos, n_channels, 1.0, own_rng, settle, np.float32)
        self._common = (
            _FilteredNoise(sos, 1, 1.0, common_rng, settle, np.float32)
            if common_fraction > 0
            else None
        )
        self._w_own = np.float32(self._w_own)
        self._w_common = np.float32(self._w_common)
        self._noise_uv32 = np.float32(self.noise_uv)

    def next(self, n_samples: int) -> npt.NDArray[np.float32]:
        """Return the next ``n_samples`` of noise, float32 (n_samples, n_channels), in uV."""
        out = self._own.next(n_samples)
        if self._common is not None:
            out = self._w_own * out + self._w_common * self._common.next(n_samples)
        out *= self._noise_uv32
        return out


@dataclass(frozen=True)
class LFPParams:
    """Parameters of the synthetic LFP (all amplitudes are RMS in uV on the probe's middle).

    Attributes
    ----------
    amplitude_uv : float
        RMS of the broadband 1/f^2 component.
    band_hz : (float, float)
        Corner of the 1/f^2 fall and upper cut-off.
    beta_amplitude_uv : float
        RMS of the beta oscillation (0: none).
    beta_hz, beta_bandwidth_hz : float
        Centre and width of the beta band.
    gradient : float
        Relative amplitude change from one end of the probe to the other (0: uniform).
    """

    amplitude_uv: float = 50.0
    band_hz: tuple[float, float] = (1.0, 100.0)
    beta_amplitude_uv: float = 20.0
    beta_hz: float = 20.0
    beta_bandwidth_hz: float = 6.0
    gradient: float = 0.5

    @classmethod
    def coerce(cls, value: Any) -> LFPParams | None:
        """``None``/``False`` -> None, ``True`` -> defaults, a mapping -> validated params."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise ConfigError(
                    f"Invalid value for the 'lfp' parameter: unknown keys {sorted(unknown)}; "
                    f"allowed keys are {sorted(known)}."
                )
            return cls(**value)
        raise ConfigError(
            f"Invalid type for the 'lfp' parameter. Allowed types are bool, dict, LFPParams, "
            f"but got {type(value).__name__} instead."
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LFPGenerator:
    """Streaming LFP: broadband 1/f^2 plus optional beta, shared across channels with a gradient."""

    def __init__(
        self,
        params: LFPParams,
        n_channels: int,
        sfreq: float,
        rng: np.random.Generator,
        positions: npt.NDArray[np.float64] | None = None,
    ) -> None:
        p = params
        ensure_float(p.amplitude_uv, "lfp.amplitude_uv", minimum=0.0)
        ensure_float(p.beta_amplitude_uv, "lfp.beta_amplitude_uv", minimum=0.0)
        low = ensure_float(p.band_hz[0], "lfp.band_hz[0]", minimum=0.0, strict_minimum=True)
        high = ensure_float(p.band_hz[1], "lfp.band_hz[1]", minimum=low, strict_minimum=True)
        high = min(high, 0.45 * sfreq)
        self.params = p
        broadband = np.vstack(
            [
                signal.butter(1, low, btype="lowpass", fs=sfreq, output="sos"),
                signal.butter(1, low / 2, btype="highpass", fs=sfreq, output="sos"),
                signal.butter(2, high, btype="lowpass", fs=sfreq, output="sos"),
            ]
        )
        settle = int(8 * sfreq / low)
        broad_rng, beta_rng = rng.spawn(2)
        self._broadband = _FilteredNoise(broadband, 1, p.amplitude_uv, broad_rng, settle)
        self._beta: _FilteredNoise | None = None
        if p.beta_amplitude_uv > 0:
            half = (
                ensure_float(
                    p.beta_bandwidth_hz, "lfp.beta_bandwidth_hz", minimum=0.0, strict_minimum=True
                )
                / 2
            )
            b_lo = ensure_float(p.beta_hz, "lfp.beta_hz", minimum=half, strict_minimum=True) - half
            b_hi = min(p.beta_hz + half, 0.45 * sfreq)
            sos = signal.butter(2, [b_lo, b_hi], btype="bandpass", fs=sfreq, output="sos")
            self._beta = _FilteredNoise(
                sos, 1, p.beta_amplitude_uv, beta_rng, int(20 * sfreq / half)
            )
        if positions is None or np.ptp(positions[:, 1]) == 0:
            self.weights = np.ones(n_channels)
        else:
            y = positions[:, 1]
            self.weights = 1.0 + p.gradient * ((y - y.mean()) / np.ptp(y))

    def next(self, n_samples: int) -> npt.NDArray[np.float64]:
        """Return the next ``n_samples`` of LFP, shape (n_samples, n_channels), in uV."""
        common = self._broadband.next(n_samples)
        if self._beta is not None:
            common = common + self._beta.next(n_samples)
        return common * self.weights[None, :]
