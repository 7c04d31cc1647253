"""Sweeps of closed-loop sessions: one session config over seeds and parameter values, on Ray.

``bci sweep SESSION.yaml --seeds 0-19 --set controller.params.gain=0.5,1.0`` runs the session once
per seed and per combination of ``--set`` values (their Cartesian product), each run a lockstep
(or real-time) closed-loop session of :mod:`bci.runner` in the usual run folder
(``runs_root/<timestamp>-<name>-<label>``), as Ray tasks (:func:`bci.analysis.batch.run_tasks`).
Every config of the sweep is built and validated before the first run starts, so a bad key or value
fails at once. The table at the end has one row per run: its seed, the ``--set`` values, the run's
status and the numbers of its ``summary.json`` that the controller comparison uses.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bci.errors import ConfigError

__all__ = ["SweepJob", "parse_seeds", "parse_sets", "plan_sweep", "run_job"]

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_seeds(text: str) -> list[int]:
    """``"0-19"``, ``"3"``, ``"0-3,7,9-10"`` -> sorted unique seeds (ranges include both ends)."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        m = _RANGE.match(part)
        if not m:
            raise ConfigError(
                f"Invalid value for --seeds: {text!r}. Use a seed, a range like 0-19, or a "
                "comma-separated list of these."
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ConfigError(f"Invalid value for --seeds: the range {part.strip()!r} is empty.")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def parse_sets(items: Sequence[str]) -> list[list[str]]:
    """``["a.b=1,2", "c=x"]`` -> every combination as override lists (``[["a.b=1", "c=x"], ...]``)."""
    axes: list[list[str]] = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ConfigError(f"Invalid value for --set: {item!r}. Use KEY=VALUE[,VALUE...].")
        axes.append([f"{key.strip()}={v.strip()}" for v in values.split(",")])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


@dataclass(frozen=True)
class SweepJob:
    """One run of the sweep: the session file, its overrides, and the run folder's label."""

    session: str
    seed: int
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        parts = [f"seed{self.seed}"] + [re.sub(r"[^A-Za-z0-9._-]+", "_", o) for o in self.overrides]
        return "-".join(parts)


def plan_sweep(session: str | Path, seeds: Sequence[int], sets: Sequence[str]) -> list[SweepJob]:
    """Every run of the sweep, each config loaded and validated now (errors name the bad key)."""
    from bci.runner.session import resolve_session_path
    from bci.session.config import load_session

    path = resolve_session_path(session)
    jobs = []
    for seed in seeds:
        for combo in parse_sets(sets):
            job = SweepJob(str(path), int(seed), tuple(combo))
            load_session(path, [f"seed={seed}", *combo])
            jobs.append(job)
    return jobs


def run_job(session: str, seed: int, overrides: Sequence[str]) -> dict[str, Any]:
    """Run one session of the sweep; return its row (seed, overrides, status, summary numbers)."""
    from bci.analysis.run import summary_numbers
    from bci.runner import SessionRunner
    from bci.session.config import load_session

    job = SweepJob(session, seed, tuple(overrides))
    config = load_session(session, [f"seed={seed}", *overrides])
    result = SessionRunner(config, label=job.label).run()
    summary = dict(result.summary)
    row: dict[str, Any] = {
        "run": Path(result.run_dir).name,
        "run_dir": str(result.run_dir),
        "seed": seed,
        "set": " ".join(overrides),
        "status": result.status,
        "controller": summary.get("controller"),
        "wall_s": summary.get("wall_s"),
    }
    row.update(summary_numbers(summary))
    if result.status != "completed":
        raise RuntimeError(
            f"run {row['run']} {result.status}: {summary.get('error') or 'see its summary.json'}"
        )
    return row
