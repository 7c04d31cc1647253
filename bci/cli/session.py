"""``bci session``: check and repair recorded sessions (XDF files)."""

from __future__ import annotations

from pathlib import Path

import click

from bci.cli._params import fail


@click.group()
def session() -> None:
    """Check and repair recorded sessions."""


@session.command()
@click.argument("recording", type=click.Path(path_type=Path))
@click.option(
    "--allow-unknown",
    is_flag=True,
    default=False,
    help="List chunks with tags XDF 1.0 does not define instead of failing on them.",
)
def check(recording: Path, allow_unknown: bool) -> None:
    """Check the chunk structure of RECORDING (an .xdf file or a run folder).

    Prints the streams with their sample counts; exits non-zero if the file is truncated, lacks
    footers or breaks the XDF specification.
    """
    from bci.errors import BCIError
    from bci.session.xdf_read import scan_xdf

    try:
        scan = scan_xdf(recording, allow_unknown=allow_unknown)
    except BCIError as err:
        fail(err)
    click.echo(f"{scan.path}: {scan.size} bytes, {len(scan.chunks)} whole chunks")
    for s in scan.streams.values():
        rate = f"{s.nominal_srate:g} Hz" if s.nominal_srate > 0 else "irregular"
        footer = "footer" if s.footer_xml is not None else "NO footer"
        click.echo(
            f"  stream {s.stream_id}: {s.name!r} ({s.n_channels} ch, {rate}, "
            f"{s.channel_format}): {s.sample_count} samples, "
            f"{len(s.clock_offsets)} clock offsets, {footer}"
        )
    problems = scan.problems()
    if problems:
        raise click.ClickException(
            "; ".join(problems) + f". Run `bci session repair {scan.path}` for a closed copy."
        )
    click.echo("OK: every chunk whole, every stream closed with a footer.")


@session.command()
@click.argument("recording", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The repaired file to write [default: <name>.repaired.xdf next to RECORDING].",
)
@click.option("--overwrite", is_flag=True, default=False, help="Replace --out if it exists.")
@click.option(
    "--force", is_flag=True, default=False, help="Write --out even if RECORDING is complete."
)
@click.option(
    "--allow-unknown",
    is_flag=True,
    default=False,
    help="Copy chunks with tags XDF 1.0 does not define instead of refusing the file.",
)
def repair(
    recording: Path, out: Path | None, overwrite: bool, force: bool, allow_unknown: bool
) -> None:
    """Write a cleanly closed copy of a truncated RECORDING (the original is left untouched).

    Keeps every whole chunk and the whole samples of a cut Samples chunk, then adds a Boundary
    chunk and the missing StreamFooters.
    """
    from bci.errors import BCIError
    from bci.session.repair import repair as repair_file

    if out is not None and out.exists() and not overwrite:
        raise click.BadParameter(
            f"{out} already exists; pass --overwrite to replace it.", param_hint="--out"
        )
    try:
        report = repair_file(
            recording, out, overwrite=overwrite, force=force, allow_unknown=allow_unknown
        )
    except BCIError as err:
        fail(err)
    if report.output is None:
        click.echo(f"{report.source} is complete; nothing to repair (use --force for a copy).")
        return
    for problem in report.problems:
        click.echo(f"found: {problem}")
    for name, n in report.salvaged_samples.items():
        click.echo(f"kept {n} whole samples of {name!r} from the cut chunk")
    if report.footers_added:
        click.echo("added footers for: " + ", ".join(repr(n) for n in report.footers_added))
    counts = ", ".join(f"{k!r}: {v}" for k, v in report.sample_counts.items())
    click.echo(f"wrote {report.output} ({counts})")
