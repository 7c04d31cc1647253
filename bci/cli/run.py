"""``bci run``: run a session (source, pipeline, decoder, controller, limiter, recorder)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("session", metavar="SESSION")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value (dotted key, YAML value), e.g. --set duration_s=5 "
    "--set source.seed=3 --set controller.stage=off. Repeat for more.",
)
@click.option(
    "--runs-root",
    type=click.Path(path_type=Path),
    default=None,
    help="Parent of the run folders [default: the config's runs_root, sessions/runs].",
)
@click.option("--quiet", is_flag=True, default=False, help="No live view: one line per run.")
@click.option(
    "--no-compare", is_flag=True, default=False, help="Skip the config's comparison runs."
)
def run(
    session: str, overrides: tuple[str, ...], runs_root: Path | None, quiet: bool, no_compare: bool
) -> None:
    """Run SESSION (a YAML file, or the name of a shipped session: see `bci sessions`).

    Writes sessions/runs/<timestamp>-<name>/ with recording.xdf (every stream), config.yaml
    (resolved, every stage's parameters), summary.json and session.nix. Exits non-zero if a run
    fails or is interrupted; stimulation is switched off first either way.
    """
    import logging

    from rich.console import Console

    from bci.errors import BCIError
    from bci.runner.live import LiveView, compare_table, summary_table
    from bci.runner.session import resolve_session_path, run_session
    from bci.session.config import load_session

    # a log file or pipe gets rich's 80 columns by default: too narrow for the tables
    console = Console() if sys.stdout.isatty() else Console(width=120)
    try:
        path = resolve_session_path(session)
        config = load_session(path, list(overrides))
    except BCIError as err:
        raise click.BadParameter(str(err), param_hint="SESSION / --set") from None
    updates: dict[str, object] = {}
    if runs_root is not None:
        updates["runs_root"] = runs_root
    if no_compare:
        updates["compare"] = []
    if updates:
        config = config.model_copy(update=updates)
    # the loop reports stalls and gaps in its summary and live view; keep stderr quiet
    logging.getLogger("bci").setLevel(logging.ERROR)
    n_runs = 1 + len(config.compare)
    if not quiet:
        console.print(
            f"Session [bold]{config.name}[/bold] from {path}: {config.duration_s:g} s, "
            f"{config.pacing}, seed {config.source_seed}"
            + (f", then {n_runs - 1} comparison run(s) on the same seed" if n_runs > 1 else "")
        )

    def view_factory(label: str | None) -> LiveView | None:
        if quiet:
            return None
        return LiveView(console, title=f"bci run{f' ({label})' if label else ''}")

    def on_result(result: object) -> None:
        from bci.runner.loop import RunResult

        assert isinstance(result, RunResult)
        s = result.summary
        lat = s.get("loop_latency") or {}
        which, p99 = (
            ("loop", lat.get("p99_ms"))
            if lat.get("commands")
            else (
                "chunk",
                lat.get("chunk_p99_ms"),
            )
        )
        click.echo(
            f"{result.status}: {result.run_dir} ({s.get('signal_s') or 0:.1f} s of signal, "
            f"{s.get('wall_s', 0):.1f} s wall, {which} latency p99 "
            f"{p99 if p99 is not None else float('nan'):.2f} ms)"
        )
        tracking = s.get("decoder_tracking") or {}
        if tracking.get("outputs"):
            click.echo(
                "decoded vs true (R2 / r): "
                + ", ".join(
                    f"{name} {row['r2']:.3f} / {row['r']:.3f}"
                    for name, row in tracking["outputs"].items()
                )
                + f" over {tracking['pairs']} bins"
            )
        if not quiet:
            console.print(summary_table(s))

    try:
        results = run_session(config, view_factory=view_factory, on_result=on_result)
    except BCIError as err:
        raise click.ClickException(str(err)) from err
    if len(results) > 1:
        console.print(compare_table([(label, r.summary) for label, r in results]))
    main = results[0][1]
    click.echo(f"Run folder: {main.run_dir}")
    failed = [(label, r) for label, r in results if not r.ok]
    if failed:
        for label, r in failed:
            click.echo(f"{label}: {r.status}: {r.summary.get('error')}", err=True)
        sys.exit(1)
