"""The session's child processes stop cleanly even when their parent blocks SIGINT.

A child inherits its parent's blocked-signal mask: Ray's worker processes block SIGINT, so a
``bci sweep`` task's plant and recorder never saw the SIGINT that asks them to stop; each session
waited out the stop timeouts (10 s for the plant, 20 s for the recorder) and then SIGKILLed them,
leaving recordings without footers. Here the test process blocks SIGINT while it starts the child,
as a Ray worker does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from click.testing import CliRunner

from bci.cli.main import cli
from bci.runner.sources import start_source
from bci.session.config import parse_session
from bci.session.recorder_process import spawn_recorder
from bci.session.xdf_read import scan_xdf

#: how long a stop may take before the child is killed: a clean stop takes a fraction of a
#: second, but a loaded machine can stretch it to seconds; a child that never sees the SIGINT is
#: killed at this timeout whatever the load
STOP_TIMEOUT_S = 30.0


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while children are started (they inherit the mask)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def test_a_recorder_started_under_a_blocked_sigint_closes_its_file(tmp_path: Path) -> None:
    source_id = f"stop-signals-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo("stop-signals", "EEG", 2, 100.0, "float32", source_id)
    outlet = pylsl.StreamOutlet(info)
    path = tmp_path / "recording.xdf"
    with sigint_blocked():
        rec = spawn_recorder(path, source_ids=[source_id])
    for _ in range(20):
        outlet.push_chunk(np.zeros((5, 2), dtype=np.float32).tolist())
        time.sleep(0.05)
    code = rec.stop(timeout_s=STOP_TIMEOUT_S)  # raises RecorderError if it had to be killed
    assert code == 0, rec.text
    scan = scan_xdf(path)
    assert scan.is_complete and not scan.missing_footers, scan.problems()


def test_a_plant_started_under_a_blocked_sigint_stops_cleanly(tmp_path: Path) -> None:
    config = parse_session(
        {
            "name": "stop_signals",
            "duration_s": 30.0,
            "pacing": "realtime",
            "source": {
                "kind": "plant",
                "network": {"cells_per_nucleus": 4},
                "probe": {"n_channels": 4, "n_units": 2},
            },
            "pipeline": [{"stage": "bandpass"}],
            "recording": {"enabled": False},
        }
    )
    with sigint_blocked():
        session = start_source(
            config, tmp_path, uuid.uuid4().hex[:8], limiter_source_id="ctl", session_token="t"
        )
    child = session.child
    assert child is not None and child.alive
    code = child.stop(timeout_s=STOP_TIMEOUT_S)  # SIGINT, then SIGKILL after the timeout
    assert code == 0, child.tail()  # -9 when it had to be killed


def test_the_cli_run_in_process_from_a_thread_leaves_signal_handling_alone() -> None:
    """``CliRunner`` in a worker thread, in a process started with SIGINT ignored (a background
    job of a non-interactive shell, as CI may start ``make test``): the command runs; only the
    ``bci`` process entry point touches the stop signals (a handler set from a thread raises)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    result: dict[str, Any] = {}
    try:
        worker = threading.Thread(
            target=lambda: result.update(out=CliRunner().invoke(cli, ["sessions"]))
        )
        worker.start()
        worker.join(60.0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the caller's, untouched
    finally:
        signal.signal(signal.SIGINT, previous)
    out = result["out"]
    assert out.exit_code == 0, out.output
    assert "closed_loop_dbs" in out.output
