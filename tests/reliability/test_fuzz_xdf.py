"""Truncated and garbled XDF: the checker, the repair, the reader and the neo loader give
``XDFFormatError`` / ``RecordingFormatError`` (or read what is there), and a repair of a
truncated recording keeps every sample that was in a whole chunk before the cut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pylsl
import pytest
from fuzz_support import EDIT, clear_error_or_value, long_run, mutate, short_run
from hypothesis import given
from hypothesis import strategies as st

from bci.session import load
from bci.session.files import RecordingFormatError, read_xdf
from bci.session.repair import repair
from bci.session.xdf import ChunkTag, XDFWriteError, XDFWriter, footer_xml
from bci.session.xdf_read import XDFFormatError, decode_samples, scan_xdf

CHANNELS = 3


class Blob(bytes):
    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


def _xml(name: str, fmt: str, n_ch: int, srate: float) -> str:
    return pylsl.StreamInfo(name, "Test", n_ch, srate, fmt, f"{name}-src").as_xml()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    """A closed recording: int16 and float32 signals, string markers, clock offsets, footers."""
    path = tmp_path_factory.mktemp("xdf") / "good.xdf"
    with XDFWriter(path) as w:
        sig = w.add_stream(_xml("Sig", "int16", CHANNELS, 500.0))
        flt = w.add_stream(_xml("Flt", "float32", 2, 100.0))
        mk = w.add_stream(_xml("Mk", "string", 1, 0.0))
        for sid in (sig, flt, mk):
            w.write_clock_offset(sid, 9.0, -1e-5)
        w.flush()
        for k in range(5):
            idx = np.arange(k * 20, (k + 1) * 20)
            w.write_numeric(sig, 10.0 + idx / 500.0, np.repeat(idx[:, None], CHANNELS, 1), "int16")
            w.write_numeric(flt, 10.0 + idx[:4] / 100.0, np.ones((4, 2), np.float32) * k, "float32")
            w.write_strings(mk, [10.0 + k * 0.04], [[f"marker {k} ✓"]])
            w.flush()
        w.write_footer(sig, footer_xml(10.0, 10.0 + 99 / 500.0, 100, [(9.0, -1e-5)]))
        w.write_footer(flt, footer_xml(10.0, 10.2, 20, [(9.0, -1e-5)]))
        w.write_footer(mk, footer_xml(10.0, 10.16, 5, [(9.0, -1e-5)]))
    return Blob(path.read_bytes())


def _samples_before(path: Path, cut: int) -> dict[str, int]:
    """Samples per stream in the whole Samples chunks that end at or before byte ``cut``."""
    scan = scan_xdf(path)
    counts = {s.name: 0 for s in scan.streams.values()}
    with open(path, "rb") as f:
        for c in scan.chunks:
            if c.tag == ChunkTag.SAMPLES and c.end <= cut and c.stream_id is not None:
                f.seek(c.content_offset)
                stream = scan.streams[c.stream_id]
                block = decode_samples(f.read(c.end - c.content_offset), stream)
                counts[stream.name] += len(block.stamps)
    return counts


def _truncated_keeps_what_was_recorded(tmp: Path, blob: bytes, cut: int) -> None:
    original = tmp / "original.xdf"
    original.write_bytes(blob)
    path = tmp / "cut.xdf"
    path.write_bytes(blob[:cut])
    report, err = clear_error_or_value(lambda: repair(path, tmp / "fixed.xdf"), (XDFFormatError,))
    if report is None:
        header_end = scan_xdf(original).chunks[0].end
        assert cut < header_end, f"a file cut at byte {cut} (after its header) not repaired: {err}"
        return
    fixed = report.output if report.output is not None else path
    again = scan_xdf(fixed)
    assert again.is_complete
    kept = {s.name: s.sample_count for s in again.streams.values()}
    for name, n in _samples_before(original, cut).items():
        assert kept.get(name, 0) >= n, f"{name}: {kept.get(name, 0)} kept of {n} recorded"
    streams, _ = read_xdf(fixed, synchronize_clocks=False)  # pyxdf reads the repaired file
    assert {s["info"]["name"][0]: len(s["time_stamps"]) for s in streams} == kept


@short_run(120)
@given(st.floats(0.0, 1.0))
def test_a_truncated_recording_is_repaired_without_losing_whole_chunks(
    recording: Blob, tmp_path_factory: pytest.TempPathFactory, where: float
) -> None:
    cut = 4 + int(where * (len(recording) - 5))
    _truncated_keeps_what_was_recorded(tmp_path_factory.mktemp("x"), recording, cut)


def test_every_truncation_point_is_repaired(recording: Blob, tmp_path: Path) -> None:
    """Exhaustive over one stride of cut points (the file is small)."""
    for cut in range(4, len(recording), 7):
        folder = tmp_path / str(cut)
        folder.mkdir()
        _truncated_keeps_what_was_recorded(folder, recording, cut)


def _garbled(tmp: Path, blob: bytes, edits: list[Any]) -> None:
    path = tmp / "garbled.xdf"
    path.write_bytes(mutate(blob, edits, keep=4))
    errors = (XDFFormatError, XDFWriteError)
    clear_error_or_value(lambda: scan_xdf(path, allow_unknown=True), errors)
    clear_error_or_value(lambda: repair(path, tmp / "fixed.xdf", overwrite=True), errors)
    clear_error_or_value(lambda: read_xdf(path), (RecordingFormatError,))
    clear_error_or_value(lambda: load(path), (RecordingFormatError,))


@short_run(100)
@given(st.lists(EDIT, min_size=1, max_size=4))
def test_a_garbled_recording_gives_a_format_error(
    recording: Blob, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _garbled(tmp_path_factory.mktemp("g"), recording, edits)


@pytest.mark.slow
@long_run(2000)
@given(st.lists(EDIT, min_size=1, max_size=10))
def test_a_garbled_recording_long(
    recording: Blob, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _garbled(tmp_path_factory.mktemp("g"), recording, edits)


@short_run(60)
@given(st.binary(max_size=400))
def test_any_bytes_after_the_magic_give_a_format_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    tmp = tmp_path_factory.mktemp("b")
    path = tmp / "any.xdf"
    path.write_bytes(b"XDF:" + content)
    _garbled(tmp, path.read_bytes(), [])


def _with_header(tmp: Path, channel_count: str, announced: int | None = None) -> Path:
    import struct

    from bci.session.xdf import chunk_header

    path = tmp / "hostile.xdf"
    xml = _xml("S", "float32", 2, 100.0).replace(
        "<channel_count>2</channel_count>", f"<channel_count>{channel_count}</channel_count>"
    )
    with XDFWriter(path) as w:
        sid = w.add_stream(xml)
    if announced is not None:  # a Samples chunk announcing far more samples than it holds
        body = b"\x08" + struct.pack("<Q", announced) + b"\x08" + bytes(16)
        path.write_bytes(path.read_bytes() + chunk_header(ChunkTag.SAMPLES, len(body), sid) + body)
    return path


@pytest.mark.parametrize("channel_count", ["abc", "-3", "1e3"])
def test_a_stream_header_with_a_bad_channel_count_is_named(
    tmp_path: Path, channel_count: str
) -> None:
    path = _with_header(tmp_path, channel_count)
    with pytest.raises(XDFFormatError, match="StreamHeader at byte .*channel_count"):
        scan_xdf(path)
    with pytest.raises(RecordingFormatError):
        read_xdf(path)


def test_a_samples_chunk_announcing_2_to_the_40_samples_allocates_nothing(tmp_path: Path) -> None:
    path = _with_header(tmp_path, "2", announced=2**40)
    with pytest.raises(XDFFormatError, match="shorter than the samples it announces"):
        scan_xdf(path)
