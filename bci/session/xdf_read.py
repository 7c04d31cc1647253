"""Check the chunk structure of an XDF file and read its samples, tolerating a truncated tail.

pyxdf reads a whole file and silently skips what it does not understand; :func:`scan_xdf` instead
walks the chunks (:mod:`bci.session.xdf` describes the layout) and names every problem with its
byte offset: a file that is not XDF, a length field or chunk tag the specification does not know,
a chunk for a stream without a header, XML that does not parse. A file that simply ends in the
middle of a chunk (a recorder killed mid-write) is not an error: the scan reports where the last
whole chunk ends, and which complete samples the cut Samples chunk still holds, for
:func:`bci.session.repair.repair`.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bci.session.files import RecordingFormatError, resolve_recording_path
from bci.session.xdf import MAGIC, XDF_DTYPES, ChunkTag, StreamSummary

__all__ = [
    "ChunkInfo",
    "SamplesBlock",
    "StreamSummary",
    "XDFFormatError",
    "XDFScan",
    "decode_samples",
    "iter_chunks",
    "scan_xdf",
]

_KNOWN_TAGS = {int(t) for t in ChunkTag}
_WITH_STREAM_ID = {ChunkTag.STREAM_HEADER, ChunkTag.SAMPLES, ChunkTag.CLOCK_OFFSET,
                   ChunkTag.STREAM_FOOTER}  # fmt: skip


class XDFFormatError(RecordingFormatError):
    """The file breaks the XDF specification (the message names the problem and its byte offset)."""


@dataclass(frozen=True)
class ChunkInfo:
    """Where one chunk lies in the file.

    ``offset`` is the byte offset of its length field, ``end`` the offset just after it (``end``
    may lie past the end of a truncated file), ``content_offset`` the offset of its content after
    the tag and stream id.
    """

    offset: int
    tag: int
    end: int
    content_offset: int
    stream_id: int | None = None


@dataclass
class SamplesBlock:
    """Decoded samples of one chunk: stamps float64 (n,), values ndarray (n, ch) or list of rows."""

    stamps: np.ndarray
    values: Any
    complete: bool  # False: the chunk was cut and these are its whole samples only


@dataclass
class XDFScan:
    """Result of :func:`scan_xdf`."""

    path: Path
    size: int
    header_xml: str
    chunks: list[ChunkInfo]
    streams: dict[int, StreamSummary]
    #: byte offset just after the last whole chunk
    complete_until: int
    #: the chunk the file ends in the middle of, if any
    truncated: ChunkInfo | None = None
    #: whole samples of a cut Samples chunk (stream id, block)
    salvageable: tuple[int, SamplesBlock] | None = None
    unknown_chunks: list[ChunkInfo] = field(default_factory=list)

    @property
    def missing_footers(self) -> list[StreamSummary]:
        return [s for s in self.streams.values() if s.footer_xml is None]

    @property
    def is_complete(self) -> bool:
        """Whole chunks only, and a footer for every stream."""
        return self.truncated is None and not self.missing_footers

    def problems(self) -> list[str]:
        """Human-readable list of what is wrong (empty for a cleanly closed file)."""
        out = []
        if self.truncated is not None:
            t = self.truncated
            out.append(
                f"truncated: the file ends at byte {self.size} inside a "
                f"{_tag_name(t.tag)} chunk that starts at byte {t.offset} and needs "
                f"{t.end - t.offset} bytes ({self.size - t.offset} present)"
            )
        for s in self.missing_footers:
            out.append(f"stream {s.stream_id} ({s.name!r}) has no StreamFooter")
        for c in self.unknown_chunks:
            out.append(f"chunk at byte {c.offset} has unknown tag {c.tag}")
        return out


def _tag_name(tag: int) -> str:
    try:
        return ChunkTag(tag).name.title().replace("_", "")
    except ValueError:
        return f"tag-{tag}"


def _read_varlen(f: BinaryIO, offset: int, what: str) -> tuple[int, int] | None:
    """(value, bytes used) of a varlen int at the current position; None if the file ends."""
    width = f.read(1)
    if not width:
        return None
    n = width[0]
    if n not in (1, 4, 8):
        raise XDFFormatError(
            f"{getattr(f, 'name', 'XDF file')}: invalid {what} at byte {offset}: its width byte "
            f"is {n}, but XDF allows only 1, 4 or 8."
        )
    raw = f.read(n)
    if len(raw) < n:
        return None
    return int.from_bytes(raw, "little"), 1 + n


def iter_chunks(f: BinaryIO, size: int, *, allow_unknown: bool = False) -> Iterator[ChunkInfo]:
    """Yield every chunk after the magic bytes (the file positioned after them).

    The last chunk yielded may end past ``size`` (a truncated file); iteration stops there. Each
    yielded chunk leaves the file positioned at its ``content_offset``.

    Raises
    ------
    XDFFormatError
        An invalid length field, or an unknown tag (unless ``allow_unknown``).
    """
    offset = f.tell()
    while offset < size:
        f.seek(offset)
        got = _read_varlen(f, offset, "chunk length")
        if got is None:
            yield ChunkInfo(offset, 0, size + 1, size)
            return
        length, used = got
        raw_tag = f.read(2)
        if len(raw_tag) < 2:
            yield ChunkInfo(offset, 0, offset + used + length, size)
            return
        tag = struct.unpack("<H", raw_tag)[0]
        if length < 2:
            raise XDFFormatError(
                f"{getattr(f, 'name', 'XDF file')}: chunk at byte {offset} claims a length of "
                f"{length}, shorter than its own tag."
            )
        if tag not in _KNOWN_TAGS and not allow_unknown:
            raise XDFFormatError(
                f"{getattr(f, 'name', 'XDF file')}: unknown chunk tag {tag} at byte {offset}; "
                "XDF 1.0 knows tags 1-6 (FileHeader, StreamHeader, Samples, ClockOffset, "
                "Boundary, StreamFooter). The file may be damaged there or written by a newer "
                "XDF writer."
            )
        end = offset + used + length
        stream_id = None
        content = offset + used + 2
        if tag in _WITH_STREAM_ID:
            raw_id = f.read(4)
            if len(raw_id) < 4:
                yield ChunkInfo(offset, tag, end, size)
                return
            stream_id = struct.unpack("<I", raw_id)[0]
            content += 4
        yield ChunkInfo(offset, tag, end, content, stream_id)
        if end > size:
            return
        offset = end


def _text(root: ET.Element, tag: str, default: str = "") -> str:
    el = root.find(tag)
    return default if el is None or el.text is None else el.text


def _parse_xml(raw: bytes, what: str, path: Path, offset: int) -> ET.Element:
    try:
        return ET.fromstring(raw.decode("utf-8", "replace"))
    except ET.ParseError as err:
        raise XDFFormatError(
            f"{path}: the {what} at byte {offset} is not valid XML: {err}"
        ) from None


def decode_samples(raw: bytes, stream: StreamSummary) -> SamplesBlock:
    """Decode a Samples chunk's content (after the stream id); a cut chunk keeps whole samples."""
    if not raw or raw[0] not in (1, 4, 8) or len(raw) < 1 + raw[0]:
        return SamplesBlock(np.zeros(0), [] if stream.channel_format == "string" else None, False)
    width = raw[0]
    n = int.from_bytes(raw[1 : 1 + width], "little")
    pos = 1 + width
    tdiff = 1.0 / stream.nominal_srate if stream.nominal_srate > 0 else 0.0
    last = stream.last_timestamp if stream.last_timestamp is not None else 0.0
    n_ch = stream.n_channels
    if stream.channel_format == "string":
        return _decode_strings(raw, pos, n, n_ch, last, tdiff)
    dtype = np.dtype(XDF_DTYPES[stream.channel_format])
    value_bytes = n_ch * dtype.itemsize
    full = np.dtype([("flag", "u1"), ("t", "<f8"), ("v", dtype, (n_ch,))])
    body = memoryview(raw)[pos:]
    if len(body) == n * full.itemsize:
        # every sample stamped (our writer): one vectorised view (omitted stamps save 8 bytes
        # each, so this exact size means none was omitted)
        rec = np.frombuffer(body, dtype=full)
        if np.all(rec["flag"] == 8):
            return SamplesBlock(rec["t"].copy(), rec["v"].copy(), True)
    # a garbled count must not allocate: a sample takes at least its flag byte and its values
    n_alloc = min(n, max(0, len(raw) - pos) // (1 + value_bytes))
    stamps = np.empty(n_alloc)
    values = np.empty((n_alloc, n_ch), dtype=dtype)
    k = 0
    while k < n_alloc:
        if pos >= len(raw):
            break
        flag = raw[pos]
        if flag == 8:
            if pos + 9 + value_bytes > len(raw):
                break
            last = struct.unpack_from("<d", raw, pos + 1)[0]
            pos += 9
        elif flag == 0:
            if pos + 1 + value_bytes > len(raw):
                break
            last = last + tdiff
            pos += 1
        else:
            raise XDFFormatError(f"sample {k} has a time-stamp width of {flag} (allowed: 0 or 8)")
        stamps[k] = last
        values[k] = np.frombuffer(raw, dtype=dtype, count=n_ch, offset=pos)
        pos += value_bytes
        k += 1
    return SamplesBlock(stamps[:k], values[:k], k == n)


def _decode_strings(
    raw: bytes, pos: int, n: int, n_ch: int, last: float, tdiff: float
) -> SamplesBlock:
    stamps: list[float] = []
    rows: list[list[str]] = []
    try:
        for _ in range(n):
            flag = raw[pos]
            if flag == 8:
                t = struct.unpack_from("<d", raw, pos + 1)[0]
                pos += 9
            elif flag == 0:
                t = last + tdiff
                pos += 1
            else:
                raise XDFFormatError(f"a string sample has a time-stamp width of {flag}")
            row = []
            for _ch in range(n_ch):
                width = raw[pos]
                if width not in (1, 4, 8):
                    raise XDFFormatError(f"a string length has a width byte of {width}")
                length = int.from_bytes(raw[pos + 1 : pos + 1 + width], "little")
                start = pos + 1 + width
                if start + length > len(raw):
                    raise IndexError
                row.append(raw[start : start + length].decode("utf-8", "replace"))
                pos = start + length
            last = t
            stamps.append(t)
            rows.append(row)
    except (IndexError, struct.error):
        pass
    return SamplesBlock(np.asarray(stamps, dtype=np.float64), rows, len(rows) == n)


def scan_xdf(path: str | Path, *, allow_unknown: bool = False) -> XDFScan:
    """Walk every chunk of an XDF file, decoding headers, footers, offsets and sample stamps.

    Parameters
    ----------
    path : str or Path
        An ``.xdf`` file or a run folder.
    allow_unknown : bool
        Skip chunks with tags XDF 1.0 does not define (listed in ``unknown_chunks``) instead of
        raising.

    Raises
    ------
    RecordingNotFoundError
        The file does not exist.
    XDFFormatError
        Not an XDF file, or a chunk breaks the specification (message names it and its offset).
    """
    p = resolve_recording_path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        if f.read(4) != MAGIC:
            raise XDFFormatError(
                f"{p} is not an XDF file (it does not start with the 'XDF:' magic bytes)."
            )
        chunks: list[ChunkInfo] = []
        streams: dict[int, StreamSummary] = {}
        scan = XDFScan(p, size, "", chunks, streams, complete_until=4)
        for c in iter_chunks(f, size, allow_unknown=allow_unknown):
            if c.end > size:
                scan.truncated = c
                if c.tag == ChunkTag.SAMPLES and c.stream_id in streams:
                    f.seek(c.content_offset)
                    block = _decode(f.read(), streams[c.stream_id], p, c)
                    if len(block.stamps):
                        scan.salvageable = (c.stream_id, block)
                break
            f.seek(c.content_offset)
            raw = f.read(c.end - c.content_offset)
            if not chunks and c.tag != ChunkTag.FILE_HEADER:
                raise XDFFormatError(
                    f"{p}: the first chunk (byte 4) has tag {c.tag}, not a FileHeader (1)."
                )
            chunks.append(c)
            scan.complete_until = c.end
            if c.tag not in _KNOWN_TAGS:
                scan.unknown_chunks.append(c)
            elif c.tag == ChunkTag.FILE_HEADER:
                _parse_xml(raw, "FileHeader", p, c.offset)
                scan.header_xml = raw.decode("utf-8", "replace")
            elif c.stream_id is None or c.tag == ChunkTag.BOUNDARY:
                continue
            elif c.tag == ChunkTag.STREAM_HEADER:
                root = _parse_xml(raw, "StreamHeader", p, c.offset)
                fmt = _text(root, "channel_format", "float32")
                if fmt != "string" and fmt not in XDF_DTYPES:
                    raise XDFFormatError(
                        f"{p}: stream {c.stream_id} (header at byte {c.offset}) has channel "
                        f"format {fmt!r}; XDF knows {sorted(XDF_DTYPES) + ['string']}."
                    )
                try:
                    n_channels = int(_text(root, "channel_count", "1"))
                    srate = float(_text(root, "nominal_srate", "0"))
                except ValueError as err:
                    raise XDFFormatError(
                        f"{p}: the StreamHeader at byte {c.offset} has an unreadable channel_count "
                        f"or nominal_srate ({err})."
                    ) from None
                if n_channels < 0 or not srate >= 0.0:
                    raise XDFFormatError(
                        f"{p}: the StreamHeader at byte {c.offset} has channel_count {n_channels} "
                        f"and nominal_srate {srate}; both must be >= 0."
                    )
                streams[c.stream_id] = StreamSummary(
                    stream_id=c.stream_id,
                    header_xml=raw.decode("utf-8", "replace"),
                    name=_text(root, "name"),
                    source_id=_text(root, "source_id"),
                    channel_format=fmt,
                    n_channels=n_channels,
                    nominal_srate=srate,
                )
            elif c.stream_id not in streams:
                raise XDFFormatError(
                    f"{p}: the {_tag_name(c.tag)} chunk at byte {c.offset} belongs to stream "
                    f"{c.stream_id}, which has no StreamHeader before it."
                )
            elif c.tag == ChunkTag.SAMPLES:
                s = streams[c.stream_id]
                block = _decode(raw, s, p, c)
                if not block.complete:
                    raise XDFFormatError(
                        f"{p}: the Samples chunk at byte {c.offset} (stream {c.stream_id}, "
                        f"{s.name!r}) is shorter than the samples it announces."
                    )
                _account(s, block)
            elif c.tag == ChunkTag.CLOCK_OFFSET:
                if len(raw) != 16:
                    raise XDFFormatError(
                        f"{p}: the ClockOffset chunk at byte {c.offset} holds {len(raw)} bytes "
                        "instead of 16."
                    )
                t, v = struct.unpack("<dd", raw)
                streams[c.stream_id].clock_offsets.append((t, v))
            elif c.tag == ChunkTag.STREAM_FOOTER:
                _parse_xml(raw, "StreamFooter", p, c.offset)
                streams[c.stream_id].footer_xml = raw.decode("utf-8", "replace")
    if not chunks:
        raise XDFFormatError(f"{p} holds no complete chunk after the 'XDF:' magic bytes.")
    return scan


def _decode(raw: bytes, stream: StreamSummary, path: Path, chunk: ChunkInfo) -> SamplesBlock:
    """:func:`decode_samples`, with numpy's complaints about a garbled chunk named as such."""
    try:
        return decode_samples(raw, stream)
    except (ValueError, MemoryError, OverflowError) as err:
        if isinstance(err, XDFFormatError):
            raise
        raise XDFFormatError(
            f"{path}: the Samples chunk at byte {chunk.offset} (stream {chunk.stream_id}, "
            f"{stream.name!r}, {stream.n_channels} {stream.channel_format} channels) cannot be "
            f"decoded: {err}"
        ) from None


def _account(s: StreamSummary, block: SamplesBlock) -> None:
    if len(block.stamps):
        s.add_samples(block.stamps[0], block.stamps[-1], len(block.stamps))
