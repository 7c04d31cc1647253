"""Write XDF 1.0 files, the format LabRecorder writes and pyxdf reads (no Python writer exists).

Written from the XDF specification (https://github.com/sccn/xdf/wiki/Specifications) and checked
against files written by LabRecorder and read by pyxdf. A file is the magic ``XDF:`` followed by
chunks; every chunk is

``[NumLengthBytes: uint8 1|4|8] [Length: uint, that many bytes] [Tag: uint16] [Content]``

where ``Length`` counts the tag and the content, and every number is little endian. The tags:

1. **FileHeader**: XML ``<info><version>1.0</version>...</info>`` (exactly one, first);
2. **StreamHeader**: ``[StreamId: uint32]`` + the stream's full LSL ``<info>`` XML;
3. **Samples**: ``[StreamId]`` ``[NumSamples: varlen]`` then per sample ``[TimeStampBytes: 0|8]``
   ``[TimeStamp: float64]`` and the channel values (numeric: ``channel_count`` values of the
   channel format; string: per channel ``[varlen length] [UTF-8 bytes]``);
4. **ClockOffset**: ``[StreamId]`` ``[CollectionTime: float64]`` ``[OffsetValue: float64]``: at
   ``CollectionTime`` (on the stream's clock) the recorder's clock was ``OffsetValue`` seconds ahead
   (LabRecorder stores ``local_clock() - offset`` and ``offset`` from ``inlet.time_correction()``);
5. **Boundary**: a fixed 16-byte UUID; a reader that meets a damaged chunk scans forward to it;
6. **StreamFooter**: ``[StreamId]`` + XML with ``first_timestamp``, ``last_timestamp``,
   ``sample_count`` and the ``clock_offsets`` list.

Variable-length integers (``varlen``) are one byte giving their width (1, 4 or 8), then the value.
This writer stamps every sample explicitly (``TimeStampBytes`` = 8) with the raw LSL time stamp; the
spec allows omitting stamps that follow from the nominal rate, which LabRecorder does and our reader
(:mod:`bci.session.repair`) and pyxdf both understand.

Crash safety
------------
:class:`XDFWriter` keeps chunks in memory until :meth:`XDFWriter.flush`, which hands them to the
operating system with unbuffered ``os.write`` calls: once ``flush`` returns, a ``SIGKILL`` of the
process loses nothing of it (only a crash of the OS or a power cut can; pass ``fsync=True`` for
that). Each flush first writes the small chunks (headers, clock offsets, footers) in one call, then
the Samples chunks, so a kill in the middle of a flush can only cut a Samples chunk, which pyxdf
skips and ``bci session repair`` salvages sample by sample.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import check_type
from bci.errors import BCIError

__all__ = [
    "BOUNDARY_UUID",
    "MAGIC",
    "ChunkTag",
    "StreamSummary",
    "XDFWriter",
    "boundary_chunk",
    "chunk_header",
    "clock_offset_chunk",
    "encode_varlen",
    "file_header_chunk",
    "footer_xml",
    "numeric_samples_chunk",
    "stream_footer_chunk",
    "stream_header_chunk",
    "string_samples_chunk",
]

MAGIC = b"XDF:"
#: Content of every Boundary chunk (XDF spec; pyxdf scans forward to it after a damaged chunk).
BOUNDARY_UUID = bytes.fromhex("43A546DCCBF5410FB30ED5467383CBE4")

#: little-endian numpy dtype of each XDF/LSL numeric channel format
XDF_DTYPES: dict[str, str] = {
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "float32": "<f4",
    "double64": "<f8",
}

# os.writev takes at most IOV_MAX buffers (1024 on Linux)
_MAX_IOV = 512


class ChunkTag(enum.IntEnum):
    """Chunk tags of XDF 1.0."""

    FILE_HEADER = 1
    STREAM_HEADER = 2
    SAMPLES = 3
    CLOCK_OFFSET = 4
    BOUNDARY = 5
    STREAM_FOOTER = 6


class XDFWriteError(BCIError, OSError):
    """The XDF file could not be created or written."""


def encode_varlen(value: int) -> bytes:
    """Encode a non-negative int as an XDF variable-length integer (width byte 1, 4 or 8)."""
    if value < 0:
        raise ValueError(f"XDF lengths are non-negative, got {value}.")
    if value < 1 << 8:
        return struct.pack("<BB", 1, value)
    if value < 1 << 32:
        return struct.pack("<BI", 4, value)
    return struct.pack("<BQ", 8, value)


def chunk_header(tag: int, content_length: int, stream_id: int | None = None) -> bytes:
    """``[NumLengthBytes][Length][Tag]`` (+ ``[StreamId]``) for ``content_length`` more bytes.

    ``content_length`` counts the content after the stream id (if any).
    """
    extra = 0 if stream_id is None else 4
    head = encode_varlen(2 + extra + content_length) + struct.pack("<H", tag)
    if stream_id is not None:
        head += struct.pack("<I", stream_id)
    return head


def _xml_chunk(tag: int, xml: str, stream_id: int | None = None) -> bytes:
    body = xml.encode("utf-8")
    return chunk_header(tag, len(body), stream_id) + body


def file_header_chunk(
    now: _dt.datetime | None = None, fields: dict[str, str] | None = None
) -> bytes:
    """FileHeader chunk: version 1.0, the recording's start time and any extra text fields."""
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone()
    extra = "".join(f"<{k}>{_escape(v)}</{k}>" for k, v in (fields or {}).items())
    xml = (
        '<?xml version="1.0"?><info><version>1.0</version>'
        f"<datetime>{stamp.strftime('%Y-%m-%dT%H:%M:%S%z')}</datetime>{extra}</info>"
    )
    return _xml_chunk(ChunkTag.FILE_HEADER, xml)


