"""Numpy runtime of spiking decoders: one bin per call, no torch.

:class:`SpikingRuntime` runs a :class:`~decoders.snn.network.SpikingNet` (loaded from its NIR
graph) with the update rule stated in :mod:`decoders.snn.network`, in float32, the same
arithmetic as the torch model it was trained as. Counting mode (:meth:`SpikingRuntime.run` with
``count=True``) also tallies what NeuroBench calls effective synaptic operations: for each
connection, the number of non-zero inputs times their fan-out, counted as accumulates (ACs) when
the inputs are spikes and as multiply-accumulates (MACs) otherwise (binned counts, held analog
inputs); biases are not counted (NeuroBench's definition, Yik et al. 2025, Nat Commun 16:1545).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from decoders.snn.network import SpikingNet

F32 = npt.NDArray[np.float32]


@dataclass
class OpCounts:
    """Effective synaptic operations and spike statistics accumulated over bins."""

    bins: int = 0
    macs: float = 0.0
    acs: float = 0.0
    dense: float = 0.0
    spikes: float = 0.0
    neuron_steps: float = 0.0

    @property
    def macs_per_bin(self) -> float:
        return self.macs / max(self.bins, 1)

    @property
    def acs_per_bin(self) -> float:
        return self.acs / max(self.bins, 1)

    @property
    def activation_sparsity(self) -> float:
        """Fraction of neuron updates without a spike (NeuroBench's activation sparsity)."""
        return 1.0 - self.spikes / max(self.neuron_steps, 1.0)


class SpikingRuntime:
    """Step a spiking decoder network one bin at a time.

    Parameters
    ----------
    net : SpikingNet
        The network (from :func:`decoders.snn.network.from_nir` or a trained decoder).
    """

    def __init__(self, net: SpikingNet) -> None:
        self.net = net
        self._w_in = [np.ascontiguousarray(lay.w_in, np.float32) for lay in net.layers]
        self._b_in = [lay.b_in.astype(np.float32) for lay in net.layers]
        self._w_rec = [
            None if lay.w_rec is None else np.ascontiguousarray(lay.w_rec, np.float32)
            for lay in net.layers
        ]
        self._beta = [lay.beta.astype(np.float32) for lay in net.layers]
        self._thr = [lay.threshold.astype(np.float32) for lay in net.layers]
        self._subtract = [lay.reset == "subtract" for lay in net.layers]
        self._w_out = np.ascontiguousarray(net.w_out, np.float32)
        self._b_out = net.b_out.astype(np.float32)
        self._beta_out = net.beta_out.astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Membranes, spikes and readout back to zero."""
        self.v = [np.zeros(lay.n_neurons, np.float32) for lay in self.net.layers]
        self.s = [np.zeros(lay.n_neurons, np.float32) for lay in self.net.layers]
        self.y = np.zeros(self.net.n_outputs, np.float32)

    def step(self, x: npt.ArrayLike) -> F32:
        """One bin: normalised input ``(n_inputs,)`` -> readout ``(n_outputs,)`` (float32)."""
        x = np.asarray(x, dtype=np.float32)
        n_sub = self.net.substeps
        if self.net.bin_reset:
            self.reset()
        # the input is held over the sub-steps, so its current is computed once per bin
        current0 = self._w_in[0] @ x + self._b_in[0]
        if n_sub == 1:
            return self._substep(current0).copy()
        acc = np.zeros_like(self.y)
        for _ in range(n_sub):
            acc += self._substep(current0)
        return acc / np.float32(n_sub)

    def _substep(self, current0: F32, ops: OpCounts | None = None) -> F32:
        current = current0
        inp = current0
        for i in range(len(self._w_in)):
            if i > 0:
                current = self._w_in[i] @ inp + self._b_in[i]
                if ops is not None:
                    ops.acs += float(inp.sum()) * current.size
                    ops.dense += inp.size * current.size
            w_rec = self._w_rec[i]
            if w_rec is not None:
                current = current + w_rec @ self.s[i]
                if ops is not None:
                    ops.acs += float(self.s[i].sum()) * current.size
                    ops.dense += float(current.size) ** 2
            v = self._beta[i] * self.v[i] + current
            s = (v > self._thr[i]).astype(np.float32)
            if self._subtract[i]:
                v -= s * self._thr[i]
            else:
                v *= np.float32(1.0) - s
            self.v[i], self.s[i] = v, s
            inp = s
            if ops is not None:
                ops.spikes += float(s.sum())
                ops.neuron_steps += s.size
        self.y = self._beta_out * self.y + self._w_out @ inp + self._b_out
        if ops is not None:
            ops.acs += float(inp.sum()) * self.y.size
            ops.dense += inp.size * self.y.size
        return self.y

    def run(self, X: npt.ArrayLike, count: bool = False) -> tuple[F32, list[F32], OpCounts]:
        """Step through ``X (n_bins, n_inputs)`` from the current state.

        Returns the readouts ``(n_bins, n_outputs)``, the spikes of each layer (last sub-step of
        each bin, ``(n_bins, n_neurons)``), and the operation counts (zeros unless ``count``).
        """
        X = np.asarray(X, dtype=np.float32)
        out = np.zeros((X.shape[0], self.net.n_outputs), np.float32)
        spikes = [np.zeros((X.shape[0], lay.n_neurons), np.float32) for lay in self.net.layers]
        ops = OpCounts()
        for t in range(X.shape[0]):
            if count:
                out[t] = self._counted_step(X[t], ops)
            else:
                out[t] = self.step(X[t])
            for i, s in enumerate(self.s):
                spikes[i][t] = s
        return out, spikes, ops

    def _counted_step(self, x: F32, ops: OpCounts) -> F32:
        """:meth:`step` that also adds the bin's effective operations to ``ops``."""
        ops.bins += 1
        nz = float(np.count_nonzero(x))
        fan = self._w_in[0].shape[0]
        if bool(np.all((x == 0) | (x == 1))):
            ops.acs += nz * fan
        else:
            ops.macs += nz * fan
        ops.dense += x.size * fan
        if self.net.bin_reset:
            self.reset()
        current0 = self._w_in[0] @ x + self._b_in[0]
        n_sub = self.net.substeps
        acc = np.zeros_like(self.y)
        for _ in range(n_sub):
            acc += self._substep(current0, ops)
        return acc / np.float32(n_sub)
