"""``bci plant``: run the simulated Parkinsonian basal-ganglia network behind LSL streams."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from bci.cli._params import (
    channel_format_option,
    duration_option,
    pulse_options,
    yaml_file_option,
)


def _limits_from(
    path: Path | None,
    controller_source_id: str | None,
    session_token: str | None,
    max_amplitude_ma: float | None,
    watchdog_ms: float | None,
    safe_state: str | None,
) -> Any:
    """The bridge's SafetyLimits from ``--limits FILE`` and the flags that override it."""
    import yaml

    from stimulation.safety import SafetyConfigError, SafetyLimits

    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise click.BadParameter(f"cannot read {path}: {err}", param_hint="--limits") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter(
                f"{path} must hold a mapping of limit names to values", param_hint="--limits"
            )
        values.update(loaded)
    flags = {
        "source_id": controller_source_id,
        "session_token": session_token,
        "max_amplitude_ma": max_amplitude_ma,
        "safe_state": safe_state,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if watchdog_ms is not None:
        values["watchdog_timeout_s"] = watchdog_ms * 1e-3 if watchdog_ms > 0 else None
    if controller_source_id is None and "source_id" not in values:
        values["watchdog_timeout_s"] = None  # open loop: nobody to watch
    try:
        return SafetyLimits.from_dict(values)
    except SafetyConfigError as err:
        raise click.UsageError(f"Invalid safety limits: {err}") from None


@click.command()
@click.option(
    "--state",
    type=click.Choice(["pd", "healthy"]),
    default="pd",
    show_default=True,
    help="Parkinsonian or healthy network.",
)
@click.option(
    "--plant",
    "plant_kind",
    type=click.Choice(["stationary", "fluctuating"]),
    default="stationary",
    show_default=True,
    help="A network that stays in --state, or one whose Parkinsonian state comes and goes.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of everything random.")
@click.option("--name", default="plant", show_default=True, help="Prefix of the stream names.")
@click.option(
    "--source-id",
    default=None,
    help="Prefix of the streams' source_ids (default plant-<name>-<state>-<seed>).",
)
@click.option(
    "--controller-source-id",
    default=None,
    help="source_id of the only command stream obeyed (others are dropped and counted). "
    "Without it the plant runs open loop on --amplitude-ma.",
)
@click.option(
    "--session-token",
    default=None,
    help="Token the controller's command stream must carry (bci stim --session-token).",
)
@click.option(
    "--command-stream", default=None, help="Name of the command stream (default <name>-commands)."
)
@click.option(
    "--lockstep/--realtime",
    default=False,
    show_default=True,
    help="Advance one control period per accepted command instead of pacing to the clock.",
)
@click.option(
    "--max-speed",
    type=float,
    default=None,
    help="With --lockstep: at most this many simulated seconds per wall second (1: real time, "
    "as a stimulator; default: as fast as the commands come).",
)
@duration_option("Stop after this much simulated time (default: until Ctrl-C).")
@click.option("--cells", type=int, default=10, show_default=True, help="Cells per nucleus.")
@click.option(
    "--dbs-target",
    type=click.Choice(["stn", "gpe", "gpi"]),
    default="stn",
    show_default=True,
    help="Stimulated nucleus.",
)
@click.option(
    "--recorded-nucleus",
    type=click.Choice(["stn", "gpe", "gpi", "th"]),
    default="stn",
    show_default=True,
    help="Nucleus the virtual probe records.",
)
@click.option("--units", type=int, default=8, show_default=True, help="Recorded cells.")
@click.option("--channels", type=int, default=16, show_default=True, help="Probe contacts.")
@channel_format_option(["float32", "int16"], "float32", "Sample format of <name>-raw.")
@click.option("--noise-uv", type=float, default=5.0, show_default=True, help="Noise RMS (uV).")
@click.option("--lfp-uv", type=float, default=50.0, show_default=True, help="LFP RMS (uV).")
@click.option(
    "--artifact-uv",
    type=float,
    default=2000.0,
    show_default=True,
    help="Stimulation artifact peak at 2.5 mA (uV).",
)
@click.option(
    "--control-period-ms",
    type=float,
    default=20.0,
    show_default=True,
    help="Control period (ms): biomarker rate, and the step per command in lockstep.",
)
@click.option(
    "--amplitude-ma",
    type=float,
    default=0.0,
    show_default=True,
    help="Open-loop stimulation (mA; So 2012's DBS is 2.5 mA at 130 Hz, 300 us).",
)
@pulse_options()
@click.option(
    "--biphasic/--monophasic",
    default=False,
    show_default=True,
    help="Charge-balanced biphasic pulses.",
)
@yaml_file_option(
    "--limits",
    "limits_file",
    "YAML file of safety limits (stimulation.safety.SafetyLimits fields).",
)
@click.option(
    "--max-amplitude-ma", type=float, default=None, help="Safety limit on the amplitude (mA)."
)
@click.option(
    "--watchdog-ms",
    type=float,
    default=None,
    help="Safe state after this long without a command (ms; 0: no watchdog; default 100).",
)
@click.option(
    "--safe-state",
    type=click.Choice(["off", "continuous"]),
    default=None,
    help="What the limiter falls back to (default off).",
)
def plant(
    state: str,
    plant_kind: str,
    seed: int,
    name: str,
    source_id: str | None,
    controller_source_id: str | None,
    session_token: str | None,
    command_stream: str | None,
    lockstep: bool,
    max_speed: float | None,
    duration: float | None,
    cells: int,
    dbs_target: str,
    recorded_nucleus: str,
    units: int,
    channels: int,
    channel_format: str,
    noise_uv: float,
    lfp_uv: float,
    artifact_uv: float,
    control_period_ms: float,
    amplitude_ma: float,
    frequency: float,
    pulse_width: float,
    biphasic: bool,
    limits_file: Path | None,
    max_amplitude_ma: float | None,
    watchdog_ms: float | None,
    safe_state: str | None,
) -> None:
    """Run the basal-ganglia plant (So, Kent & Grill 2012) and publish it on LSL.

    Streams: <name>-raw (virtual probe, 30 kHz), <name>-spikes (ground truth), <name>-stim (DBS
    pulse onsets), <name>-biomarkers (one sample per control period), <name>-safety (the safety
    limiter's events). Commands are read from <name>-commands in device units (amplitude_ma,
    frequency_hz, pulse_width_us, seq, t_issue; send some with `bci stim`) and obeyed only after
    the safety limiter passed them.
    """
    from rich.console import Console

    from bci.errors import BCIError, ConfigError
    from stimulation.plant import BasalGangliaNetwork
    from stimulation.plant.bridge import BridgeTiming, PlantBridge, RawFormat, StimSetting
    from stimulation.plant.probe import VirtualProbe
    from stimulation.safety import REFERENCE_AMPLITUDE_MA, model_amplitude_ua_cm2

    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        raise click.BadParameter(f"must be a number >= 0, got {duration}", param_hint="--duration")
    if lockstep and not controller_source_id:
        raise click.UsageError(
            "--lockstep advances the plant one period per controller command, so it needs "
            "--controller-source-id (the source_id of the command stream to obey; e.g. the "
            "--source-id you give `bci stim`)."
        )
    if max_speed is not None:
        if not (math.isfinite(max_speed) and max_speed > 0):
            raise click.BadParameter(
                f"must be a finite number > 0 (simulated s per wall s), got {max_speed}",
                param_hint="--max-speed",
            )
        if not lockstep:
            raise click.UsageError(
                "--max-speed paces --lockstep only (a --realtime plant already runs at the wall "
                "clock's speed): add --lockstep or drop --max-speed."
            )
    limits = _limits_from(
        limits_file, controller_source_id, session_token, max_amplitude_ma, watchdog_ms, safe_state
    )
    console = Console()
    try:
        network = BasalGangliaNetwork(
            state=state,
            cells_per_nucleus=cells,
            seed=seed,
            dbs_target=dbs_target,
            plant=plant_kind,
        )
        probe = VirtualProbe(
            cells,
            recorded_nucleus,
            units,
            channels,
            seed=seed,
            noise_uv=noise_uv,
            lfp_uv=lfp_uv,
            artifact_amplitude_uv=artifact_uv,
            reference_amplitude=model_amplitude_ua_cm2(REFERENCE_AMPLITUDE_MA),
            artifact_pulse_us=pulse_width,
        )
        bridge = PlantBridge(
            network,
            probe,
            name=name,
            source_id=source_id,
            limits=limits,
            command_stream=command_stream,
            initial=StimSetting(amplitude_ma, frequency, pulse_width),
            timing=BridgeTiming(
                control_period_s=control_period_ms * 1e-3, lockstep=lockstep, max_speed=max_speed
            ),
            raw_format=RawFormat(channel_format),
            biphasic=biphasic,
        )
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    with bridge:
        console.print(
            f"Plant [bold]{name}[/bold] ({state}, {plant_kind}, seed {seed}, {cells} cells per nucleus, DBS into "
            f"{dbs_target}): {bridge.probe.n_channels} ch x {bridge.sfreq:g} Hz on "
            f"[bold]{name}-raw[/bold] ({units} {recorded_nucleus} cells), ground truth on "
            f"{name}-spikes, pulses on {name}-stim, biomarkers on {name}-biomarkers, safety "
            f"events on {name}-safety"
        )
        wait_hint = (
            f"bci stim --stream {bridge.command_stream} --source-id {controller_source_id}"
            + (f" --session-token {session_token}" if session_token else "")
            + " --amplitude-ma 2.5"
        )
        pace = "real time" if not lockstep else "lockstep"
        if lockstep and max_speed is not None:
            pace += f", at most {max_speed:g}x real time"
        if controller_source_id:
            console.print(
                f"Obeying {bridge.command_stream} from source_id {controller_source_id}"
                f"{' with the session token' if session_token else ''}, through the safety "
                f"limiter ({pace}). Waiting for its commands; "
                f"to send some: {wait_hint}"
            )
        else:
            console.print(
                f"Open loop at {amplitude_ma:g} mA, {frequency:g} Hz, {pulse_width:g} us "
                "(through the safety limiter)"
            )

        def waiting(silent_s: float) -> None:
            console.print(
                f"Still waiting for commands on {bridge.command_stream} from source_id "
                f"{controller_source_id} ({silent_s:.0f} s; streams seen: "
                f"{bridge.listener.n_streams if bridge.listener else 0}, commands dropped: "
                f"{bridge.n_dropped}). Send some with: {wait_hint}"
            )

        try:
            stats = bridge.run(duration, on_wait=waiting)
        except KeyboardInterrupt:
            stats = bridge.stats
            console.print("Interrupted.")
        except BCIError as err:
            raise click.ClickException(str(err)) from err
        counts = dict(bridge.limiter.counts)
        console.print(
            f"Simulated {bridge.t_model_s:.2f} s in {stats.wall_s:.2f} s wall: {stats.periods} "
            f"periods, {stats.spikes} recorded spikes, {stats.pulses} pulses; commands applied "
            f"{stats.commands_applied}, dropped {bridge.n_dropped}, invalid {bridge.n_invalid}; "
            f"late periods {stats.late_periods}, max lag {stats.max_lag_s * 1e3:.1f} ms"
            + (f"; waited {stats.paced_s:.2f} s for the pace" if max_speed is not None else "")
            + (f"; safety events {counts}" if counts else "")
        )
