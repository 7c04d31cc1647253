"""NeuroBench's own metrics on the decoders of ``bench_decoders.py``.

NeuroBench (Yik et al. 2025, Nat Commun 16:1545) measures a model by hooking the torch modules
it runs: ``Footprint`` sums the bytes of its parameters and buffers, ``ActivationSparsity`` counts
the zeros in the outputs of its activation modules (ReLU, spiking neurons), and
``SynapticOperations`` replays the input of every connection layer (``nn.Linear``, ``nn.GRUCell``)
through a binarised copy of it: non-zero inputs x non-zero fan-out, as accumulates (ACs) when the
input holds only 0 and +-1 (spikes) and as multiply-accumulates (MACs) otherwise, biases not
counted, per sample. Here a sample is one bin: the wrapped model steps through the bins one at a
time, carrying its state, as the decoders do online, so the counts are per bin.

Each decoder is rebuilt as a torch module from its fitted numpy parameters, with its input
normalisation folded into the first layer (``W / std``, ``b - W mean / std``), so the module takes
the raw binned counts, as a deployment would, and computes the decoder's outputs (checked by the
caller against ``predict``). Spiking layers are :class:`LIFActivation` modules (registered with
NeuroBench as activation modules) that apply the runtime's update rule; their spikes feed
``nn.Linear`` layers, which NeuroBench therefore counts as ACs.

NeuroBench is the ``bench`` extra, installed without its dependencies (``make bench`` runs
``pip install --no-deps neurobench==2.3.0``): its requirements name ``torchaudio`` and ``tonic``,
which only its datasets and audio pre-processors import, and whose releases pull another torch
and numpy < 2. Its metric, model and benchmark modules need only torch, snnTorch, numpy and tqdm.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from decoders.baselines import WienerDecoder
from decoders.snn.decoder import _SpikingDecoder

NEUROBENCH_VERSION = "2.3.0"


def available() -> str | None:
    """NeuroBench's version if it imports, else None."""
    try:
        import neurobench
    except ImportError:
        return None
    return str(neurobench.__version__)


