"""Run the recorder in its own process: ``bci record`` started and stopped from Python.

The session's processes talk only over LSL, so a crash of the pipeline (or of the plant) never
takes the recording with it. :func:`spawn_recorder` starts ``bci record`` as a child process and
returns once every stream header is on disk; :meth:`RecorderProcess.stop` asks it to finish
(SIGINT: footers written), :meth:`RecorderProcess.kill` is what a crash does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bci.session.recorder import RecorderError

__all__ = ["READY_LINE", "RecorderProcess", "spawn_recorder"]

#: Line ``bci record`` prints (and flushes) once every stream header is on disk.
READY_LINE = "bci-record: recording"


class RecorderProcess:
    """A ``bci record`` child process (see :func:`spawn_recorder`); its output is collected."""

    def __init__(self, process: subprocess.Popen[str], path: Path) -> None:
        self.process = process
        #: the XDF file being written
        self.path = path
        #: lines the recorder printed so far
        self.output: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="bci-record-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        if stream is None:
            return
        for line in stream:
            self.output.append(line)
            if line.startswith(READY_LINE):
                self.ready.set()
        stream.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def text(self) -> str:
        """Everything the recorder printed so far."""
        return "".join(self.output)

    def stop(self, timeout_s: float = 20.0) -> int:
        """Ask the recorder to finish (SIGINT: footers written) and wait; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RecorderError(
                f"The recorder (pid {self.pid}) did not stop within {timeout_s:g} s; killed it."
            ) from None
        self._reader.join(5.0)
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL the recorder (what a crash does); the file keeps everything flushed."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(5.0)


def spawn_recorder(
    path: str | Path,
    *,
    names: Sequence[str] = (),
    source_ids: Sequence[str] = (),
    types: Sequence[str] = (),
    duration_s: float | None = None,
    timeout_s: float = 10.0,
    extra_args: Sequence[str] = (),
) -> RecorderProcess:
    """Start ``bci record`` in its own process; return once every stream header is on disk.

    Parameters
    ----------
    path : str or Path
        The XDF file to create.
    names, source_ids, types : sequence of str
        Streams to record, one per entry (``--stream``, ``--source-id``, ``--type``).
    duration_s : float, optional
        Stop by itself after this long.
    timeout_s : float
        Seconds to wait for each stream to be found.
    extra_args : sequence of str
        More ``bci record`` options (e.g. ``["--flush-interval", "0.2"]``).

    Raises
    ------
    RecorderError
        The recorder exited (or hung) before it started; its output is in the message.
    """
    path = Path(path)
    cmd = [sys.executable, "-m", "bci.cli.main", "record", "--out", str(path)]
    for flag, values in (("--stream", names), ("--source-id", source_ids), ("--type", types)):
        for v in values:
            cmd += [flag, v]
    if duration_s is not None:
        cmd += ["--duration", repr(float(duration_s))]
    cmd += ["--timeout", repr(float(timeout_s)), *extra_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    rp = RecorderProcess(proc, path)
    n_streams = len(names) + len(source_ids) + len(types)
    deadline = time.monotonic() + timeout_s * max(n_streams, 1) + 30.0
    while time.monotonic() < deadline and proc.poll() is None:
        if rp.ready.wait(0.05):
            return rp
    if rp.ready.is_set():
        return rp
    rp.kill()
    raise RecorderError(f"The recorder did not start (exit code {proc.returncode}):\n{rp.text}")
