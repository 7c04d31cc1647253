"""``bci stim``: send stimulation commands (device units) to a stimulator such as ``bci plant``."""

from __future__ import annotations

import math
import time

import click

from bci.cli._params import pulse_options


def _positive(value: float | None, flag: str, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise click.BadParameter(
            f"must be a finite number {'>=' if allow_zero else '>'} 0, got {value}", param_hint=flag
        )


@click.command()
@click.option(
    "--stream",
    default="plant-commands",
    show_default=True,
    help="Name of the command stream (bci plant reads <name>-commands).",
)
@click.option(
    "--source-id",
    required=True,
    help="source_id of the command stream: what the plant was told to obey "
    "(bci plant --controller-source-id).",
)
@click.option("--session-token", default="", help="Session token (bci plant --session-token).")
@click.option(
    "--amplitude-ma", type=float, required=True, help="Amplitude (mA; So 2012's DBS: 2.5)."
)
@pulse_options()
@click.option(
    "--rate-hz",
    type=float,
    default=50.0,
    show_default=True,
    help="Commands per second (one per control period keeps the plant's watchdog fed and "
    "drives a --lockstep plant at this pace).",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: until Ctrl-C, or --count).",
)
@click.option("--count", type=int, default=None, help="Stop after this many commands.")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the stimulator to connect before sending.",
)
def stim(
    stream: str,
    source_id: str,
    session_token: str,
    amplitude_ma: float,
    frequency: float,
    pulse_width: float,
    rate_hz: float,
    duration: float | None,
    count: int | None,
    wait_s: float,
) -> None:
    """Send a constant stimulation command repeatedly on a command stream (device units).

    The stimulator's safety limiter decides what is delivered: commands above its limits are
    clamped, invalid ones give its safe state, and it ramps the amplitude at its slew rate.
    """
    from rich.console import Console

    from stimulation.plant.commands import CommandOutlet

    for value, flag in ((rate_hz, "--rate-hz"), (frequency, "--frequency")):
        _positive(value, flag)
    _positive(pulse_width, "--pulse-width")
    _positive(duration, "--duration", allow_zero=True)
    _positive(wait_s, "--wait", allow_zero=True)
    if not math.isfinite(amplitude_ma):
        raise click.BadParameter(f"must be finite, got {amplitude_ma}", param_hint="--amplitude-ma")
    if count is not None and count < 1:
        raise click.BadParameter(f"must be >= 1, got {count}", param_hint="--count")
    console = Console()
    outlet = CommandOutlet(stream, source_id, session_token)
    console.print(
        f"Sending {amplitude_ma:g} mA, {frequency:g} Hz, {pulse_width:g} us on [bold]{stream}"
        f"[/bold] (source_id {source_id}) at {rate_hz:g} commands/s"
    )
    if not outlet.wait_for_consumers(wait_s):
        raise click.ClickException(
            f"No stimulator connected to {stream} within {wait_s:g} s: is `bci plant` running "
            f"with --controller-source-id {source_id}? (its command stream is <name>-commands)"
        )
    period = 1.0 / rate_hz
    start = time.monotonic()
    sent = 0
    try:
        while True:
            if count is not None and sent >= count:
                break
            if duration is not None and time.monotonic() - start >= duration:
                break
            outlet.send(amplitude_ma, frequency, pulse_width)
            sent += 1
            time.sleep(max(0.0, start + sent * period - time.monotonic()))
    except KeyboardInterrupt:
        console.print("Interrupted.")
    time.sleep(0.2)  # let the last commands leave before the outlet closes
    console.print(f"Sent {sent} commands in {time.monotonic() - start:.2f} s")
