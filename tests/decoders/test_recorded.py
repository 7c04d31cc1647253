"""Training arrays from a recording lay out their columns as the online binner does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bci.acquisition.metadata import make_stream_info
from bci.features import SpikeBinner
from bci.session.xdf import XDFWriter
from bci.stream import SPIKE_DTYPE, SpikeChunk, StreamSpec
from decoders.errors import DecoderError
from decoders.recorded import online_tracking, session_arrays

SFREQ = 30000.0
BIN_S = 0.02
T_FIRST = 500.0  # LSL time of the source's sample 0


def _spikes(rng: np.random.Generator, n_units: int, seconds: float) -> np.ndarray:
    """Spikes of units 0..n_units-1 except unit 2 (silent), and some unsorted ones (-1)."""
    n = 4000
    s = np.zeros(n, dtype=SPIKE_DTYPE)
    # the first spike opens bin 5 exactly, so the recording's bins are the binner's
    samples = rng.integers(3000, int(seconds * SFREQ), n)
    # off the bins' first samples, where a time stamp's rounding could tip it into the bin before
    samples[samples % 600 == 0] += 1
    s["sample_index"] = np.sort(samples)
    s["sample_index"][0] = 3000
    units = rng.choice([u for u in range(-1, n_units) if u != 2], n)
    s["unit_index"] = units
    s["channel_index"] = np.maximum(units, 0)
    s["amplitude"] = -50.0
    return s


def _write(path: Path, spikes: np.ndarray, seconds: float, ground_truth: bool = False) -> None:
    """A recording as the runner writes it: the loop's spike stream and a kinematics stream."""
    w = XDFWriter(path)
    info = make_stream_info(
        "run-1a2b-spikes", "Spikes", 4, 0.0, "double64", "run-1a2b-spikes",
        labels=["unit", "channel", "sample_index", "amplitude"], units=["", "", "", "uV"],
    )  # fmt: skip
    sid = w.add_stream(info.as_xml())
    rows = np.column_stack(
        [spikes["unit_index"], spikes["channel_index"], spikes["sample_index"], spikes["amplitude"]]
    ).astype(np.float64)
    w.write_numeric(sid, T_FIRST + spikes["sample_index"] / SFREQ, rows, "double64")
    kin = make_stream_info(
        "motor-1a2b-kinematics", "Kinematics", 4, 100.0, "float32", "kin",
        labels=["vx", "vy", "x", "y"], units=["cm/s", "cm/s", "cm", "cm"],
    )  # fmt: skip
    kid = w.add_stream(kin.as_xml())
    t = np.arange(int(seconds * 100)) * 0.01
    vals = np.column_stack([np.sin(t), np.cos(t), t, -t]).astype(np.float32)
    w.write_numeric(kid, T_FIRST + t, vals, "float32")
    if ground_truth:
        gt = make_stream_info(
            "motor-1a2b-groundtruth", "Markers", 1, 0.0, "string", "gt", labels=["spike"]
        )
        gid = w.add_stream(gt.as_xml())
        w.write_strings(gid, [T_FIRST + 1.0], [["unit=0 ch=0 sample=30000"]])
    w.close()


def _online_bins(spikes: np.ndarray, n_units: int, seconds: float) -> np.ndarray:
    """What the session's spike_binner emits for the same spikes, fed in 1-ms chunks."""
    binner = SpikeBinner(bin_s=BIN_S)
    binner.prepare(StreamSpec("spikes", n_units, SFREQ))
    out = []
    step = 30
    for first in range(0, int(seconds * SFREQ), step):
        sel = (spikes["sample_index"] >= first) & (spikes["sample_index"] < first + step)
        got = binner.process(SpikeChunk(spikes[sel], first, first + step - 1, SFREQ))
        if got is not None:
            out.append(got.counts)
    return np.vstack(out)


