"""``bci record``: record LSL streams into an XDF file (like LabRecorder), crash-safe."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click

from bci.cli._params import FiniteFloat, fail, non_negative_float, positive_float
from bci.signals import STOP_SIGNALS


def _check_writable(path: Path, flag: str, *, overwrite: bool = False) -> None:
    """Refuse (exit 2, naming ``flag``) an output path that cannot be created, before any work."""
    if path.is_dir():
        raise click.BadParameter(f"{path} is a folder, not a file to write.", param_hint=flag)
    if path.exists() and not overwrite:
        raise click.BadParameter(
            f"{path} already exists; pass --overwrite to replace it.", param_hint=flag
        )
    for parent in path.absolute().parents:  # the nearest existing folder must be writable
        if parent.exists():
            if not parent.is_dir():
                raise click.BadParameter(
                    f"cannot create {path}: {parent} is a file, not a folder.", param_hint=flag
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise click.BadParameter(
                    f"cannot create {path}: no permission to write in {parent}.", param_hint=flag
                )
            return


def _output_path(
    out: Path | None, run_name: str | None, runs_root: Path, file_name: str, overwrite: bool
) -> Path:
    """The file to record into, checked (nothing created yet: see :func:`_create_output`)."""
    if out is not None and run_name is not None:
        raise click.UsageError("Give either --out or --run-name, not both.")
    if run_name is not None:
        from bci.errors import ConfigError
        from bci.session.run_folder import check_run_name

        try:
            check_run_name(run_name, "--run-name")
        except ConfigError as err:
            raise click.UsageError(str(err)) from err
        _check_writable(runs_root / "run" / file_name, "--runs-root")
        return runs_root / file_name  # placeholder: the run folder is made once streams are found
    if out is None:
        raise click.UsageError("Give --out DIR (or FILE.xdf) or --run-name NAME.")
    path = out if out.suffix.lower() == ".xdf" else out / file_name
    _check_writable(path, "--out", overwrite=overwrite)
    return path


@click.command()
@click.option(
    "--stream",
    "names",
    multiple=True,
    metavar="NAME",
    help="Record the stream with this name (repeat for more streams).",
)
@click.option(
    "--source-id",
    "source_ids",
    multiple=True,
    metavar="ID",
    help="Record the stream with this source_id (repeat for more streams).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="TYPE",
    help="Record a stream of this content type, e.g. Markers: the first one found (repeat for "
    "more streams; --source-id picks one for sure).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder to write recording.xdf into (created if missing), or an .xdf file path.",
)
@click.option(
    "--run-name",
    default=None,
    metavar="NAME",
    help="Create a run folder <runs-root>/<timestamp>-NAME and record into it.",
)
@click.option(
    "--runs-root",
    type=click.Path(path_type=Path),
    default=Path("sessions") / "runs",
    show_default=True,
    help="Parent of the run folders made by --run-name.",
)
@click.option(
    "--file-name", default="recording.xdf", show_default=True, help="File name inside a folder."
)
@click.option(
    "--duration",
    type=positive_float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: until Ctrl-C or SIGTERM).",
)
@click.option(
    "--timeout",
    type=non_negative_float,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to look for each stream before giving up.",
)
@click.option(
    "--flush-interval",
    type=FiniteFloat(0.0, 1.0, min_open=True),
    default=0.25,
    show_default=True,
    metavar="SECONDS",
    help="Hand the data to the OS at least this often (what a crash can lose).",
)
@click.option(
    "--status-interval",
    type=non_negative_float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Print the samples recorded so far this often (0: never); flags silent streams.",
)
@click.option("--overwrite", is_flag=True, default=False, help="Replace an existing file.")
@click.option(
    "--fsync", is_flag=True, default=False, help="fsync on every flush (survives an OS crash)."
)
def record(
    names: tuple[str, ...],
    source_ids: tuple[str, ...],
    types: tuple[str, ...],
    out: Path | None,
    run_name: str | None,
    runs_root: Path,
    file_name: str,
    duration: float | None,
    timeout: float,
    flush_interval: float,
    status_interval: float,
    overwrite: bool,
    fsync: bool,
) -> None:
    """Record LSL streams into an XDF file until --duration passes, Ctrl-C or SIGTERM.

    The file is flushed at least every --flush-interval seconds, so a crash loses at most that
    much; on a clean stop every stream gets its footer. Exits non-zero if a stream is missing.
    """
    from bci.errors import BCIError
    from bci.session.recorder import Recorder, StreamQuery, find_streams
    from bci.session.recorder_process import READY_LINE
    from bci.session.run_folder import create_run_dir

    queries = (
        [StreamQuery(name=n) for n in names]
        + [StreamQuery(source_id=s) for s in source_ids]
        + [StreamQuery(stype=t) for t in types]
    )
    if not queries:
        raise click.UsageError("Name at least one stream: --stream NAME, --source-id or --type.")
    path = _output_path(out, run_name, runs_root, file_name, overwrite)
    try:
        infos = find_streams(queries, timeout_s=timeout)
    except KeyboardInterrupt:
        raise click.ClickException("Interrupted while looking for the streams.") from None
    except BCIError as err:
        fail(err)
    try:
        if run_name is not None:
            path = create_run_dir(run_name, runs_root) / file_name
        recorder = Recorder(
            infos, path, overwrite=overwrite, flush_interval_s=flush_interval, fsync=fsync
        )
        if run_name is not None:  # the config goes in first: a crash still leaves it
            _write_run_config(path.parent, run_name, infos, recorder, duration)
    except BCIError as err:
        fail(err)

    stop_requested: list[str] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    failure: BCIError | None = None
    t_start = time.monotonic()
    try:
        try:
            recorder.start()
        except BCIError as err:
            raise click.ClickException(str(err)) from err
        for s in recorder.stats:
            rate = f"{s.nominal_srate:g} Hz" if s.nominal_srate > 0 else "irregular"
            click.echo(
                f"  stream {s.stream_id}: {s.name!r} source_id={s.source_id!r} "
                f"({s.n_channels} ch, {rate}, {s.channel_format})"
            )
        click.echo(f"{READY_LINE} {len(infos)} stream(s) to {path}", nl=True)
        t_start = time.monotonic()
        t_end = None if duration is None else t_start + duration
        next_status = t_start + status_interval
        last_counts = [s.sample_count for s in recorder.stats]
        while not stop_requested and (t_end is None or time.monotonic() < t_end):
            time.sleep(0.05)
            recorder.check()
            if status_interval > 0 and time.monotonic() >= next_status:
                next_status += status_interval
                counts = [s.sample_count for s in recorder.stats]
                parts = [
                    f"{s.name} {n}" + (" (silent)" if n == before else "")
                    for s, n, before in zip(recorder.stats, counts, last_counts, strict=True)
                ]
                last_counts = counts
                click.echo(
                    f"[{time.monotonic() - t_start:.0f} s] {', '.join(parts)} samples; "
                    f"{recorder.bytes_written / 1e6:.1f} MB"
                )
    except BCIError as err:
        failure = err
    finally:
        stats = recorder.stats
        if recorder.is_recording:
            try:
                stats = recorder.stop()
            except BCIError as err:
                failure = failure or err
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = f" ({stop_requested[0]})" if stop_requested else ""
    click.echo(f"Stopped{why}; wrote {path}:")
    for s in stats:
        click.echo(f"  {s.name!r}: {s.sample_count} samples")
    if run_name is not None:
        _finish_run_folder(path, stats, stop_requested, failure, time.monotonic() - t_start)
    if failure is not None:
        raise click.ClickException(str(failure))


def _write_run_config(
    run_dir: Path, run_name: str, infos: Sequence[Any], recorder: Any, duration: float | None
) -> None:
    from bci.session.run_folder import write_config

    write_config(
        run_dir,
        {
            "session": run_name,
            "kind": "recording",
            "recorder": {
                "file": recorder.path.name,
                "flush_interval_s": recorder.flush_interval_s,
                "fsync": recorder.fsync,
                "duration_s": duration,
            },
            "streams": [
                {
                    "name": info.name(),
                    "type": info.type(),
                    "source_id": info.source_id(),
                    "hostname": info.hostname(),
                    "channel_count": info.channel_count(),
                    "nominal_srate": info.nominal_srate(),
                }
                for info in infos
            ],
        },
    )


def _finish_run_folder(
    path: Path,
    stats: Sequence[Any],
    stop_requested: list[str],
    failure: Exception | None,
    elapsed_s: float,
) -> None:
    """summary.json, then session.nix (neo's NixIO, the analysis format) next to the recording."""
    from bci.errors import BCIError
    from bci.session.nix import write_run_nix
    from bci.session.run_folder import write_summary

    summary: dict[str, Any] = {
        "recording": path.name,
        "wall_time_s": round(elapsed_s, 3),
        "stopped_by": stop_requested[0] if stop_requested else "duration",
        "error": None if failure is None else str(failure),
        "streams": [
            {
                "name": s.name,
                "source_id": s.source_id,
                "samples": s.sample_count,
                "first_timestamp": s.first_timestamp,
                "last_timestamp": s.last_timestamp,
                "clock_offsets": len(s.clock_offsets),
            }
            for s in stats
        ],
    }
    nix_error = None
    try:
        summary["nix"] = write_run_nix(path.parent).name
    except BCIError as err:  # the recording stays; say why the analysis copy is missing
        nix_error = str(err)
        summary["nix"] = None
        summary["nix_error"] = nix_error
    write_summary(path.parent, summary)
    click.echo(
        f"Run folder {path.parent}: config.yaml, summary.json"
        + (", session.nix" if nix_error is None else "")
    )
    if nix_error is not None:
        click.echo(f"  session.nix not written: {nix_error}", err=True)
