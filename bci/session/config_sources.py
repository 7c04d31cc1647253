"""The sources a session can run: the plant, a live LSL stream, a replay, a synthetic probe, motor
cortex. See :mod:`bci.session.config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from bci.session.config_base import _check_params, _Model


def _plant_parts() -> dict[str, tuple[type, tuple[str, ...]]]:
    """The plant's parts: config key -> (class, arguments the runner sets itself)."""
    from stimulation.plant import BasalGangliaNetwork
    from stimulation.plant.bridge_config import BridgeTiming, RawFormat
    from stimulation.plant.fluctuation import Fluctuation
    from stimulation.plant.probe import VirtualProbe
    from stimulation.safety import SafetyLimits

    return {
        "network": (BasalGangliaNetwork, ("state", "seed", "plant", "fluctuation")),
        "fluctuation": (Fluctuation, ()),
        "probe": (VirtualProbe, ("cells_per_nucleus", "seed")),
        "timing": (BridgeTiming, ("lockstep",)),
        "raw_format": (RawFormat, ()),
        "limits": (SafetyLimits, ("source_id", "session_token")),
    }


_PLANT_PART_KEYS = ("network", "fluctuation", "probe", "timing", "raw_format", "limits")


class PlantSourceConfig(_Model):
    """The simulated basal-ganglia plant (:class:`stimulation.plant.bridge.PlantBridge`) in its
    own process.

    ``network``, ``fluctuation``, ``probe``, ``timing``, ``raw_format`` and ``limits`` (the
    plant-side safety limiter, device units) hold the arguments of the plant's parts
    (``BasalGangliaNetwork``, ``Fluctuation``, ``VirtualProbe``, ``BridgeTiming``, ``RawFormat``,
    ``SafetyLimits``); the runner sets the state, seed, pacing and who may command the plant.
    """

    kind: Literal["plant"]
    state: Literal["pd", "healthy"] = "pd"
    plant: Literal["stationary", "fluctuating"] = "stationary"
    seed: int | None = Field(default=None, ge=0)
    network: dict[str, Any] = Field(default_factory=dict)
    fluctuation: dict[str, Any] = Field(default_factory=dict)
    probe: dict[str, Any] = Field(default_factory=dict)
    timing: dict[str, Any] = Field(default_factory=dict)
    raw_format: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    biphasic: bool = False

    @model_validator(mode="before")
    @classmethod
    def _parts_under_params(cls, data: Any) -> Any:
        """``params: {network: {...}, probe: {...}}`` is the same as the parts at this level; the
        probe's ``cells_per_nucleus`` is the network's (given in either place, once)."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        params = data.pop("params", {})
        if not isinstance(params, Mapping):
            raise ValueError("'params' holds the plant's parts: network, probe, timing, ...")
        for key, value in params.items():
            if key not in _PLANT_PART_KEYS or not isinstance(value, Mapping):
                raise ValueError(
                    f"unknown key 'params.{key}'; the plant's parts are "
                    + ", ".join(repr(k) for k in _PLANT_PART_KEYS)
                )
            data[key] = {**value, **dict(data.get(key) or {})}
        probe, network = data.get("probe"), data.get("network")
        if isinstance(probe, Mapping) and "cells_per_nucleus" in probe:
            network = dict(network) if isinstance(network, Mapping) else {}
            cells = network.setdefault("cells_per_nucleus", probe["cells_per_nucleus"])
            if cells != probe["cells_per_nucleus"]:
                raise ValueError(
                    "'probe.cells_per_nucleus' differs from 'network.cells_per_nucleus': the "
                    "probe records the network's cells (give it once, under network)"
                )
            data["network"] = network
            data["probe"] = {k: v for k, v in probe.items() if k != "cells_per_nucleus"}
        return data

    @model_validator(mode="after")
    def _part_params(self) -> PlantSourceConfig:

        for key, (cls, runner_set) in _plant_parts().items():
            given: dict[str, Any] = getattr(self, key)
            taken = [k for k in given if k in runner_set]
            if taken:
                raise ValueError(
                    f"'{key}.{taken[0]}' is set by the runner (use the session's keys: "
                    "source.state, source.seed, source.plant, pacing)"
                )
            _check_params(cls, given, f"source.{key} ({cls.__name__})")
        if self.fluctuation and self.plant != "fluctuating":
            raise ValueError("'fluctuation' settings need plant: fluctuating")
        return self

    def check_timing(self, lockstep: bool) -> None:
        """Raise ValueError naming ``source.timing``'s bad value (e.g. ``max_speed``, which
        paces lockstep only), checked with the session's pacing as the runner will build it."""
        from stimulation.errors import PlantParameterError
        from stimulation.plant.bridge_config import BridgeTiming

        try:
            BridgeTiming(lockstep=lockstep, **self.timing)
        except PlantParameterError as err:
            hint = " (the session's key: pacing: lockstep)" if "lockstep" in str(err) else ""
            raise ValueError(f"invalid 'source.timing': {err}{hint}") from None


class LSLSourceConfig(_Model):
    """A live LSL stream of broadband voltage (an amplifier): at least one of name/type/source_id."""

    kind: Literal["lsl"]
    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    n_channels: int | None = Field(default=None, ge=1)
    sfreq: float | None = Field(default=None, gt=0)
    scale: float | None = None
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_property(self) -> LSLSourceConfig:
        if self.name is None and self.type is None and self.source_id is None:
            raise ValueError("give at least one of 'name', 'type' or 'source_id' of the stream")
        return self


class SyntheticSourceConfig(_Model):
    """A synthetic probe recording published by ``bci source synthetic`` in its own process."""

    kind: Literal["synthetic"]
    n_channels: int = Field(default=32, ge=1)
    n_units: int = Field(default=12, ge=0)
    seed: int | None = Field(default=None, ge=0)
    channel_format: Literal["int16", "float32"] = "int16"
    noise_uv: float = Field(default=5.0, ge=0)
    chunk_ms: float = Field(default=1.0, gt=0)
    artifact_hz: float = Field(default=0.0, ge=0)


class ReplaySourceConfig(_Model):
    """A recording (``.xdf`` or run folder) played back as live LSL streams by ``bci replay``."""

    kind: Literal["replay"]
    #: a run folder, an .xdf file, or ``latest:<session name>`` (its newest run, found when the
    #: run starts)
    path: str
    #: the recorded broadband stream: its name, or the start of its name
    stream: str
    speed: float = Field(default=1.0, gt=0)

    @property
    def latest_of(self) -> str | None:
        """The session whose newest run to replay, for ``latest:<name>``."""
        return self.path.partition(":")[2] if self.path.startswith("latest:") else None

    def resolve_path(self, base: Path) -> None:
        if self.latest_of is None and not Path(self.path).is_absolute():
            self.path = str((base / self.path).resolve())


class MotorSourceConfig(_Model):
    """Synthetic motor cortex (``bci source motor``) with its kinematics stream."""

    kind: Literal["motor"]
    n_units: int = Field(default=96, ge=1)
    seed: int | None = Field(default=None, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