def test_columns_are_the_binners_unit_columns(tmp_path: Path) -> None:
    n_units, seconds = 8, 6.0
    spikes = _spikes(np.random.default_rng(0), n_units, seconds)
    _write(tmp_path / "recording.xdf", spikes, seconds)
    X, Y, names, units = session_arrays(
        tmp_path, "kinematics", ["vx", "vy"], BIN_S, n_units=n_units
    )
    online = _online_bins(spikes, n_units, seconds)
    # the recording starts at its first spike (bin 5), as the detector's calibration ends
    assert X.shape[1] == n_units and X[:, 2].sum() == 0  # a silent unit keeps its column
    np.testing.assert_array_equal(X, online[5 : 5 + X.shape[0]])
    assert names == ["vx", "vy"] and units == ["cm/s", "cm/s"]
    t_centre = 0.1 + (np.arange(X.shape[0]) + 0.5) * BIN_S  # from the first spike, 0.1 s
    np.testing.assert_allclose(Y[:, 0], np.sin(t_centre), atol=1e-3)
    # without n_units: the highest unit id + 1, still indexed by id (not by rank)
    X2, *_ = session_arrays(tmp_path, "motor-1a2b-kinematics", ["x"], BIN_S)
    np.testing.assert_array_equal(X2, X)


def test_a_recording_with_two_spike_streams_needs_the_one_to_read(tmp_path: Path) -> None:
    spikes = _spikes(np.random.default_rng(1), 4, 3.0)
    _write(tmp_path / "recording.xdf", spikes, 3.0, ground_truth=True)
    with pytest.raises(DecoderError, match="2 spike streams.*--spikes"):
        session_arrays(tmp_path, "kinematics", None, BIN_S)
    X, *_ = session_arrays(tmp_path, "kinematics", None, BIN_S, spikes="-spikes")
    alone = tmp_path / "alone"
    alone.mkdir()
    _write(alone / "recording.xdf", spikes, 3.0)
    X_alone, *_ = session_arrays(alone, "kinematics", None, BIN_S)
    np.testing.assert_array_equal(X, X_alone)  # the ground-truth marker is not counted
    with pytest.raises(DecoderError, match="unit 3, but the decoder is to read 2 units"):
        session_arrays(tmp_path, "kinematics", None, BIN_S, spikes="-spikes", n_units=2)
    with pytest.raises(DecoderError, match="names 2 regular streams|no regular stream"):
        session_arrays(tmp_path, "nothing-like-it", None, BIN_S, spikes="-spikes")


def test_online_tracking_scores_a_decoded_stream_against_the_target(tmp_path: Path) -> None:
    spikes = _spikes(np.random.default_rng(2), 4, 6.0)
    path = tmp_path / "recording.xdf"
    w = XDFWriter(path)
    kin = make_stream_info(
        "motor-kinematics", "Kinematics", 2, 100.0, "float32", "kin",
        labels=["vx", "vy"], units=["cm/s", "cm/s"],
    )  # fmt: skip
    kid = w.add_stream(kin.as_xml())
    t = np.arange(600) * 0.01
    w.write_numeric(kid, T_FIRST + t, np.column_stack([np.sin(t), np.cos(t)]), "float32")
    dec = make_stream_info(
        "run-decoded", "Decoded", 2, 0.0, "float32", "dec", labels=["vx", "vy"], units=""
    )
    did = w.add_stream(dec.as_xml())
    ends = (np.arange(1, 300) * BIN_S)[:-5]
    centres = ends - BIN_S / 2
    # vx decoded exactly, vy decoded as half of it: r 1, R2 below 1
    values = np.column_stack([np.sin(centres), 0.5 * np.cos(centres)]).astype(np.float32)
    w.write_numeric(did, T_FIRST + ends, values, "float32")
    info = make_stream_info(
        "run-spikes", "Spikes", 4, 0.0, "double64", "sp",
        labels=["unit", "channel", "sample_index", "amplitude"], units=["", "", "", "uV"],
    )  # fmt: skip
    sid = w.add_stream(info.as_xml())
    rows = np.column_stack(
        [spikes["unit_index"], spikes["channel_index"], spikes["sample_index"], spikes["amplitude"]]
    ).astype(np.float64)
    w.write_numeric(sid, T_FIRST + spikes["sample_index"] / SFREQ, rows, "double64")
    w.close()
    got = online_tracking(tmp_path, "kinematics", ["vx", "vy"], skip_s=0.5)
    assert got["r2"][0] == pytest.approx(1.0, abs=1e-3) and got["r"][1] == pytest.approx(
        1.0, abs=1e-3
    )
    assert got["r2"][1] < 0.9
    assert got["t_start_s"] >= 0.1 + 0.5  # first spike at 0.1 s, then the settling time
