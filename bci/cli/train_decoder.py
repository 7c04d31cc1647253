"""``bci train-decoder``: fit a decoder on recorded sessions and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DECODER_CHOICES = ("snn", "rsnn", "wiener", "kalman", "mlp")


@click.command("train-decoder")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--target",
    required=True,
    help="Stream whose channels are the outputs (e.g. motor-kinematics), or STREAM:ch1,ch2.",
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
def train_decoder(
    run_dirs: tuple[Path, ...], target: str, out: Path, decoder: str, bin_ms: float, seed: int
) -> None:
    """Train a decoder on the spikes and a target stream of recorded sessions (RUN_DIR...)."""
    import numpy as np
    from rich.progress import Progress

    from bci.errors import BCIError
    from decoders.recorded import session_arrays

    if bin_ms <= 0:
        raise click.BadParameter("must be > 0", param_hint="--bin-ms")
    stream, _, chans = target.partition(":")
    channels = [c for c in chans.split(",") if c] or None
    try:
        Xs, Ys, names, units = [], [], None, None
        for run in run_dirs:
            X, Y, names, units = session_arrays(run, stream, channels, bin_ms * 1e-3)
            Xs.append(X)
            Ys.append(Y)
        X, Y = np.vstack(Xs), np.vstack(Ys)
        dec = _make(decoder, seed)
        with Progress() as progress:
            task = progress.add_task(f"training {decoder}", total=None)
            if hasattr(dec, "progress"):

                def report(epoch: int, epochs: int, val: float) -> None:
                    progress.update(task, completed=epoch, total=epochs,
                                    description=f"training {decoder} (val loss {val:.3f})")  # fmt: skip

                dec.progress = report
            dec.fit(X, Y, bin_s=bin_ms * 1e-3, output_names=names, output_units=units)
        dec.save(out)
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"Saved {type(dec).__name__} ({X.shape[1]} units -> {names}) to {out}")


def _make(kind: str, seed: int) -> Any:
    from decoders import KalmanDecoder, WienerDecoder
    from decoders.ann import MLPDecoder
    from decoders.snn.decoder import RecurrentSNNDecoder, SNNDecoder

    if kind == "snn":
        return SNNDecoder(seed=seed)
    if kind == "rsnn":
        return RecurrentSNNDecoder(seed=seed)
    if kind == "mlp":
        return MLPDecoder(seed=seed)
    return WienerDecoder() if kind == "wiener" else KalmanDecoder()
