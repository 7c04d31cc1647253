"""The fault rig's processes and its LSL observer (``fault_rig``).

:class:`Child` runs a process with this checkout and ``tests/integration`` on ``PYTHONPATH`` and
keeps its output lines with their LSL arrival time; :func:`children_of` and :func:`pid_alive`
find and watch the processes ``bci run`` starts; :class:`Observer` pulls streams of the session in
this process and notes each sample's arrival on the wall clock.
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
from typing import Any

import pylsl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class Child:
    """A child process whose output lines are kept with the LSL time they were read."""

    def __init__(self, name: str, cmd: Sequence[str], **popen: Any) -> None:
        self.name = name
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            **popen,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((pylsl.local_clock(), line.rstrip("\n")))
        self.proc.stdout.close()

    def wait_line(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _, line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not print {prefix!r}:\n{self.text()}")

    def text(self, n: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-n:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout_s: float = 30.0, sig: int = signal.SIGINT) -> int:
        if self.alive:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return int(self.proc.returncode)


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, str(HERE / script), *args]


def bci(*args: str) -> list[str]:
    return [sys.executable, "-m", "bci.cli.main", *args]


def children_of(pid: int) -> dict[int, str]:
    """Child processes of ``pid`` (pid -> command line), from /proc."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                out[int(entry.name)] = cmd
        except (OSError, ValueError, IndexError):
            continue
    return out


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Observer:
    """Inlets in this process on streams of the session; every sample with its arrival time."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, float, Any]]] = {}  # (arrival, stamp, values)
        self._inlets: list[tuple[str, pylsl.StreamInlet]] = []
        self._on = True
        self._thread = threading.Thread(target=self._pull, daemon=True)
        self._lock = threading.Lock()
        self._thread.start()

    def watch(self, source_id: str, timeout_s: float = 60.0) -> None:
        found = pylsl.resolve_byprop("source_id", source_id, 1, timeout_s)
        if not found:
            raise RuntimeError(f"no stream with source_id {source_id}")
        inlet = pylsl.StreamInlet(found[0], max_buflen=120, recover=False)
        inlet.open_stream(timeout=10.0)
        with self._lock:
            self.samples.setdefault(source_id, [])
            self._inlets.append((source_id, inlet))

    def _pull(self) -> None:
        while self._on:
            with self._lock:
                inlets = list(self._inlets)
            got = False
            for sid, inlet in inlets:
                try:
                    values, stamps = inlet.pull_chunk(timeout=0.0)
                except pylsl.util.LostError:
                    continue
                if stamps:
                    got = True
                    now = pylsl.local_clock()
                    self.samples[sid] += [(now, t, v) for t, v in zip(stamps, values, strict=True)]
            if not got:
                time.sleep(0.002)

    def close(self) -> None:
        self._on = False
        self._thread.join(5)
        for _, inlet in self._inlets:
            inlet.close_stream()
