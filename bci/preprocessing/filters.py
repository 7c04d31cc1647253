"""Causal band-pass filtering with the filter state carried from chunk to chunk.

The online path never uses ``filtfilt``: a zero-phase filter needs the future. The price of a causal
IIR filter is a frequency-dependent delay; :attr:`BandPass.group_delay_samples` measures it on a
spike-shaped waveform so that downstream stages (the sorter) can report spike times on the raw
signal's clock.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numba
import numpy as np
import numpy.typing as npt
from scipy import signal

from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import StageCompatibilityError
from bci.stream import SignalChunk, Stage, StreamSpec

FilterType = Literal["butter", "bessel"]

#: Sampling rate used to measure the group delay when no stream has been seen yet.
_DEFAULT_SFREQ = 30_000.0


def design_bandpass(
    low_hz: float | None,
    high_hz: float | None,
    sfreq: float,
    order: int = 2,
    ftype: FilterType = "butter",
) -> npt.NDArray[np.float64]:
    """Design an IIR band-pass (or high-/low-pass) filter as second-order sections.

    Parameters
    ----------
    low_hz, high_hz : float or None
        Corner frequencies in Hz; ``high_hz=None`` gives a high-pass, ``low_hz=None`` a low-pass.
    sfreq : float
        Sampling rate in Hz; ``high_hz`` must lie below the Nyquist frequency.
    order : int
        Filter order per edge (scipy's convention: a band-pass of order N has 2N poles).
    ftype : {"butter", "bessel"}
        Butterworth (flat passband) or Bessel (near-linear phase, less waveform distortion).

    Returns
    -------
    sos : float64 array, shape (n_sections, 6)
    """
    nyquist = sfreq / 2.0
    if low_hz is None and high_hz is None:
        raise StageCompatibilityError("BandPass needs at least one of low_hz and high_hz.")
    if high_hz is not None and high_hz >= nyquist:
        raise StageCompatibilityError(
            f"BandPass high_hz={high_hz} Hz must be below the Nyquist frequency "
            f"{nyquist} Hz of a {sfreq} Hz stream."
        )
    if low_hz is not None and high_hz is not None and low_hz >= high_hz:
        raise StageCompatibilityError(
            f"BandPass low_hz={low_hz} Hz must be below high_hz={high_hz} Hz."
        )
    if low_hz is not None and high_hz is not None:
        wn: Any = [low_hz, high_hz]
        btype = "bandpass"
    elif low_hz is not None:
        wn, btype = low_hz, "highpass"
    else:
        wn, btype = high_hz, "lowpass"
    sos = signal.iirfilter(order, wn, btype=btype, ftype=ftype, output="sos", fs=sfreq)
    return np.asarray(sos, dtype=np.float64)


def spike_template(sfreq: float, width_ms: float = 0.25) -> npt.NDArray[np.float64]:
    """A generic extracellular spike: sharp negative trough, slower positive repolarisation.

    Trough and rebound are Gaussians (trough sigma ``width_ms / 2.355`` so ``width_ms`` is its full
    width at half maximum, rebound 3x wider at a third of the depth, 0.4 ms later), a common
    idealisation of cortical extracellular action potentials (Gold et al. 2006,
    J Neurophysiol 95:3113). The trough sits at index ``len // 2``.
    """
    sigma = width_ms / 2.355 * 1e-3 * sfreq
    half = int(np.ceil(12 * sigma)) + int(np.ceil(1e-3 * sfreq))
    t = np.arange(-half, half + 1, dtype=np.float64)
    trough = -np.exp(-0.5 * (t / sigma) ** 2)
    rebound_at = 0.4e-3 * sfreq
    rebound = np.exp(-0.5 * ((t - rebound_at) / (3 * sigma)) ** 2) / 3.0
    return trough + rebound


def _parabolic_peak(x: npt.NDArray[np.float64], i: int) -> float:
    """Sub-sample position of the extremum at ``i`` by a parabola through its neighbours."""
    if i <= 0 or i >= len(x) - 1:
        return float(i)
    a, b, c = x[i - 1], x[i], x[i + 1]
    denom = a - 2 * b + c
    return float(i) if denom == 0 else float(i) + 0.5 * float(a - c) / float(denom)


def trough_delay_samples(sos: npt.NDArray[np.float64], sfreq: float) -> float:
    """Delay of a spike's trough through the causal filter ``sos``, in (fractional) samples.

    Filters :func:`spike_template` (padded with zeros, causal ``sosfilt`` from rest) and returns the
    position of the filtered trough minus the raw trough, both refined by parabolic interpolation.
    """
    template = spike_template(sfreq)
    pad = int(0.01 * sfreq)
    x = np.concatenate([np.zeros(pad), template, np.zeros(pad)])
    y = signal.sosfilt(sos, x)
    raw = _parabolic_peak(-x, int(np.argmax(-x)))
    filtered = _parabolic_peak(-y, int(np.argmax(-y)))
    return filtered - raw


@numba.njit(cache=True, nogil=True)
def _sosfilt_rows(sos, x, zi, out):  # pragma: no cover (jitted)
    """Causal SOS filter of time-first ``x`` (n, ch) into float32 ``out``; ``zi`` (sections, 2, ch).

    Transposed direct form II, the arithmetic of ``scipy.signal.sosfilt``, in float64; each sample
    runs through all sections before the next, in memory order, so no transposed copy is made.
    """
    n_samples, n_channels = x.shape
    n_sections = sos.shape[0]
    for i in range(n_samples):
        for c in range(n_channels):
            v = np.float64(x[i, c])
            for s in range(n_sections):
                y = sos[s, 0] * v + zi[s, 0, c]
                zi[s, 0, c] = sos[s, 1] * v - sos[s, 4] * y + zi[s, 1, c]
                zi[s, 1, c] = sos[s, 2] * v - sos[s, 5] * y
                v = y
            out[i, c] = v


class BandPass(Stage, name="bandpass"):
    """Causal IIR band-pass: ``scipy.signal.sosfilt`` with the state ``zi`` carried across chunks.

    Filtering a stream chunk by chunk gives the same output as filtering it in one piece.

    Parameters
    ----------
    low_hz : float or None
        High-pass corner in Hz (``None``: low-pass only). 300 Hz removes the LFP from spikes.
    high_hz : float or None
        Low-pass corner in Hz (``None``: high-pass only); must be below Nyquist.
    order : int
        Order per edge. The default 2 (a 4-pole band-pass) is the usual trade-off for *causal*
        online spike filtering: at 10 Hz it attenuates the LFP by ~59 dB, while its trough delay
        (0.34 samples at 30 kHz for 300-6000 Hz, 1.7 for 300-3000 Hz) and the phase distortion stay
        small; higher orders add delay and ringing that blur templates (Quian Quiroga 2009,
        J Neurophysiol 101:1464, on causal filtering and spike shape).
    ftype : {"butter", "bessel"}
        Filter family.

    Notes
    -----
    **Group delay.** :attr:`group_delay_samples` is the delay of a spike's trough through this filter
    (see :func:`trough_delay_samples`), measured at the stream's rate once :meth:`prepare` has run
    (at 30 kHz before). It is added to the emitted spec's ``StreamSpec.group_delay_samples``
    (accumulated over stages), so a sorter can subtract it from spike times.

    **NaN.** A NaN or infinite input value (a sample the source could not deliver, a saturated
    channel) is fed to the filter as the channel's last finite input (sample-and-hold, 0 before
    any), so the state stays finite and no step is injected; the output at that position is NaN,
    so ``chunk.nan_rows`` still flags it.

    **Gaps** (``gap_before > 0``) are filtered across as if contiguous; the state is not reset.
    """

    accepts = ("signal",)

    def __init__(
        self,
        low_hz: float | None = 300.0,
        high_hz: float | None = 6000.0,
        order: int = 2,
        ftype: FilterType = "butter",
    ) -> None:
        self.low_hz = (
            None
            if low_hz is None
            else ensure_float(low_hz, "low_hz", minimum=0.0, strict_minimum=True)
        )
        self.high_hz = (
            None
            if high_hz is None
            else ensure_float(high_hz, "high_hz", minimum=0.0, strict_minimum=True)
        )
        self.order = ensure_int(order, "order", minimum=1)
        self.ftype: FilterType = check_value(ftype, ("butter", "bessel"), "ftype")
        self._sfreq = 0.0
        self._n_channels = 0
        self._sos = np.zeros((0, 6))
        self._zi: npt.NDArray[np.float64] | None = None
        self._hold: npt.NDArray[np.float64] | None = None
        self._group_delay = 0.0
        self._design(_DEFAULT_SFREQ, n_channels=0)

    # -- design -----------------------------------------------------------------------------------
    def _design(self, sfreq: float, n_channels: int) -> None:
        self._sos = design_bandpass(self.low_hz, self.high_hz, sfreq, self.order, self.ftype)
        self._sfreq = sfreq
        self._n_channels = n_channels
        self._group_delay = trough_delay_samples(self._sos, sfreq)
        self.reset()

    @property
    def sos(self) -> npt.NDArray[np.float64]:
        """The second-order sections in use (designed for the prepared stream's rate)."""
        return self._sos

    @property
    def group_delay_samples(self) -> float:
        """Delay of a spike trough through this filter in samples at the stream's rate."""
        return self._group_delay

    # -- the contract -----------------------------------------------------------------------------
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Design the filter for the stream's rate; emit the same spec with the delay added."""
        super().prepare(upstream)
        self._design(float(upstream.rate_hz), int(upstream.n_channels))
        self.output_spec = upstream.evolve(
            group_delay_samples=float(upstream.group_delay_samples) + self.group_delay_samples
        )
        return self.output_spec

    def reset(self) -> None:
        """Return the filter to rest (zero state)."""
        self._zi = None
        self._hold = None

    def process(self, chunk: SignalChunk) -> SignalChunk:
        """Filter one chunk causally, continuing from the previous chunk's state."""
        if self.input_spec is None:  # used bare, without a Pipeline: prepare from the first chunk
            self.prepare(StreamSpec("signal", chunk.n_channels, chunk.sfreq))
        if chunk.n_channels != self._n_channels:
            raise StageCompatibilityError(
                f"BandPass was prepared for {self._n_channels} channels, but got a chunk with "
                f"{chunk.n_channels} channels."
            )
        if self._zi is None:
            self._zi = np.zeros((self._sos.shape[0], 2, self._n_channels))
            self._hold = np.zeros(self._n_channels)
        x: npt.NDArray[np.floating[Any]] = chunk.data
        # inf is held like NaN: an infinite input would leave the IIR state non-finite for good
        nan_mask = ~np.isfinite(chunk.data)
        has_nan = bool(nan_mask.any())
        if has_nan:
            x = self._hold_nan(chunk.data, nan_mask)
        elif chunk.n_samples:
            self._hold = chunk.data[-1].astype(np.float64)
        out = np.empty(x.shape, dtype=np.float32)
        _sosfilt_rows(self._sos, x, self._zi, out)
        if has_nan:
            out[nan_mask] = np.nan
        return dataclasses.replace(chunk, data=out)

    def _hold_nan(
        self, x: npt.NDArray[np.float32], nan_mask: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float64]:
        """Replace NaN entries by the channel's last finite value (carried across chunks)."""
        hold = np.zeros(x.shape[1]) if self._hold is None else self._hold
        filled = np.vstack([hold[None, :], x.astype(np.float64)])
        mask = np.vstack([np.zeros((1, x.shape[1]), bool), nan_mask])
        rows = np.where(~mask, np.arange(filled.shape[0])[:, None], 0)
        np.maximum.accumulate(rows, axis=0, out=rows)
        filled = filled[rows, np.arange(x.shape[1])[None, :]]
        self._hold = filled[-1].copy()
        return filled[1:]
