"""A spiking decoder network as plain arrays, and its NIR graph.

Update rule of one hidden layer at bin (or sub-step) ``t``, per neuron, with ``beta`` the
per-neuron membrane decay (1 for integrate-and-fire) and ``theta`` the per-neuron threshold::

    I_t = W_in x_t + b_in (+ W_rec s_{t-1})     input current (recurrent layers: last step's spikes)
    v_t = beta * v_{t-1} + I_t                    leaky integration
    s_t = 1 if v_t > theta else 0                 spike
    v_t = 0 where s_t (reset="zero")   or   v_t - theta where s_t (reset="subtract")

The readout is a leaky integrator (non-spiking): ``y_t = beta_out * y_{t-1} + W_out s_t + b_out``
(``beta_out = 0``: a plain affine map of the spikes). Layers are stacked; the converted networks
run ``substeps`` updates per bin with the bin's input held and report the mean readout; with
``bin_reset`` the membranes restart from zero at each bin (a ReLU's negative input must not pile up
as negative charge in an integrate-and-fire neuron that has no floor).

In NIR (Pedersen et al. 2024, Nat Commun 15:8122) with ``dt`` the bin width, each layer is an
``Affine`` into a ``LIF`` (``IF`` when ``beta = 1``) with ``tau = dt / (1 - beta)``,
``r = 1 / (1 - beta)``, ``v_leak = 0``, ``v_reset = 0``, whose forward-Euler step is exactly the
rule above; a recurrent layer adds an ``Affine`` edge from the neuron back to itself (read as the
previous step's spikes). The readout is an ``Affine`` into an ``LI`` node (same mapping). NIR's
neuron nodes know only reset-to-value, so subtractive reset is written in the node's metadata
(``{"reset": "subtract"}``) and honoured by :mod:`decoders.runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from decoders.errors import ModelFileError

F32 = npt.NDArray[np.float32]
RESETS = ("zero", "subtract")


@dataclass
class SpikingLayer:
    """One layer of spiking neurons (arrays float32; ``w_rec`` None for feed-forward)."""

    w_in: F32
    b_in: F32
    beta: F32
    threshold: F32
    w_rec: F32 | None = None
    reset: str = "zero"

    @property
    def n_neurons(self) -> int:
        return int(self.w_in.shape[0])


@dataclass
class SpikingNet:
    """Hidden spiking layers and a leaky-integrator readout."""

    layers: list[SpikingLayer]
    w_out: F32
    b_out: F32
    beta_out: F32
    substeps: int = 1
    bin_reset: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        return int(self.layers[0].w_in.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.w_out.shape[0])

    @property
    def n_parameters(self) -> int:
        n = self.w_out.size + self.b_out.size + self.beta_out.size
        for lay in self.layers:
            n += lay.w_in.size + lay.b_in.size + lay.beta.size + lay.threshold.size
            n += 0 if lay.w_rec is None else lay.w_rec.size
        return int(n)


def _tau_r(beta: F32, dt: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    one_minus = np.maximum(1.0 - beta.astype(np.float64), 1e-12)
    return dt / one_minus, 1.0 / one_minus


def _beta(tau: npt.ArrayLike, dt: float) -> F32:
    return np.asarray(1.0 - dt / np.asarray(tau, dtype=np.float64), dtype=np.float32)


def to_nir(net: SpikingNet, dt: float) -> Any:
    """The network as a ``nir.NIRGraph`` (input ``(n_inputs,)``, output ``(n_outputs,)``)."""
    import nir

    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([net.n_inputs])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, lay in enumerate(net.layers):
        meta = {"reset": lay.reset}
        nodes[f"fc{i}"] = nir.Affine(lay.w_in.astype(np.float32), lay.b_in.astype(np.float32))
        zero = np.zeros(lay.n_neurons, dtype=np.float32)
        if np.all(lay.beta == 1.0):
            nodes[f"lif{i}"] = nir.IF(
                r=np.ones(lay.n_neurons, np.float32), v_threshold=lay.threshold, v_reset=zero,
                metadata=meta,
            )  # fmt: skip
        else:
            tau, r = _tau_r(lay.beta, dt)
            nodes[f"lif{i}"] = nir.LIF(
                tau=tau.astype(np.float32), r=r.astype(np.float32), v_leak=zero,
                v_threshold=lay.threshold, v_reset=zero, metadata=meta,
            )  # fmt: skip
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        if lay.w_rec is not None:
            nodes[f"rec{i}"] = nir.Linear(lay.w_rec.astype(np.float32))
            edges += [(f"lif{i}", f"rec{i}"), (f"rec{i}", f"lif{i}")]
        prev = f"lif{i}"
    tau, r = _tau_r(net.beta_out, dt)
    nodes["readout"] = nir.Affine(net.w_out.astype(np.float32), net.b_out.astype(np.float32))
    nodes["li"] = nir.LI(
        tau=tau.astype(np.float32), r=r.astype(np.float32),
        v_leak=np.zeros(net.n_outputs, np.float32),
    )  # fmt: skip
    nodes["output"] = nir.Output(output_type={"output": np.array([net.n_outputs])})
    edges += [(prev, "readout"), ("readout", "li"), ("li", "output")]
    return nir.NIRGraph(
        nodes=nodes,
        edges=edges,
        metadata={"dt": dt, "substeps": net.substeps, "bin_reset": int(net.bin_reset)},
    )


def from_nir(graph: Any, dt: float) -> SpikingNet:
    """Rebuild a :class:`SpikingNet` from a graph written by :func:`to_nir`.

    Raises
    ------
    ModelFileError
        If the graph is not of that shape (another NIR tool's layout, or a damaged file).
    """
    import nir

    nodes = graph.nodes
    layers: list[SpikingLayer] = []
    i = 0
    try:
        while f"fc{i}" in nodes:
            fc, neuron = nodes[f"fc{i}"], nodes[f"lif{i}"]
            if isinstance(neuron, nir.IF):
                beta = np.ones_like(np.asarray(neuron.v_threshold, dtype=np.float32))
            elif isinstance(neuron, nir.LIF):
                beta = _beta(neuron.tau, dt)
            else:
                raise ModelFileError(f"node lif{i} is a {type(neuron).__name__}, not LIF or IF.")
            reset = str(neuron.metadata.get("reset", "zero"))
            if reset not in RESETS:
                raise ModelFileError(f"node lif{i} has an unknown reset rule {reset!r}.")
            rec = nodes.get(f"rec{i}")
            layers.append(
                SpikingLayer(
                    np.asarray(fc.weight, np.float32),
                    np.asarray(fc.bias, np.float32),
                    beta,
                    np.asarray(neuron.v_threshold, np.float32),
                    None if rec is None else np.asarray(rec.weight, np.float32),
                    reset,
                )
            )
            i += 1
        readout, li = nodes["readout"], nodes["li"]
        net = SpikingNet(
            layers,
            np.asarray(readout.weight, np.float32),
            np.asarray(readout.bias, np.float32),
            _beta(li.tau, dt),
            int(graph.metadata.get("substeps", 1)),
            bool(int(graph.metadata.get("bin_reset", 0))),
        )
    except KeyError as err:
        raise ModelFileError(f"The NIR graph lacks the node {err} of a decoders network.") from None
    if not layers:
        raise ModelFileError("The NIR graph has no spiking layer (no node 'fc0').")
    return net
