"""``bci train-decoder``: fit a decoder on recorded sessions and save it."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

DECODER_CHOICES = ("snn", "rsnn", "wiener", "kalman", "mlp")


@click.command("train-decoder")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--target",
    required=True,
    help="Stream whose channels are the outputs (e.g. motor-kinematics), or STREAM:ch1,ch2; a "
    "text only one stream's name contains will do (kinematics:vx,vy).",
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Model file.")
@click.option(
    "--decoder",
    type=click.Choice(DECODER_CHOICES),
    default="snn",
    show_default=True,
    help="Decoder to train.",
)
@click.option("--bin-ms", type=float, default=20.0, show_default=True, help="Bin width (ms).")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed.")
@click.option(
    "--spikes",
    default=None,
    help="Spike stream to decode from, when a recording holds several (a plant's ground truth "
    "beside the loop's <run_id>-spikes): its name, or a text only its name contains.",
)
@click.option(
    "--units",
    "n_units",
    type=int,
    default=None,
    help="Units the online binner emits (columns = unit ids 0..N-1; for threshold crossings, "
    "the channel count). Default: the highest unit id recorded + 1.",
)
def train_decoder(
    run_dirs: tuple[Path, ...],
    target: str,
    out: Path,
    decoder: str,
    bin_ms: float,
    seed: int,
    spikes: str | None,
    n_units: int | None,
) -> None:
    """Train a decoder on the spikes and a target stream of recorded sessions (RUN_DIR...).

    Column u of the training counts is unit id u of the spike stream, as the online
    spike_binner lays out its bins; the model file keeps this command, the runs, the seed and
    the wall time.
    """
    from rich.progress import Progress

    from bci.errors import BCIError
    from decoders.recorded import fit_on_runs

    if bin_ms <= 0:
        raise click.BadParameter("must be > 0", param_hint="--bin-ms")
    if n_units is not None and n_units < 1:
        raise click.BadParameter(f"must be >= 1, got {n_units}.", param_hint="--units")
    stream, _, chans = target.partition(":")
    channels = [c for c in chans.split(",") if c] or None
    t0 = time.perf_counter()
    try:
        with Progress() as progress:
            task = progress.add_task(f"training {decoder}", total=None)

            def report(epoch: int, epochs: int, val: float) -> None:
                progress.update(task, completed=epoch, total=epochs,
                                description=f"training {decoder} (val loss {val:.3f})")  # fmt: skip

            dec = fit_on_runs(
                run_dirs, stream, channels, decoder, bin_s=bin_ms * 1e-3, seed=seed,
                spikes=spikes, n_units=n_units, progress=report,
            )  # fmt: skip
        dec.provenance = {
            "command": _command(run_dirs, target, out, decoder, bin_ms, seed, spikes, n_units),
            "runs": [str(r) for r in run_dirs],
            "seed": seed,
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        dec.save(out)
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    names = list(dec.info.output_names)
    click.echo(f"Saved {type(dec).__name__} ({dec.n_units} units -> {names}) to {out}")


def _command(
    run_dirs: tuple[Path, ...],
    target: str,
    out: Path,
    decoder: str,
    bin_ms: float,
    seed: int,
    spikes: str | None,
    n_units: int | None,
) -> str:
    """The command line that trains this model again (from the parsed options)."""
    args = ["bci", "train-decoder", *map(str, run_dirs), "--target", target, "--out", str(out)]
    args += ["--decoder", decoder, "--bin-ms", f"{bin_ms:g}", "--seed", str(seed)]
    if spikes is not None:
        args += ["--spikes", spikes]
    if n_units is not None:
        args += ["--units", str(n_units)]
    return " ".join(shlex.quote(a) for a in args)
