"""Analyse many run folders, one after another or as Ray tasks (the ``scale`` extra).

:func:`analyze_runs` is the one loop both paths share: each run folder is analysed by
:func:`analyze_one` (which writes its ``analysis.json`` and ``report.html`` into the folder and
returns its row of the comparison table); a run that fails is reported with its error and the
others go on. With ``use_ray`` every run is a Ray task on a local Ray instance started for the
purpose, or on an existing cluster (``cluster`` address: ``HOST:PORT`` of its GCS, ``ray://HOST:PORT``
for Ray Client, or ``auto``); the nodes of an existing cluster need this package installed. An
address that does not answer fails before Ray is started, within ``connect_timeout_s``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bci.errors import BCIError, ConfigError

__all__ = [
    "BatchResult",
    "ClusterUnreachableError",
    "analyze_one",
    "analyze_runs",
    "check_cluster",
    "run_tasks",
]


#: GCS connection attempts (about one a second) before a cluster address is given up
_CONNECT_RETRIES = 4


class ClusterUnreachableError(BCIError, ConnectionError):
    """The Ray cluster address given does not answer."""


@dataclass
class BatchResult:
    """Rows of the comparison table (runs that worked), errors (runs that failed), timings."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    startup_s: float = 0.0
    wall_s: float = 0.0


def analyze_one(path: str, out_dir: str | None = None) -> dict[str, Any]:
    """Analyse one run folder, write its report; return its comparison row (+ missing, wall time)."""
    from bci.analysis.report import comparison_row, write_analysis
    from bci.analysis.run import analyze_run

    t = time.perf_counter()
    analysis = analyze_run(path)
    js, page = write_analysis(analysis, out_dir)
    row = comparison_row(analysis.numbers)
    row["_missing"] = analysis.numbers.get("missing", [])
    row["_report"] = str(page)
    row["_wall_s"] = time.perf_counter() - t
    return row


def check_cluster(address: str, timeout_s: float = 3.0) -> None:
    """Raise :class:`ClusterUnreachableError` unless ``address`` accepts a TCP connection."""
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise ConfigError(
            f"Invalid value for --cluster: {address!r}. Give HOST:PORT of the cluster's head "
            "(e.g. 10.0.0.5:6379), ray://HOST:10001, or auto."
        )
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        raise ClusterUnreachableError(
            f"No Ray cluster answers at {address} ({err.strerror or err} within {timeout_s:g} s). "
            "Start one there with `ray start --head`, check the address and port, or leave out "
            "--cluster to run on a local Ray instance."
        ) from None


def _driver_path() -> str:
    """The driver's import path outside the Python installation, as a PYTHONPATH."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for p in sys.path:
        real = os.path.realpath(p) if p else ""
        if p and os.path.isdir(p) and not any(real.startswith(pre) for pre in prefixes):
            entries.append(os.path.abspath(p))
    return os.pathsep.join(dict.fromkeys(entries))


def _start_ray(cluster: str | None, num_cpus: int | None) -> Any:
    if cluster is not None:
        check_cluster(cluster)
    try:
        import ray
    except ImportError as err:
        raise ConfigError(
            "--many and --cluster need Ray: pip install 'bci-closed-loop[scale]'."
        ) from err
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if cluster is None:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        # workers of a local instance import what the driver imports (this package from a
        # checkout, stage plug-ins on the driver's path)
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": _driver_path()}}
    else:
        kwargs["address"] = cluster
        # a port that accepts connections but is no Ray head (a proxy, another service): Ray
        # retries its GCS once a second for 30 s by default; give up after a few seconds
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(_CONNECT_RETRIES))
    try:
        ray.init(**kwargs)
    except Exception as err:  # ray raises ConnectionError, RuntimeError, ValueError...
        where = f"the Ray cluster at {cluster}" if cluster else "a local Ray instance"
        raise ClusterUnreachableError(
            f"Could not connect to {where}: {err}. "
            + ("Check that a Ray head runs there (`ray start --head`)." if cluster else "")
        ) from err
    return ray


def run_tasks(
    func: Callable[..., dict[str, Any]],
    items: Sequence[tuple[str, tuple[Any, ...]]],
    *,
    use_ray: bool = False,
    cluster: str | None = None,
    num_cpus: int | None = None,
    on_done: Callable[[str, dict[str, Any] | None, str | None], None] | None = None,
) -> BatchResult:
    """Call ``func(*args)`` for every ``(name, args)``, in-process or as Ray tasks.

    A call that raises becomes an ``errors`` entry (``name``, the exception's type and message)
    and never stops the others; ``on_done(name, row, error)`` is called as each finishes.
    """
    result = BatchResult()
    t0 = time.perf_counter()

    def done(name: str, row: dict[str, Any] | None, error: str | None) -> None:
        if row is not None:
            result.rows.append(row)
        else:
            result.errors.append({"run": name, "error": error or "unknown error"})
        if on_done is not None:
            on_done(name, row, error)

    if not use_ray and cluster is None:
        for name, args in items:
            try:
                done(name, func(*args), None)
            except Exception as err:  # report and go on: one bad run must not stop a batch
                done(name, None, f"{type(err).__name__}: {err}")
        result.wall_s = time.perf_counter() - t0
        return result
    ray = _start_ray(cluster, num_cpus)
    result.startup_s = time.perf_counter() - t0
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(func)
        pending = {task.remote(*args): name for name, args in items}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                name = pending.pop(ref)
                try:
                    done(name, ray.get(ref), None)
                except Exception as err:
                    cause = getattr(err, "cause", None) or err
                    done(name, None, f"{type(cause).__name__}: {cause}".splitlines()[0])
    finally:
        ray.shutdown()
    result.wall_s = time.perf_counter() - t0
    return result


def analyze_runs(
    paths: Sequence[str | Path],
    *,
    use_ray: bool = False,
    cluster: str | None = None,
    num_cpus: int | None = None,
    on_done: Callable[[str, dict[str, Any] | None, str | None], None] | None = None,
) -> BatchResult:
    """Analyse every run folder (:func:`analyze_one`); see :func:`run_tasks`."""
    items = [(str(p), (str(p),)) for p in paths]
    return run_tasks(
        analyze_one, items, use_ray=use_ray, cluster=cluster, num_cpus=num_cpus, on_done=on_done
    )
