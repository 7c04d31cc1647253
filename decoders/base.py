"""The one interface of every decoder: fit on whole arrays, predict whole arrays, step bin by bin.

Conventions
-----------
``X`` holds binned spike counts, time-first, shape ``(n_bins, n_units)``; ``Y`` the decoded
variables, shape ``(n_bins, n_outputs)``; row ``i`` of ``Y`` is decoded from rows ``<= i`` of ``X``
(decoders are causal). ``predict(X)`` starts from the reset state and equals stepping through the
rows one at a time (``reset()`` then ``step(X[i])`` for each ``i``): the online stage does the
latter, offline evaluation the former, and the two give the same numbers.

Inputs are normalised inside the decoder (z-score per unit from the training data; the outputs
too, for decoders trained by gradient descent) and the statistics travel with the saved model, so
a caller always passes raw counts and gets physical values back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from decoders.errors import DecoderConfigError, DecoderError, NotFittedError

FloatArray = npt.NDArray[np.float64]


def as_matrix(a: npt.ArrayLike, name: str, n_columns: int | None = None) -> FloatArray:
    """Return ``a`` as a finite float64 ``(n_rows, n_columns)`` array, or raise naming the problem."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise DecoderError(f"{name} must be a numeric array, got {type(a).__name__}.") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DecoderError(f"{name} must be 2-D (n_bins, n_columns), got shape {arr.shape}.")
    if n_columns is not None and arr.shape[1] != n_columns:
        raise DecoderError(
            f"{name} has {arr.shape[1]} columns, but the decoder was fitted on {n_columns}."
        )
    if not np.isfinite(arr).all():
        raise DecoderError(f"{name} holds NaN or inf values.")
    return arr


