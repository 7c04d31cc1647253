"""Symptom decoder for closed-loop DBS: the windowed GPi beta of ``BasalGanglia-v0``, estimated
from the spikes the loop has (units sorted online from the plant's virtual probe).

Interface (for the controller and the runner)
---------------------------------------------
The decoder is a :class:`~decoders.base.Decoder` whose input is binned spike counts of whatever
units the loop has, in any order and any number (>= 1), and whose one output is the estimated
relative GPi beta power over the last ``window_s`` (the same 0.25-s window, 13-30 Hz over
4-100 Hz, as :meth:`stimulation.plant.monitor.BiomarkerMonitor.beta_power`, the env's
``symptom``)::

    from decoders.symptom import SymptomDecoder, DEFAULT_MODEL
    dec = SymptomDecoder.load(DEFAULT_MODEL)     # shipped, numpy only, no torch
    dec.bin_s, dec.window_s                      # 0.005 s bins, 0.25 s window
    dec.reset()                                  # at each episode / session start
    y = dec.step(counts)                         # counts: (n_units,) spikes in one 5-ms bin
    y = dec.step_bins(counts)                    # counts: (n_bins, n_units); estimate after the last
    y = dec.estimate_from_spike_times(spike_times_s, t_stop_s)   # stateless, from spike times
    f = dec.features_from_spike_times(spike_times_s, t_stop_s)   # the feature vector itself

``y`` is a float64 array of shape ``(1,)`` (``step``, ``step_bins``) or a float. Before a full
window has been seen the estimate uses the bins so far (zeros before the first bin). One step
costs an FFT of the 50-bin window (tens of microseconds).

Two feeds, the same features:

- **runner (online)**: ``SpikeBinner(bin_s=0.005)`` on the sorted spikes of the probe
  (``OnlineSorter``; unsorted spikes left out), then :class:`decoders.DecoderStage` with this
  model; the stage's StateChunk column is ``"gpi_beta"``.
- **env training (no sorter)**: the plant's ground-truth spikes of the probed cells. With
  ``BasalGangliaEnv(observation="spikes", recorded_nuclei=(probe_nucleus,), bin_s=0.005)`` the
  observation is ``(4, n_cells)`` counts per 20-ms step: call ``dec.step_bins(obs[:, cells])``
  with ``cells = VirtualProbe(cells_per_nucleus, nucleus, n_units, seed).cells`` (or all cells of
  the nucleus: the features do not depend on which or how many units). Or, from a
  :class:`~stimulation.plant.PlantRecord`, ``dec.estimate_from_spike_times(
  [rec.spike_times[nucleus][c] for c in cells], rec.t_stop_s)`` (spike times of the window are
  needed, so keep the last ``window_s`` of spikes).

Why inputs that do not depend on unit order: sorted unit identities differ from the plant's cell
indices and between sessions (and the sorter may split or merge cells), so the features are
computed from the *pooled* count of all units (the sum is unchanged by relabelling, splitting or
merging: its rate, band powers, Fano factor) plus per-unit statistics reduced symmetrically (sums
over units). No per-session
calibration is needed. The readout is a ridge regression on the standardised features and their
pairwise products. The shipped model is fitted on both feeds (the probed cells' true spikes and
the online sorter's units, which find fewer spikes and almost none under DBS) in sessions of the
healthy, Parkinsonian and fluctuating plants with DBS off, on and switching over 0.5-2.5 mA and
60-180 Hz (its provenance names the command), and scored on held-out seeds by
``benchmarks/bench_symptom_decoder.py`` (README, "Decoding"); what spikes can tell about the
symptom at all is measured by ``benchmarks/bench_symptom_ceiling.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from decoders.base import Decoder, DecoderInfo, FloatArray, Normalisation, as_matrix
from decoders.baselines import ridge
from decoders.errors import DecoderConfigError, DecoderError, ModelFileError

#: The shipped model (see its provenance for the command that trained it).
DEFAULT_MODEL = Path(__file__).parent / "models" / "symptom_gpi_beta.npz"
#: The shipped Parkinsonian-state model: the same features of a GPe probe's spikes, read out as the
#: plant's state (``benchmarks/train_state_decoder.py``; its provenance names the command).
STATE_MODEL = Path(__file__).parent / "models" / "state_gpe.npz"
#: Sub-bands (Hz) whose power per spike of the pooled count are features (a coarse spectrum).
SUB_BANDS_HZ: tuple[tuple[float, float], ...] = (
    (4.0, 8.0),
    (8.0, 13.0),
    (13.0, 20.0),
    (20.0, 30.0),
    (30.0, 50.0),
    (50.0, 75.0),
    (75.0, 100.0),
)
#: Names of the features, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "log_rate",
    "rel_beta",
    "rel_theta_alpha",
    "rel_gamma",
    "log_fano",
    "log_synchrony",
    "log_beta_per_spike",
    *(f"log_power_per_spike_{lo:g}_{hi:g}hz" for lo, hi in SUB_BANDS_HZ),
)
_BANDS_HZ = {
    "beta": (13.0, 30.0),
    "low": (4.0, 12.9),
    "gamma": (30.1, 100.0),
    "total": (4.0, 100.0),
    **{f"{lo:g}_{hi:g}": (lo, hi - 0.1 if hi < 100.0 else hi) for lo, hi in SUB_BANDS_HZ},
}


@functools.lru_cache(maxsize=8)
def _spectral_kernel(
    n_bins: int, bin_s: float
) -> tuple[FloatArray, dict[str, npt.NDArray[np.bool_]]]:
    """Hann taper and band masks of an ``n_bins`` window (cached: one per window length)."""
    freqs = np.fft.rfftfreq(n_bins, bin_s)
    masks = {name: (freqs >= lo) & (freqs <= hi) for name, (lo, hi) in _BANDS_HZ.items()}
    return np.hanning(n_bins + 2)[1:-1], masks


def window_features(window: npt.NDArray[Any], bin_s: float) -> FloatArray:
    """Order-free features of one window of counts ``(n_bins, n_units)`` (see FEATURE_NAMES).

    Pooled count ``c`` (sum over units): log mean rate per unit; relative power of ``c`` in the
    beta (13-30 Hz), 4-13 Hz and 30-100 Hz bands over 4-100 Hz (Hann window, mean removed, as the
    plant's beta biomarker); log Fano factor of ``c``; log of Golomb's synchrony
    ``var(c) / sum_u var(c_u)``; log beta power of ``c`` per spike (beta power above Poisson);
    the same per-spike log power in each of :data:`SUB_BANDS_HZ` (a coarse spectrum).
    """
    w = np.asarray(window, dtype=np.float64)
    n_bins, n_units = w.shape
    taper, masks = _spectral_kernel(n_bins, bin_s)
    c = w.sum(axis=1)
    mean = c.mean()
    rate = mean / (max(n_units, 1) * bin_s)
    var = c.var()
    spec = np.fft.rfft(taper * (c - mean))
    power = spec.real * spec.real + spec.imag * spec.imag
    bands = {name: float(power[mask].sum()) for name, mask in masks.items()}
    total = bands["total"]
    rel = [bands[b] / total if total > 0 else 0.0 for b in ("beta", "low", "gamma")]
    unit_var = float(w.var(axis=0).sum())
    sync = var / unit_var if unit_var > 0 else 1.0
    fano = var / mean if mean > 0 else 1.0
    spikes = mean * n_bins
    per_spike = [
        bands[b] / spikes if spikes > 0 else 0.0
        for b in ("beta", *(f"{lo:g}_{hi:g}" for lo, hi in SUB_BANDS_HZ))
    ]
    return np.array(
        [
            np.log1p(rate),
            *rel,
            np.log(fano + 1e-3),
            np.log(sync + 1e-3),
            *np.log1p(per_spike),
        ]
    )


class SymptomDecoder(Decoder):
    """Estimate the windowed GPi beta from binned counts of any units (see the module docstring).

    Parameters
    ----------
    bin_s : float
        Bin width of the counts (5 ms).
    window_s : float
        Feature window (0.25 s, the biomarker's window).
    alpha : float
        Ridge penalty of the read-out (standardised features).
    quadratic : bool
        Add the squares and pairwise products of the features (a small non-linearity).
    output, output_unit : str
        Name and unit of the estimated quantity (the stage's StateChunk column): the windowed
        GPi beta by default; :data:`STATE_MODEL` estimates the Parkinsonian state instead
        (``"pd_state"``, 0 healthy to 1 Parkinsonian) from the same features.
    """

    kind = "symptom"
    scale_outputs = False
    #: The stage accepts any unit count for this decoder.
    any_unit_count = True

    def __init__(
        self,
        bin_s: float = 0.005,
        window_s: float = 0.25,
        alpha: float = 1.0,
        quadratic: bool = True,
        output: str = "gpi_beta",
        output_unit: str = "relative power",
    ) -> None:
        super().__init__()
        self.output, self.output_unit = str(output), str(output_unit)
        self.bin_s = ensure_float(
            bin_s, "bin_s", minimum=0.0, strict_minimum=True, error=DecoderConfigError
        )
        self.window_s = ensure_float(
            window_s, "window_s", minimum=0.0, strict_minimum=True, error=DecoderConfigError
        )
        self.alpha = ensure_float(alpha, "alpha", minimum=0.0, error=DecoderConfigError)
        self.quadratic = bool(quadratic)
        self.n_window = max(8, int(round(self.window_s / self.bin_s)))
        self.provenance: dict[str, Any] = {}
        self._buf: FloatArray | None = None

    # -- features -------------------------------------------------------------------------------
    def _expand(self, F: FloatArray) -> FloatArray:
        Z = (F - self.f_mean) / self.f_std
        if not self.quadratic:
            return Z
        iu = np.triu_indices(Z.shape[1])
        return np.hstack([Z, Z[:, iu[0]] * Z[:, iu[1]]])

    def session_features(self, X: npt.ArrayLike) -> FloatArray:
        """Features at every bin of a session's counts ``(n_bins, n_units)`` (causal windows)."""
        Xa = as_matrix(X, "X")
        pad = np.vstack([np.zeros((self.n_window - 1, Xa.shape[1])), Xa])
        out = np.empty((Xa.shape[0], len(FEATURE_NAMES)))
        for i in range(Xa.shape[0]):
            out[i] = window_features(pad[i : i + self.n_window], self.bin_s)
        return out

    def features_from_spike_times(
        self, spike_times_s: Sequence[npt.ArrayLike], t_stop_s: float
    ) -> FloatArray:
        """Features of the window ending at ``t_stop_s`` from per-unit spike times (s)."""
        edges = t_stop_s - self.bin_s * np.arange(self.n_window, -1, -1)
        counts = np.stack(
            [np.histogram(np.asarray(t, np.float64), edges)[0] for t in spike_times_s], axis=1
        ) if len(spike_times_s) else np.zeros((self.n_window, 1))  # fmt: skip
        return window_features(counts, self.bin_s)

    def estimate_from_spike_times(
        self, spike_times_s: Sequence[npt.ArrayLike], t_stop_s: float
    ) -> float:
        """The estimate for the window ending at ``t_stop_s`` (stateless)."""
        f = self.features_from_spike_times(spike_times_s, t_stop_s)
        return float(self._readout(f[None])[0])

    def _readout(self, F: FloatArray) -> FloatArray:
        if not hasattr(self, "weights"):
            self._require_fitted()
        return np.asarray(self._expand(F) @ self.weights + self.intercept).reshape(-1)

    # -- the Decoder interface ------------------------------------------------------------------
    def fit(
        self,
        X: npt.ArrayLike | Sequence[npt.ArrayLike],
        Y: npt.ArrayLike | Sequence[npt.ArrayLike],
        **_: Any,
    ) -> SymptomDecoder:
        """Fit on one session ``(X, Y)`` or lists of sessions (unit counts may differ)."""
        many = isinstance(X, (list, tuple))
        pairs: Any = zip(X, Y, strict=True) if many else [(X, Y)]  # type: ignore[arg-type]
        sessions: list[tuple[Any, Any]] = list(pairs)
        F, T = [], []
        for Xs, Ys in sessions:
            Fs = self.session_features(Xs)
            Ya = as_matrix(Ys, "Y")
            if len(Ya) != len(Fs):
                raise DecoderError(f"X has {len(Fs)} bins but Y has {len(Ya)}.")
            # the first window is incomplete: train on full windows only
            F.append(Fs[self.n_window :])
            T.append(Ya[self.n_window :, 0])
        Fa, Ta = np.vstack(F), np.concatenate(T)
        self.f_mean, self.f_std = (
            Fa.mean(axis=0),
            np.where(Fa.std(axis=0) > 1e-12, Fa.std(axis=0), 1.0),
        )
        W, b = ridge(self._expand(Fa), Ta[:, None], self.alpha)
        self.weights, self.intercept = W[:, 0], float(b[0])
        self.n_units, self.n_outputs = 0, 1
        self.norm = Normalisation(np.zeros(1), np.ones(1), np.zeros(1), np.ones(1))
        self.info = DecoderInfo(self.bin_s, (), (self.output,), (self.output_unit,))
        self.reset()
        return self

    def reset(self) -> None:
        self._buf = None

    def step(self, x_bin: npt.ArrayLike) -> FloatArray:
        """One bin of counts ``(n_units,)`` -> estimate ``(1,)`` (the unit count is fixed at the
        first bin after :meth:`reset`)."""
        return self.step_bins(np.asarray(x_bin, dtype=np.float64).reshape(1, -1))

    def step_bins(self, counts: npt.ArrayLike) -> FloatArray:
        """Several bins ``(n_bins, n_units)``; returns the estimate after the last (the same
        number as stepping through them one by one, computed once)."""
        self._require_fitted()
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] == 0:
            raise DecoderError(
                f"step_bins needs counts of shape (n_bins >= 1, n_units), got {c.shape}."
            )
        if self._buf is None:
            self._buf = np.zeros((self.n_window, c.shape[1]))
        elif c.shape[1] != self._buf.shape[1]:
            raise DecoderError(
                f"A bin has {c.shape[1]} units, but this session started with "
                f"{self._buf.shape[1]}; call reset() when the unit set changes."
            )
        k = min(c.shape[0], self.n_window)
        self._buf = np.concatenate([self._buf[k:], c[-k:]])
        return self._readout(window_features(self._buf, self.bin_s)[None])

    def predict(self, X: npt.ArrayLike) -> FloatArray:
        """Estimates at every bin of a session, from the reset state."""
        self._require_fitted()
        return self._readout(self.session_features(X))[:, None]

    # unused by this class (fit/step are its own), kept for the interface
    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:  # pragma: no cover
        raise NotImplementedError

    def _step(self, xn: FloatArray) -> FloatArray:  # pragma: no cover
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        params = {
            "bin_s": self.bin_s,
            "window_s": self.window_s,
            "alpha": self.alpha,
            "quadratic": self.quadratic,
            "intercept": self.intercept,
            "output": self.output,
            "output_unit": self.output_unit,
        }
        return params, {"weights": self.weights, "f_mean": self.f_mean, "f_std": self.f_std}

    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        self.__init__(  # type: ignore[misc]
            params["bin_s"],
            params["window_s"],
            params["alpha"],
            params["quadratic"],
            str(params.get("output", "gpi_beta")),
            str(params.get("output_unit", "relative power")),
        )
        self.n_units, self.n_outputs = 0, 1
        self.norm = Normalisation(np.zeros(1), np.ones(1), np.zeros(1), np.ones(1))
        self.info = DecoderInfo(self.bin_s, (), (self.output,), (self.output_unit,))
        self.intercept = float(params["intercept"])
        if arrays["f_mean"].size != len(FEATURE_NAMES):
            raise ModelFileError(
                f"The symptom model has {arrays['f_mean'].size} features, this version computes "
                f"{len(FEATURE_NAMES)} ({', '.join(FEATURE_NAMES)}): retrain it with "
                "benchmarks/bench_symptom_decoder.py."
            )
        self.weights, self.f_mean, self.f_std = arrays["weights"], arrays["f_mean"], arrays["f_std"]
