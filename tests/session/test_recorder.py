"""The recorder on loopback: three streams (30 kHz int16, 100 Hz float32, string markers) recorded by
``bci record`` in its own process, read back with pyxdf and bci.session.load; SIGKILL; replay."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import quantities as pq
import yaml
from click.testing import CliRunner
from lsl_streams import FAST_CH, FAST_FS, SLOW_FS, ThreeStreams
from lsl_testing import streams_by_name, wait_until, wait_until_recorded

from bci.acquisition.player import Player
from bci.cli.main import cli
from bci.session import load
from bci.session.files import read_xdf
from bci.session.nix import load_nix
from bci.session.recorder import Recorder, RecorderError, find_streams
from bci.session.recorder_process import spawn_recorder
from bci.session.repair import repair
from bci.session.xdf_read import scan_xdf

#: what a recorder killed with SIGKILL may lose (the issue's bound)
MAX_LOSS_S = 1.0


def _record(tmp: Path, seconds: float, stop_signal: int = signal.SIGTERM) -> dict:
    streams = ThreeStreams(seed=1)
    path = tmp / "recording.xdf"
    rec = spawn_recorder(path, source_ids=list(streams.source_ids.values()))
    sizes = []
    t_end = pylsl.local_clock() + seconds
    while pylsl.local_clock() < t_end:
        streams.push_for(0.25)
        sizes.append((pylsl.local_clock(), path.stat().st_size))
    # the recorder has the last samples once its file (flushed every 0.25 s) holds them
    last = {streams.names[k]: p.stamps[-1] for k, p in streams.pushed.items() if p.stamps}
    wait_until_recorded(path, last_stamps=last, timeout_s=10.0)
    rec.process.send_signal(stop_signal)
    code = rec.stop()
    streams.close()
    return {"path": path, "streams": streams, "code": code, "output": rec.text, "sizes": sizes}


def _assert_exact(rec: dict) -> None:
    """pyxdf reads back exactly what was pushed: values bit for bit, raw stamps exactly."""
    assert rec["code"] == 0, rec["output"]
    streams = rec["streams"]
    raw = streams_by_name(read_xdf(rec["path"], synchronize_clocks=False)[0])
    synced_streams, header = read_xdf(rec["path"], synchronize_clocks=True)
    synced = streams_by_name(synced_streams)
    corrections = []
    for key, name in streams.names.items():
        values, stamps, _ = streams.pushed[key].arrays()
        got = raw[name]
        assert len(got["time_stamps"]) == len(stamps) > 0, key
        if key == "markers":
            assert [row[0] for row in got["time_series"]] == values
        else:
            series = got["time_series"]
            assert series.dtype == values.dtype
            np.testing.assert_array_equal(series.view(np.uint8), values.view(np.uint8))
        np.testing.assert_array_equal(got["time_stamps"], stamps)  # raw LSL stamps, bit-exact
        assert len(got["clock_values"]) >= 2  # one when the recording starts, one at the stop
        corrections.append(synced[name]["time_stamps"] - stamps)
        footer = got["footer"]["info"]
        assert int(footer["sample_count"][0]) == len(stamps)
        assert float(footer["first_timestamp"][0]) == stamps[0]
        assert float(footer["last_timestamp"][0]) == stamps[-1]
    # after clock correction the stamps are the pushed ones within 1 us: every stream was stamped
    # on the recorder's host (named in the file header), whose clock needs no correction, although
    # the recorded loopback offsets wander by tens of microseconds
    assert header["info"]["hostname"][0] == socket.gethostname()
    correction = np.concatenate(corrections)
    assert np.abs(correction).max() < 1e-6
    scan = scan_xdf(rec["path"])
    assert scan.is_complete, scan.problems()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _record(tmp_path_factory.mktemp("rec"), seconds=2.0)


def test_recorded_samples_are_exactly_what_was_pushed(recording):
    _assert_exact(recording)


def test_ten_second_recording_is_exact(tmp_path):
    # the 10 s run (about 13 s here), stopped with SIGINT instead of SIGTERM
    _assert_exact(_record(tmp_path, seconds=10.0, stop_signal=signal.SIGINT))


def test_stream_headers_keep_the_full_lsl_info(recording):
    streams = recording["streams"]
    raw = streams_by_name(read_xdf(recording["path"], synchronize_clocks=False)[0])
    fast = raw[streams.names["fast"]]["info"]
    assert fast["source_id"] == [streams.source_ids["fast"]]
    assert fast["channel_format"] == ["int16"]
    assert float(fast["nominal_srate"][0]) == FAST_FS
    assert int(fast["channel_count"][0]) == FAST_CH
    for key in ("uid", "created_at", "session_id", "hostname", "v4data_port"):
        assert fast[key][0], key  # liblsl's full header, as LabRecorder stores it
    channels = raw[streams.names["slow"]]["info"]["desc"][0]["channels"][0]["channel"]
    assert [c["label"][0] for c in channels] == ["x", "y", "z"]


def test_file_is_flushed_at_least_every_second(recording):
    sizes = recording["sizes"]
    grew = [
        t for (t, size), (_, before) in zip(sizes[1:], sizes[:-1], strict=True) if size > before
    ]
    assert len(sizes) >= 6
    gaps = np.diff([sizes[0][0], *grew])
    assert gaps.max() < 1.0, gaps


def test_recording_loads_into_neo(recording):
    streams = recording["streams"]
    seg = load(recording["path"]).segments[0]
    fast = next(a for a in seg.analogsignals if a.name == streams.names["fast"])
    values, stamps, _ = streams.pushed["fast"].arrays()
    np.testing.assert_array_equal(fast.magnitude, values.astype(np.float32))
    assert fast.sampling_rate == FAST_FS * pq.Hz
    slow = next(a for a in seg.analogsignals if a.name.startswith(streams.names["slow"]))
    assert slow.sampling_rate == SLOW_FS * pq.Hz
    markers = next(e for e in seg.events if e.name == streams.names["markers"])
    assert list(markers.labels) == streams.pushed["markers"].arrays()[0]


def test_sigkill_loses_at_most_the_last_second(tmp_path):
    streams = ThreeStreams(seed=2)
    path = tmp_path / "recording.xdf"
    rec = spawn_recorder(path, source_ids=list(streams.source_ids.values()))
    kill_after = random.Random(os.getpid()).uniform(1.5, 3.0)
    t_kill = pylsl.local_clock() + kill_after
    streams.push_for(0.0, until=t_kill)
    t_kill = pylsl.local_clock()
    rec.kill()
    streams.push_for(0.3)  # the outlets go on; nobody records
    streams.close()
    raw = streams_by_name(
        read_xdf(path, synchronize_clocks=False)[0]
    )  # pyxdf reads the killed file
    for key, name in streams.names.items():
        values, stamps, pushed_at = streams.pushed[key].arrays()
        got = raw[name]
        n = len(got["time_stamps"])
        np.testing.assert_array_equal(got["time_stamps"], stamps[:n])  # a prefix, nothing else
        if key == "markers":
            assert [row[0] for row in got["time_series"]] == values[:n]
        else:
            np.testing.assert_array_equal(got["time_series"], values[:n])
        must_have = int(np.sum(pushed_at <= t_kill - MAX_LOSS_S))
        assert n >= must_have, f"{key}: {n} samples on disk, {must_have} pushed > 1 s before kill"
    assert "footer" not in raw[streams.names["fast"]]
    assert load(path).segments[0].analogsignals  # our loader reads the killed file as it is
    # repair closes it: footers with the counts on disk, the samples unchanged
    report = repair(path)
    assert report.output is not None and report.footers_added
    fixed = streams_by_name(read_xdf(report.output, synchronize_clocks=False)[0])
    for name in streams.names.values():
        assert int(fixed[name]["footer"]["info"]["sample_count"][0]) >= len(
            raw[name]["time_stamps"]
        )
        n = len(raw[name]["time_stamps"])
        np.testing.assert_array_equal(fixed[name]["time_stamps"][:n], raw[name]["time_stamps"])
    load(report.output)  # and it loads into neo


def test_replay_into_a_new_recorder_gives_the_same_samples(recording, tmp_path):
    streams = recording["streams"]
    original = streams_by_name(read_xdf(recording["path"], synchronize_clocks=True)[0])
    suffix = f"-rp{uuid.uuid4().hex[:6]}"
    player = Player(recording["path"], speed=1.0, source_id_suffix=suffix)
    infos = find_streams([{"source_id": sid + suffix} for sid in streams.source_ids.values()])
    with Recorder(infos, tmp_path / "replayed.xdf") as rec:
        player.start(delay_s=0.2)
        player.wait(30.0)
        expected = {name: len(s["time_stamps"]) for name, s in original.items()}
        assert wait_until(lambda: all(s.sample_count >= expected[s.name] for s in rec.stats), 10.0)
    player.close()
    assert [s.sample_count for s in rec.stats] == [
        len(original[s.name]["time_stamps"]) for s in rec.stats
    ]
    again = streams_by_name(read_xdf(rec.path, synchronize_clocks=False)[0])
    shifts = []
    for name, orig in original.items():
        got = again[name]
        if orig["info"]["channel_format"][0] == "string":
            assert got["time_series"] == orig["time_series"]
        else:
            series = got["time_series"]
            np.testing.assert_array_equal(series.view(np.uint8), orig["time_series"].view(np.uint8))
        shifts.append(got["time_stamps"] - orig["time_stamps"])
    # every sample of every stream is shifted by the same constant: same timing, to 1 us
    all_shifts = np.concatenate(shifts)
    assert np.ptp(all_shifts) < 1e-6


def test_recorder_in_process_writes_footers_and_stats(tmp_path, source_id):
    streams = ThreeStreams(seed=3)
    # an irregular numeric stream too (stimulation commands)
    stim = pylsl.StreamOutlet(pylsl.StreamInfo("Stim", "Stim", 3, 0.0, "double64", source_id))
    commands = np.array([[1.5, 130.0, 60.0], [0.0, 130.0, 60.0], [2.25, 20.0, 90.0]])
    sids = [*streams.source_ids.values(), source_id]
    infos = find_streams([{"source_id": sid} for sid in sids])
    with Recorder(infos, tmp_path / "r.xdf", flush_interval_s=0.2) as rec:
        for k, row in enumerate(commands):
            stim.push_sample(row.tolist(), 1000.0 + k)
            streams.push_for(0.2)
        last = {streams.names[k]: p.stamps[-1] for k, p in streams.pushed.items() if p.stamps}
        last["Stim"] = 1002.0
        assert wait_until(lambda: all(s.last_timestamp == last[s.name] for s in rec.stats), 10.0)
        assert rec.is_recording and rec.bytes_written > 0
    streams.close()
    del stim
    got = streams_by_name(read_xdf(rec.path, synchronize_clocks=False)[0])["Stim"]
    np.testing.assert_array_equal(got["time_series"], commands)
    np.testing.assert_array_equal(got["time_stamps"], [1000.0, 1001.0, 1002.0])
    fast = next(s for s in rec.stats if s.name == streams.names["fast"])
    _, stamps, _ = streams.pushed["fast"].arrays()
    assert fast.sample_count == len(stamps)
    assert (fast.first_timestamp, fast.last_timestamp) == (stamps[0], stamps[-1])
    assert len(fast.clock_offsets) >= 2
    with pytest.raises(RecorderError, match="already been started"):
        rec.start()


def test_recorder_refuses_to_overwrite(tmp_path, source_id):
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("ow", "Misc", 1, 10.0, "float32", source_id))
    (tmp_path / "r.xdf").write_bytes(b"precious")
    infos = find_streams([{"source_id": source_id}])
    with pytest.raises(OSError, match="already exists"):
        Recorder(infos, tmp_path / "r.xdf").start()
    assert (tmp_path / "r.xdf").read_bytes() == b"precious"
    del outlet


def test_cli_names_a_missing_stream_and_what_exists(tmp_path, source_id):
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("Present", "Misc", 1, 0.0, "float32", source_id))
    missing = f"NoSuchStream-{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(
        cli, ["record", "--stream", missing, "--out", str(tmp_path / "run"), "--timeout", "0.3"]
    )
    assert result.exit_code != 0
    assert missing in result.output
    # the streams that do exist are listed (the first 20: other test runs may add theirs)
    assert "Streams visible now" in result.output
    assert source_id in result.output or "more" in result.output
    assert not (tmp_path / "run").exists()
    del outlet


def test_spawned_recorder_that_cannot_start_says_why(tmp_path):
    missing = f"NoSuchStream-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RecorderError, match=f"(?s)did not start.*{missing}"):
        spawn_recorder(tmp_path / "r.xdf", names=[missing], timeout_s=0.2)
    assert not (tmp_path / "r.xdf").exists()


def test_cli_records_into_a_run_folder(tmp_path, source_id):
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("RunSig", "Misc", 2, 200.0, "float32", source_id))
    pushed = np.arange(2 * 120, dtype=np.float32).reshape(120, 2)
    stop = threading.Event()

    def push(out: pylsl.StreamOutlet) -> None:  # 200 Hz, 10-sample chunks, while recording
        i = 0
        while not stop.is_set() and i < len(pushed):
            out.push_chunk(pushed[i : i + 10])
            i += 10
            time.sleep(0.05)

    pusher = threading.Thread(target=push, args=(outlet,))
    pusher.start()
    result = CliRunner().invoke(
        cli,
        [
            "record", "--source-id", source_id, "--run-name", "demo",
            "--runs-root", str(tmp_path), "--duration", "0.8",
        ],
    )  # fmt: skip
    stop.set()
    pusher.join()
    del outlet
    assert result.exit_code == 0, result.output
    (run_dir,) = list(tmp_path.iterdir())
    assert run_dir.name.endswith("-demo")
    assert scan_xdf(run_dir).is_complete
    assert "RunSig" in result.output
    # the run folder of ARCHITECTURE.md: config first, then summary and the neo/NIX copy
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["session"] == "demo"
    assert config["streams"][0]["source_id"] == source_id
    summary = json.loads((run_dir / "summary.json").read_text())
    (stream,) = summary["streams"]
    assert stream["name"] == "RunSig" and stream["samples"] > 0
    assert summary["nix"] == "session.nix"
    block = load_nix(run_dir / "session.nix")
    (sig,) = block.segments[0].analogsignals
    assert sig.shape[0] == stream["samples"]
    first = int(sig.magnitude[0, 0]) // 2  # the recorder hears what was pushed once it listened
    np.testing.assert_array_equal(sig.magnitude, pushed[first : first + stream["samples"]])