def _fold(w: np.ndarray, b: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[Any, Any]:
    """``W ((x - mean) / std) + b`` as ``W' x + b'`` (``x`` raw, possibly lagged and tiled)."""
    reps = w.shape[1] // mean.size
    m, s = np.tile(mean, reps), np.tile(std, reps)
    return w / s[None, :], b - (w / s[None, :]) @ m


def _build(dec: Any) -> tuple[Any, list[Any]]:
    """A torch module stepping ``dec`` one raw bin per call, and its extra activation classes."""
    import torch
    from torch import nn

    norm = dec.norm

    def linear(w: np.ndarray, b: np.ndarray | None, dtype: Any = torch.float32) -> nn.Linear:
        lay = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(dtype)
        with torch.no_grad():
            lay.weight.copy_(torch.as_tensor(w, dtype=dtype))
            if b is not None:
                lay.bias.copy_(torch.as_tensor(b, dtype=dtype))
        return lay

    class LIFActivation(nn.Module):
        """Leaky integrate-and-fire neurons (runtime rule; per-neuron beta and threshold)."""

        def __init__(self, beta: np.ndarray, threshold: np.ndarray, subtract: bool) -> None:
            super().__init__()
            self.register_buffer("beta", torch.as_tensor(beta, dtype=torch.float32))
            self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.float32))
            self.subtract = subtract
            self.v = torch.zeros(1, beta.size)

        def forward(self, current: Any) -> Any:
            v = self.beta * self.v + current
            s = (v > self.threshold).float()
            self.v = v - s * self.threshold if self.subtract else v * (1.0 - s)
            return s

    class Lagged(nn.Module):
        """Keeps the last ``n_lags`` raw bins (newest first, zeros at reset)."""

        def __init__(self, n_units: int, n_lags: int, dtype: Any) -> None:
            super().__init__()
            self.n_units, self.n_lags, self.dtype = n_units, n_lags, dtype
            self.reset()

        def reset(self) -> None:
            self.hist = torch.zeros(1, self.n_units * self.n_lags, dtype=self.dtype)

        def push(self, x: Any) -> Any:
            self.hist = torch.cat([x.to(self.dtype), self.hist[:, : -self.n_units]], dim=1)
            return self.hist

    if isinstance(dec, _SpikingDecoder):
        net = dec.net

        class SpikingModule(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                lay0 = net.layers[0]
                self.lag = Lagged(dec.n_units, dec.n_lags, torch.float32)
                w0, b0 = _fold(lay0.w_in.astype(np.float64), lay0.b_in, norm.x_mean, norm.x_std)
                self.inputs = nn.ModuleList([linear(w0, b0)])
                self.inputs.extend(linear(lay.w_in, lay.b_in) for lay in net.layers[1:])
                self.recurrent = nn.ModuleList(
                    [linear(lay.w_rec, None) for lay in net.layers if lay.w_rec is not None]
                )
                self.neurons = nn.ModuleList(
                    LIFActivation(lay.beta, lay.threshold, lay.reset == "subtract")
                    for lay in net.layers
                )
                self.readout = linear(net.w_out, net.b_out)
                self.register_buffer("beta_out", torch.as_tensor(net.beta_out))
                self.reset()

            def reset(self) -> None:
                self.lag.reset()
                self._reset_state()

            def _reset_state(self) -> None:
                for lif in self.neurons:
                    lif.v = torch.zeros_like(lif.beta)[None]
                self.s = [torch.zeros_like(lif.beta)[None] for lif in self.neurons]
                self.y = torch.zeros(1, net.n_outputs)

            def forward(self, x: Any) -> Any:
                if net.bin_reset:
                    self._reset_state()
                current0 = self.inputs[0](self.lag.push(x))  # once per bin: the input is held
                acc = torch.zeros(1, net.n_outputs)
                rec = iter(self.recurrent)
                recs = [next(rec) if lay.w_rec is not None else None for lay in net.layers]
                for _ in range(net.substeps):
                    inp = None
                    for i, lif in enumerate(self.neurons):
                        current = current0 if i == 0 else self.inputs[i](inp)
                        if recs[i] is not None:
                            current = current + recs[i](self.s[i])
                        self.s[i] = lif(current)
                        inp = self.s[i]
                    self.y = self.beta_out * self.y + self.readout(inp)
                    acc = acc + self.y
                return acc / net.substeps

        return SpikingModule(), [LIFActivation]

    if hasattr(dec, "w_ih"):  # GRUDecoder

        class GRUModule(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.gru = nn.GRUCell(dec.w_ih.shape[1], dec.hidden)
                w_ih, b_ih = _fold(dec.w_ih, dec.b_ih, norm.x_mean, norm.x_std)
                with torch.no_grad():
                    self.gru.weight_ih.copy_(torch.as_tensor(w_ih, dtype=torch.float32))
                    self.gru.bias_ih.copy_(torch.as_tensor(b_ih, dtype=torch.float32))
                    self.gru.weight_hh.copy_(torch.as_tensor(dec.w_hh, dtype=torch.float32))
                    self.gru.bias_hh.copy_(torch.as_tensor(dec.b_hh, dtype=torch.float32))
                self.readout = linear(dec.w_out, dec.b_out)
                self.reset()

            def reset(self) -> None:
                self.h = torch.zeros(1, dec.hidden)

            def forward(self, x: Any) -> Any:
                self.h = self.gru(x, self.h)
                return self.readout(self.h)

        return GRUModule(), []

    if hasattr(dec, "biases"):  # MLPDecoder

        class MLPModule(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lag = Lagged(dec.n_units, dec.n_lags, torch.float32)
                w0, b0 = _fold(dec.weights[0], dec.biases[0], norm.x_mean, norm.x_std)
                ws, bs = [w0, *dec.weights[1:]], [b0, *dec.biases[1:]]
                mods: list[nn.Module] = []
                for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
                    mods.append(linear(w, b))
                    if i < len(ws) - 1:
                        mods.append(nn.ReLU())
                self.layers = nn.Sequential(*mods)

            def reset(self) -> None:
                self.lag.reset()

            def forward(self, x: Any) -> Any:
                return self.layers(self.lag.push(x))

        return MLPModule(), []

    if isinstance(dec, WienerDecoder):

        class WienerModule(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lag = Lagged(dec.n_units, dec.n_lags, torch.float32)
                w, b = _fold(dec.weights.T, dec.intercept, norm.x_mean, norm.x_std)
                self.linear = linear(w, b)

            def reset(self) -> None:
                self.lag.reset()

            def forward(self, x: Any) -> Any:
                return self.linear(self.lag.push(x))

        return WienerModule(), []

    raise TypeError(f"{type(dec).__name__} has no layers NeuroBench can measure")


def measure(dec: Any, X: np.ndarray, Y: np.ndarray) -> dict[str, Any]:
    """NeuroBench's footprint, activation sparsity, synaptic operations and R2 of ``dec``.

    ``X`` are raw counts ``(n_bins, n_units)`` and ``Y`` the targets ``(n_bins, 2)`` in physical
    units; the model steps through the bins from its reset state. Returns NeuroBench's numbers
    and ``max_abs_diff``, the largest difference between the module's outputs and
    ``dec.predict(X)`` once the lag history is full (so the measured module is the decoder). Raises TypeError for a decoder
    without layers NeuroBench can hook (the Kalman filter).
    """
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import Footprint
    from neurobench.metrics.workload import R2, ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    module, activation_classes = _build(dec)
    norm = dec.norm
    outputs: list[Any] = []

    class SteppedModel(TorchModel):
        """One bin per forward call, state carried across the bins of a batch."""

        def __call__(self, batch: Any) -> Any:
            with torch.no_grad():
                rows = [self.net(batch[i : i + 1]) for i in range(batch.shape[0])]
            out = torch.cat(rows).double()
            # outputs in physical units (the decoders' normalisation of Y)
            out = out * torch.as_tensor(norm.y_std) + torch.as_tensor(norm.y_mean)
            outputs.append(out)
            return out

    model = SteppedModel(module)
    for cls in activation_classes:
        model.add_activation_module(cls)
    module.reset()
    data = torch.utils.data.TensorDataset(
        torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float64)
    )
    loader = torch.utils.data.DataLoader(data, batch_size=len(X), shuffle=False)
    bench = Benchmark(
        model, loader, [], [], [[Footprint], [ActivationSparsity, SynapticOperations, R2]]
    )
    res = bench.run(quiet=True)
    ops = res["SynapticOperations"]
    dec.reset()
    ref = dec.predict(X)
    got = torch.cat(outputs).numpy()
    # the decoders pad the lag history with the mean (normalised zeros), the module with raw
    # zeros (what NeuroBench should count): outputs agree from the first full history on
    skip = int(getattr(dec, "n_lags", 1)) - 1
    return {
        "version": available(),
        "footprint_bytes": float(res["Footprint"]),
        "sparsity": float(res["ActivationSparsity"]),
        "macs": float(ops["Effective_MACs"]),
        "acs": float(ops["Effective_ACs"]),
        "dense": float(ops["Dense"]),
        "r2": float(res["R2"]),
        "max_abs_diff": float(np.max(np.abs(got[skip:] - ref[skip:]))),
    }
