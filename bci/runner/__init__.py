"""The closed-loop runner: a session config in, a complete run folder out.

:class:`SessionRunner` (one run) and :func:`run_session` (a run and its comparison runs) start the
source and the recorder in their own processes and run the pipeline, decoder, controller and
safety limiter in one thread (:mod:`bci.runner.loop`); :mod:`bci.runner.parts` says what the loop
needs from a decoder, a controller and a limiter.
"""

from bci.runner.loop import RunInterrupted, RunResult, SessionRunner
from bci.runner.parts import CommandLimiter, LoopParts, build_parts
from bci.runner.session import resolve_session_path, run_session, shipped_sessions

__all__ = [
    "CommandLimiter",
    "LoopParts",
    "RunInterrupted",
    "RunResult",
    "SessionRunner",
    "build_parts",
    "resolve_session_path",
    "run_session",
    "shipped_sessions",
]
