"""``bci source motor``: a synthetic motor cortex on LSL, with the hand kinematics beside it."""

from __future__ import annotations

import click


@click.command()
@click.option("--units", type=int, default=96, show_default=True, help="Units (one per contact).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of everything random.")
@click.option(
    "--population-seed",
    type=int,
    default=None,
    help="Seed of the units' tuning instead of --seed: the same neurons in every session that "
    "shares it (train a decoder on some seeds, run it on others).",
)
@click.option(
    "--task",
    type=click.Choice(["random", "center_out"]),
    default="random",
    show_default=True,
    help="Reaching task.",
)
@click.option("--name", default="motor", show_default=True, help="LSL stream name.")
@click.option(
    "--format",
    "channel_format",
    type=click.Choice(["int16", "float32"]),
    default="int16",
    show_default=True,
    help="Sample format of the voltage stream.",
)
@click.option("--chunk-ms", type=float, default=1.0, show_default=True, help="Chunk length (ms).")
@click.option("--noise-uv", type=float, default=5.0, show_default=True, help="Noise RMS (uV).")
@click.option(
    "--kinematics-hz",
    type=float,
    default=100.0,
    show_default=True,
    help="Rate of the <name>-kinematics stream (vx, vy in cm/s; x, y in cm).",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this much signal (default: run until Ctrl-C).",
)
def motor(
    units: int,
    seed: int,
    population_seed: int | None,
    task: str,
    name: str,
    channel_format: str,
    chunk_ms: float,
    noise_uv: float,
    kinematics_hz: float,
    duration: float | None,
) -> None:
    """Publish a synthetic motor cortex (cosine-tuned units, reaching) with its kinematics."""
    from rich.console import Console

    from bci.errors import BCIError
    from bci.synthesis.motor import MotorSource
    from bci.synthesis.motor_stream import KinematicsPublisher
    from bci.synthesis.publisher import SyntheticPublisher

    console = Console()
    if kinematics_hz <= 0:
        raise click.BadParameter("must be > 0", param_hint="--kinematics-hz")
    if population_seed is not None and population_seed < 0:
        raise click.BadParameter(
            f"must be >= 0, got {population_seed}.", param_hint="--population-seed"
        )
    try:
        src = MotorSource(
            n_units=units, seed=seed, task=task, noise_uv=noise_uv, population_seed=population_seed
        )
        pub = SyntheticPublisher(
            src,
            name=name,
            source_id=f"motor-{name}-{seed}",
            channel_format=channel_format,
            chunk_ms=chunk_ms,
        )
        kin = KinematicsPublisher(src, f"{name}-kinematics", kinematics_hz, f"motor-{name}-{seed}")
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    console.print(
        f"Publishing [bold]{name}[/bold]: {units} ch x {src.sfreq:g} Hz {channel_format}, "
        f"{task} reaching, seed {seed}; kinematics on [bold]{name}-kinematics[/bold] at "
        f"{kinematics_hz:g} Hz; ground truth on {name}-groundtruth"
        + ("" if population_seed is None else f"; units of population seed {population_seed}")
    )
    try:
        stats = pub.run(duration, on_chunk=lambda data, spikes: kin.advance(pub, len(data)))
    except KeyboardInterrupt:
        stats = pub.stats
    console.print(
        f"Sent {stats.samples / src.sfreq:.2f} s, {stats.spikes} spikes, late chunks {stats.late_chunks}."
    )
