"""The spiking actor in torch, plugged into Stable-Baselines3's TD3 (training only: needs torch).

:class:`PopSpikingActorNet` is the network of :mod:`stimulation.controllers.snn_actor` (PopSAN,
Tang et al. 2020), trained with surrogate gradients (the Heaviside spike's derivative replaced by
the fast sigmoid's, ``1 / (1 + k |v - theta|)^2``; Zenke & Ganguli 2018) through the sub-steps.
:class:`SpikingTD3Policy` overrides :meth:`TD3Policy.make_actor`, SB3's extension point, so the
actor (and its target) are spiking and the twin critics stay ordinary MLPs.
:meth:`PopSpikingActorNet.export` writes the numpy runtime's arrays.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.td3.policies import Actor, TD3Policy
from torch import nn

from stimulation.controllers.snn_actor import SpikingActorWeights


class _Spike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, slope: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * x.abs()) ** 2, None


class PopSpikingActorNet(nn.Module):
    """Population encoder, LIF layers for ``substeps`` sub-steps, rate readout, tanh.

    Parameters
    ----------
    n_obs, n_actions : int
        Observation and action sizes.
    obs_range : (float, float)
        Where the receptive-field centres start (evenly spread over it).
    n_pop : int
        Encoding neurons per observation entry.
    hidden : tuple of int
        Sizes of the hidden LIF layers.
    n_out : int
        Output neurons per action entry.
    substeps : int
        LIF updates per control step.
    beta, threshold : float
        Membrane decay and threshold of every LIF neuron (fixed).
    surrogate_slope : float
        ``k`` of the fast-sigmoid surrogate.
    """

    def __init__(
        self,
        n_obs: int,
        n_actions: int,
        obs_range: tuple[float, float] = (0.0, 1.0),
        n_pop: int = 10,
        hidden: tuple[int, ...] = (64, 64),
        n_out: int = 10,
        substeps: int = 5,
        beta: float = 0.75,
        threshold: float = 0.5,
        surrogate_slope: float = 5.0,
    ) -> None:
        super().__init__()
        lo, hi = obs_range
        centres = torch.linspace(lo, hi, n_pop).repeat(n_obs, 1)
        self.mu = nn.Parameter(centres)
        width = (hi - lo) / max(n_pop - 1, 1)
        self.log_sigma = nn.Parameter(torch.full((n_obs, n_pop), float(np.log(width))))
        sizes = [n_obs * n_pop, *hidden, n_actions * n_out]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=False)
        )
        self.readout = nn.Linear(n_actions * n_out, n_actions)
        self.substeps = int(substeps)
        self.beta = float(beta)
        self.threshold = float(threshold)
        self.slope = float(surrogate_slope)

    @property
    def linears(self) -> list[nn.Linear]:
        """The layers' affine maps, input side first."""
        return [cast(nn.Linear, layer) for layer in self.layers]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = torch.exp(-0.5 * ((obs[:, :, None] - self.mu) / self.log_sigma.exp()) ** 2)
        linears = self.linears
        current0 = linears[0](a.flatten(1))
        v = [torch.zeros(obs.shape[0], lay.out_features, dtype=obs.dtype) for lay in linears]
        count = torch.zeros_like(v[-1])
        for _ in range(self.substeps):
            inp = current0
            for k, layer in enumerate(linears):
                current = current0 if k == 0 else layer(inp)
                vk = self.beta * v[k] + current
                s = _Spike.apply(vk - self.threshold, self.slope)
                v[k] = vk * (1.0 - s.detach())
                inp = s
            count = count + inp
        return torch.tanh(self.readout(count / self.substeps))

    def export(self, meta: dict[str, Any] | None = None) -> SpikingActorWeights:
        """The numpy runtime's arrays (float64) of this network."""

        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().double().numpy().copy()

        return SpikingActorWeights(
            mu=arr(self.mu),
            sigma=arr(self.log_sigma.exp()),
            w_in=[arr(lay.weight) for lay in self.linears],
            b_in=[arr(lay.bias) for lay in self.linears],
            beta=[np.full(lay.out_features, self.beta) for lay in self.linears],
            threshold=[np.full(lay.out_features, self.threshold) for lay in self.linears],
            w_out=arr(self.readout.weight),
            b_out=arr(self.readout.bias),
            substeps=self.substeps,
            meta=dict(meta or {}),
        )


class SpikingTD3Policy(TD3Policy):
    """TD3 policy whose actor is a :class:`PopSpikingActorNet` (pass its settings as
    ``policy_kwargs={"spiking": {...}}``); the critics are SB3's MLPs."""

    def __init__(self, *args: Any, spiking: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.spiking = dict(spiking or {})
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        actor = Actor(**actor_kwargs)
        n_actions = int(np.prod(self.action_space.shape or (1,)))
        actor.mu = PopSpikingActorNet(  # type: ignore[assignment]
            actor_kwargs["features_dim"], n_actions, **self.spiking
        )
        return actor.to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["spiking"] = self.spiking
        return data
