"""A small ANN baseline: a ReLU multilayer perceptron over the last few bins (NeuroBench's ANN
baseline for primate reaching is of this kind; Yik et al. 2025, Nat Commun 16:1545).

Trained in torch (:mod:`decoders.training`), run in numpy, saved as an npz; it is also the source
network of :class:`decoders.snn.decoder.ConvertedSNNDecoder`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bci.checks import ensure_int
from decoders.base import Decoder, FloatArray
from decoders.baselines import lagged
from decoders.errors import DecoderConfigError
from decoders.runtime import OpCounts


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """A non-empty tuple of layer widths >= 1."""
    sizes = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if not sizes:
        raise DecoderConfigError(
            "Invalid value for the 'hidden' parameter: give at least one layer."
        )
    return tuple(ensure_int(h, "hidden", minimum=1, error=DecoderConfigError) for h in sizes)


class MLPDecoder(Decoder):
    """ReLU MLP over the last ``n_lags`` bins.

    Parameters
    ----------
    n_lags : int
        Bins of history fed at once (the current one included).
    hidden : tuple of int
        Hidden layer widths.
    seed, epochs, patience, lr, weight_decay
        Training (seeded; early stopping on the last 15% of the training data).
    """

    kind = "mlp"

    def __init__(
        self,
        n_lags: int = 5,
        hidden: tuple[int, ...] = (256,),
        seed: int = 0,
        epochs: int = 40,
        patience: int = 5,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        self.n_lags = ensure_int(n_lags, "n_lags", minimum=1, error=DecoderConfigError)
        self.hidden = check_hidden(hidden)
        self.seed = ensure_int(seed, "seed", minimum=0, error=DecoderConfigError)
        self.epochs = ensure_int(epochs, "epochs", minimum=1, error=DecoderConfigError)
        self.patience = ensure_int(patience, "patience", minimum=1, error=DecoderConfigError)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.weights: list[FloatArray] = []
        self.biases: list[FloatArray] = []
        self.report: Any = None

    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:
        from decoders.training import fit_sequence_model, require_torch

        torch = require_torch()
        torch.manual_seed(self.seed)
        sizes = (Xn.shape[1] * self.n_lags, *self.hidden)
        mods: list[Any] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        mods.append(torch.nn.Linear(sizes[-1], Yn.shape[1]))
        net = torch.nn.Sequential(*mods)
        self.report = fit_sequence_model(
            net, lagged(Xn, self.n_lags), Yn, seed=self.seed, epochs=self.epochs,
            patience=self.patience, lr=self.lr, stateless=True,
        )  # fmt: skip
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        self.weights = [m.weight.detach().numpy().astype(np.float64) for m in linears]
        self.biases = [m.bias.detach().numpy().astype(np.float64) for m in linears]

    def reset(self) -> None:
        self._history = np.zeros((self.n_lags, self.n_units))

    def activations(self, A: FloatArray) -> list[FloatArray]:
        """Activations of every layer for lagged inputs ``A`` (rows), the output last."""
        acts = []
        h = A
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
            acts.append(h)
        return acts

    def _step(self, xn: FloatArray) -> FloatArray:
        self._history = np.roll(self._history, 1, axis=0)
        self._history[0] = xn
        return self.activations(self._history.reshape(1, -1))[-1][0]

    def _predict(self, Xn: FloatArray) -> FloatArray:
        return self.activations(lagged(Xn, self.n_lags))[-1]

    def count_ops(self, X: Any) -> OpCounts:
        """Effective MACs per bin on counts ``X`` (non-zero inputs and activations x fan-out)."""
        norm = self._require_fitted()
        A = lagged(norm.x(np.asarray(X, dtype=np.float64)), self.n_lags)
        raw = lagged(np.asarray(X, dtype=np.float64), self.n_lags)
        acts = self.activations(A)
        ops = OpCounts(bins=len(A))
        # normalised zero counts are not zero; a deployed MLP takes raw counts with the
        # normalisation folded into the first layer, so sparsity is that of the raw counts
        ins = [raw, *acts[:-1]]
        for h, w in zip(ins, self.weights, strict=True):
            ops.macs += float(np.count_nonzero(h)) * w.shape[0]
            ops.dense += h.shape[0] * h.shape[1] * w.shape[0]
        hidden = acts[:-1]
        ops.spikes = float(sum(np.count_nonzero(h) for h in hidden))
        ops.neuron_steps = float(sum(h.size for h in hidden))
        return ops

    @property
    def n_parameters(self) -> int:
        return int(sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=True)))

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        arrays: dict[str, FloatArray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        params = {"n_lags": self.n_lags, "hidden": list(self.hidden), "seed": self.seed}
        return params, arrays

    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        self.n_lags, self.hidden, self.seed = (
            int(params["n_lags"]),
            tuple(params["hidden"]),
            int(params["seed"]),
        )
        n = len(self.hidden) + 1
        self.weights = [arrays[f"w{i}"] for i in range(n)]
        self.biases = [arrays[f"b{i}"] for i in range(n)]


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


class GRUDecoder(Decoder):
    """A one-layer GRU (Cho et al. 2014) with a linear readout: the recurrent ANN baseline
    (NeuroBench's best primate-reaching entry is a GRU).

    Trained in torch on windows with early stopping, as the SNNs; run in numpy with PyTorch's
    gate equations (``r, z, n`` order). Saved as an npz.

    Parameters
    ----------
    hidden : int
        GRU units.
    seed, epochs, patience, lr, window
        Training, as for :class:`decoders.snn.decoder.SNNDecoder`.
    """

    kind = "gru"

    def __init__(
        self,
        hidden: int = 64,
        seed: int = 0,
        epochs: int = 40,
        patience: int = 6,
        lr: float = 3e-3,
        window: int = 100,
    ) -> None:
        super().__init__()
        self.hidden = ensure_int(hidden, "hidden", minimum=1, error=DecoderConfigError)
        self.seed = ensure_int(seed, "seed", minimum=0, error=DecoderConfigError)
        self.epochs = ensure_int(epochs, "epochs", minimum=1, error=DecoderConfigError)
        self.patience = ensure_int(patience, "patience", minimum=1, error=DecoderConfigError)
        self.lr = float(lr)
        self.window = ensure_int(window, "window", minimum=2, error=DecoderConfigError)
        self.report: Any = None
        self.progress: Any = None

    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:
        from decoders.training import fit_sequence_model, require_torch

        torch = require_torch()
        torch.manual_seed(self.seed)
        hidden, n_out = self.hidden, Yn.shape[1]

        class GRUModule(torch.nn.Module):  # type: ignore[name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.gru = torch.nn.GRU(Xn.shape[1], hidden, batch_first=True)
                self.out = torch.nn.Linear(hidden, n_out)

            def forward(self, x: Any) -> tuple[Any, float]:
                h, _ = self.gru(x)
                return self.out(h), 0.0

        module = GRUModule()
        self.report = fit_sequence_model(
            module, Xn, Yn, seed=self.seed, epochs=self.epochs, patience=self.patience,
            lr=self.lr, window=self.window, progress=self.progress,
        )  # fmt: skip
        g = module.gru
        self.w_ih = g.weight_ih_l0.detach().numpy().astype(np.float64)
        self.w_hh = g.weight_hh_l0.detach().numpy().astype(np.float64)
        self.b_ih = g.bias_ih_l0.detach().numpy().astype(np.float64)
        self.b_hh = g.bias_hh_l0.detach().numpy().astype(np.float64)
        self.w_out = module.out.weight.detach().numpy().astype(np.float64)
        self.b_out = module.out.bias.detach().numpy().astype(np.float64)

    def reset(self) -> None:
        self._h = np.zeros(self.hidden)

    def _gru_step(self, xn: FloatArray) -> FloatArray:
        H = self.hidden
        gi = self.w_ih @ xn + self.b_ih
        gh = self.w_hh @ self._h + self.b_hh
        r = _sigmoid(gi[:H] + gh[:H])
        z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
        n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
        self._h = (1.0 - z) * n + z * self._h
        return self._h

    def _step(self, xn: FloatArray) -> FloatArray:
        return np.asarray(self.w_out @ self._gru_step(xn) + self.b_out)

    def count_ops(self, X: Any) -> OpCounts:
        """Effective MACs per bin: non-zero raw counts and hidden values x their fan-out."""
        norm = self._require_fitted()
        Xa = np.asarray(X, dtype=np.float64)
        Xn = norm.x(Xa)
        self.reset()
        ops = OpCounts(bins=len(Xa))
        H3 = 3 * self.hidden
        for x_raw, xn in zip(Xa, Xn, strict=True):
            ops.macs += float(np.count_nonzero(x_raw)) * H3 + float(np.count_nonzero(self._h)) * H3
            h = self._gru_step(xn)
            ops.macs += float(np.count_nonzero(h)) * self.n_outputs
            ops.spikes += float(np.count_nonzero(h))  # non-zero activations
            ops.neuron_steps += self.hidden
            ops.dense += (x_raw.size + self.hidden) * H3 + self.hidden * self.n_outputs
        self.reset()
        return ops

    @property
    def n_parameters(self) -> int:
        return int(sum(a.size for a in self._state()[1].values()))

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        names = ("w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out")
        return {"hidden": self.hidden, "seed": self.seed}, {n: getattr(self, n) for n in names}

    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        self.hidden, self.seed = int(params["hidden"]), int(params["seed"])
        for name, value in arrays.items():
            setattr(self, name, value)
