"""Session configs: one YAML file per session, validated by pydantic models before anything starts.

A session names its source (``plant``, ``lsl``, ``replay``, ``synthetic`` or ``motor``), the
pipeline stages by their registry names (:func:`bci.stream.get_stage_class`) with parameters, the
decoder and its model file, the controller, the safety limits, what to record, the duration, the
seed and the pacing (``realtime``, or ``lockstep`` with the plant: one control period per command,
exact and repeatable). Example (``sessions/closed_loop_dbs.yaml`` is the full one)::

    name: my_session
    duration_s: 10
    seed: 1
    pacing: lockstep
    source: {kind: plant, state: pd}
    pipeline:
      - {stage: bandpass, params: {low_hz: 300, high_hz: 6000}}
      - {stage: common_reference}
      - {stage: online_sorter}
      - {stage: spike_binner, params: {bin_s: 0.02}}
    controller: {stage: continuous, params: {amplitude_ma: 2.5}}

Rules: unknown keys are errors; every error names the key (dotted, e.g. ``source.kind``), the bad
value and the allowed values; files are read with ``yaml.safe_load`` only (no Python objects).
A stage name must be registered and its parameters must be constructor arguments of the stage; a
model file must exist. Relative model paths are resolved against the YAML file's folder.
:func:`apply_overrides` applies ``--set key=value`` overrides (values parsed as YAML scalars).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bci.errors import ConfigError
from bci.session.config_base import (
    SessionConfigError,
    _check_params,
    _Model,
    _plain_values,
    stage_class,
)
from bci.session.config_sources import (  # noqa: F401 (re-exported)
    LSLSourceConfig,
    MotorSourceConfig,
    PlantSourceConfig,
    ReplaySourceConfig,
    SyntheticSourceConfig,
)

__all__ = [
    "CalibrationConfig",
    "CompareConfig",
    "ControllerConfig",
    "DecoderConfig",
    "LSLSourceConfig",
    "MotorSourceConfig",
    "PlantSourceConfig",
    "RecordingConfig",
    "ReplaySourceConfig",
    "SafetyConfig",
    "SessionConfig",
    "SessionConfigError",
    "StageConfig",
    "StimulatorConfig",
    "SyntheticSourceConfig",
    "TimingConfig",
    "apply_overrides",
    "load_session",
    "parse_session",
]

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StageConfig(_Model):
    """One pipeline stage: its registry name and constructor parameters."""

    stage: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str) -> str:
        try:
            stage_class(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("stage")
        if name is not None:
            _check_params(stage_class(name), value, f"stage {name!r}")
        return value


class ModelFileMixin(_Model):
    """A stage that reads a model file (``model``: path, relative to the YAML file's folder)."""

    model: Path | None = None

    def resolve_model(self, base: Path) -> None:
        if self.model is not None and not self.model.is_absolute():
            self.model = (base / self.model).resolve()


class DecoderConfig(StageConfig, ModelFileMixin):
    """The decoder stage (BinnedChunk -> StateChunk) and its model file."""


class ControllerConfig(StageConfig, ModelFileMixin):
    """The controller stage (StateChunk -> StimCommand in device units) and its model file."""


class SafetyConfig(_Model):
    """The safety limiter every command passes: its class and its limits (device units).

    ``limits`` build ``limits_class`` (hard limits on amplitude, frequency and pulse width, charge
    density, slew rate, watchdog, safe state), which the limiter checks; the runner fills in the
    accepted ``source_id`` and ``session_token`` of the session's controller unless given. With
    ``limits_class`` null, ``limits`` go to the limiter's constructor as they are.
    """

    limiter: str = "stimulation.safety:SafetyLimiter"
    limits_class: str | None = "stimulation.safety:SafetyLimits"
    limits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("limiter", "limits_class")
    @classmethod
    def _importable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, sep, attr = value.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"expected 'package.module:Class', got {value!r}")
        return value


class StimulatorConfig(_Model):
    """Where limited commands go: an LSL command stream the stimulator obeys.

    For a plant source the plant's own command stream is used and nothing needs to be set.
    """

    command_stream: str | None = None


SourceConfig = Annotated[
    PlantSourceConfig
    | LSLSourceConfig
    | ReplaySourceConfig
    | SyntheticSourceConfig
    | MotorSourceConfig,
    Field(discriminator="kind"),
]


class CalibrationConfig(_Model):
    """The first seconds of a run: DBS off while uncalibrated stages (the sorter) learn.

    Each pipeline stage that needs fitting (``is_fitted`` False) gets ``duration_s`` of its input,
    in pipeline order; the results are saved into the run folder.
    """

    duration_s: float = Field(default=3.0, ge=0)
    stimulation: Literal["off"] = "off"


