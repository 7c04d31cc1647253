"""Start a session's source in its own process and find its broadband stream.

Each source kind of :mod:`bci.session.config` becomes a :class:`SourceSession`: the child process
(none for a live ``lsl`` stream), the query that finds its broadband stream, the streams to record,
and, for the plant, what the loop needs to drive it (command stream, the controller source_id it
obeys, the control period, its biomarker stream).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pylsl

from bci.acquisition import LSLSource, resolve_stream_info
from bci.errors import StreamNotFoundError
from bci.runner.processes import ChildProcess, SessionProcessError, bci_command
from bci.session.config import (
    LSLSourceConfig,
    MotorSourceConfig,
    PlantSourceConfig,
    ReplaySourceConfig,
    SessionConfig,
    SessionConfigError,
    SyntheticSourceConfig,
)

__all__ = ["PlantLink", "SourceSession", "start_source"]


@dataclass
class PlantLink:
    """What the loop needs to drive the plant."""

    command_stream: str
    controller_source_id: str
    control_period_s: float
    sfreq: float
    biomarker_source_id: str
    lockstep: bool
    #: samples of each period the plant's probe holds back until the next period
    latency_samples: int = 0
    #: window of the plant's biomarkers (s)
    window_s: float = 0.25
    #: samples per chunk the plant pushes
    chunk_samples: int = 30

    @property
    def period_samples(self) -> int:
        return int(round(self.control_period_s * self.sfreq))

    @property
    def stim_source_id(self) -> str:
        """source_id of the plant's pulse-onset markers."""
        return self.biomarker_source_id.removesuffix("-biomarkers") + "-stim"

    def period_of(self, sample: int) -> int:
        """The period in which the plant published raw sample ``sample``."""
        return (sample + self.latency_samples) // self.period_samples

    def published_after(self, periods: int) -> int:
        """Samples of the raw stream out once ``periods`` periods are simulated."""
        return max(0, periods * self.period_samples - self.latency_samples)


