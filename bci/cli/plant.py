"""``bci plant``: run the simulated Parkinsonian basal-ganglia network behind LSL streams."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--state",
    type=click.Choice(["pd", "healthy"]),
    default="pd",
    show_default=True,
    help="Parkinsonian or healthy network.",
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
    help="source_id of the only command stream obeyed (others are ignored and counted). "
    "Without it the plant runs open loop on --amplitude.",
)
@click.option(
    "--command-stream", default=None, help="Name of the command stream (default <name>-commands)."
)
@click.option(
    "--lockstep/--realtime",
    default=False,
    show_default=True,
    help="Advance one control period per controller command instead of pacing to the clock.",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this much simulated time (default: until Ctrl-C).",
)
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
@click.option(
    "--format",
    "channel_format",
    type=click.Choice(["float32", "int16"]),
    default="float32",
    show_default=True,
    help="Sample format of <name>-raw.",
)
@click.option("--noise-uv", type=float, default=5.0, show_default=True, help="Noise RMS (uV).")
@click.option("--lfp-uv", type=float, default=50.0, show_default=True, help="LFP RMS (uV).")
@click.option(
    "--artifact-uv",
    type=float,
    default=2000.0,
    show_default=True,
    help="Stimulation artifact peak at 300 uA/cm2 (uV).",
)
@click.option(
    "--control-period-ms",
    type=float,
    default=20.0,
    show_default=True,
    help="Control period (ms): biomarker rate, and the step per command in lockstep.",
)
@click.option(
    "--amplitude",
    type=float,
    default=0.0,
    show_default=True,
    help="Stimulation before the first command (uA/cm2; So 2012 DBS: 300).",
)
@click.option("--frequency", type=float, default=130.0, show_default=True, help="Pulse rate (Hz).")
@click.option(
    "--pulse-width", type=float, default=300.0, show_default=True, help="Pulse width (us)."
)
@click.option(
    "--biphasic/--monophasic",
    default=False,
    show_default=True,
    help="Charge-balanced biphasic pulses.",
)
def plant(
    state: str,
    seed: int,
    name: str,
    source_id: str | None,
    controller_source_id: str | None,
    command_stream: str | None,
    lockstep: bool,
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
    amplitude: float,
    frequency: float,
    pulse_width: float,
    biphasic: bool,
) -> None:
    """Run the basal-ganglia plant (So, Kent & Grill 2012) and publish it on LSL.

    Streams: <name>-raw (virtual probe, 30 kHz), <name>-spikes (ground truth), <name>-stim (DBS
    pulse onsets), <name>-biomarkers (one sample per control period). Commands are read from
    <name>-commands (amplitude uA/cm2, frequency_hz, pulse_width_us, seq).
    """
    from rich.console import Console

    from bci.errors import BCIError
    from stimulation.plant.bridge import PlantBridge

    console = Console()
    try:
        bridge = PlantBridge(
            state,
            seed,
            name=name,
            source_id=source_id,
            controller_source_id=controller_source_id,
            command_stream=command_stream,
            lockstep=lockstep,
            cells_per_nucleus=cells,
            dbs_target=dbs_target,
            recorded_nucleus=recorded_nucleus,
            n_units=units,
            n_channels=channels,
            channel_format=channel_format,
            noise_uv=noise_uv,
            lfp_uv=lfp_uv,
            artifact_amplitude_uv=artifact_uv,
            control_period_s=control_period_ms * 1e-3,
            amplitude=amplitude,
            frequency_hz=frequency,
            pulse_width_us=pulse_width,
            biphasic=biphasic,
        )
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    with bridge:
        console.print(
            f"Plant [bold]{name}[/bold] ({state}, seed {seed}, {cells} cells per nucleus, DBS into "
            f"{dbs_target}): {bridge.probe.n_channels} ch x {bridge.sfreq:g} Hz on "
            f"[bold]{name}-raw[/bold] ({units} {recorded_nucleus} cells), ground truth on "
            f"{name}-spikes, pulses on {name}-stim, biomarkers on {name}-biomarkers"
        )
        if controller_source_id:
            console.print(
                f"Obeying {bridge.command_stream} from source_id {controller_source_id} "
                f"({'lockstep' if lockstep else 'real time'})"
            )
        else:
            console.print(
                f"Open loop at {amplitude:g} uA/cm2, {frequency:g} Hz, {pulse_width:g} us"
            )
        try:
            stats = bridge.run(duration)
        except KeyboardInterrupt:
            stats = bridge.stats
            console.print("Interrupted.")
        except BCIError as err:
            raise click.ClickException(str(err)) from err
        console.print(
            f"Simulated {bridge.t_model_s:.2f} s in {stats.wall_s:.2f} s wall: {stats.periods} "
            f"periods, {stats.spikes} recorded spikes, {stats.pulses} pulses; commands applied "
            f"{stats.commands_applied}, invalid {bridge.n_invalid}, unauthorised "
            f"{bridge.n_unauthorised}; late periods {stats.late_periods}, max lag "
            f"{stats.max_lag_s * 1e3:.1f} ms"
        )
