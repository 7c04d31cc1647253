"""The spiking actor of the RL controller as plain arrays, and its numpy forward pass (no torch).

Architecture (PopSAN, Tang et al. 2020, CoRL; MDC-SAN, Zhang et al. 2022, AAAI): each observation
entry ``x_i`` drives a population of ``n_pop`` neurons through Gaussian receptive fields with
learned centres and widths, ``a_ij = exp(-(x_i - mu_ij)^2 / (2 sigma_ij^2))``; the population
activity is held as the input current of a stack of LIF layers run for ``substeps`` sub-steps
from rest (the membranes restart at each control step); the last layer is the output population
(``n_out`` neurons per action entry) and each action entry is ``tanh`` of an affine map of its
population's firing rate over the sub-steps (the affine map of the mean spike count equals the
mean of a non-leaky readout ``y_t = W_out s_t + b_out``).

LIF layer rule, per neuron, as in :mod:`decoders.snn.network` (so the network part is the same
SpikingNet that the decoders' NIR export and numpy runtime handle)::

    I_t = W_in x_t + b_in
    v_t = beta * v_{t-1} + I_t
    s_t = 1 if v_t > theta else 0
    v_t = 0 where s_t                      (reset to zero)

The actions come out in ``[-1, 1]`` (Stable-Baselines3's squashed convention); the controller
rescales them to its action box.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stimulation.controllers.base import ControllerConfigError

F64 = npt.NDArray[np.float64]
#: Version of the actor file format.
FORMAT_VERSION = 1


@dataclass
class SpikingActorWeights:
    """All arrays of a trained spiking actor (shapes in the module docstring's notation).

    Attributes
    ----------
    mu, sigma : (n_obs, n_pop)
        Receptive-field centres and widths.
    w_in, b_in, beta, threshold : lists, one entry per layer
        ``w_in[k]`` is ``(n_neurons_k, n_inputs_k)``; the last layer is the output population
        ``(n_actions * n_out,)``.
    w_out, b_out : (n_actions, n_actions * n_out), (n_actions,)
        Readout of the output population's rates.
    substeps : int
        LIF updates per control step.
    meta : dict
        Provenance (command, seed, wall time, observation and action conventions).
    """

    mu: F64
    sigma: F64
    w_in: list[F64]
    b_in: list[F64]
    beta: list[F64]
    threshold: list[F64]
    w_out: F64
    b_out: F64
    substeps: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_obs(self) -> int:
        return int(self.mu.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.w_out.shape[0])

    def forward(self, obs: npt.ArrayLike) -> F64:
        """Actions in [-1, 1], shape ``(n_actions,)`` for one observation or ``(B, n_actions)``
        for a batch, in float64."""
        x = np.asarray(obs, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[1] != self.n_obs:
            raise ControllerConfigError(
                f"The spiking actor takes {self.n_obs} observation entries, but got {x.shape[1]}."
            )
        a = np.exp(-0.5 * ((x[:, :, None] - self.mu[None]) / self.sigma[None]) ** 2)
        current0 = a.reshape(x.shape[0], -1) @ self.w_in[0].T + self.b_in[0]
        v = [np.zeros((x.shape[0], w.shape[0])) for w in self.w_in]
        count = np.zeros_like(v[-1])
        for _ in range(self.substeps):
            inp = current0
            for k in range(len(self.w_in)):
                current = current0 if k == 0 else inp @ self.w_in[k].T + self.b_in[k]
                vk = self.beta[k] * v[k] + current
                inp = (vk > self.threshold[k]).astype(np.float64)
                v[k] = vk * (1.0 - inp)
            count += inp
        rate = count / self.substeps
        out = np.tanh(rate @ self.w_out.T + self.b_out)
        return out[0] if single else out

    def encode(self, obs: npt.ArrayLike) -> F64:
        """The population activity the observation drives (the first layer's input)."""
        x = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        a = np.exp(-0.5 * ((x[:, :, None] - self.mu[None]) / self.sigma[None]) ** 2)
        return a.reshape(x.shape[0], -1)

    # ------------------------------------------------------------------ NIR
    def to_spiking_net(self) -> Any:
        """The LIF layers and the readout as a :class:`decoders.snn.network.SpikingNet` (input:
        :meth:`encode`'s population activity; output before the ``tanh``), so the decoders'
        NIR export and numpy runtime run it."""
        from decoders.snn.network import SpikingLayer, SpikingNet

        f32 = np.float32
        layers = [
            SpikingLayer(w.astype(f32), b.astype(f32), be.astype(f32), th.astype(f32))
            for w, b, be, th in zip(self.w_in, self.b_in, self.beta, self.threshold, strict=True)
        ]
        return SpikingNet(
            layers,
            self.w_out.astype(f32),
            self.b_out.astype(f32),
            np.zeros(self.n_actions, f32),
            substeps=self.substeps,
            bin_reset=True,
        )

    def export_nir(self, path: str | Path, period_s: float = 0.02) -> Path:
        """Write the spiking part as a NIR graph (``nir.write``); the population encoder and the
        final ``tanh`` stay outside it (their arrays are in the ``.npz``)."""
        import nir

        from decoders.snn.network import to_nir

        path = Path(path)
        nir.write(str(path), to_nir(self.to_spiking_net(), period_s / self.substeps))
        return path

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz): the arrays and the metadata (JSON)."""
        path = Path(path)
        arrays: dict[str, Any] = {
            "mu": self.mu,
            "sigma": self.sigma,
            "w_out": self.w_out,
            "b_out": self.b_out,
        }
        for k in range(len(self.w_in)):
            arrays[f"w_in_{k}"] = self.w_in[k]
            arrays[f"b_in_{k}"] = self.b_in[k]
            arrays[f"beta_{k}"] = self.beta[k]
            arrays[f"threshold_{k}"] = self.threshold[k]
        header = {
            "format": "stimulation.spiking_actor",
            "version": FORMAT_VERSION,
            "n_layers": len(self.w_in),
            "substeps": self.substeps,
            "meta": self.meta,
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SpikingActorWeights:
        """Read a file written by :meth:`save` (never a pickle); errors name the problem."""
        path = Path(path)
        try:
            # from bytes: np.load leaves the file open when it fails on a damaged archive
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                if header.get("format") != "stimulation.spiking_actor":
                    raise ControllerConfigError(f"{path} is not a spiking actor file.")
                if int(header.get("version", 0)) > FORMAT_VERSION:
                    raise ControllerConfigError(
                        f"{path} was written by a newer version (format {header['version']})."
                    )
                n = int(header["n_layers"])

                def get(name: str) -> F64:
                    return np.asarray(data[name], dtype=np.float64)

                weights = cls(
                    mu=get("mu"),
                    sigma=get("sigma"),
                    w_in=[get(f"w_in_{k}") for k in range(n)],
                    b_in=[get(f"b_in_{k}") for k in range(n)],
                    beta=[get(f"beta_{k}") for k in range(n)],
                    threshold=[get(f"threshold_{k}") for k in range(n)],
                    w_out=get("w_out"),
                    b_out=get("b_out"),
                    substeps=int(header["substeps"]),
                    meta=dict(header.get("meta", {})),
                )
                if n < 1 or weights.substeps < 1:
                    raise ValueError(
                        f"n_layers {n} and substeps {weights.substeps}: each must be at least 1"
                    )
                out = weights.forward(np.zeros(weights.n_obs))  # the arrays must fit
                if out.shape != (weights.n_actions,):
                    raise ValueError(
                        f"the actor gives {out.shape} actions, not {weights.n_actions}"
                    )
                return weights
        except ControllerConfigError:
            raise
        except (
            OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, TypeError,
            IndexError, AttributeError, OverflowError, NotImplementedError,
        ) as err:  # fmt: skip
            raise ControllerConfigError(
                f"Cannot read the spiking actor file {path}: {type(err).__name__}: {err}"
            ) from None
