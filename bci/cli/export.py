"""``bci export``: write a recorded session in a format other tools read (NWB)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def export() -> None:
    """Export recorded sessions (run folders) for sharing."""


@export.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="NWB file to write [default: session.nwb in the run folder].",
)
@click.option("--overwrite", is_flag=True, default=False, help="Replace an existing NWB file.")
@click.option(
    "--raw/--no-raw",
    default=True,
    show_default=True,
    help="Write the voltage recordings' samples (--no-raw: everything else, which neo's NWBIO "
    "can read).",
)
@click.option(
    "--block-s",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds of voltage copied per block (bounds the memory used).",
)
@click.option(
    "--compression-level",
    type=click.IntRange(0, 9),
    default=4,
    show_default=True,
    help="gzip level of the voltage recordings.",
)
def nwb(
    run_dir: Path,
    out: Path | None,
    overwrite: bool,
    raw: bool,
    block_s: float,
    compression_level: int,
) -> None:
    """Write RUN_DIR's recording (a run folder or an .xdf file) as an NWB file.

    Raw voltage as ElectricalSeries with the electrodes table and probe geometry, sorted units,
    decoded variables and stimulation as TimeSeries, pulses and safety events, the plant's ground
    truth, and the session config, as described in bci.session.nwb.
    """
    import time

    from bci.errors import BCIError, ConfigError
    from bci.session.nwb import export_nwb

    if not (block_s > 0 and block_s < float("inf")):
        raise click.BadParameter(f"must be a positive number of seconds, got {block_s}.",
                                 param_hint="'--block-s'")  # fmt: skip
    t = time.perf_counter()
    try:
        path = export_nwb(
            run_dir,
            out,
            overwrite=overwrite,
            raw=raw,
            block_s=block_s,
            compression_level=compression_level,
        )
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    size_mb = path.stat().st_size / 1e6
    click.echo(f"Wrote {path} ({size_mb:.1f} MB) in {time.perf_counter() - t:.1f} s.")
