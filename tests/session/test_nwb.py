"""NWB export of a recorded lockstep plant session: lossless, nwbinspector-clean, readable by neo."""

from __future__ import annotations

import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import quantities as pq
from _plant_run import PlantRun, record_plant_run
from click.testing import CliRunner

from bci.acquisition.metadata import make_stream_info
from bci.cli.main import cli
from bci.session import load
from bci.session.nwb import NWBExportError, export_nwb
from bci.session.xdf import XDFWriter

pynwb = pytest.importorskip("pynwb")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PlantRun:
    return record_plant_run(tmp_path_factory.mktemp("runs"), seconds=3.0)


@pytest.fixture(scope="module")
def nwb_path(run: PlantRun) -> Path:
    return export_nwb(run.run_dir)


def _xdf_streams(run: PlantRun) -> dict[str, dict]:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(run.run_dir / "recording.xdf"), synchronize_clocks=False)
    return {s["info"]["name"][0]: s for s in streams}


def test_nwbinspector_finds_nothing_critical_or_against_best_practice(nwb_path: Path) -> None:
    from nwbinspector import Importance, inspect_nwbfile

    messages = list(inspect_nwbfile(nwbfile_path=str(nwb_path)))
    bad = [
        m
        for m in messages
        if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)
    ]
    assert not bad, "\n".join(
        f"{m.importance.name} {m.check_function_name}: {m.message}" for m in bad
    )


def test_raw_voltage_is_lossless_with_electrodes_and_geometry(
    run: PlantRun, nwb_path: Path
) -> None:
    xdf = _xdf_streams(run)[run.names["raw"]]
    counts = np.asarray(xdf["time_series"])
    stamps = np.asarray(xdf["time_stamps"])
    t0 = load(run.run_dir).segments[0].annotations["lsl_time_zero"]
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        es = f.acquisition[run.names["raw"]]
        assert es.data.dtype == np.int16 and es.data.compression == "gzip"
        np.testing.assert_array_equal(es.data[:], counts)  # every sample, bit for bit
        times = es.starting_time + np.arange(len(counts)) / es.rate
        np.testing.assert_allclose(times, stamps - t0, atol=1e-9, rtol=0)
        # physical units: counts x 0.195 uV
        assert es.conversion == pytest.approx(1e-6)
        np.testing.assert_allclose(es.channel_conversion[:], run.scale_uv_per_bit)
        electrodes = f.electrodes.to_dataframe()
        channels = ET.fromstring(
            ET.tostring(_header_root(xdf))
        ).findall("./desc/channels/channel")  # fmt: skip
        assert list(electrodes["channel_name"]) == [c.findtext("label") for c in channels]
        np.testing.assert_allclose(
            electrodes["rel_y"], [float(c.findtext("location/Y")) for c in channels]
        )
        assert set(electrodes["location"]) == {"stn"}


def _header_root(stream: dict) -> ET.Element:
    def build(tag: str, node: object) -> ET.Element:
        el = ET.Element(tag)
        if isinstance(node, dict):
            for k, vs in node.items():
                for v in vs:
                    el.append(build(k, v))
        elif node is not None:
            el.text = str(node)
        return el

    return build("info", {k: v for k, v in stream["info"].items() if isinstance(v, list)})


