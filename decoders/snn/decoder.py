"""Spiking decoders: trained with surrogate gradients, or converted from a ReLU network.

- :class:`SNNDecoder`: feed-forward LIF layer(s) and a leaky-integrator readout, one bin per step
  (in the spirit of NeuroBench's SNN2 primate-reaching baseline; Yik et al. 2025, Nat Commun
  16:1545).
- :class:`RecurrentSNNDecoder`: a recurrent LIF layer with a leaky-integrator readout (in the
  spirit of the tiny recurrent SNN of Zenke's group in the 2024 BioCAS neural decoding challenge).
- :class:`ConvertedSNNDecoder`: a ReLU MLP (:class:`decoders.ann.MLPDecoder`) converted to
  rate-coded integrate-and-fire neurons with reset by subtraction and data-based threshold
  balancing (Diehl et al. 2015, IJCNN; Rueckauer et al. 2017, Front Neurosci 11:682), run for
  ``substeps`` steps per bin.

All are saved as NIR graphs (:mod:`decoders.snn.network`) and run by :mod:`decoders.runtime`; torch
is imported only by ``fit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bci.checks import ensure_float, ensure_int
from decoders.ann import MLPDecoder, check_hidden
from decoders.base import Decoder, FloatArray
from decoders.baselines import lagged
from decoders.errors import DecoderConfigError
from decoders.runtime import OpCounts, SpikingRuntime
from decoders.snn.network import SpikingLayer, SpikingNet, from_nir, to_nir


class _SpikingDecoder(Decoder):
    """Shared parts: the runtime, NIR I/O, op counting."""

    net: SpikingNet
    runtime: SpikingRuntime
    n_lags: int = 1

    def _init_net(self, net: SpikingNet) -> None:
        self.net = net
        self.runtime = SpikingRuntime(net)

    def reset(self) -> None:
        if hasattr(self, "runtime"):
            self.runtime.reset()
            self._history = np.zeros((self.n_lags, self.n_units), np.float64)

    def _input(self, xn: FloatArray) -> FloatArray:
        if self.n_lags == 1:
            return xn
        self._history = np.roll(self._history, 1, axis=0)
        self._history[0] = xn
        return self._history.reshape(-1)

    def _step(self, xn: FloatArray) -> FloatArray:
        return self.runtime.step(self._input(xn)).astype(np.float64)

    def _predict(self, Xn: FloatArray) -> FloatArray:
        out, _, _ = self.runtime.run(lagged(Xn, self.n_lags))
        return out.astype(np.float64)

    def count_ops(self, X: Any) -> OpCounts:
        """Effective synaptic operations per bin and activation sparsity on counts ``X``.

        The first layer sees the normalised counts; a deployment folds the normalisation into its
        weights and biases and takes raw counts, so the input's non-zeros are those of ``X``.
        """
        norm = self._require_fitted()
        Xa = np.asarray(X, dtype=np.float64)
        self.reset()
        _, _, ops = self.runtime.run(lagged(norm.x(Xa), self.n_lags), count=True)
        self.reset()
        # redo the input layer's count on the raw counts (see the docstring)
        raw = lagged(Xa, self.n_lags)
        fan = self.net.layers[0].n_neurons
        ops.macs -= ops.macs  # the input layer is the only MAC source of the runtime count
        binary = bool(np.all((raw == 0) | (raw == 1)))
        nz = float(np.count_nonzero(raw)) * fan
        if binary:
            ops.acs += nz
        else:
            ops.macs += nz
        return ops

    @property
    def n_parameters(self) -> int:
        return self.net.n_parameters

    def to_nir(self) -> Any:
        return to_nir(self.net, self.info.bin_s)

    def from_nir(self, graph: Any, params: dict[str, Any]) -> None:
        self._set_params(params)
        self._init_net(from_nir(graph, self.info.bin_s))

    def _set_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        return self._params(), {}

    def _params(self) -> dict[str, Any]:
        return {"n_lags": self.n_lags}

    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        raise NotImplementedError("spiking decoders load from their NIR graph (from_nir)")


class SNNDecoder(_SpikingDecoder):
    """Feed-forward LIF decoder, streaming one bin per step, trained by surrogate-gradient BPTT.

    Parameters
    ----------
    hidden : tuple of int
        LIF layer widths.
    seed : int
        Seeds initialisation, batches and everything random in training.
    epochs, patience : int
        Maximum epochs and early-stopping patience (validation: last 15% of the training data).
    lr : float
        Adam learning rate.
    rate_penalty : float
        Weight of the mean spike rate in the loss (sparser activity, fewer operations).
    window : int
        Bins per training sequence (BPTT length).
    """

    kind = "snn"
    recurrent = False

    def __init__(
        self,
        hidden: tuple[int, ...] = (64,),
        seed: int = 0,
        epochs: int = 40,
        patience: int = 6,
        lr: float = 3e-3,
        rate_penalty: float = 0.02,
        window: int = 100,
    ) -> None:
        super().__init__()
        self.hidden = check_hidden(hidden)
        self.seed = ensure_int(seed, "seed", minimum=0, error=DecoderConfigError)
        self.epochs = ensure_int(epochs, "epochs", minimum=1, error=DecoderConfigError)
        self.patience = ensure_int(patience, "patience", minimum=1, error=DecoderConfigError)
        self.lr = ensure_float(lr, "lr", minimum=0.0, strict_minimum=True, error=DecoderConfigError)
        self.rate_penalty = ensure_float(
            rate_penalty, "rate_penalty", minimum=0.0, error=DecoderConfigError
        )
        self.window = ensure_int(window, "window", minimum=2, error=DecoderConfigError)
        self.report: Any = None
        self.progress: Any = None

    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:
        from decoders.training import build_spiking_module, fit_sequence_model

        module = build_spiking_module(
            Xn.shape[1], self.hidden, Yn.shape[1], self.recurrent, self.seed
        )
        self.report = fit_sequence_model(
            module, Xn, Yn, seed=self.seed, epochs=self.epochs, patience=self.patience,
            lr=self.lr, rate_penalty=self.rate_penalty, window=self.window,
            progress=self.progress,
        )  # fmt: skip
        self._init_net(module.export())

    def _params(self) -> dict[str, Any]:
        return {"n_lags": 1, "hidden": list(self.hidden), "seed": self.seed}


class RecurrentSNNDecoder(SNNDecoder):
    """Recurrent LIF layer with a leaky-integrator readout (tinyRSNN spirit); see SNNDecoder."""

    kind = "rsnn"
    recurrent = True


class ConvertedSNNDecoder(_SpikingDecoder):
    """A trained ReLU MLP converted to integrate-and-fire neurons (ANN-to-SNN conversion).

    Each ReLU becomes an IF neuron (``beta = 1``) with reset by subtraction; layer ``l``'s
    threshold is the ``percentile`` of its ReLU activations on the training data (threshold
    balancing, per neuron: channel-wise normalisation as in Kim et al. 2020, AAAI), and the next
    layer's weights are scaled by it, so a neuron's spike rate over the
    ``substeps`` sub-steps of a bin approximates its ReLU activation. The bin's input (the lagged,
    normalised counts, as for the MLP) is held over the sub-steps; the readout is the mean over
    them. Membranes restart at each bin (``bin_reset``), so the network is as memoryless as the MLP.

    Parameters
    ----------
    substeps : int
        IF updates per bin (more: closer to the ANN, more operations).
    percentile : float
        Activation percentile used as threshold.
    mlp : MLPDecoder or None
        A fitted source network; None trains one (``MLPDecoder(**mlp_kwargs)``) in ``fit``.
    """

    kind = "converted_snn"

    def __init__(
        self,
        substeps: int = 16,
        percentile: float = 99.9,
        mlp: MLPDecoder | None = None,
        **mlp_kwargs: Any,
    ) -> None:
        super().__init__()
        self.substeps = ensure_int(substeps, "substeps", minimum=1, error=DecoderConfigError)
        self.percentile = ensure_float(
            percentile, "percentile", minimum=0.0, maximum=100.0, error=DecoderConfigError
        )
        self.mlp = mlp
        self.mlp_kwargs = mlp_kwargs

    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:
        mlp = self.mlp
        if mlp is None or not mlp.is_fitted:
            mlp = MLPDecoder(**self.mlp_kwargs)
            mlp.n_units, mlp.n_outputs, mlp.norm = self.n_units, self.n_outputs, self.norm
            mlp._fit(Xn, Yn)
        elif mlp.n_units != self.n_units:
            raise DecoderConfigError(
                f"Invalid value for the 'mlp' parameter: it was fitted on {mlp.n_units} units, "
                f"the data have {self.n_units}."
            )
        self.mlp = mlp
        self.n_lags = mlp.n_lags
        own = self._require_fitted()
        A = lagged(mlp.norm.x(Xn * own.x_std + own.x_mean) if mlp.norm else Xn, mlp.n_lags)
        # the MLP's own normalisation is the one the network expects
        if mlp.norm is not None:
            self.norm = mlp.norm
        acts = mlp.activations(A)[:-1]
        layers = []
        prev_scale: Any = 1.0
        for w, b, act in zip(mlp.weights, mlp.biases, acts, strict=False):
            lam = np.percentile(act, self.percentile, axis=0)
            lam = np.where(lam > 1e-6, lam, max(float(lam.max()), 1e-6))  # silent neurons
            layers.append(
                SpikingLayer(
                    (w * prev_scale).astype(np.float32),
                    b.astype(np.float32),
                    np.ones(w.shape[0], np.float32),
                    lam.astype(np.float32),
                    None,
                    "subtract",
                )
            )
            prev_scale = lam[None, :]
        w_out, b_out = mlp.weights[-1], mlp.biases[-1]
        self._init_net(
            SpikingNet(
                layers,
                (w_out * prev_scale).astype(np.float32),
                b_out.astype(np.float32),
                np.zeros(w_out.shape[0], np.float32),
                self.substeps,
                bin_reset=True,
            )
        )

    def _params(self) -> dict[str, Any]:
        return {"n_lags": self.n_lags, "substeps": self.substeps, "percentile": self.percentile}