@dataclass
class SourceSession:
    """A started source: its process, its stream query, what to record, the plant link."""

    kind: str
    query: dict[str, str]
    record_source_ids: list[str]
    child: ChildProcess | None = None
    plant: PlantLink | None = None
    #: more streams to record, by name
    record_names: list[str] = field(default_factory=list)
    scale: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: a regular stream of the true values of what the decoder decodes (channels named like its
    #: outputs): the motor source's kinematics
    truth_name: str | None = None

    def open(self, timeout_s: float) -> LSLSource:
        """Find the broadband stream (waiting while the child starts) and open an LSLSource.

        Raises
        ------
        bci.StreamNotFoundError
            The stream did not appear within ``timeout_s`` (after the child was ready); the
            message lists the streams that exist and the child's last output.
        """
        deadline = time.monotonic() + timeout_s
        info = None
        while info is None:
            if self.child is not None:
                self.child.check_alive()
            left = deadline - time.monotonic()
            try:
                info = resolve_stream_info(
                    self.query.get("name"),
                    self.query.get("type"),
                    self.query.get("source_id"),
                    timeout_s=max(0.0, min(1.0, left)),
                )
            except StreamNotFoundError as err:
                if time.monotonic() >= deadline:
                    extra = (
                        f"\nThe {self.child.name} process said:\n{self.child.tail() or '(nothing)'}"
                        if self.child is not None
                        else ""
                    )
                    raise StreamNotFoundError(f"{err}{extra}") from None
        scale = self.scale  # None: the stream's own scale_uv_per_bit
        return LSLSource(
            source_id=info.source_id(),
            scale=scale,
            timeout_s=max(1.0, deadline - time.monotonic()),
            max_buffered_s=60.0,
        ).open()

    def stop(self) -> dict[str, Any]:
        """Stop the child (clean, then forced); return the plant's statistics if it printed them."""
        if self.child is None:
            return {}
        self.child.stop()
        from bci.runner.plant_child import STATS_LINE

        for line in reversed(self.child.lines):
            if line.startswith(STATS_LINE):
                return dict(json.loads(line[len(STATS_LINE) :]))
        return {}


def plant_settings(
    source: PlantSourceConfig,
    seed: int,
    tag: str,
    lockstep: bool,
    limiter_source_id: str,
    session_token: str,
) -> dict[str, Any]:
    """Arguments of the plant's parts (:func:`bci.runner.plant_child.build_bridge`).

    The plant obeys only ``limiter_source_id`` signed with ``session_token``: the commands the
    session's limiter let out.
    """
    name = f"plant-{tag}"
    return {
        "state": source.state,
        "seed": seed,
        "plant": source.plant,
        "name": name,
        "source_id": name,
        "command_stream": f"{name}-commands",
        "lockstep": lockstep,
        "network": dict(source.network),
        "fluctuation": dict(source.fluctuation),
        "probe": dict(source.probe),
        "timing": dict(source.timing),
        "raw_format": dict(source.raw_format),
        "limits": {
            **source.limits,
            "source_id": limiter_source_id,
            "session_token": session_token,
        },
        "biphasic": source.biphasic,
    }


def start_source(
    config: SessionConfig,
    run_dir: Path,
    tag: str,
    *,
    limiter_source_id: str = "",
    session_token: str = "",
    ready_timeout_s: float = 180.0,
) -> SourceSession:
    """Start the source process of ``config`` (logs in ``run_dir``); return its handle.

    ``tag`` makes every stream name and source_id of this run unique on the network; a plant
    obeys only ``limiter_source_id`` with ``session_token``.
    """
    source = config.source
    seed = config.source_seed
    if isinstance(source, PlantSourceConfig):
        from bci.runner.plant_child import READY_LINE as PLANT_READY_LINE
        from bci.runner.plant_child import plant_timing

        lockstep = config.pacing == "lockstep"
        settings = plant_settings(source, seed, tag, lockstep, limiter_source_id, session_token)
        from stimulation.plant.bridge_config import RawFormat

        timing = plant_timing(settings)
        sfreq = float(source.probe.get("sfreq", 30000.0))
        chunk_samples = max(1, int(round(RawFormat(**source.raw_format).chunk_ms * 1e-3 * sfreq)))
        # lockstep: the plant runs exactly the session; real time: until the loop stops it
        child_settings = {**settings, "duration_s": config.duration_s if lockstep else None}
        child = ChildProcess(
            "plant",
            [sys.executable, "-m", "bci.runner.plant_child", json.dumps(child_settings)],
            run_dir / "plant.log",
            ready_line=PLANT_READY_LINE,
        )
        try:
            child.wait_ready(ready_timeout_s)
        except SessionProcessError:
            child.stop()
            raise
        sid = settings["source_id"]
        ready = next((line for line in child.lines if line.startswith(PLANT_READY_LINE)), "")
        latency = int(ready.partition("latency_samples=")[2] or 0)
        return SourceSession(
            kind="plant",
            query={"source_id": f"{sid}-raw"},
            record_source_ids=[
                f"{sid}-{s}" for s in ("raw", "spikes", "stim", "biomarkers", "safety")
            ],
            child=child,
            plant=PlantLink(
                command_stream=settings["command_stream"],
                controller_source_id=limiter_source_id,
                control_period_s=timing.control_period_s,
                sfreq=sfreq,
                biomarker_source_id=f"{sid}-biomarkers",
                lockstep=lockstep,
                latency_samples=latency,
                window_s=timing.window_s,
                chunk_samples=chunk_samples,
            ),
            settings=settings,
        )
    if isinstance(source, SyntheticSourceConfig):
        name = f"synthetic-{tag}"
        args = [
            "source",
            "synthetic",
            "--name",
            name,
            "--source-id",
            name,
            "--channels",
            str(source.n_channels),
            "--units",
            str(source.n_units),
            "--seed",
            str(seed),
            "--format",
            source.channel_format,
            "--noise-uv",
            repr(source.noise_uv),
            "--chunk-ms",
            repr(source.chunk_ms),
            "--artifact-hz",
            repr(source.artifact_hz),
        ]
        child = ChildProcess("synthetic source", bci_command(*args), run_dir / "source.log")
        return SourceSession(
            kind="synthetic",
            query={"source_id": name},
            record_source_ids=[name, f"{name}-groundtruth"],
            child=child,
            settings={"name": name, **source.model_dump(mode="json")},
        )
    if isinstance(source, ReplaySourceConfig):
        path = replay_path(source, config.runs_root)
        stream = replay_stream(path, source.stream)
        suffix = f"-replay-{tag}"
        args = [
            "replay",
            str(path),
            "--speed",
            repr(source.speed),
            "--streams",
            stream,
            "--source-id-suffix",
            suffix,
            "--name-suffix",
            suffix,
            "--wait-consumers",
            "30",
        ]
        child = ChildProcess("replay", bci_command(*args), run_dir / "source.log")
        return SourceSession(
            kind="replay",
            query={"name": f"{stream}{suffix}"},
            record_source_ids=[],
            child=child,
            settings={**source.model_dump(mode="json"), "resolved_path": str(path)},
        )
    if isinstance(source, MotorSourceConfig):
        from bci.cli.source import source as source_group

        if "motor" not in source_group.commands:
            raise SessionConfigError(
                "Invalid value for 'source.kind': 'motor' needs `bci source motor` (the synthetic "
                "motor cortex of the decoders package), which this installation does not have."
            )
        name = f"motor-{tag}"
        args = ["source", "motor", "--name", name, "--units", str(source.n_units)]
        args += ["--seed", str(seed)]
        for key, value in source.params.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        child = ChildProcess("motor source", bci_command(*args), run_dir / "source.log")
        return SourceSession(
            kind="motor",
            query={"name": name},
            record_source_ids=[],
            record_names=[f"{name}-kinematics"],
            child=child,
            settings=source.model_dump(mode="json"),
            truth_name=f"{name}-kinematics",
        )
    if isinstance(source, LSLSourceConfig):
        query = {
            k: v
            for k, v in (
                ("name", source.name),
                ("type", source.type),
                ("source_id", source.source_id),
            )
            if v is not None
        }
        return SourceSession(
            kind="lsl",
            query=query,
            record_source_ids=[],
            scale=source.scale,
            settings=source.model_dump(mode="json"),
        )
    raise SessionConfigError(f"Unknown source kind {source!r}.")  # pragma: no cover


def replay_path(source: ReplaySourceConfig, runs_root: Path) -> Path:
    """The recording to replay: the given path, or the newest run of ``latest:<session>``."""
    name = source.latest_of
    if name is None:
        path = Path(source.path)
        if not path.exists():
            raise SessionConfigError(
                f"Invalid value for 'source.path': {source.path!r} does not exist."
            )
        return path
    runs = sorted(p for p in Path(runs_root).glob(f"*-{name}") if (p / "recording.xdf").is_file())
    if not runs:
        raise SessionConfigError(
            f"Invalid value for 'source.path': {source.path!r}, but {runs_root} holds no run of "
            f"{name!r} with a recording. Run `bci run {name}` first, or give --set "
            "source.path=RUN_FOLDER."
        )
    return runs[-1] / "recording.xdf"


def replay_stream(path: Path, wanted: str) -> str:
    """The full name of the recorded broadband stream ``wanted`` (a name or its start)."""
    from bci.session.xdf_read import scan_xdf

    xdf = path / "recording.xdf" if path.is_dir() else path
    streams = [s for s in scan_xdf(xdf).streams.values() if s.nominal_srate > 0]
    exact = [s.name for s in streams if s.name == wanted]
    starts = [s.name for s in streams if s.name.startswith(wanted)]
    found = exact or starts
    if len(found) != 1:
        names = ", ".join(repr(s.name) for s in streams) or "(none)"
        raise SessionConfigError(
            f"Invalid value for 'source.stream': {wanted!r} names "
            f"{'no' if not found else 'more than one'} regular stream of {xdf}; it has {names}."
        )
    return found[0]


def local_clock() -> float:
    """LSL's clock (one place, so tests can see what the loop uses)."""
    return float(pylsl.local_clock())
