"""Read the large signal streams of an XDF file chunk by chunk, apart from the rest of the file.

A 60 s, 384-channel, 30 kHz int16 recording is 1.4 GB of samples; loading it whole (pyxdf, then
float32 in neo) takes three to four times that. :func:`split_xdf` walks the file once and

- copies every chunk except the Samples chunks of the selected streams into a smaller XDF file
  (headers, clock offsets and footers of the selected streams are kept), which
  :func:`bci.session.load.load` then reads as usual: the selected streams appear in it as empty;
- records where the selected streams' Samples chunks lie and collects their time stamps
  (8 bytes per sample).

:class:`SamplesReader` then yields the selected stream's samples block by block from the original
file, in the stream's own sample format, for a writer that stores them as it goes (see
:mod:`bci.session.nwb`). A Samples chunk cut by a crash ends the stream at its last whole sample, as
:func:`bci.session.xdf_read.scan_xdf` reports.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bci.session.clock_sync import synchronize_host_clocks
from bci.session.xdf import MAGIC, ChunkTag
from bci.session.xdf_read import ChunkInfo, StreamSummary, XDFScan, decode_samples, iter_chunks

__all__ = ["SamplesReader", "SplitStream", "XDFSplit", "split_xdf"]


@dataclass
class SplitStream:
    """A stream whose samples were kept out of the small copy."""

    summary: StreamSummary
    header: ET.Element
    chunks: list[ChunkInfo] = field(default_factory=list)
    #: time stamps as recorded (float64), then on the recorder's clock after :func:`split_xdf`
    stamps: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_samples(self) -> int:
        return int(self.stamps.size)


@dataclass
class XDFSplit:
    """Result of :func:`split_xdf`."""

    path: Path
    rest_path: Path
    streams: dict[int, SplitStream]
    #: streams whose host clock was reset mid-recording: left on their own clock
    uncorrected: list[str] = field(default_factory=list)


def split_xdf(
    scan: XDFScan,
    select: Callable[[StreamSummary, ET.Element], bool],
    rest_path: str | Path,
    *,
    synchronize_clocks: bool = True,
) -> XDFSplit:
    """Write ``rest_path`` without the samples of the streams ``select`` picks; index those.

    Parameters
    ----------
    scan : XDFScan
        :func:`bci.session.xdf_read.scan_xdf` of the file.
    select : callable
        ``select(summary, header_root) -> bool`` for each stream.
    rest_path : str or Path
        The smaller XDF file to write.
    synchronize_clocks : bool
        Put the selected streams' stamps on the recorder's clock as
        :func:`bci.session.load.load` does (one pooled correction per sending host).
    """
    roots = {sid: ET.fromstring(s.header_xml) for sid, s in scan.streams.items()}
    chosen = {
        sid: SplitStream(s, roots[sid]) for sid, s in scan.streams.items() if select(s, roots[sid])
    }
    stamps: dict[int, list[np.ndarray]] = {sid: [] for sid in chosen}
    rest = Path(rest_path)
    with open(scan.path, "rb") as f, open(rest, "wb") as out:
        out.write(MAGIC)
        f.seek(len(MAGIC))
        for c in iter_chunks(f, scan.size, allow_unknown=True):
            if c.end > scan.complete_until:
                break
            if c.tag == ChunkTag.SAMPLES and c.stream_id in chosen:
                s = chosen[c.stream_id]
                s.chunks.append(c)
                f.seek(c.content_offset)
                block = decode_samples(f.read(c.end - c.content_offset), s.summary)
                stamps[c.stream_id].append(block.stamps)
                continue
            f.seek(c.offset)
            out.write(f.read(c.end - c.offset))
    for sid, s in chosen.items():
        s.stamps = np.concatenate(stamps[sid]) if stamps[sid] else np.zeros(0)
    split = XDFSplit(scan.path, rest, chosen)
    if synchronize_clocks and chosen:
        split.uncorrected = _synchronize(scan, chosen)
    return split


def _synchronize(scan: XDFScan, chosen: dict[int, SplitStream]) -> list[str]:
    header = ET.fromstring(scan.header_xml) if scan.header_xml else None
    recorder_host = header.findtext("hostname") if header is not None else None
    dicts: list[dict[str, Any]] = []
    for sid, s in scan.streams.items():
        root = chosen[sid].header if sid in chosen else ET.fromstring(s.header_xml)
        offsets = np.asarray(s.clock_offsets, dtype=np.float64).reshape(-1, 2)
        dicts.append(
            {
                "info": {"hostname": [root.findtext("hostname") or ""]},
                "clock_times": offsets[:, 0],
                "clock_values": offsets[:, 1],
                "time_stamps": chosen[sid].stamps if sid in chosen else np.zeros(0),
                "sid": sid,
            }
        )
    reset = synchronize_host_clocks(dicts, recorder_host or None)
    for d in dicts:
        if d["sid"] in chosen:
            chosen[d["sid"]].stamps = np.asarray(d["time_stamps"], dtype=np.float64)
    sids = [int(d["sid"]) for d in dicts]
    return [scan.streams[sids[i]].name for i in reset if sids[i] in chosen]


class SamplesReader:
    """Iterate a split stream's samples in blocks of about ``block_samples`` rows.

    Yields ``(first_row, values)`` with ``values`` of shape ``(n, n_channels)`` in the stream's
    sample format; only one block (plus one XDF chunk) is in memory at a time.
    """

    def __init__(self, path: str | Path, stream: SplitStream, block_samples: int) -> None:
        self.path = Path(path)
        self.stream = stream
        self.block_samples = max(1, int(block_samples))

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        pending: list[np.ndarray] = []
        n_pending = 0
        row = 0
        total = self.stream.n_samples
        with open(self.path, "rb") as f:
            for c in self.stream.chunks:
                f.seek(c.content_offset)
                values = decode_samples(
                    f.read(c.end - c.content_offset), self.stream.summary
                ).values
                if values is None or not len(values):
                    continue
                pending.append(values)
                n_pending += len(values)
                while n_pending >= self.block_samples:
                    block = np.concatenate(pending) if len(pending) > 1 else pending[0]
                    yield row, block[: self.block_samples]
                    row += self.block_samples
                    rest = block[self.block_samples :]
                    pending = [rest] if len(rest) else []
                    n_pending = len(rest)
        if n_pending:
            block = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield row, block
            row += len(block)
        if row != total:
            raise RuntimeError(
                f"read {row} samples of {self.stream.summary.name!r}, expected {total}"
            )
