"""``bci replay``: play a recorded session back as live LSL streams."""

from __future__ import annotations

from pathlib import Path

import click

from bci.cli._params import fail, non_negative_float, positive_float


@click.command()
@click.argument("recording", type=click.Path(path_type=Path))
@click.option(
    "--speed",
    type=positive_float,
    default=1.0,
    show_default=True,
    help="Playback rate: 1 is real time, 4 is four times faster.",
)
@click.option(
    "--loop",
    is_flag=True,
    default=False,
    show_default=True,
    help="Restart at the end until interrupted (Ctrl-C).",
)
@click.option(
    "--streams",
    "streams",
    multiple=True,
    metavar="NAME",
    help="Play only this stream (repeat, or separate names by commas). Default: all.",
)
@click.option(
    "--source-id-suffix",
    default="-replay",
    show_default=True,
    help="Appended to each recorded source_id so the replay never passes for the live device.",
)
@click.option(
    "--name-suffix",
    default="",
    show_default=True,
    help="Appended to each stream name (default keeps the recorded names).",
)
@click.option(
    "--linger",
    type=non_negative_float,
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Keep the outlets open this long after the end so inlets get the last samples.",
)
@click.option(
    "--wait-consumers",
    type=non_negative_float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait up to this long for an inlet on every stream before playing.",
)
def replay(
    recording: Path,
    speed: float,
    loop: bool,
    streams: tuple[str, ...],
    source_id_suffix: str,
    name_suffix: str,
    linger: float,
    wait_consumers: float,
) -> None:
    """Replay RECORDING (an .xdf file or a run folder) as LSL outlets with the original timing."""
    from rich.console import Console
    from rich.table import Table

    from bci.acquisition.metadata import FORMAT_NAMES
    from bci.acquisition.player import Player
    from bci.errors import BCIError

    names = [n.strip() for item in streams for n in item.split(",") if n.strip()] or None
    console = Console()
    try:
        player = Player(
            recording,
            speed=speed,
            loop=loop,
            streams=names,
            source_id_suffix=source_id_suffix,
            name_suffix=name_suffix,
        )
    except BCIError as err:
        fail(err)
    table = Table(title=f"Replaying {player.path} ({player.duration_s:.2f} s at {speed:g}x)")
    for col in ("name", "type", "channels", "rate (Hz)", "format", "source_id"):
        table.add_column(col)
    for info in player.infos:
        table.add_row(
            info.name(),
            info.type(),
            str(info.channel_count()),
            f"{info.nominal_srate():g}",
            FORMAT_NAMES.get(info.channel_format(), str(info.channel_format())),
            info.source_id(),
        )
    console.print(table)
    interrupted = False
    try:
        if wait_consumers > 0 and not player.wait_for_consumers(wait_consumers):
            console.print(
                f"No consumer on every stream after {wait_consumers:g} s; playing anyway."
            )
        player.run()
    except KeyboardInterrupt:
        interrupted = True
        console.print("Interrupted.")
    except BCIError as err:
        fail(err)
    finally:
        player.close(linger_s=0.0 if interrupted else linger)
    loops = f", {player.loops_done} full loop(s) before the end" if loop else ""
    console.print(f"Done{' (interrupted)' if interrupted else ''}{loops}.")
