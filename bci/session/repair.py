"""Close an XDF file that was cut short (a recorder killed, a disk full), into a new file.

:func:`repair` never modifies its input. It copies every whole chunk verbatim into a new file, adds
the complete samples of a Samples chunk the file ends in the middle of (pyxdf would drop the whole
chunk), then a Boundary chunk and a StreamFooter for each stream that has none, with the first and
last time stamp, sample count and clock offsets found in the file: what LabRecorder writes when it
stops cleanly. A file that breaks the specification elsewhere (not XDF, an unknown chunk tag, a
chunk for a stream without a header) is refused with an error naming the problem, and nothing is
written.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bci.checks import check_type
from bci.errors import BCIError
from bci.session.xdf import (
    XDFWriteError,
    boundary_chunk,
    numeric_samples_chunk,
    stream_footer_chunk,
    string_samples_chunk,
)
from bci.session.xdf_read import XDFFormatError, XDFScan, scan_xdf

__all__ = ["RepairReport", "XDFFormatError", "default_repair_path", "repair"]

logger = logging.getLogger(__name__)


@dataclass
class RepairReport:
    """What :func:`repair` found and did."""

    source: Path
    #: the new file, or None when the source needed no repair
    output: Path | None
    #: problems found in the source (as :meth:`XDFScan.problems` words them)
    problems: list[str]
    #: bytes after the source's last whole chunk (the whole samples among them are kept all
    #: the same: see ``salvaged_samples``)
    dropped_bytes: int = 0
    #: samples kept from a cut Samples chunk, by stream name
    salvaged_samples: dict[str, int] = field(default_factory=dict)
    #: names of the streams that got a footer
    footers_added: list[str] = field(default_factory=list)
    #: samples per stream in the output
    sample_counts: dict[str, int] = field(default_factory=dict)


def default_repair_path(path: Path) -> Path:
    """``name.repaired.xdf`` next to ``name.xdf``."""
    return path.with_name(f"{path.stem}.repaired{path.suffix or '.xdf'}")


def repair(
    path: str | Path,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    force: bool = False,
    allow_unknown: bool = False,
) -> RepairReport:
    """Write a cleanly closed copy of a truncated XDF file.

    Parameters
    ----------
    path : str or Path
        The XDF file (or run folder) to repair; it is only read.
    out : str or Path, optional
        The new file (default: ``<name>.repaired.xdf`` next to the input). Must differ from the
        input.
    overwrite : bool
        Replace ``out`` if it exists.
    force : bool
        Write ``out`` even when the input is already complete (a plain copy).
    allow_unknown : bool
        Copy chunks with tags XDF 1.0 does not define instead of refusing the file.

    Returns
    -------
    RepairReport

    Raises
    ------
    RecordingNotFoundError
        The input does not exist.
    XDFFormatError
        The input is not XDF or breaks the specification before its end (nothing is written).
    XDFWriteError
        ``out`` exists (without ``overwrite``) or is the input.
    """
    check_type(overwrite, bool, "overwrite")
    scan = scan_xdf(path, allow_unknown=allow_unknown)
    src = scan.path
    report = RepairReport(src, None, scan.problems())
    if scan.is_complete and not force:
        report.sample_counts = {s.name: s.sample_count for s in scan.streams.values()}
        return report
    dest = Path(out) if out is not None else default_repair_path(src)
    if dest.exists() and dest.resolve() == src.resolve():
        raise XDFWriteError(
            f"Refusing to repair {src} in place: give a different output file (--out)."
        )
    if dest.exists() and not overwrite:
        raise XDFWriteError(
            f"{dest} already exists; choose another --out or pass --overwrite "
            "(overwrite=True in Python)."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    try:
        _write_repaired(scan, tmp, report)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.output = dest
    try:  # the output must pass our own check: whole chunks, every footer
        check = scan_xdf(dest, allow_unknown=allow_unknown)
    except BCIError as err:  # pragma: no cover - would be a bug in this module
        raise XDFWriteError(f"The repaired file {dest} does not check out: {err}") from err
    if not check.is_complete:  # pragma: no cover
        raise XDFWriteError(f"The repaired file {dest} is still incomplete: {check.problems()}")
    return report


def _write_repaired(scan: XDFScan, tmp: Path, report: RepairReport) -> None:
    with open(scan.path, "rb") as f_in, open(tmp, "wb") as f_out:
        _copy_range(f_in, f_out, scan.complete_until)
        report.dropped_bytes = scan.size - scan.complete_until
        if scan.salvageable is not None:
            stream_id, block = scan.salvageable
            s = scan.streams[stream_id]
            if s.channel_format == "string":
                f_out.write(string_samples_chunk(stream_id, list(block.stamps), block.values))
            else:
                for part in numeric_samples_chunk(
                    stream_id, block.stamps, block.values, s.channel_format
                ):
                    f_out.write(part)
            report.salvaged_samples[s.name] = len(block.stamps)
            s.add_samples(block.stamps[0], block.stamps[-1], len(block.stamps))
        f_out.write(boundary_chunk())
        for s in scan.missing_footers:
            f_out.write(stream_footer_chunk(s.stream_id, s.make_footer_xml()))
            report.footers_added.append(s.name)
        f_out.flush()
        os.fsync(f_out.fileno())
    report.sample_counts = {s.name: s.sample_count for s in scan.streams.values()}


def _copy_range(f_in: BinaryIO, f_out: BinaryIO, n_bytes: int) -> None:
    """Copy the first ``n_bytes`` of ``f_in`` (from its start) in 1 MiB blocks."""
    f_in.seek(0)
    left = n_bytes
    while left > 0:
        block = f_in.read(min(left, 1 << 20))
        if not block:
            raise XDFFormatError(f"{f_in.name} ended while copying its first {n_bytes} bytes.")
        f_out.write(block)
        left -= len(block)