class RecordingConfig(_Model):
    """The recorder process (``bci record``): every stream of the session into ``recording.xdf``."""

    enabled: bool = True
    nix: bool = True
    flush_interval_s: float = Field(default=0.25, gt=0)
    #: more streams to record, by name
    extra_streams: list[str] = Field(default_factory=list)


class TimingConfig(_Model):
    """Loop deadlines: a command later than ``deadline_ms`` after its newest sample is a miss."""

    deadline_ms: float = Field(default=5.0, gt=0)
    #: seconds to wait for the source's stream to appear
    stream_timeout_s: float = Field(default=15.0, gt=0)


class CompareConfig(_Model):
    """One more run of the same session and seed with another controller (for the table)."""

    label: str
    controller: ControllerConfig


class SessionConfig(_Model):
    """A whole session (module docstring)."""

    name: str
    description: str = ""
    seed: int = Field(default=0, ge=0)
    duration_s: float = Field(
        gt=0, description="plant/signal time of the run, calibration included"
    )
    pacing: Literal["realtime", "lockstep"] = "realtime"
    source: SourceConfig
    pipeline: list[StageConfig] = Field(default_factory=list)
    decoder: DecoderConfig | None = None
    controller: ControllerConfig | None = None
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    stimulator: StimulatorConfig = Field(default_factory=StimulatorConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    compare: list[CompareConfig] = Field(default_factory=list)
    runs_root: Path = Path("sessions") / "runs"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_OK.match(value):
            raise ValueError(
                "use letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        _plain_values(self.model_dump(), "")
        if self.pacing == "lockstep" and self.source.kind != "plant":
            raise ValueError(
                f"pacing 'lockstep' needs source.kind 'plant' (got {self.source.kind!r}): only the "
                "simulated plant can wait for the loop"
            )
        if isinstance(self.source, PlantSourceConfig):
            self.source.check_timing(self.pacing == "lockstep")
        if self.calibration.duration_s >= self.duration_s:
            raise ValueError(
                f"duration_s ({self.duration_s:g}) must be longer than calibration.duration_s "
                f"({self.calibration.duration_s:g})"
            )
        has_controller = self.controller is not None or bool(self.compare)
        if (
            has_controller
            and self.source.kind != "plant"
            and self.stimulator.command_stream is None
        ):
            raise ValueError(
                "a controller needs a stimulator: set stimulator.command_stream (the LSL stream the "
                "stimulator obeys), or drop the controller"
            )
        if not self.pipeline and (self.decoder is not None or self.controller is not None):
            raise ValueError("a decoder or controller needs a pipeline that bins spikes")
        if (self.controller is not None or self.compare) and self.decoder is None:
            raise ValueError("a controller acts on decoded state: add a 'decoder'")
        labels = [c.label for c in self.compare]
        if len(set(labels)) != len(labels):
            raise ValueError(f"compare labels must differ, got {labels}")
        return self

    def resolve_paths(self, base: Path) -> None:
        """Resolve relative model and recording paths against ``base`` and check they exist."""
        for key, part in (("decoder", self.decoder), ("controller", self.controller)):
            if part is not None:
                part.resolve_model(base)
                _must_exist(part.model, f"{key}.model")
        for i, entry in enumerate(self.compare):
            entry.controller.resolve_model(base)
            _must_exist(entry.controller.model, f"compare.{i}.controller.model")
        if isinstance(self.source, ReplaySourceConfig):
            self.source.resolve_path(base)
            if self.source.latest_of is None:
                _must_exist(Path(self.source.path), "source.path")

    @property
    def source_seed(self) -> int:
        """The source's seed: its own, else the session's."""
        seed = getattr(self.source, "seed", None)
        return self.seed if seed is None else int(seed)

    def resolved(self) -> dict[str, Any]:
        """Plain dict of every setting, defaults filled in (for ``config.yaml``)."""
        return self.model_dump(mode="json")


def _must_exist(path: Path | None, key: str) -> None:
    if path is not None and not path.exists():
        raise SessionConfigError(
            f"Invalid value for '{key}': the file {str(path)!r} does not exist."
        )


# ---------------------------------------------------------------------------------- errors
def _loc(loc: Sequence[Any]) -> str:
    # discriminated unions add the tag ("plant") to the location: drop it
    parts = [str(p) for p in loc]
    return ".".join(p for p in parts if p not in {"plant", "lsl", "replay", "synthetic", "motor"})


def _allowed_keys(model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    return ", ".join(repr(k) for k in model.model_fields)


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that holds the last key of ``loc`` (for listing allowed keys)."""
    model: Any = SessionConfig
    sources = {
        "plant": PlantSourceConfig,
        "lsl": LSLSourceConfig,
        "replay": ReplaySourceConfig,
        "synthetic": SyntheticSourceConfig,
        "motor": MotorSourceConfig,
    }
    for part in list(loc)[:-1]:
        if isinstance(part, int):
            continue
        if part in sources:
            model = sources[part]
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        ann = field.annotation
        inner = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type)]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif part == "source":
            model = None
        else:
            model = next((a for a in inner if issubclass(a, BaseModel)), None)
    return model


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line per problem: the dotted key, the value, and what is allowed."""
    lines = []
    for e in err.errors():
        key = _loc(e["loc"])
        kind = e["type"]
        value = e.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(_model_at(e["loc"]))
            lines.append(
                f"unknown key '{key}'" + (f"; allowed keys here are {allowed}" if allowed else "")
            )
        elif kind == "missing":
            lines.append(f"missing key '{key}'")
        elif kind in ("literal_error", "union_tag_invalid"):
            expected = (e.get("ctx") or {}).get("expected", "")
            expected = expected or (e.get("ctx") or {}).get("expected_tags", "")
            shown = value if kind == "literal_error" else (e.get("ctx") or {}).get("tag")
            if kind == "union_tag_invalid":
                key += "." + str((e.get("ctx") or {}).get("discriminator", "kind")).strip("'")
            lines.append(f"invalid value for '{key}': {shown!r}. Allowed values are {expected}")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            if not key:
                lines.append(msg)
                continue
            shown = "" if isinstance(value, (dict, list)) else f" {value!r}"
            lines.append(f"invalid value for '{key}'{shown}: {msg}")
    head = f"Invalid session config {where}" if where else "Invalid session config"
    return head + ":\n  " + "\n  ".join(lines)


# ---------------------------------------------------------------------------------- loading
def parse_session(data: Any, *, where: str = "", base: Path | None = None) -> SessionConfig:
    """Validate a mapping (parsed YAML) as a :class:`SessionConfig`.

    Raises
    ------
    SessionConfigError
        With one line per problem naming the key, the bad value and the allowed values.
    """
    if not isinstance(data, Mapping):
        raise SessionConfigError(
            f"Invalid session config {where}: expected a mapping of keys (name, duration_s, "
            f"source, ...), got {type(data).__name__}."
        )
    try:
        config = SessionConfig.model_validate(dict(data))
    except ValidationError as err:
        raise SessionConfigError(format_validation_error(err, where)) from None
    if base is not None:
        config.resolve_paths(base)
    return config


def read_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise SessionConfigError(f"No session config at {str(path)!r} (not a file).")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise SessionConfigError(f"{path} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise SessionConfigError(f"{path} is not UTF-8 text: {err}") from None
    except RecursionError:
        raise SessionConfigError(f"{path} is nested too deeply to be a session config.") from None


def load_session(path: str | Path, overrides: Sequence[str] = ()) -> SessionConfig:
    """Read, override (``key=value`` strings) and validate a session YAML file."""
    path = Path(path)
    data = read_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return parse_session(data, where=f"in {path}", base=path.resolve().parent)


def apply_overrides(data: Any, overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides: ``a.b.c=value`` (list items by index: ``pipeline.2.params.x=1``).

    Values are parsed as YAML (``5`` is an int, ``off`` a string, ``[1, 2]`` a list). Missing
    mapping keys are created (validation then says whether they are allowed).
    """
    if not isinstance(data, Mapping):
        raise SessionConfigError("Cannot apply --set overrides: the config is not a mapping.")
    out: dict[str, Any] = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SessionConfigError(
                f"Invalid value for '--set': {item!r}. Expected KEY=VALUE, e.g. duration_s=5 or "
                "source.seed=3."
            )
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        except RecursionError:
            raise SessionConfigError(
                f"Invalid value for '--set': {key!r}. The value is nested too deeply."
            ) from None
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise SessionConfigError(
                        f"Invalid value for '--set': {key!r}. '{'.'.join(parts[:i]) or key}' is a "
                        f"list of {len(node)} items: use an index 0..{len(node) - 1}."
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise SessionConfigError(
                    f"Invalid value for '--set': {key!r}. '{'.'.join(parts[:i])}' holds a value, "
                    "not a mapping."
                )
    return out
