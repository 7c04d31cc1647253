"""``bci replay`` on small XDF files written here: what its table says, and damaged files."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
from click.testing import CliRunner

from bci.acquisition.metadata import make_stream_info
from bci.cli.main import cli
from bci.session import load
from bci.session.files import RecordingFormatError
from bci.session.xdf import XDFWriter, footer_xml


def _write(path: Path) -> None:
    """0.1 s of a 2-channel int16 stream at 1 kHz and two string markers."""
    tag = uuid.uuid4().hex[:8]
    with XDFWriter(path) as writer:
        sig = writer.add_stream(
            make_stream_info(f"sig-{tag}", "Neural", 2, 1000.0, "int16", f"sig-{tag}").as_xml()
        )
        mk = writer.add_stream(
            pylsl.StreamInfo(f"mk-{tag}", "Markers", 1, 0.0, "string", f"mk-{tag}").as_xml()
        )
        stamps = 100.0 + np.arange(100) / 1000.0
        writer.write_numeric(sig, stamps, np.zeros((100, 2), np.int16), "int16")
        writer.write_strings(mk, [100.01, 100.05], [["a"], ["b"]])
        writer.write_footer(sig, footer_xml(stamps[0], stamps[-1], 100, []))
        writer.write_footer(mk, footer_xml(100.01, 100.05, 2, []))


def test_replay_table_names_formats_and_counts_loops_only_with_loop(tmp_path):
    path = tmp_path / "r.xdf"
    _write(path)
    out = CliRunner().invoke(cli, ["replay", str(path), "--speed", "10", "--linger", "0"])
    assert out.exit_code == 0, out.output
    assert "int16" in out.output and "string" in out.output
    assert "loop" not in out.output  # no "0 full loop(s)" without --loop
    assert "Done." in out.output


@pytest.mark.parametrize("content", [b"XDF:", b"XDF:garbage\x00\x01\x02zzzz"])
def test_xdf_magic_without_a_file_header_is_named_not_a_traceback(tmp_path, content):
    path = tmp_path / "x.xdf"
    path.write_bytes(content)
    with pytest.raises(RecordingFormatError, match="x.xdf holds no readable XDF FileHeader"):
        load(path)
    out = CliRunner().invoke(cli, ["replay", str(path)])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit)
    assert "holds no readable XDF FileHeader" in out.output
    assert "bci session check" in out.output
