"""``bci analyze``: offline analysis of recorded sessions (report.html, analysis.json, comparison)."""

from __future__ import annotations

import glob
from pathlib import Path

import click


def _expand(run_dirs: tuple[Path, ...], many: str | None) -> list[Path]:
    paths = list(run_dirs)
    if many is not None:
        matches = sorted(Path(p) for p in glob.glob(many) if Path(p).is_dir())
        if not matches:
            raise click.BadParameter(f"{many!r} matches no run folder.", param_hint="'--many'")
        paths += matches
    if not paths:
        raise click.UsageError("Give at least one RUN_DIR, or --many 'sessions/runs/*'.")
    return paths


@click.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--many",
    metavar="GLOB",
    default=None,
    help="Analyse every run folder matching GLOB (quote it) as Ray tasks (needs the scale extra).",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    default=None,
    help="Run the tasks on an existing Ray cluster (HOST:PORT, ray://HOST:PORT or auto) "
    "[default: a local Ray instance].",
)
@click.option(
    "--cpus", type=click.IntRange(min=1), default=None, help="CPUs of the local Ray instance."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of the comparison table when more than one run is analysed "
    "[default: the runs' common parent].",
)
def analyze(
    run_dirs: tuple[Path, ...],
    many: str | None,
    cluster: str | None,
    cpus: int | None,
    out: Path | None,
) -> None:
    """Analyse recorded sessions: RUN_DIR is a run folder (recording.xdf, summary.json, ...).

    Writes report.html (self-contained, with figures) and analysis.json (every number) into each
    run folder; with several runs, a comparison of the controllers (comparison.csv / .md / .html).
    A damaged run folder is analysed as far as it goes, and the report says what is missing.
    """
    import os

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bci.analysis.batch import analyze_runs
    from bci.analysis.report import comparison_markdown, write_comparison
    from bci.errors import BCIError, ConfigError

    paths = _expand(run_dirs, many)
    use_ray = many is not None or cluster is not None
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]analyse"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console, transient=False,
    ) as progress:  # fmt: skip
        bar = progress.add_task("", total=len(paths))

        def on_done(path: str, row: dict | None, error: str | None) -> None:
            name = Path(path).name
            progress.advance(bar)
            if error is not None:
                progress.console.print(f"[red]FAILED[/red] {name}: {error}")
            else:
                assert row is not None
                for m in row.get("_missing", []):
                    progress.console.print(f"[yellow]{name}: {m}[/yellow]")
                progress.console.print(f"{name}: {row['_report']} ({row['_wall_s']:.1f} s)")

        if use_ray:
            progress.update(bar, description="starting Ray...")
        try:
            result = analyze_runs(
                paths, use_ray=use_ray, cluster=cluster, num_cpus=cpus, on_done=on_done
            )
        except ConfigError as err:
            raise click.UsageError(str(err)) from err
        except BCIError as err:
            raise click.ClickException(str(err)) from err
        progress.update(bar, description="")
    if use_ray:
        console.print(f"Ray start-up {result.startup_s:.1f} s, total {result.wall_s:.1f} s")
    if len(paths) > 1 or use_ray:
        where = out or Path(os.path.commonpath([str(p.resolve()) for p in paths]))
        if where.is_file() or where in [p.resolve() for p in paths]:
            where = where.parent
        files = write_comparison(result.rows, where, errors=result.errors)
        click.echo(comparison_markdown(result.rows), nl=False)
        click.echo(f"Comparison: {files['csv']} {files['md']} {files['html']}")
    if result.errors:
        raise click.ClickException(
            f"{len(result.errors)} of {len(paths)} run(s) failed: "
            + "; ".join(f"{Path(e['run']).name}: {e['error']}" for e in result.errors)
        )
