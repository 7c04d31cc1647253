"""SyntheticPublisher on real LSL outlets/inlets (loopback) and the ``bci source synthetic`` CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest
from click.testing import CliRunner
from lsl_testing import open_inlet, pull_numeric

from bci import BCIError, ConfigError
from bci.acquisition.metadata import read_channel_info
from bci.cli.main import cli
from bci.session.load import parse_spike_marker
from bci.synthesis import SyntheticPublisher, generate_recording

PARAMS = {"n_channels": 8, "n_units": 4, "seed": 5, "firing_rates_hz": (20.0, 40.0)}


def _open(source_id: str) -> pylsl.StreamInlet:
    return open_inlet(source_id, recover=False)


def test_float32_stream_carries_the_recording_metadata_and_ground_truth(source_id: str) -> None:
    pub = SyntheticPublisher(
        None, name="syn-test", source_id=source_id, channel_format="float32", chunk_ms=1.0, **PARAMS
    )
    inlet = _open(source_id)
    markers = _open(f"{source_id}-groundtruth")
    assert pub.wait_for_consumers(5.0)
    stats = pub.run(duration_s=0.5)
    rec = generate_recording(duration_s=0.5, **PARAMS)
    assert stats.samples == 15000 and stats.chunks == 500 and stats.spikes == len(rec.spikes)
    assert stats.wall_s >= 0.45  # paced to the clock, not flat out

    data, ts = pull_numeric(inlet, 15000, 8)
    np.testing.assert_array_equal(data.astype(np.float32), rec.traces)
    # stamps follow sample 0's clock time and the nominal rate, with no drift
    np.testing.assert_allclose(ts - pub.t0, np.arange(15000) / 30000.0, atol=1e-6, rtol=0)

    info = inlet.info(timeout=5.0)
    ch = read_channel_info(info)
    assert info.name() == "syn-test" and info.channel_count() == 8 and info.nominal_srate() == 30000
    assert set(ch.units) == {"uV"}
    np.testing.assert_allclose(np.array(ch.positions), rec.positions)
    acq = info.desc().child("acquisition")
    assert float(acq.child_value("scale_uv_per_bit")) == 1.0
    assert acq.child_value("ground_truth_stream") == "syn-test-groundtruth"

    got = []
    while True:
        sample, t = markers.pull_sample(timeout=1.0)
        if sample is None:
            break
        got.append((parse_spike_marker(sample[0]), t))
    assert len(got) == len(rec.spikes) > 20
    for (fields, t), spike in zip(got, rec.spikes, strict=True):
        assert fields is not None
        assert fields["unit"] == spike["unit_index"] and fields["ch"] == spike["channel_index"]
        assert fields["sample"] == spike["sample_index"]
        assert t == pytest.approx(pub.t0 + spike["sample_index"] / 30000.0, abs=1e-6)


def test_int16_stream_is_scaled_and_says_so(source_id: str) -> None:
    pub = SyntheticPublisher(
        None,
        name="syn-int16",
        source_id=source_id,
        channel_format="int16",
        ground_truth=False,
        scale_uv_per_bit=0.195,
        **PARAMS,
    )
    inlet = _open(source_id)
    assert pub.wait_for_consumers(5.0)
    pub.run(duration_s=0.2)
    data, _ = pull_numeric(inlet, 6000, 8)
    info = inlet.info(timeout=5.0)
    assert info.channel_format() == pylsl.cf_int16
    assert float(info.desc().child("acquisition").child_value("scale_uv_per_bit")) == 0.195
    rec = generate_recording(duration_s=0.2, **PARAMS)
    np.testing.assert_allclose(data * 0.195, rec.traces, atol=0.195 / 2 + 1e-4)
    assert not pylsl.resolve_byprop("source_id", f"{source_id}-groundtruth", 1, 0.5)


def test_a_finished_recording_loops_with_rising_sample_indices(source_id: str) -> None:
    rec = generate_recording(
        n_channels=4, n_units=2, duration_s=0.1, seed=1, firing_rates_hz=(30.0, 60.0)
    )
    pub = SyntheticPublisher(rec, name="syn-loop", source_id=source_id, chunk_ms=7.0, loop=True)
    seen_data, seen_spikes = [], []
    pub.run(0.25, on_chunk=lambda d, s: (seen_data.append(d), seen_spikes.append(s)))
    data = np.concatenate(seen_data)
    spikes = np.concatenate(seen_spikes)
    assert data.shape == (7500, 4)
    np.testing.assert_array_equal(data[:3000], rec.traces)
    np.testing.assert_array_equal(data[3000:6000], rec.traces)
    lap2 = spikes[(spikes["sample_index"] >= 3000) & (spikes["sample_index"] < 6000)]
    np.testing.assert_array_equal(lap2["sample_index"] - 3000, rec.spikes["sample_index"])
    # without loop, the stream ends with the recording
    once = SyntheticPublisher(rec, name="syn-once", source_id=source_id + "-b", loop=False)
    assert once.run(1.0).samples == 3000


def test_stop_ends_a_background_run(source_id: str) -> None:
    pub = SyntheticPublisher(None, name="syn-bg", source_id=source_id, ground_truth=False, **PARAMS)
    pub.start()
    time.sleep(0.3)
    pub.stop()
    assert 0 < pub.next_sample < 30000 * 5


def test_publisher_rejects_bad_input(source_id: str) -> None:
    with pytest.raises(ConfigError, match="channel_format"):
        SyntheticPublisher(None, source_id=source_id, channel_format="int32", **PARAMS)
    with pytest.raises(ConfigError, match="chunk_ms"):
        SyntheticPublisher(None, source_id=source_id, chunk_ms=0.0, **PARAMS)
    with pytest.raises(ConfigError, match="n_channels"):
        SyntheticPublisher(None, source_id=source_id, n_channels=0)
    rec = generate_recording(n_channels=4, n_units=1, duration_s=0.05)
    with pytest.raises(ConfigError, match="finished recording"):
        SyntheticPublisher(rec, source_id=source_id, seed=3)


def test_cli_source_synthetic_publishes_for_a_duration(source_id: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "source",
            "synthetic",
            "--duration",
            "0.3",
            "--channels",
            "4",
            "--units",
            "2",
            "--name",
            "syn-cli",
            "--source-id",
            source_id,
            "--lfp",
            "--artifact-hz",
            "130",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "syn-cli" in result.output and "syn-cli-groundtruth" in result.output
    assert "syn-cli-stim" in result.output
    assert "Sent 9000 samples" in result.output


def test_cli_source_synthetic_refuses_bad_input(source_id: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["source", "synthetic", "--channels", "0", "--source-id", source_id, "--duration", "0.1"],
    )
    # a usage error naming the flag (issue 8), not the Python parameter 'n_channels'
    assert result.exit_code == 2
    assert "'--channels'" in result.output and "n_channels" not in result.output


def test_cli_runs_until_ctrl_c_and_stops_cleanly(source_id: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bci.cli.main",
            "source",
            "synthetic",
            "--channels",
            "4",
            "--units",
            "2",
            "--name",
            "syn-sigint",
            "--source-id",
            source_id,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert pylsl.resolve_byprop("source_id", source_id, 1, 20.0), "stream never appeared"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Running until Ctrl-C" in out and "Interrupted" in out and "Sent" in out
    assert "Traceback" not in out


def test_closed_publisher_ends_its_streams(source_id: str) -> None:
    with SyntheticPublisher(None, source_id=source_id, ground_truth=False, **PARAMS) as pub:
        assert pylsl.resolve_byprop("source_id", source_id, 1, 10.0)
    with pytest.raises(BCIError, match="closed"):
        pub.run(0.01)


def test_stimulation_onsets_go_out_on_their_own_marker_stream(source_id: str) -> None:
    pub = SyntheticPublisher(
        None,
        name="syn-stim",
        source_id=source_id,
        channel_format="float32",
        artifact_rate_hz=100.0,
        **PARAMS,
    )
    stim = _open(f"{source_id}-stim")
    pub.run(duration_s=0.2)
    got = []
    while True:
        sample, t = stim.pull_sample(timeout=1.0)
        if sample is None:
            break
        got.append((sample[0], t))
    assert [m for m, _ in got] == [f"stim sample={300 * k}" for k in range(20)]
    for k, (_, t) in enumerate(got):
        assert t == pytest.approx(pub.t0 + 300 * k / 30000.0, abs=1e-6)


def test_publisher_that_cannot_keep_real_time_says_how_far_behind(source_id, caplog):
    """A publisher slower than real time (here: 40 ms of work per 10 ms chunk) warns, with the lag."""
    pub = SyntheticPublisher(
        None, name="slow", source_id=source_id, chunk_ms=10.0, ground_truth=False,
        n_channels=2, n_units=1, seed=1,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="bci.synthesis.publisher"):
        stats = pub.run(duration_s=0.4, on_chunk=lambda data, spikes: time.sleep(0.04))
    pub.close()
    warnings = [r.getMessage() for r in caplog.records if "cannot keep real time" in r.message]
    assert warnings and stats.behind_warnings == len(warnings)
    lag_s = float(warnings[0].split(" s behind")[0].rsplit(" ", 1)[1])
    assert 0.5 <= lag_s <= stats.max_lag_s + 0.005  # printed to 10 ms
    assert stats.max_lag_s > 0.8  # ~40 chunks x 30 ms
