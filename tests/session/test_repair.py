"""``bci session check`` / ``repair``: truncated files closed into new files, bad files named."""

from __future__ import annotations

import hashlib
import logging
import struct
from pathlib import Path

import numpy as np
import pylsl
import pytest
from click.testing import CliRunner

from bci.cli.main import cli
from bci.session.files import RecordingNotFoundError, read_xdf
from bci.session.repair import default_repair_path, repair
from bci.session.xdf import (
    ChunkTag,
    XDFWriteError,
    XDFWriter,
    chunk_header,
    encode_varlen,
    footer_xml,
)
from bci.session.xdf_read import XDFFormatError, scan_xdf

SIG_CH = 3


def _xml(name: str, fmt: str, n_ch: int, srate: float) -> str:
    return pylsl.StreamInfo(name, "Test", n_ch, srate, fmt, f"{name}-src").as_xml()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed file: an int16 stream in 6 chunks, string markers, clock offsets, footers."""
    path = tmp_path_factory.mktemp("repair") / "good.xdf"
    with XDFWriter(path) as w:
        sig = w.add_stream(_xml("Sig", "int16", SIG_CH, 500.0))
        mk = w.add_stream(_xml("Mk", "string", 1, 0.0))
        w.write_clock_offset(sig, 9.0, -1e-5)
        w.write_clock_offset(mk, 9.0, -2e-5)
        w.flush()
        for k in range(6):
            idx = np.arange(k * 40, (k + 1) * 40)
            w.write_numeric(sig, 10.0 + idx / 500.0, np.repeat(idx[:, None], SIG_CH, 1), "int16")
            w.write_strings(mk, [10.0 + k * 0.08], [[f"marker {k} ✓"]])
            w.flush()
        w.write_clock_offset(sig, 11.0, -1e-5)
        w.write_clock_offset(mk, 11.0, -2e-5)
        w.write_footer(sig, footer_xml(10.0, 10.0 + 239 / 500.0, 240, [(9.0, -1e-5)]))
        w.write_footer(mk, footer_xml(10.0, 10.4, 6, [(9.0, -2e-5)]))
    return path


def _streams(path: Path) -> dict[str, dict]:
    return {s["info"]["name"][0]: s for s in read_xdf(path, synchronize_clocks=False)[0]}


def _sample_ends(path: Path) -> np.ndarray:
    """Byte offset just after each Sig sample (our writer: fixed-size stamped records)."""
    record = 1 + 8 + 2 * SIG_CH
    ends = []
    for c in scan_xdf(path).chunks:
        if c.tag == ChunkTag.SAMPLES and c.stream_id == 1:
            raw = path.read_bytes()[c.content_offset : c.end]
            width = raw[0]
            n = int.from_bytes(raw[1 : 1 + width], "little")
            first = c.content_offset + 1 + width
            ends += [first + (i + 1) * record for i in range(n)]
    return np.array(ends)


def test_complete_file_needs_no_repair(good: Path, tmp_path: Path):
    scan = scan_xdf(good)
    assert scan.is_complete and scan.problems() == []
    assert {s.name: s.sample_count for s in scan.streams.values()} == {"Sig": 240, "Mk": 6}
    report = repair(good, tmp_path / "copy.xdf")
    assert report.output is None and not (tmp_path / "copy.xdf").exists()
    forced = repair(good, tmp_path / "copy.xdf", force=True)
    assert forced.output == tmp_path / "copy.xdf" and scan_xdf(forced.output).is_complete


def test_every_cut_keeps_every_whole_sample(good: Path, tmp_path: Path, caplog):
    caplog.set_level(logging.CRITICAL)  # pyxdf logs nothing we need here
    data = good.read_bytes()
    full = _streams(good)
    ends = _sample_ends(good)
    digest = hashlib.sha256(data).hexdigest()
    first_samples = int(ends[0]) - 3
    cuts = sorted({*range(first_samples, len(data) - 1, 13), *(ends - 1).tolist(), len(data) - 1})
    for cut in cuts:
        cut_path = tmp_path / f"cut{cut}.xdf"
        cut_path.write_bytes(data[:cut])
        report = repair(cut_path)
        assert report.output == default_repair_path(cut_path)
        assert cut_path.read_bytes() == data[:cut]  # the input is never touched
        fixed = _streams(report.output)
        sig = fixed["Sig"]
        n = len(sig["time_stamps"])
        assert n == int(np.sum(ends <= cut)), f"cut at byte {cut}"
        np.testing.assert_array_equal(sig["time_series"], full["Sig"]["time_series"][:n])
        np.testing.assert_array_equal(sig["time_stamps"], full["Sig"]["time_stamps"][:n])
        assert int(sig["footer"]["info"]["sample_count"][0]) == n
        mk = fixed["Mk"]
        assert mk["time_series"] == full["Mk"]["time_series"][: len(mk["time_series"])]
        assert scan_xdf(report.output).is_complete
        report.output.unlink()
    assert hashlib.sha256(good.read_bytes()).hexdigest() == digest


def test_salvage_from_a_labrecorder_style_chunk_without_stamps(tmp_path: Path):
    # LabRecorder omits stamps that follow from the nominal rate (TimeStampBytes = 0)
    values = np.arange(20, dtype="<f4").reshape(10, 2)
    body = encode_varlen(10) + b"".join(
        (struct.pack("<Bd", 8, 5.0) if i == 0 else b"\x00") + values[i].tobytes() for i in range(10)
    )
    path = tmp_path / "lab.xdf"
    with XDFWriter(path) as w:
        sid = w.add_stream(_xml("Lab", "float32", 2, 100.0))
    chunk = chunk_header(ChunkTag.SAMPLES, len(body), sid) + body
    path.write_bytes(path.read_bytes() + chunk + chunk[: len(chunk) - 12])  # 2nd chunk cut
    scan = scan_xdf(path)
    assert scan.streams[sid].sample_count == 10 and scan.truncated is not None
    report = repair(path, tmp_path / "fixed.xdf")
    assert report.salvaged_samples == {"Lab": 8} and report.output is not None
    (s,) = read_xdf(report.output, synchronize_clocks=False)[0]
    np.testing.assert_array_equal(s["time_series"], np.concatenate([values, values[:8]]))
    expected = np.concatenate([5.0 + np.arange(10) / 100.0, 5.0 + np.arange(8) / 100.0])
    np.testing.assert_allclose(s["time_stamps"], expected, atol=1e-12)


def test_repair_never_overwrites(good: Path, tmp_path: Path):
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(XDFWriteError, match="in place"):
        repair(cut, cut)
    (tmp_path / "taken.xdf").write_bytes(b"keep me")
    with pytest.raises(XDFWriteError, match="taken.xdf already exists"):
        repair(cut, tmp_path / "taken.xdf")
    assert (tmp_path / "taken.xdf").read_bytes() == b"keep me"
    assert repair(cut, tmp_path / "taken.xdf", overwrite=True).output is not None


def test_bad_files_are_named_and_nothing_is_written(good: Path, tmp_path: Path):
    with pytest.raises(RecordingNotFoundError, match="nothing.xdf"):
        repair(tmp_path / "nothing.xdf")
    fake = tmp_path / "fake.xdf"
    fake.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(XDFFormatError, match="fake.xdf is not an XDF file"):
        repair(fake)
    data = good.read_bytes()
    first_chunk_end = scan_xdf(good).chunks[1].offset
    # an unknown chunk tag in the middle of the file
    unknown = tmp_path / "unknown.xdf"
    odd = encode_varlen(2 + 3) + struct.pack("<H", 9) + b"abc"
    unknown.write_bytes(data[:first_chunk_end] + odd + data[first_chunk_end:-30])
    with pytest.raises(XDFFormatError, match=f"unknown chunk tag 9 at byte {first_chunk_end}"):
        repair(unknown)
    assert not default_repair_path(unknown).exists()
    # ... copied verbatim only when asked; pyxdf skips it
    report = repair(unknown, allow_unknown=True)
    assert report.output is not None
    assert odd in report.output.read_bytes()
    assert len(_streams(report.output)["Sig"]["time_stamps"]) > 0
    # a length field of a width XDF does not allow
    bad_width = tmp_path / "width.xdf"
    bad_width.write_bytes(data[:first_chunk_end] + b"\x03" + data[first_chunk_end + 1 :])
    with pytest.raises(XDFFormatError, match=f"invalid chunk length at byte {first_chunk_end}"):
        repair(bad_width)
    # samples of a stream whose header is missing
    orphan = tmp_path / "orphan.xdf"
    body = encode_varlen(1) + struct.pack("<Bd", 8, 1.0) + b"\x00\x00"
    orphan_chunk = chunk_header(ChunkTag.SAMPLES, len(body), 7) + body
    orphan.write_bytes(data[:first_chunk_end] + orphan_chunk)
    with pytest.raises(XDFFormatError, match="stream 7, which has no StreamHeader"):
        repair(orphan)
    assert not any(
        p.name.endswith(".repaired.xdf") and "orphan" in p.name for p in tmp_path.iterdir()
    )


def test_cli_check_and_repair(good: Path, tmp_path: Path):
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(good.read_bytes()[:-100])
    runner = CliRunner()
    result = runner.invoke(cli, ["session", "check", str(cut)])
    assert result.exit_code == 1
    assert "truncated" in result.output and "has no StreamFooter" in result.output
    out = tmp_path / "fixed.xdf"
    result = runner.invoke(cli, ["session", "repair", str(cut), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "added footers for" in result.output and str(out) in result.output
    result = runner.invoke(cli, ["session", "check", str(out)])
    assert result.exit_code == 0 and "OK" in result.output
    result = runner.invoke(cli, ["session", "repair", str(good)])
    assert result.exit_code == 0 and "nothing to repair" in result.output
    fake = tmp_path / "fake.xdf"
    fake.write_bytes(b"<html>not xdf</html>")
    result = runner.invoke(cli, ["session", "repair", str(fake)])
    assert result.exit_code == 1 and "not an XDF file" in result.output
