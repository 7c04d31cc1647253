"""The session's other processes: the source (plant, synthetic probe, replay) and their logs.

Processes talk only over LSL, so a crash of one never loses what the recorder already has. A
:class:`ChildProcess` collects its child's output into a log file in the run folder (and keeps the
last lines for error messages), can wait for a ready line, and stops the child with SIGINT (a clean
stop), then SIGKILL if it hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from bci.errors import BCIError

__all__ = ["ChildProcess", "SessionProcessError", "bci_command"]


class SessionProcessError(BCIError, RuntimeError):
    """A child process of the session failed to start or died."""


def bci_command(*args: str) -> list[str]:
    """``python -m bci.cli.main ARGS`` with this interpreter (works without the ``bci`` script)."""
    return [sys.executable, "-m", "bci.cli.main", *args]


class ChildProcess:
    """A child process whose stdout and stderr go to ``log_path`` (and a tail in memory).

    Parameters
    ----------
    name : str
        What it is, for messages ("plant", "synthetic source").
    command : sequence of str
        The command line.
    log_path : Path
        File that receives everything the child prints.
    ready_line : str, optional
        Prefix of the line that says the child is ready (:meth:`wait_ready`).
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        ready_line: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = Path(log_path)
        self.ready_line = ready_line
        self.ready = threading.Event()
        self.lines: deque[str] = deque(maxlen=200)
        self._log: IO[str] | None = self.log_path.open("w", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        if stream is None:
            return
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if self._log is not None:
                try:
                    self._log.write(line)
                    self._log.flush()
                except OSError as err:  # a full or read-only disk: keep reading, keep the tail
                    self.lines.append(f"(log {self.log_path} stopped: {err})")
                    self._log = None
            if self.ready_line is not None and line.startswith(self.ready_line):
                self.ready.set()
        stream.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, n: int = 15) -> str:
        """The last ``n`` lines the child printed."""
        return "\n".join(list(self.lines)[-n:])

    def check_alive(self) -> None:
        """Raise :class:`SessionProcessError` (with its last output) if the child has exited."""
        if not self.alive:
            self._reader.join(2.0)
            raise SessionProcessError(
                f"The {self.name} process exited with code {self.process.returncode}. "
                f"Its last output ({self.log_path}):\n{self.tail() or '(nothing)'}"
            )

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the ready line; raise if the child exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while not self.ready.wait(0.05):
            self.check_alive()
            if time.monotonic() > deadline:
                raise SessionProcessError(
                    f"The {self.name} process did not get ready within {timeout_s:g} s. Its last "
                    f"output ({self.log_path}):\n{self.tail() or '(nothing)'}"
                )

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the child to exit by itself; its exit code, or None if it is still running."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT (a clean stop), then SIGKILL after ``timeout_s``; return the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5.0)
        if self._log is not None:
            try:
                self._log.close()
            except OSError:
                pass  # its last lines are in the tail
        return int(self.process.returncode)
