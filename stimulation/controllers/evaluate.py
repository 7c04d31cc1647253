"""Score a controller on the simulated plant, the same way for every controller.

:func:`evaluate` runs one plant per seed, side by side (:class:`~stimulation.plant.vector_env.
BasalGangliaVectorEnv`, whose networks are integrated together by a
:class:`~stimulation.plant.batch.NetworkBatch`), with the loop the online session runs: every
control period the controller reads the decoded symptom, emits a
:class:`~bci.stream.StimCommand` in device units, a :class:`~stimulation.safety.SafetyLimiter`
(one per seed) checks it, and the plant receives what the limiter lets out, mapped to model units
by :mod:`stimulation.safety`. Every controller sees the same decoder, limiter and plant settings.

Protocol
--------
After the env's unstimulated warm-up (0.5 s) the loop runs ``settle_s`` (1.5 s: calibrating
controllers record their calibration period here, others already stimulate), then ``duration_s``
are scored:

- ``error_index``: So et al. (2012)'s thalamic error index over the scored time;
- ``gpi_beta``: relative beta power (13-30 Hz of 4-100 Hz) of the GPi LFP proxy over it;
- ``energy``: mean power relative to continuous DBS at its default setting (2.5 mA, 130 Hz,
  300 us: :data:`ENERGY_REFERENCE`), i.e. the mean of ``(I / 2.5 mA)^2 (PW / 300 us)
  (f / 130 Hz)`` over the control periods (power is ``I^2 R PW f``);
- ``time_on_stim``: fraction of periods with a non-zero amplitude;
- ``mean_amplitude_ma``: mean delivered amplitude; ``mean_frequency_hz``: mean rate over the
  periods with stimulation on (NaN if never on);
- ``pd_fraction``: fraction of scored periods the plant was Parkinsonian (the fluctuating
  plant's truth, never seen by the controller).

The decoder
-----------
The symptom the controllers see is, by default (``symptom_source="decoder"``), what the online
loop gives them: the symptom decoder's estimate of the GPi beta from the spikes of the cells the
plant's probe records (:mod:`stimulation.controllers.observation`); ``symptom_source="state"``
gives them the Parkinsonian state decoded from a GPe probe's spikes instead. ``symptom_source=
"plant_beta"`` gives them the plant's own GPi beta biomarker (its LFP over a causal 0.25-s window,
:data:`OBSERVATION_FEATURES`), the quantity the decoder estimates, to measure what decoding costs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bci.checks import check_value, ensure_float
from bci.stream.chunks import StimCommand
from stimulation.controllers.base import Controller, ControllerConfigError
from stimulation.controllers.observation import SymptomObserver, check_symptom_source
from stimulation.plant.record import PlantRecord
from stimulation.safety import SafetyLimiter, SafetyLimits
from stimulation.safety.units import (
    REFERENCE_AMPLITUDE_MA,
    REFERENCE_FREQUENCY_HZ,
    REFERENCE_PULSE_WIDTH_US,
)

#: The observation every controller gets (module docstring).
OBSERVATION_FEATURES: tuple[str, ...] = ("beta_gpi",)
#: Continuous DBS at its default setting: (amplitude_ma, frequency_hz, pulse_width_us).
ENERGY_REFERENCE: tuple[float, float, float] = (
    REFERENCE_AMPLITUDE_MA,
    REFERENCE_FREQUENCY_HZ,
    REFERENCE_PULSE_WIDTH_US,
)
PLANTS: tuple[str, ...] = ("stationary", "fluctuating")
#: Limits of the evaluation: the library defaults, with a rate range the env can deliver.
EVALUATION_LIMITS = SafetyLimits(min_frequency_hz=10.0, max_frequency_hz=250.0)


def relative_energy(amplitude_ma: float, frequency_hz: float, pulse_width_us: float) -> float:
    """Power of a setting relative to :data:`ENERGY_REFERENCE` (module docstring)."""
    a0, f0, pw0 = ENERGY_REFERENCE
    return (amplitude_ma / a0) ** 2 * (pulse_width_us / pw0) * (frequency_hz / f0)


def _env_kwargs(limits: SafetyLimits, plant: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Env settings whose action box spans exactly the limiter's ranges."""
    kwargs: dict[str, Any] = {
        "features": OBSERVATION_FEATURES,
        "control_frequency": True,
        "frequency_range_hz": (limits.min_frequency_hz, limits.max_frequency_hz),
        "pulse_width_us": REFERENCE_PULSE_WIDTH_US,
    }
    kwargs["amplitude_ma_at_full_action"] = limits.max_amplitude_ma
    if plant != "stationary":
        kwargs["plant"] = plant
    kwargs.update(extra)
    return kwargs


