"""``bci sweep``: one closed-loop session over many seeds and parameter values, as Ray tasks."""

from __future__ import annotations

from pathlib import Path

import click

SWEEP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("seed", "seed"),
    ("set", "--set"),
    ("status", "status"),
    ("controller", "controller"),
    ("error_index", "error index"),
    ("gpi_beta", "GPi beta"),
    ("energy_j", "energy (J)"),
    ("time_on_stim_s", "time on stim (s)"),
    ("loop_latency_p50_ms", "latency p50 (ms)"),
    ("loop_latency_p99_ms", "latency p99 (ms)"),
    ("wall_s", "wall (s)"),
)


def _write_table(rows: list[dict], errors: list[dict], out: Path) -> tuple[Path, Path]:
    import csv
    import io

    out.mkdir(parents=True, exist_ok=True)
    keys = [k for k, _ in SWEEP_COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*keys, "error"])
    writer.writeheader()
    for r in sorted(rows, key=lambda r: (r.get("seed", 0), r.get("set", ""))):
        writer.writerow({k: r.get(k) for k in keys})
    for e in errors:
        writer.writerow({"run": e["run"], "error": e["error"]})
    csv_path = out / "sweep.csv"
    csv_path.write_text(buf.getvalue(), encoding="utf-8")

    def fmt(v: object) -> str:
        return "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(h for _, h in SWEEP_COLUMNS) + " |",
             "|" + "|".join("---" for _ in SWEEP_COLUMNS) + "|"]  # fmt: skip
    for r in sorted(rows, key=lambda r: (r.get("seed", 0), r.get("set", ""))):
        lines.append("| " + " | ".join(fmt(r.get(k)) for k in keys) + " |")
    lines += [f"\nFAILED {e['run']}: {e['error']}" for e in errors]
    md_path = out / "sweep.md"
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path, md_path


@click.command()
@click.argument("session")
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0-19, 3, or 0-3,7.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Config values to sweep (dotted keys as in `bci run --set`); several --set give every "
    "combination.",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    default=None,
    help="An existing Ray cluster (HOST:PORT, ray://HOST:PORT or auto) [default: local Ray].",
)
@click.option(
    "--cpus", type=click.IntRange(min=1), default=None, help="CPUs of the local Ray instance."
)
@click.option(
    "--ray/--no-ray",
    "use_ray",
    default=True,
    show_default=True,
    help="Run the sessions as Ray tasks (--no-ray: one after another in this process).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of sweep.csv and sweep.md [default: the session's runs folder].",
)
def sweep(
    session: str,
    seeds: str,
    sets: tuple[str, ...],
    cluster: str | None,
    cpus: int | None,
    use_ray: bool,
    out: Path | None,
) -> None:
    """Run SESSION (a YAML file or a shipped session's name) once per seed and --set combination.

    Each run lands in the usual run folder; a failed run is reported with its error and the others
    go on; one table (sweep.csv, sweep.md) at the end.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bci.analysis.batch import run_tasks
    from bci.analysis.sweep import parse_seeds, plan_sweep, run_job
    from bci.errors import BCIError, ConfigError

    try:
        jobs = plan_sweep(session, parse_seeds(seeds), list(sets))
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    except ImportError as err:
        raise click.ClickException(
            f"bci sweep needs the closed-loop runner (bci.runner), which cannot be imported: {err}"
        ) from err
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=console,
    ) as progress:  # fmt: skip
        bar = progress.add_task("starting..." if use_ray else "", total=len(jobs))

        def on_done(name: str, row: dict | None, error: str | None) -> None:
            progress.advance(bar)
            progress.update(bar, description="")
            if error is not None:
                progress.console.print(f"[red]FAILED[/red] {name}: {error}")
            else:
                progress.console.print(f"{name}: {row.get('run') if row else ''}")

        items = [(j.label, (j.session, j.seed, list(j.overrides))) for j in jobs]
        try:
            result = run_tasks(
                run_job, items, use_ray=use_ray, cluster=cluster, num_cpus=cpus, on_done=on_done
            )
        except ConfigError as err:
            raise click.UsageError(str(err)) from err
        except BCIError as err:
            raise click.ClickException(str(err)) from err
    if use_ray:
        console.print(f"Ray start-up {result.startup_s:.1f} s, total {result.wall_s:.1f} s")
    else:
        console.print(f"total {result.wall_s:.1f} s")
    if out is None:
        from bci.session.config import load_session

        out = Path(load_session(jobs[0].session).runs_root)
    csv_path, md_path = _write_table(result.rows, result.errors, out)
    click.echo(md_path.read_text(encoding="utf-8"), nl=False)
    click.echo(f"Table: {csv_path} {md_path}")
    if result.errors:
        raise click.ClickException(f"{len(result.errors)} of {len(jobs)} run(s) failed.")
