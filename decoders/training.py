"""Training of the gradient-trained decoders (torch, imported only here and only when training).

Spiking layers are trained with surrogate-gradient backpropagation through time (Neftci, Mostafa
& Zenke 2019, IEEE Signal Process Mag 36:51): the spike's derivative is replaced by the fast
sigmoid ``1 / (1 + k |v - theta|)^2`` (SuperSpike, Zenke & Ganguli 2018, Neural Comput 30:1514).
The torch step is the update rule of :mod:`decoders.snn.network`, in float32, so the trained
network exported to NIR runs identically in :mod:`decoders.runtime`.

Every fit is seeded, holds out the last ``val_fraction`` of the training data, and keeps the
parameters of the epoch with the lowest validation loss (early stopping after ``patience``
epochs without improvement). The validation loss is that of the whole validation stretch decoded
from the reset state, as :meth:`decoders.Decoder.predict` would.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from decoders.errors import DecoderConfigError
from decoders.snn.network import SpikingLayer, SpikingNet


def require_torch() -> Any:
    """Import torch, or raise a clear error naming the extra to install."""
    try:
        import torch
    except ModuleNotFoundError:
        raise DecoderConfigError(
            "Training this decoder needs torch: install the 'train' extra "
            "(pip install 'bci-closed-loop[train]'). Trained models run without it."
        ) from None
    return torch


@dataclass
class TrainingReport:
    """What a fit did: epochs run, the best epoch and its validation loss, wall time."""

    epochs: int
    best_epoch: int
    best_val_loss: float
    wall_s: float


def _spike_fn(torch: Any, slope: float) -> Any:
    class FastSigmoidSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(x)
            return (x > 0).to(x.dtype)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            return grad / (1.0 + slope * x.abs()) ** 2

    return FastSigmoidSpike.apply


def build_spiking_module(
    n_in: int,
    hidden: tuple[int, ...],
    n_out: int,
    recurrent: bool,
    seed: int,
    beta_init: float = 0.9,
    beta_out_init: float = 0.8,
    slope: float = 5.0,
) -> Any:
    """A torch module of the network of :mod:`decoders.snn.network` (reset to zero, threshold 1)."""
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(seed)
    spike = _spike_fn(torch, slope)

    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    class SpikingModule(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            sizes = (n_in, *hidden)
            self.fc = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            )
            self.rec = nn.ModuleList(
                nn.Linear(h, h, bias=False) for h in (hidden if recurrent else ())
            )
            for r in self.rec:
                nn.init.orthogonal_(r.weight, gain=0.3)
            self.beta_p = nn.ParameterList(
                nn.Parameter(torch.full((h,), logit(beta_init))) for h in hidden
            )
            self.out = nn.Linear(hidden[-1], n_out)
            self.record = False
            self.beta_out_p = nn.Parameter(torch.full((n_out,), logit(beta_out_init)))

        def forward(self, x: Any) -> tuple[Any, Any]:
            """x (batch, time, n_in) -> readout (batch, time, n_out), mean spike rate."""
            b, t, _ = x.shape
            v = [x.new_zeros(b, h) for h in hidden]
            s = [x.new_zeros(b, h) for h in hidden]
            y = x.new_zeros(b, n_out)
            betas = [torch.sigmoid(p) for p in self.beta_p]
            beta_out = torch.sigmoid(self.beta_out_p)
            currents0 = self.fc[0](x)  # the first layer's input current of every step at once
            outs, rate = [], 0.0
            self.recorded: list[list[Any]] = [
                [] for _ in hidden
            ]  # spikes of each layer, when record is set
            for k in range(t):
                inp = None
                for i in range(len(hidden)):
                    cur = currents0[:, k] if i == 0 else self.fc[i](inp)
                    if recurrent:
                        cur = cur + self.rec[i](s[i])
                    vi = betas[i] * v[i] + cur
                    si = spike(vi - 1.0)
                    v[i] = vi * (1.0 - si.detach())
                    s[i] = si
                    inp = si
                    rate = rate + si.mean()
                    if self.record:
                        self.recorded[i].append(si.detach())
                y = beta_out * y + self.out(inp)
                outs.append(y)
            return torch.stack(outs, dim=1), rate / (t * len(hidden))

        def export(self) -> SpikingNet:
            def a(p: Any) -> npt.NDArray[np.float32]:
                return np.asarray(p.detach().cpu().numpy(), dtype=np.float32)

            layers = []
            for i in range(len(hidden)):
                layers.append(
                    SpikingLayer(
                        a(self.fc[i].weight),
                        a(self.fc[i].bias),
                        a(torch.sigmoid(self.beta_p[i])),
                        np.ones(hidden[i], np.float32),
                        a(self.rec[i].weight) if recurrent else None,
                        "zero",
                    )
                )
            return SpikingNet(
                layers, a(self.out.weight), a(self.out.bias), a(torch.sigmoid(self.beta_out_p))
            )

    return SpikingModule()


def fit_sequence_model(
    model: Any,
    Xn: npt.NDArray[np.float64],
    Yn: npt.NDArray[np.float64],
    *,
    seed: int,
    epochs: int = 60,
    patience: int = 8,
    window: int = 100,
    burn_in: int = 10,
    batch_size: int = 32,
    windows_per_epoch: int = 256,
    lr: float = 3e-3,
    val_fraction: float = 0.15,
    rate_penalty: float = 0.0,
    stateless: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainingReport:
    """Train ``model`` (forward: ``(B, T, n_in) -> (B, T, n_out)[, rate]``) on windows of the data.

    ``stateless`` models (an MLP over lagged bins) map each row alone; they are trained on rows.
    ``progress(epoch, epochs, val_loss)`` is called after each epoch.
    """
    torch = require_torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_val = max(int(round(val_fraction * len(Xn))), window)
    if len(Xn) - n_val < window + 1:
        raise DecoderConfigError(
            f"Too little training data: {len(Xn)} bins leave fewer than {window + 1} for training "
            f"after the {n_val}-bin validation split."
        )
    X = torch.as_tensor(Xn, dtype=torch.float32)
    Y = torch.as_tensor(Yn, dtype=torch.float32)
    Xtr, Ytr, Xva, Yva = X[:-n_val], Y[:-n_val], X[-n_val:], Y[-n_val:]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, best_epoch, since = np.inf, copy.deepcopy(model.state_dict()), 0, 0
    t0 = time.perf_counter()
    epoch = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # "a few minutes on one core"; small matrices gain nothing from more
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            if stateless:
                order = torch.as_tensor(rng.permutation(len(Xtr)))
                for k in range(0, len(order), 256):
                    idx = order[k : k + 256]
                    out = model(Xtr[idx][:, None])
                    out = out[0] if isinstance(out, tuple) else out
                    loss = torch.mean((out[:, 0] - Ytr[idx]) ** 2)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            else:
                starts = rng.integers(0, len(Xtr) - window, windows_per_epoch)
                for k in range(0, len(starts), batch_size):
                    idx = torch.as_tensor(starts[k : k + batch_size])[:, None] + torch.arange(
                        window
                    )
                    out, rate = model(Xtr[idx])
                    loss = torch.mean((out[:, burn_in:] - Ytr[idx][:, burn_in:]) ** 2)
                    loss = loss + rate_penalty * rate
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
            model.eval()
            with torch.no_grad():
                out = model(Xva[:, None] if stateless else Xva[None])
                out = out[0] if isinstance(out, tuple) else out
                out = out[:, 0] if stateless else out[0]
                val = float(torch.mean((out - Yva) ** 2))
            if progress is not None:
                progress(epoch, epochs, val)
            if val < best - 1e-5:
                best, best_state, best_epoch, since = (
                    val,
                    copy.deepcopy(model.state_dict()),
                    epoch,
                    0,
                )
            else:
                since += 1
                if since >= patience:
                    break
    finally:
        torch.set_num_threads(threads)
    model.load_state_dict(best_state)
    return TrainingReport(epoch, best_epoch, float(best), time.perf_counter() - t0)