def command_to_action(command: StimCommand, limits: SafetyLimits) -> np.ndarray:
    """The env action (amplitude, rate; both in [0, 1]) that delivers a limited command."""
    lo, hi = limits.min_frequency_hz, limits.max_frequency_hz
    a = command.amplitude_ma / limits.max_amplitude_ma
    b = (command.frequency_hz - lo) / (hi - lo) if hi > lo else 0.0
    return np.clip(np.array([a, b], dtype=np.float32), 0.0, 1.0)


def make_controller(controller: str | Controller, **params: Any) -> Controller:
    """A controller object from a shipped name (``params`` override its defaults), or a copy."""
    if isinstance(controller, Controller):
        if params:
            raise ControllerConfigError(
                "Parameters override a named controller only; got a controller object and "
                f"{sorted(params)}."
            )
        made = copy.deepcopy(controller)
        made.reset()
        return made
    from stimulation.controllers import CONTROLLERS

    check_value(controller, tuple(CONTROLLERS), "controller", error=ControllerConfigError)
    return CONTROLLERS[controller](**params)


def evaluate(
    controller: str | Controller,
    seeds: Sequence[int],
    duration_s: float = 10.0,
    plant: str = "stationary",
    *,
    settle_s: float = 1.5,
    limits: SafetyLimits | None = None,
    traces: bool = False,
    n_threads: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    symptom_source: str = "decoder",
    **params: Any,
) -> list[dict[str, Any]]:
    """Run ``controller`` on one plant per seed; one row of metrics per seed (module docstring).

    Parameters
    ----------
    controller : str or Controller
        A shipped name (``"off"``, ``"continuous"``, ``"threshold"``, ``"dual_threshold"``,
        ``"pi"``, ``"rl_snn"``) or a controller object (copied and reset for each seed).
    seeds : sequence of int
        Plant seeds (network, cortical input, fluctuations).
    duration_s : float
        Scored time per seed.
    plant : {"stationary", "fluctuating"}
        The env's plant.
    settle_s : float
        Closed-loop time before scoring (calibration periods fall here).
    limits : SafetyLimits, optional
        The limiter's limits (default :data:`EVALUATION_LIMITS`).
    traces : bool
        Add ``"trace"`` to each row: per-period ``t_s``, ``amplitude_ma``, ``frequency_hz``,
        ``beta`` (the observed symptom) and ``pd_state``.
    n_threads : int
        Threads of the vector env (1: all seeds in one compiled call).
    env_kwargs : dict, optional
        Further :class:`~stimulation.plant.env.BasalGangliaEnv` settings.
    symptom_source : {"decoder", "state", "plant_beta"}
        What the controllers observe (module docstring, "The decoder").
    **params
        Parameters of the named controller.

    Returns
    -------
    list of dict
        One row per seed, in the order of ``seeds``.
    """
    from stimulation.plant.vector_env import BasalGangliaVectorEnv

    err = ControllerConfigError
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise err("Invalid value for the 'seeds' parameter: no seed given.")
    duration_s = ensure_float(duration_s, "duration_s", minimum=0.0, strict_minimum=True, error=err)
    settle_s = ensure_float(settle_s, "settle_s", minimum=0.0, error=err)
    check_value(plant, PLANTS, "plant", error=err)
    lim = EVALUATION_LIMITS if limits is None else limits
    controllers = [make_controller(controller, **params) for _ in seeds]
    period = controllers[0].period_s
    n_settle = int(round(settle_s / period))
    n_score = int(round(duration_s / period))
    check_symptom_source(symptom_source)
    kwargs = _env_kwargs(lim, plant, dict(env_kwargs or {}))
    kwargs["control_period_s"] = period
    kwargs["episode_s"] = (n_settle + n_score + 1) * period
    venv = BasalGangliaVectorEnv(num_envs=len(seeds), n_threads=n_threads, **kwargs)
    try:
        obs, info = venv.reset(seed=list[int | None](seeds))
        observer = SymptomObserver(symptom_source, venv)
        for i, network_seed in enumerate(info["network_seed"]):
            observer.reset(i, int(network_seed))

        def observe(i: int) -> np.ndarray:
            return np.array([observer.observe(i, obs[i])])

        symptoms = [observe(i) for i in range(len(seeds))]
        limiters = [SafetyLimiter(lim, name=f"limiter-{s}") for s in seeds]
        for limiter in limiters:
            limiter.reset(now=-period)
        records: list[list[PlantRecord]] = [[] for _ in seeds]
        delivered = np.zeros((len(seeds), n_score, 3))
        observed = np.zeros((len(seeds), n_score))
        pd_state = np.zeros((len(seeds), n_score))
        for k in range(n_settle + n_score):
            t = k * period
            actions = np.zeros((len(seeds), 2), dtype=np.float32)
            for i, (ctl, limiter) in enumerate(zip(controllers, limiters, strict=True)):
                out = limiter.apply(ctl.act(symptoms[i], t), t)
                actions[i] = command_to_action(out, lim)
                if k >= n_settle:
                    j = k - n_settle
                    delivered[i, j] = (out.amplitude_ma, out.frequency_hz, out.pulse_width_us)
                    observed[i, j] = float(symptoms[i][0])
            obs, _, _, _, info = venv.step(actions)
            symptoms = [observe(i) for i in range(len(seeds))]
            if k >= n_settle:
                j = k - n_settle
                pd = info.get("pd_state")
                for i, env in enumerate(venv.envs):
                    assert env.record is not None
                    records[i].append(env.record)
                    pd_state[i, j] = float(pd[i]) if pd is not None else math.nan
    finally:
        venv.close()
    rows = []
    name = controller if isinstance(controller, str) else type(controller).__name__
    for i, seed in enumerate(seeds):
        rec = PlantRecord.concatenate(records[i])
        amp, freq, pw = delivered[i].T
        on = amp > 0.0
        energy = float(np.mean([relative_energy(a, f, p) for a, f, p in delivered[i]]))
        row: dict[str, Any] = {
            "controller": name,
            "plant": plant,
            "symptom_source": symptom_source,
            "seed": seed,
            "error_index": float(rec.error_index()),
            "gpi_beta": float(rec.beta_power("gpi")),
            "energy": energy,
            "time_on_stim": float(np.mean(on)),
            "mean_amplitude_ma": float(np.mean(amp)),
            "mean_frequency_hz": float(np.mean(freq[on])) if on.any() else math.nan,
            "pd_fraction": float(np.mean(pd_state[i])),
            "safety_events": dict(limiters[i].counts),
        }
        if traces:
            row["trace"] = {
                "t_s": (n_settle + np.arange(n_score)) * period,
                "amplitude_ma": amp.copy(),
                "frequency_hz": freq.copy(),
                "beta": observed[i].copy(),
                "pd_state": pd_state[i].copy(),
            }
        rows.append(row)
    return rows