def stream_header_chunk(stream_id: int, info_xml: str) -> bytes:
    """StreamHeader chunk holding the stream's full ``<info>`` XML (``StreamInfo.as_xml()``)."""
    return _xml_chunk(ChunkTag.STREAM_HEADER, info_xml, stream_id)


def numeric_samples_chunk(
    stream_id: int, stamps: npt.ArrayLike, data: np.ndarray, channel_format: str
) -> list[Any]:
    """Samples chunk of a numeric stream, as ``[header bytes, sample records]`` buffers.

    ``data`` is ``(n_samples, n_channels)``; it is copied (to little endian, with a time stamp
    before each sample) into one packed record array, so the caller may reuse its buffer.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    n = len(stamps)
    values = np.asarray(data)
    if values.ndim == 1:
        values = values.reshape(n, -1)
    if values.shape[0] != n:
        raise ValueError(f"{n} time stamps for {values.shape[0]} samples.")
    n_ch = values.shape[1]
    record = np.dtype([("flag", "u1"), ("t", "<f8"), ("v", XDF_DTYPES[channel_format], (n_ch,))])
    rec = np.empty(n, dtype=record)
    rec["flag"] = 8
    rec["t"] = stamps
    rec["v"] = values
    count = encode_varlen(n)
    head = chunk_header(ChunkTag.SAMPLES, len(count) + rec.nbytes, stream_id) + count
    return [head, rec.view(np.uint8)]


def string_samples_chunk(
    stream_id: int, stamps: Sequence[float], rows: Sequence[Sequence[str]]
) -> bytes:
    """Samples chunk of a string stream (each value UTF-8 with its varlen byte length)."""
    if len(stamps) != len(rows):
        raise ValueError(f"{len(stamps)} time stamps for {len(rows)} samples.")
    parts = [encode_varlen(len(stamps))]
    for t, row in zip(stamps, rows, strict=True):
        parts.append(struct.pack("<Bd", 8, t))
        for value in row:
            raw = str(value).encode("utf-8")
            parts.append(encode_varlen(len(raw)))
            parts.append(raw)
    body = b"".join(parts)
    return chunk_header(ChunkTag.SAMPLES, len(body), stream_id) + body


def clock_offset_chunk(stream_id: int, collection_time: float, offset: float) -> bytes:
    """ClockOffset chunk: ``collection_time`` on the stream's clock, ``offset`` to add to it."""
    return chunk_header(ChunkTag.CLOCK_OFFSET, 16, stream_id) + struct.pack(
        "<dd", collection_time, offset
    )


