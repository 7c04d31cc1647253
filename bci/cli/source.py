"""``bci source``: publish signal sources on LSL (``bci source synthetic`` for now)."""

from __future__ import annotations

import click

from bci.cli._params import (
    FiniteFloat,
    channel_format_option,
    duration_option,
    fail,
    non_negative_float,
    positive_float,
    probe_options,
)


@click.group()
def source() -> None:
    """Publish a signal source as live LSL streams."""


@source.command()
@probe_options(seed_help="Seed of everything random.")
@click.option("--name", default="synthetic", show_default=True, help="LSL stream name.")
@channel_format_option(
    ["int16", "float32"],
    "int16",
    "Sample format; int16 carries 0.195 uV per bit (see --scale-uv-per-bit).",
)
@click.option(
    "--sfreq", type=positive_float, default=30000.0, show_default=True, help="Sampling rate (Hz)."
)
@click.option(
    "--chunk-ms", type=positive_float, default=1.0, show_default=True, help="Chunk length (ms)."
)
@duration_option("Stop after this much signal (default: run until Ctrl-C).", positive_float)
@click.option(
    "--noise-uv", type=non_negative_float, default=5.0, show_default=True, help="Noise RMS (uV)."
)
@click.option("--lfp/--no-lfp", default=False, show_default=True, help="Add a slow LFP with beta.")
@click.option(
    "--layout",
    type=click.Choice(["linear", "tetrode-like", "grid"]),
    default="linear",
    show_default=True,
    help="Probe geometry.",
)
@click.option(
    "--rates-hz",
    type=(FiniteFloat(0.0), FiniteFloat(0.0)),
    default=(2.0, 15.0),
    show_default=True,
    help="Range of firing rates drawn per unit (Hz).",
)
@click.option(
    "--scale-uv-per-bit",
    type=positive_float,
    default=0.195,
    show_default=True,
    help="int16 step (uV).",
)
@click.option(
    "--artifact-hz",
    type=non_negative_float,
    default=0.0,
    show_default=True,
    help="Periodic stimulation artifacts at this rate (e.g. 130 for DBS; 0: none).",
)
@click.option(
    "--artifact-uv",
    type=non_negative_float,
    default=2000.0,
    show_default=True,
    help="Artifact amplitude (uV); onsets go out on <name>-stim.",
)
@click.option(
    "--source-id",
    default=None,
    help="LSL source_id (default: synthetic-<name>-<seed>).",
)
@click.option(
    "--no-ground-truth",
    is_flag=True,
    default=False,
    show_default=True,
    help="Do not publish the <name>-groundtruth marker stream.",
)
def synthetic(
    channels: int,
    units: int,
    seed: int,
    name: str,
    channel_format: str,
    sfreq: float,
    chunk_ms: float,
    duration: float | None,
    noise_uv: float,
    lfp: bool,
    layout: str,
    rates_hz: tuple[float, float],
    scale_uv_per_bit: float,
    artifact_hz: float,
    artifact_uv: float,
    source_id: str | None,
    no_ground_truth: bool,
) -> None:
    """Publish a synthetic extracellular recording (spikes, noise, LFP) with ground-truth markers."""
    from rich.console import Console

    from bci.errors import BCIError
    from bci.synthesis.publisher import LATE_TOLERANCE_S, SyntheticPublisher

    if rates_hz[0] > rates_hz[1]:
        raise click.BadParameter(
            f"the range {rates_hz[0]:g} {rates_hz[1]:g} is reversed (give LOW HIGH).",
            param_hint="--rates-hz",
        )
    if artifact_hz > sfreq / 2:
        raise click.BadParameter(
            f"{artifact_hz:g} Hz is above half of --sfreq ({sfreq / 2:g} Hz).",
            param_hint="--artifact-hz",
        )
    console = Console()
    sid = source_id if source_id is not None else f"synthetic-{name}-{seed}"
    try:
        pub = SyntheticPublisher(
            None,
            name=name,
            source_id=sid,
            channel_format=channel_format,
            chunk_ms=chunk_ms,
            scale_uv_per_bit=scale_uv_per_bit,
            ground_truth=not no_ground_truth,
            n_channels=channels,
            n_units=units,
            sfreq=sfreq,
            seed=seed,
            noise_uv=noise_uv,
            firing_rates_hz=rates_hz,
            lfp=lfp,
            layout=layout,
            artifact_rate_hz=artifact_hz,
            artifact_amplitude_uv=artifact_uv,
        )
    except BCIError as err:
        fail(err)
    scale = f", {pub.scale_uv_per_bit} uV/bit" if channel_format == "int16" else ", uV"
    console.print(
        f"Publishing [bold]{name}[/bold] (source_id {sid}): {channels} ch x {sfreq:g} Hz "
        f"{channel_format}{scale}, {pub.chunk_samples}-sample chunks, {units} units, "
        f"noise {noise_uv:g} uV, LFP {'on' if lfp else 'off'}, seed {seed}"
    )
    if not no_ground_truth:
        console.print(f"Ground truth on [bold]{name}-groundtruth[/bold] (one marker per spike)")
    if pub.stim_outlet is not None:
        console.print(
            f"Stimulation artifacts at {artifact_hz:g} Hz, {artifact_uv:g} uV; onsets on "
            f"[bold]{name}-stim[/bold]"
        )
    console.print(f"Running for {duration:g} s" if duration is not None else "Running until Ctrl-C")
    try:
        stats = pub.run(duration)
    except KeyboardInterrupt:
        stats = pub.stats
        console.print("Interrupted.")
    if stats.max_lag_s > LATE_TOLERANCE_S:
        console.print(
            f"[bold yellow]Could not keep real time[/bold yellow]: {stats.late_chunks} of "
            f"{stats.chunks} chunks late, up to {stats.max_lag_s:.2f} s behind the clock "
            f"({channels} ch x {sfreq:g} Hz is more than this machine generates in real time; "
            "fewer --channels or larger --chunk-ms help)."
        )
    console.print(
        f"Sent {stats.samples} samples ({stats.samples / pub.sfreq:.2f} s) in {stats.chunks} "
        f"chunks, {stats.spikes} spikes; late chunks {stats.late_chunks}, max lag "
        f"{stats.max_lag_s * 1e3:.2f} ms, clipped samples {stats.clipped_samples}."
    )


from bci.cli.source_motor import motor  # noqa: E402

source.add_command(motor)
