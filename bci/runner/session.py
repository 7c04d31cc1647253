"""Run a session and its comparison runs; find the shipped session configs.

:func:`run_session` runs the session, then each ``compare`` entry (same config and seed, another
controller), and returns every result in order. :func:`shipped_sessions` lists the YAML files in
the toolkit's ``sessions/`` folder; :func:`resolve_session_path` accepts a path or a shipped name
(``closed_loop_dbs``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bci.runner.loop import RunResult, SessionRunner
from bci.session.config import SessionConfig, SessionConfigError, read_yaml

__all__ = ["resolve_session_path", "run_session", "sessions_dir", "shipped_sessions"]


def sessions_dir() -> Path:
    """The shipped sessions: ``$BCI_SESSIONS_DIR``, else ``sessions/`` beside the package."""
    env = os.environ.get("BCI_SESSIONS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "sessions"


def shipped_sessions() -> list[tuple[str, str]]:
    """``(name, first line of its description)`` of every shipped session, sorted by name."""
    out = []
    folder = sessions_dir()
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = read_yaml(path)
        except SessionConfigError as err:
            out.append((path.stem, f"(unreadable: {err})"))
            continue
        text = str(data.get("description", "")) if isinstance(data, dict) else ""
        out.append((path.stem, text.strip().splitlines()[0] if text.strip() else ""))
    return out


def resolve_session_path(session: str | Path) -> Path:
    """A session file: the path itself if it exists, else a shipped session of that name."""
    path = Path(session)
    if path.is_file():
        return path
    shipped = sessions_dir() / f"{path.stem if path.suffix == '.yaml' else path.name}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(repr(n) for n, _ in shipped_sessions()) or "(none)"
    raise SessionConfigError(
        f"No session file {str(session)!r}. Give a path to a YAML file, or one of the shipped "
        f"sessions: {names}."
    )


def run_session(
    config: SessionConfig,
    *,
    view_factory: Callable[[str | None], Any] | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[tuple[str, RunResult]]:
    """Run ``config``, then every ``compare`` entry on the same seed; ``(label, result)`` pairs.

    ``view_factory(label)`` returns a context manager that is also the snapshot callback (the
    live view), or None. Stops after an interrupted run.
    """
    plan: list[tuple[str | None, Any]] = [(None, None)]
    plan += [(entry.label, entry) for entry in config.compare]
    results: list[tuple[str, RunResult]] = []
    for label, entry in plan:
        runner = SessionRunner(
            config, controller=None if entry is None else entry.controller, label=label
        )
        view = view_factory(label) if view_factory is not None else None
        if view is not None:
            runner.view = view
            with view:
                result = runner.run()
        else:
            result = runner.run()
        name = label or (config.controller.stage if config.controller else config.name)
        results.append((name, result))
        if on_result is not None:
            on_result(result)
        if result.status == "interrupted":
            break
    return results
