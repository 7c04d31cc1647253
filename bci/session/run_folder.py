"""Run folders: ``sessions/runs/<YYYYmmdd-HHMMSS>-<name>/`` with the files of one run.

A run folder holds ``recording.xdf`` (the recorder's file), ``config.yaml`` (the resolved session
config with every stage's ``to_dict()``), ``summary.json`` (metrics), ``session.nix`` (the recording as
a neo Block) and the report. This module creates the folder and writes the two small text files.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bci.checks import check_type
from bci.errors import BCIError, ConfigError

#: Default parent of run folders (git-ignored).
DEFAULT_RUNS_ROOT = Path("sessions") / "runs"
CONFIG_FILE_NAME = "config.yaml"
SUMMARY_FILE_NAME = "summary.json"
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RunFolderError(BCIError, OSError):
    """The run folder cannot be created (a read-only or full disk, no permission)."""


def check_run_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it can name a run folder, else raise a ConfigError naming ``what``."""
    check_type(name, str, what)
    if not _NAME_OK.match(name):
        raise ConfigError(
            f"Invalid value for the '{what}' parameter: {name!r}. Use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit."
        )
    return name


def create_run_dir(
    name: str,
    root: str | Path = DEFAULT_RUNS_ROOT,
    *,
    now: _dt.datetime | None = None,
) -> Path:
    """Create and return a new run folder ``root/<YYYYmmdd-HHMMSS>-<name>``.

    The folder is created atomically (``mkdir`` without ``exist_ok``), so two runs starting in the
    same second (even in two processes) get different folders: the second gets ``-2``, then ``-3``...

    Parameters
    ----------
    name : str
        Session name: letters, digits, ``.``, ``_``, ``-`` (no spaces or slashes).
    root : str or Path
        Parent folder, created if missing.
    now : datetime, optional
        Time stamp to use (local time by default).

    Raises
    ------
    RunFolderError
        The folder cannot be created (read-only or full file system, no permission).
    """
    check_run_name(name)
    root = Path(root)
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{name}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for k in range(1, 10_000):
            candidate = root / (base if k == 1 else f"{base}-{k}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as err:
        raise RunFolderError(
            f"Cannot create a run folder in {str(root)!r}: {err.strerror or err}. Give a writable "
            "place with --runs-root (or runs_root in the session file)."
        ) from None
    raise ConfigError(f"Could not create a run folder for {base!r} in {root}: too many runs.")


def to_builtin(value: Any) -> Any:
    """Convert numpy scalars/arrays, paths, tuples and sets to plain JSON/YAML types (recursively).

    Non-finite floats become None (JSON has no NaN); unknown objects raise ``ConfigError``.
    """
    if isinstance(value, Mapping):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_builtin(v) for v in items]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # 0-d quantities and the like
        return to_builtin(value.item())
    raise ConfigError(
        f"Cannot write a value of type {type(value).__name__} ({value!r}) to a run file; "
        "convert it to numbers, strings, lists or dicts first."
    )


def write_config(run_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """Write the resolved session config (with every stage's ``to_dict()``) as ``config.yaml``.

    Returns the file written. Keys keep their order; numpy values are converted to plain types.
    """
    check_type(config, Mapping, "config")
    path = Path(run_dir) / CONFIG_FILE_NAME
    text = yaml.safe_dump(to_builtin(config), sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_summary(run_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write run metrics as ``summary.json`` (numpy types converted, NaN/inf written as null)."""
    check_type(metrics, Mapping, "metrics")
    path = Path(run_dir) / SUMMARY_FILE_NAME
    path.write_text(
        json.dumps(to_builtin(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return path
