"""Coverage-guided fuzzing of the toolkit's file readers with atheris (libFuzzer), for a bounded time.

Not part of pytest (atheris owns the process). atheris 3.0.0 has a wheel for CPython 3.11 on
Linux x86-64 (3.1.0 does not); install it next to the toolkit and run one target::

    pip install atheris==3.0.0
    python tests/reliability/atheris_harness.py config -max_total_time=60
    python tests/reliability/atheris_harness.py xdf -max_total_time=60
    python tests/reliability/atheris_harness.py decoder -max_total_time=60
    python tests/reliability/atheris_harness.py templates -max_total_time=60

Each input is written to a file and read the way a session reads it; the room's own error is
fine, any other exception is a crash (libFuzzer saves the input as ``crash-*``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["bci", "decoders", "stimulation"]):
    from bci.session.config import SessionConfigError, load_session
    from bci.session.files import RecordingFormatError, read_xdf
    from bci.session.repair import repair
    from bci.session.xdf import XDFWriteError
    from bci.session.xdf_read import XDFFormatError, scan_xdf
    from bci.sorting import OnlineSorter
    from bci.sorting.errors import TemplateFileError
    from decoders.errors import ModelFileError
    from decoders.modelfile import load_decoder

WORK = Path(tempfile.mkdtemp(prefix="bci-atheris-"))


def _config(path: Path) -> None:
    try:
        load_session(path)
    except SessionConfigError:
        pass


def _xdf(path: Path) -> None:
    for call, errors in (
        (lambda: scan_xdf(path, allow_unknown=True), (XDFFormatError,)),
        (lambda: repair(path, WORK / "fixed.xdf", overwrite=True), (XDFFormatError, XDFWriteError)),
        (lambda: read_xdf(path), (RecordingFormatError,)),
    ):
        try:
            call()
        except errors:
            pass


def _decoder(path: Path) -> None:
    try:
        load_decoder(path)
    except ModelFileError:
        pass


def _templates(path: Path) -> None:
    try:
        OnlineSorter.load(path)
    except TemplateFileError:
        pass


TARGETS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "config": ("session.yaml", _config),
    "xdf": ("recording.xdf", _xdf),
    "decoder": ("model.npz", _decoder),
    "templates": ("bank.npz", _templates),
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    name, target = TARGETS[sys.argv.pop(1)]
    path = WORK / name

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        target(path)

    os.environ.setdefault("PYTHONHASHSEED", "0")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
