"""bci analyze on a recorded lockstep plant session: numbers equal elephant's, report, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import quantities as pq
from _plant_run import PlantRun, record_plant_run
from click.testing import CliRunner

from bci.analysis import analyze_run, write_analysis
from bci.cli.main import cli
from bci.session import load

# elephant 1.2.1 passes quantities' deprecated copy= argument (bci.analysis silences it likewise)
pytestmark = pytest.mark.filterwarnings("ignore::quantities.QuantitiesDeprecationWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PlantRun:
    return record_plant_run(tmp_path_factory.mktemp("runs"), seconds=3.0)


@pytest.fixture(scope="module")
def written(run: PlantRun) -> dict:
    analysis = analyze_run(run.run_dir)
    js, page = write_analysis(analysis)
    return {"numbers": json.loads(js.read_text()), "html": page.read_text(), "analysis": analysis}


def test_report_numbers_equal_elephant_called_directly(run: PlantRun, written: dict) -> None:
    from elephant.spectral import welch_psd
    from elephant.spike_train_correlation import spike_time_tiling_coefficient
    from elephant.spike_train_synchrony import spike_contrast
    from elephant.sta import spike_triggered_average
    from elephant.statistics import cv, isi, lv, mean_firing_rate

    numbers = written["numbers"]
    seg = load(run.run_dir).segments[0]
    trains = sorted(
        (st for st in seg.spiketrains if st.annotations["lsl_type"] == "Spikes"),
        key=lambda st: st.annotations["unit_id"],
    )
    # unit -1 holds the spikes the sorter left unsorted: counted, not analysed as a unit
    assert trains[0].annotations["unit_id"] == -1
    assert numbers["unsorted_spikes"] == len(trains[0]) == len(run.sorted_samples[-1]) > 0
    trains = trains[1:]
    assert numbers["units_source"] == "sorted"
    assert [u["unit_id"] for u in numbers["units"]] == [st.annotations["unit_id"] for st in trains]
    for row, st in zip(numbers["units"], trains, strict=True):
        assert row["n_spikes"] == len(st) == len(run.sorted_samples[row["unit_id"]])
        assert row["mean_rate_hz"] == pytest.approx(
            float(mean_firing_rate(st).rescale(pq.Hz)), rel=1e-12
        )
        intervals = isi(st).rescale(pq.s).magnitude
        assert row["isi_cv"] == pytest.approx(float(cv(intervals)), rel=1e-12)
        assert row["isi_lv"] == pytest.approx(float(lv(intervals)), rel=1e-12)
    sttc = np.array(numbers["synchrony"]["sttc"], dtype=float)
    assert sttc[0, 1] == pytest.approx(
        spike_time_tiling_coefficient(trains[0], trains[1], dt=5 * pq.ms), rel=1e-12
    )
    assert numbers["synchrony"]["spike_contrast"] == pytest.approx(
        spike_contrast(trains), rel=1e-12
    )
    # LFP: the voltage decimated 30 kHz -> 1 kHz (10 then 3), Welch at 1 Hz resolution
    voltage = next(a for a in seg.analogsignals if a.annotations["lsl_name"] == run.names["raw"])
    lfp = voltage.downsample(10).downsample(3)
    freqs, psd = welch_psd(lfp, frequency_resolution=1 * pq.Hz)
    f = freqs.rescale(pq.Hz).magnitude
    keep = f <= 100
    np.testing.assert_allclose(numbers["lfp"]["psd"], psd.magnitude[:, keep], rtol=1e-6)
    beta = psd.magnitude[:, (f >= 13) & (f <= 30)].mean(axis=1)
    np.testing.assert_allclose(numbers["lfp"]["beta_power_per_channel"], beta, rtol=1e-6)
    # stimulation-triggered average of the channel-mean voltage over the same pulses
    sta_n = numbers["stim_triggered_average"]
    stim = next(e for e in seg.events if e.annotations["lsl_name"] == run.names["stim"])
    assert sta_n["n_pulses_recorded"] == len(stim)
    import neo

    mean = neo.AnalogSignal(
        voltage.magnitude.mean(axis=1, keepdims=True), units=voltage.units,
        sampling_rate=voltage.sampling_rate, t_start=voltage.t_start,
    )  # fmt: skip
    train = neo.SpikeTrain(sta_n["pulse_times_s"] * pq.s, t_start=mean.t_start, t_stop=mean.t_stop)
    direct = spike_triggered_average(mean, train, window=(-5 * pq.ms, 20 * pq.ms))
    np.testing.assert_allclose(sta_n["channel_mean"], direct.magnitude[:, 0], rtol=1e-6)


def test_closed_loop_numbers_and_sorting_accuracy(run: PlantRun, written: dict) -> None:
    loop = written["numbers"]["closed_loop"]
    assert loop["controller"] == "schedule"
    # stimulation on for the middle third of 150 periods of 20 ms
    assert loop["time_on_stim_s"] == pytest.approx(1.0)
    assert loop["n_pulses"] > 100 and loop["energy_j"] > 0
    assert (
        loop["loop_latency_p99_ms"] == 2.5
        and loop["sources"]["loop_latency_p99_ms"] == "summary.json"
    )
    assert loop["sources"]["error_index"] == "recording"  # this summary has no plant numbers
    acc = written["numbers"]["sorting_accuracy"]["units"]
    assert {u["gt_unit"] for u in acc} == set(run.gt_samples)
    for u in acc:
        # the fake sorter misses ~10% of the spikes and jitters the rest by <= 0.1 ms
        assert u["matched_unit"] == u["gt_unit"]
        assert 0.8 <= u["recall"] <= 0.97 and u["precision"] > 0.85


def test_report_is_self_contained_with_every_figure(written: dict) -> None:
    page = written["html"]
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") == 7
    for title in ("Raster with stimulation", "Firing rates", "Beta spectrogram",
                  "Amplitude and error index", "Loop latency"):  # fmt: skip
        assert f"<figcaption>{title}</figcaption>" in page
    numbers = written["numbers"]
    assert f"{numbers['units'][0]['mean_rate_hz']:.4g}" in page


def test_truncated_and_missing_recordings_are_analysed_as_far_as_they_go(
    run: PlantRun, tmp_path: Path
) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(run.run_dir, cut)
    xdf = cut / "recording.xdf"
    data = xdf.read_bytes()
    xdf.write_bytes(data[: int(len(data) * 0.6)])
    result = CliRunner().invoke(cli, ["analyze", str(cut)])
    assert result.exit_code == 0, result.output
    numbers = json.loads((cut / "analysis.json").read_text())
    assert any("cut short" in m for m in numbers["missing"])
    assert 0 < numbers["duration_s"] < 3.0 and numbers["units"]
    assert "cut short" in (cut / "report.html").read_text()

    gone = tmp_path / "gone"
    shutil.copytree(run.run_dir, gone)
    (gone / "recording.xdf").unlink()
    runner_summary = {
        "controller": "pi",
        "plant": {"error_index": 0.12, "gpi_beta": 0.05, "energy_j": 0.5, "time_on_stim": 0.25,
                  "online_s": 2.0},
        "loop_latency": {"p50_ms": 0.7, "p99_ms": 3.1},
    }  # fmt: skip
    (gone / "summary.json").write_text(json.dumps(runner_summary))
    result = CliRunner().invoke(cli, ["analyze", str(gone)])
    assert result.exit_code == 0, result.output
    assert "recording.xdf is missing" in result.output
    numbers = json.loads((gone / "analysis.json").read_text())
    loop = numbers["closed_loop"]
    assert (loop["controller"], loop["error_index"], loop["energy_j"]) == ("pi", 0.12, 0.5)
    assert loop["time_on_stim_s"] == 0.5 and loop["loop_latency_p99_ms"] == 3.1
    assert set(loop["sources"].values()) == {"summary.json"}
    assert "units" not in numbers

    missing = CliRunner().invoke(cli, ["analyze", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
    assert "Traceback" not in missing.output


def test_several_runs_give_one_comparison_table(run: PlantRun, tmp_path: Path) -> None:
    runs = []
    for ctl in ("off", "continuous"):
        d = tmp_path / ctl
        shutil.copytree(run.run_dir, d)
        summary = json.loads((d / "summary.json").read_text())
        summary["controller"] = ctl
        (d / "summary.json").write_text(json.dumps(summary))
        runs.append(str(d))
    result = CliRunner().invoke(cli, ["analyze", *runs, "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    csv = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()
    assert csv[0].startswith("run,controller,error_index,gpi_beta,energy_j,time_on_stim_s")
    assert [line.split(",")[1] for line in csv[1:]] == ["off", "continuous"]
    assert "| off |" in (tmp_path / "cmp" / "comparison.md").read_text()


def test_unreachable_cluster_fails_in_seconds(run: PlantRun) -> None:
    import time

    t = time.perf_counter()
    result = CliRunner().invoke(cli, ["analyze", str(run.run_dir), "--cluster", "127.0.0.1:1"])
    assert result.exit_code != 0 and "No Ray cluster answers at 127.0.0.1:1" in result.output
    assert time.perf_counter() - t < 10
    bad = CliRunner().invoke(cli, ["analyze", str(run.run_dir), "--cluster", "nonsense"])
    assert bad.exit_code == 2 and "--cluster" in bad.output


def test_analyze_needs_no_ray(run: PlantRun, tmp_path: Path) -> None:
    import subprocess
    import sys

    d = tmp_path / "noray"
    shutil.copytree(run.run_dir, d)
    code = (
        "import sys; sys.modules['ray'] = None\n"  # any `import ray` now fails
        "from bci.cli.main import cli\n"
        f"cli(['analyze', {str(d)!r}])\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (d / "report.html").is_file()