def boundary_chunk() -> bytes:
    """Boundary chunk (the fixed UUID a reader scans forward to after a damaged chunk)."""
    return chunk_header(ChunkTag.BOUNDARY, len(BOUNDARY_UUID)) + BOUNDARY_UUID


def footer_xml(
    first_timestamp: float,
    last_timestamp: float,
    sample_count: int,
    clock_offsets: Sequence[tuple[float, float]] = (),
) -> str:
    """StreamFooter XML in LabRecorder's layout (floats written to full precision)."""
    offsets = "".join(
        f"<offset><time>{t!r}</time><value>{v!r}</value></offset>" for t, v in clock_offsets
    )
    return (
        f'<?xml version="1.0"?><info><first_timestamp>{float(first_timestamp)!r}'
        f"</first_timestamp><last_timestamp>{float(last_timestamp)!r}</last_timestamp>"
        f"<sample_count>{int(sample_count)}</sample_count>"
        f"<clock_offsets>{offsets}</clock_offsets></info>"
    )


@dataclass
class StreamSummary:
    """One stream of an XDF file: its header and what its Samples chunks hold so far.

    The recorder keeps one per stream while it records (and writes its footer from it); the
    checker (:func:`bci.session.xdf_read.scan_xdf`) builds one per stream it reads.
    """

    stream_id: int
    name: str
    channel_format: str
    n_channels: int
    nominal_srate: float
    source_id: str = ""
    #: the StreamHeader's XML ("" when not kept)
    header_xml: str = ""
    sample_count: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    #: (collection time, offset) pairs of the ClockOffset chunks
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)
    #: the StreamFooter's XML, None while the stream has none
    footer_xml: str | None = None

    def add_samples(self, first_timestamp: float, last_timestamp: float, n: int) -> None:
        """Count ``n`` more samples stamped from ``first_timestamp`` to ``last_timestamp``."""
        if n <= 0:
            return
        if self.first_timestamp is None:
            self.first_timestamp = float(first_timestamp)
        self.last_timestamp = float(last_timestamp)
        self.sample_count += n

    def make_footer_xml(self) -> str:
        """The StreamFooter XML for what has been counted (see :func:`footer_xml`)."""
        return footer_xml(
            self.first_timestamp if self.first_timestamp is not None else 0.0,
            self.last_timestamp if self.last_timestamp is not None else 0.0,
            self.sample_count,
            self.clock_offsets,
        )