@dataclass
class Normalisation:
    """Per-column z-scores of inputs and outputs: ``(x - mean) / std`` (std 0 -> 1)."""

    x_mean: FloatArray
    x_std: FloatArray
    y_mean: FloatArray
    y_std: FloatArray

    @classmethod
    def fit(cls, X: FloatArray, Y: FloatArray, scale_outputs: bool = True) -> Normalisation:
        def stats(a: FloatArray) -> tuple[FloatArray, FloatArray]:
            std = a.std(axis=0)
            return a.mean(axis=0), np.where(std > 1e-12, std, 1.0)

        xm, xs = stats(X)
        ym, ys = stats(Y) if scale_outputs else (np.zeros(Y.shape[1]), np.ones(Y.shape[1]))
        return cls(xm, xs, ym, ys)

    def x(self, X: npt.NDArray[Any]) -> FloatArray:
        return np.asarray((X - self.x_mean) / self.x_std, dtype=np.float64)

    def y(self, Y: npt.NDArray[Any]) -> FloatArray:
        return np.asarray((Y - self.y_mean) / self.y_std, dtype=np.float64)

    def y_inverse(self, Z: npt.NDArray[Any]) -> FloatArray:
        return np.asarray(Z * self.y_std + self.y_mean, dtype=np.float64)

    def to_dict(self) -> dict[str, list[float]]:
        return {
            k: np.asarray(getattr(self, k)).tolist() for k in ("x_mean", "x_std", "y_mean", "y_std")
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        return cls(
            *(np.asarray(d[k], dtype=np.float64) for k in ("x_mean", "x_std", "y_mean", "y_std"))
        )


@dataclass
class DecoderInfo:
    """What a model needs besides its parameters to run on a live stream (saved with it).

    Attributes
    ----------
    bin_s : float
        Bin width the model was trained on, in seconds.
    unit_names : tuple of str
        Input columns in order (the binner's unit order); empty when unnamed.
    output_names, output_units : tuple of str
        Name and physical unit of each output (``"vx"``, ``"a.u./s"``).
    """

    bin_s: float = 0.02
    unit_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    output_units: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin_s": self.bin_s,
            "unit_names": list(self.unit_names),
            "output_names": list(self.output_names),
            "output_units": list(self.output_units),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecoderInfo:
        return cls(
            float(d["bin_s"]),
            tuple(d.get("unit_names", ())),
            tuple(d.get("output_names", ())),
            tuple(d.get("output_units", ())),
            dict(d.get("extra", {})),
        )


class Decoder(ABC):
    """Binned spike counts in, decoded variables out; fitted offline, stepped online.

    Subclasses implement :meth:`_fit` (normalised arrays), :meth:`reset`, :meth:`_step`
    (one normalised bin -> normalised outputs) and the parameter I/O of :meth:`_state` /
    :meth:`_from_state`; :meth:`_predict` may be overridden by a faster whole-array version that
    gives the same numbers.
    """

    #: Name in saved files; :func:`decoders.load` picks the class from it.
    kind: str = ""
    #: Whether outputs are z-scored for training (gradient-trained models) or left raw.
    scale_outputs: bool = True

    def __init__(self) -> None:
        self.norm: Normalisation | None = None
        self.info = DecoderInfo()
        self.n_units = 0
        self.n_outputs = 0

    # -- the interface ---------------------------------------------------------------------------
    def fit(
        self,
        X: npt.ArrayLike,
        Y: npt.ArrayLike,
        *,
        bin_s: float = 0.02,
        unit_names: tuple[str, ...] | list[str] = (),
        output_names: tuple[str, ...] | list[str] = (),
        output_units: tuple[str, ...] | list[str] = (),
    ) -> Decoder:
        """Fit on counts ``X (n_bins, n_units)`` and targets ``Y (n_bins, n_outputs)``; returns self."""
        Xa = as_matrix(X, "X")
        Ya = as_matrix(Y, "Y")
        if Xa.shape[0] != Ya.shape[0]:
            raise DecoderError(f"X has {Xa.shape[0]} bins but Y has {Ya.shape[0]}.")
        if Xa.shape[0] < 10:
            raise DecoderError(f"Too few bins to fit a decoder: {Xa.shape[0]} (need >= 10).")
        bin_s = ensure_float(
            bin_s, "bin_s", minimum=0.0, strict_minimum=True, error=DecoderConfigError
        )
        for what, names, n in (
            ("unit_names", unit_names, Xa.shape[1]),
            ("output_names", output_names, Ya.shape[1]),
            ("output_units", output_units, Ya.shape[1]),
        ):
            if names and len(names) != n:
                raise DecoderConfigError(
                    f"Invalid value for the '{what}' parameter: {len(names)} names for {n} columns."
                )
        self.n_units, self.n_outputs = Xa.shape[1], Ya.shape[1]
        self.info = DecoderInfo(
            bin_s,
            tuple(str(n) for n in unit_names),
            tuple(str(n) for n in output_names) or tuple(f"y{i}" for i in range(Ya.shape[1])),
            tuple(str(n) for n in output_units) or ("",) * Ya.shape[1],
        )
        self.norm = Normalisation.fit(Xa, Ya, self.scale_outputs)
        self._fit(self.norm.x(Xa), self.norm.y(Ya))
        self.reset()
        return self

    def predict(self, X: npt.ArrayLike) -> FloatArray:
        """Decode a whole array from the reset state: equal to :meth:`reset` then :meth:`step` per row."""
        norm = self._require_fitted()
        Xa = as_matrix(X, "X", self.n_units)
        self.reset()
        Z = self._predict(norm.x(Xa))
        self.reset()
        return norm.y_inverse(Z)

    def step(self, x_bin: npt.ArrayLike) -> FloatArray:
        """Decode one bin of counts ``(n_units,)``; state is carried to the next call."""
        norm = self._require_fitted()
        x = np.asarray(x_bin, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.n_units:
            raise DecoderError(
                f"A bin has {x.shape[0]} units, but the decoder was fitted on {self.n_units}."
            )
        return norm.y_inverse(self._step((x - norm.x_mean) / norm.x_std))

    @abstractmethod
    def reset(self) -> None:
        """Clear carried state (history, filter estimate, membranes)."""

    def save(self, path: str | Path) -> Path:
        """Write the model (parameters, normalisation, bin width, unit order) to ``path``."""
        from decoders.modelfile import save_decoder

        return save_decoder(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Decoder:
        """Read a model written by :meth:`save` (any decoder class; checks the kind if called on one)."""
        from decoders.modelfile import load_decoder

        dec = load_decoder(path)
        if cls is not Decoder and not isinstance(dec, cls):
            from decoders.errors import ModelFileError

            raise ModelFileError(f"{path} holds a {type(dec).__name__}, not a {cls.__name__}.")
        return dec

    # -- for subclasses --------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None: ...

    @abstractmethod
    def _step(self, xn: FloatArray) -> FloatArray: ...

    def _predict(self, Xn: FloatArray) -> FloatArray:
        out = np.empty((Xn.shape[0], self.n_outputs))
        for i in range(Xn.shape[0]):
            out[i] = self._step(Xn[i])
        return out

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        """(JSON-able hyper-parameters, named arrays) of a fitted model."""

    @abstractmethod
    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        """Restore what :meth:`_state` returned (n_units, n_outputs, norm, info already set)."""

    def _require_fitted(self) -> Normalisation:
        if self.norm is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(X, Y).")
        return self.norm

    @property
    def is_fitted(self) -> bool:
        return self.norm is not None