def test_units_spikes_events_and_series_match_the_recording(run: PlantRun, nwb_path: Path) -> None:
    block = load(run.run_dir)
    seg = block.segments[0]
    sorted_trains = {
        st.annotations["unit_id"]: st
        for st in seg.spiketrains
        if st.annotations["lsl_type"] == "Spikes"
    }
    with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
        f = io.read()
        units = f.units.to_dataframe()
        assert sorted(units["unit_id"]) == sorted(run.sorted_samples)
        for _, row in units.iterrows():
            published = sorted(run.sorted_samples[row["unit_id"]])
            assert len(row["spike_times"]) == len(published)
            assert sorted(row["spike_sample_index"]) == published
            st = sorted_trains[row["unit_id"]]
            np.testing.assert_allclose(
                row["spike_times"], st.times.rescale(pq.s).magnitude, atol=1e-12
            )
            mean_uv = st.waveforms.rescale(pq.uV).magnitude[:, 0, :].mean(axis=0)
            np.testing.assert_allclose(row["waveform_mean"] * 1e6, mean_uv, rtol=1e-5)
            assert row["channel_index"] == max(row["unit_id"], 0) % 8
            assert list(row["electrodes"].index) == [row["channel_index"]]  # the probe's row
        gt = f.processing["ground_truth"][run.names["spikes"]].to_dataframe()
        assert {u: len(t) for u, t in zip(gt["unit_id"], gt["spike_times"], strict=True)} == {
            u: len(s) for u, s in run.gt_samples.items()
        }
        pulses = f.intervals["stimulation_pulses"].to_dataframe()
        stim = next(e for e in seg.events if e.annotations["lsl_name"] == run.names["stim"])
        np.testing.assert_allclose(
            pulses["start_time"], stim.times.rescale(pq.s).magnitude, atol=1e-12
        )
        np.testing.assert_allclose(pulses["stop_time"] - pulses["start_time"], 300e-6, rtol=1e-6)
        assert (pulses["amplitude_ma"] == 2.5).all() and len(pulses) == len(stim) > 50
        amp = f.stimulus[f"{run.names['commands']}_amplitude_ma"]
        assert len(amp.data) == run.n_commands
        assert sorted(set(amp.data[:])) == [0.0, 2.5]
        safety = f.events[run.names["safety"]].to_dataframe()
        # the limiter's JSON markers unpacked into columns (no dict text left for DANDI to flag)
        assert len(safety) == run.n_safety and safety["annotation"][0] == "ramp_limited"
        assert safety["amplitude_ma"][0] == 2.5 and safety["event"][0] == "ramp_limited"
        decoded = f.processing["decoded"][f"{run.names['decoded']}_beta_estimate"]
        dec_sig = next(
            a for a in seg.analogsignals if a.annotations["lsl_name"] == run.names["decoded"]
        )
        np.testing.assert_array_equal(decoded.data[:], dec_sig.magnitude[:, 0])
        ei = f.processing["ground_truth"][f"{run.names['biomarkers']}_error_index"]
        assert len(ei.data) == run.n_periods
        assert "pacing: lockstep" in f.notes and "summary.json" in f.notes
        assert f.subject.description.startswith("Simulated subject")


def test_neo_nwbio_reads_the_units_with_the_same_spike_counts(
    run: PlantRun, tmp_path: Path
) -> None:
    from neo.io import NWBIO

    path = export_nwb(run.run_dir, tmp_path / "units.nwb", raw=False)
    blocks = NWBIO(str(path), "r").read_all_blocks()
    counts = sorted(len(st) for b in blocks for s in b.segments for st in s.spiketrains)
    assert counts == sorted(len(v) for v in run.sorted_samples.values())


def _synthetic_xdf(
    path: Path, n_channels: int, seconds: float, sfreq: float = 30_000.0
) -> np.ndarray:
    info = make_stream_info("Probe", "Neural", n_channels, sfreq, "int16", "probe-1")
    rng = np.random.default_rng(0)
    n = int(seconds * sfreq)
    data = rng.integers(-300, 300, size=(n, n_channels), dtype=np.int16)
    with XDFWriter(path) as w:
        sid = w.add_stream(info.as_xml())
        step = int(sfreq // 10)
        for lo in range(0, n, step):
            w.write_numeric(
                sid, 100.0 + np.arange(lo, min(n, lo + step)) / sfreq, data[lo : lo + step], "int16"
            )
            w.flush()
    return data


def test_export_copies_voltage_block_by_block_without_holding_the_recording(tmp_path: Path) -> None:
    data = _synthetic_xdf(tmp_path / "probe.xdf", 64, 4.0)
    tracemalloc.start()
    try:
        path = export_nwb(tmp_path / "probe.xdf", block_s=0.25, compression_level=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data.nbytes / 3, f"peak {peak / 1e6:.1f} MB for {data.nbytes / 1e6:.1f} MB"
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        np.testing.assert_array_equal(io.read().acquisition["Probe"].data[:], data)


def test_cli_exports_and_refuses_to_overwrite(run: PlantRun, tmp_path: Path) -> None:
    out = tmp_path / "x.nwb"
    runner = CliRunner()
    ok = runner.invoke(cli, ["export", "nwb", str(run.run_dir), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert out.is_file() and "Wrote" in ok.output
    again = runner.invoke(cli, ["export", "nwb", str(run.run_dir), "--out", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    missing = runner.invoke(cli, ["export", "nwb", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
    assert "Traceback" not in missing.output
    with pytest.raises(NWBExportError, match="exists"):
        export_nwb(run.run_dir, out)


def test_structured_markers_are_split_into_text_and_fields() -> None:
    from bci.session.nwb_content import split_marker

    assert split_marker('safety {"event": "clamp", "seq": 3, "x": {"a": [1, 2]}}') == (
        "safety",
        {"event": "clamp", "seq": 3, "x.a.0": 1, "x.a.1": 2},
    )
    assert split_marker("calibration done: [{'stage': 'OnlineSorter', 'n_units': 4}]") == (
        "calibration done:",
        {"0.stage": "OnlineSorter", "0.n_units": 4},
    )
    assert split_marker("stim on {not json") == ("stim on {not json", None)
    assert split_marker("plain text") == ("plain text", None)