def stream_footer_chunk(stream_id: int, xml: str) -> bytes:
    """StreamFooter chunk with the XML of :func:`footer_xml`."""
    return _xml_chunk(ChunkTag.STREAM_FOOTER, xml, stream_id)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class XDFWriter:
    """Append XDF chunks to a new file; thread-safe, flushed to the OS on :meth:`flush`.

    Parameters
    ----------
    path : str or Path
        The file to create (its folder must exist).
    overwrite : bool
        Replace an existing file; by default an existing file is an error (never clobber a
        recording).
    fsync : bool
        Also ``fsync`` on every flush (survives an OS crash or power cut, not only a killed
        process; slower).
    header_fields : dict of str to str
        Extra text fields for the FileHeader (e.g. ``writer="bci-closed-loop"``).

    Examples
    --------
    >>> w = XDFWriter("rec.xdf")  # doctest: +SKIP
    >>> sid = w.add_stream(info.as_xml())  # doctest: +SKIP
    >>> w.write_numeric(sid, stamps, data, "int16"); w.flush()  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        overwrite: bool = False,
        fsync: bool = False,
        header_fields: dict[str, str] | None = None,
    ) -> None:
        check_type(overwrite, bool, "overwrite")
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            self._fd: int | None = os.open(self.path, flags | getattr(os, "O_BINARY", 0), 0o644)
        except FileExistsError:
            raise XDFWriteError(
                f"{self.path} already exists; choose another file or replace it "
                "(--overwrite on the command line, overwrite=True in Python)."
            ) from None
        except OSError as err:
            raise XDFWriteError(f"Cannot create the XDF file {self.path}: {err}") from err
        self.fsync = bool(fsync)
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._meta: list[Any] = []  # headers, clock offsets, footers, boundaries
        self._samples: list[Any] = []
        self._next_stream_id = 1
        #: bytes handed to the OS so far
        self.bytes_written = 0
        self._meta.append(MAGIC + file_header_chunk(fields=header_fields))
        self.flush()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def add_stream(self, info_xml: str) -> int:
        """Queue a StreamHeader chunk; return the new stream id (1, 2, ...)."""
        with self._lock:
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            self._meta.append(stream_header_chunk(stream_id, info_xml))
        return stream_id

    def write_numeric(
        self, stream_id: int, stamps: npt.ArrayLike, data: np.ndarray, channel_format: str
    ) -> None:
        """Queue a Samples chunk of a numeric stream (nothing for zero samples)."""
        if len(np.asarray(stamps)) == 0:
            return
        parts = numeric_samples_chunk(stream_id, stamps, data, channel_format)
        with self._lock:
            self._samples.extend(parts)

    def write_strings(
        self, stream_id: int, stamps: Sequence[float], rows: Sequence[Sequence[str]]
    ) -> None:
        """Queue a Samples chunk of a string stream (nothing for zero samples)."""
        if len(stamps) == 0:
            return
        chunk = string_samples_chunk(stream_id, stamps, rows)
        with self._lock:
            self._samples.append(chunk)

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """Queue a ClockOffset chunk."""
        chunk = clock_offset_chunk(stream_id, collection_time, offset)
        with self._lock:
            self._meta.append(chunk)

    def write_boundary(self) -> None:
        """Queue a Boundary chunk (placed before the Samples chunks of the next flush)."""
        with self._lock:
            self._samples.insert(0, boundary_chunk())

    def write_footer(self, stream_id: int, xml: str) -> None:
        """Write a StreamFooter chunk after everything queued so far (flushes first)."""
        self.flush()
        with self._lock:
            self._meta.append(stream_footer_chunk(stream_id, xml))
        self.flush()

    def flush(self) -> int:
        """Hand every queued chunk to the OS; return the number of bytes written."""
        # _io_lock keeps flushes in order; _lock is held only to swap the queues, so the threads
        # that queue chunks never wait for the disk
        with self._io_lock:
            with self._lock:
                if self._fd is None:
                    if self._meta or self._samples:
                        raise XDFWriteError(f"{self.path} is closed; cannot write more chunks.")
                    return 0
                meta, self._meta = self._meta, []
                samples, self._samples = self._samples, []
                fd = self._fd
            n = 0
            try:
                if meta:
                    n += _write_all(fd, [b"".join(meta)])
                if samples:
                    n += _write_all(fd, samples)
                if self.fsync and n:
                    os.fsync(fd)
            except OSError as err:
                raise XDFWriteError(f"Writing {self.path} failed: {err}") from err
            self.bytes_written += n
            return n

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            with self._io_lock, self._lock:
                fd, self._fd = self._fd, None
                if fd is not None:
                    os.close(fd)

    def __enter__(self) -> XDFWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, buffers: list[Any]) -> int:
    """``writev`` every buffer completely (short writes resumed)."""
    if not hasattr(os, "writev"):  # Windows
        return sum(_write_one(fd, b) for b in buffers)
    total = 0
    for start in range(0, len(buffers), _MAX_IOV):
        pending = [memoryview(b).cast("B") for b in buffers[start : start + _MAX_IOV]]
        while pending:
            n = os.writev(fd, pending)
            total += n
            while pending and n >= len(pending[0]):
                n -= len(pending[0])
                pending.pop(0)
            if pending and n:
                pending[0] = pending[0][n:]
    return total


def _write_one(fd: int, buffer: Any) -> int:
    view = memoryview(buffer).cast("B")
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
    return done
