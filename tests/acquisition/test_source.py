"""LSLSource on real LSL outlets and inlets (loopback), each test with its own source_id."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from click.testing import CliRunner

from bci import ConfigError, StreamMismatchError, StreamNotFoundError
from bci.acquisition import (
    LSLSource,
    SignalOutlet,
    SourceClosedError,
    StreamLostError,
    make_stream_info,
)
from bci.stream import Pipeline, SignalChunk, Stage

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTLET_SCRIPT = Path(__file__).with_name("lsl_outlet_process.py")


def make_outlet(
    source_id: str, n_channels: int = 4, sfreq: float = 1000.0, fmt: str = "float32", **kw
):
    info = make_stream_info(f"test-{source_id}", "Neural", n_channels, sfreq, fmt, source_id, **kw)
    return SignalOutlet(info)


def pull_until(source: LSLSource, n_total: int, deadline_s: float = 5.0) -> list[SignalChunk]:
    """Pull until ``n_total`` samples have arrived (or the deadline passes)."""
    chunks: list[SignalChunk] = []
    t_end = time.monotonic() + deadline_s
    while sum(c.n_samples for c in chunks) < n_total and time.monotonic() < t_end:
        chunk = source.pull(timeout=0.05)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def push_indexed(outlet: SignalOutlet, t0: float, sfreq: float, first: int, n: int, jitter_s=0.0):
    """Push samples ``first..first+n-1`` (channel 0 = index), last stamped at its true time + jitter."""
    idx = np.arange(first, first + n, dtype=np.float64)
    data = np.repeat(idx[:, None], outlet.n_channels, axis=1)
    outlet.push(data, timestamp=t0 + (first + n - 1) / sfreq + jitter_s)


@pytest.mark.parametrize("fmt", ["float32", "int16"])
def test_round_trip_values_exact_and_time_base_contiguous(source_id: str, fmt: str) -> None:
    sfreq, n_ch = 1000.0, 8
    outlet = make_outlet(source_id, n_ch, sfreq, fmt)
    scale = 0.5 if fmt == "int16" else 1.0
    with LSLSource(
        source_id=source_id, n_channels=n_ch, sfreq=sfreq, channel_format=fmt, scale=scale
    ) as source:
        rng = np.random.default_rng(0)
        if fmt == "int16":
            sent = rng.integers(-32768, 32767, size=(400, n_ch)).astype(np.int16)
        else:
            sent = rng.standard_normal((400, n_ch)).astype(np.float32) * 100
        t0 = pylsl.local_clock()
        true_t = t0 + np.arange(400) / sfreq
        for start in range(0, 400, 20):
            outlet.push(sent[start : start + 20], timestamp=true_t[start + 19])
        chunks = pull_until(source, 400)
    data = np.concatenate([c.data for c in chunks])
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, sent.astype(np.float32) * np.float32(scale))
    assert chunks[0].first_sample == 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.first_sample == before.last_sample + 1
        assert after.gap_before == 0
    t = np.concatenate([c.t_lsl for c in chunks])
    np.testing.assert_allclose(t, true_t, atol=2e-4)
    assert all(c.t_arrival >= t0 for c in chunks)


def test_gap_by_timestamp_is_reported_and_skipped(source_id: str) -> None:
    sfreq = 1000.0
    outlet = make_outlet(source_id, 4, sfreq)
    with LSLSource(source_id=source_id, sfreq=sfreq) as source:
        t0 = pylsl.local_clock()
        k = 0
        for i in range(30):
            if i == 20:
                k += 37  # the outlet's device dropped 37 samples
            push_indexed(outlet, t0, sfreq, k, 10)
            k += 10
        chunks = pull_until(source, 300)
        status = source.status()
        events = list(source.events)
    # The time base stays true: first_sample always equals the outlet's own sample index.
    for chunk in chunks:
        np.testing.assert_array_equal(
            chunk.data[:, 0], chunk.first_sample + np.arange(chunk.n_samples)
        )
    assert sum(c.gap_before for c in chunks) == 37
    gap_chunk = next(c for c in chunks if c.gap_before)
    assert gap_chunk.first_sample == 237
    gap_events = [e for e in events if e.kind == "gap"]
    assert len(gap_events) == 1
    assert gap_events[0].n_samples == 37 and gap_events[0].sample_index == 237
    assert "37 samples (37.0 ms)" in gap_events[0].message
    assert status["gaps"] == 1 and status["gap_samples"] == 37
    assert status["samples_received"] == 300 and status["next_sample"] == 337


def test_samples_liblsl_stamped_before_a_real_stamp_are_dropped_not_a_gap(source_id: str) -> None:
    """liblsl stamps a "deduced" sample as the previous stamp plus one period, and 0 before the
    first real one (liblsl issue 161; an inlet subscribing mid-chunk gets such samples). Here the
    outlet sends 6 of them first, as the tail of a chunk does: they are dropped with an event,
    and the stream starts at the first real stamp, without the gap of the machine's uptime that
    the sample clock took it for (a realtime session once ended after 0.2 s on it)."""
    sfreq = 1000.0
    outlet = make_outlet(source_id, 4, sfreq)
    with LSLSource(source_id=source_id, sfreq=sfreq) as source:
        for k in range(6):  # pushed without a stamp of their own: liblsl's DEDUCED_TIMESTAMP
            outlet.outlet.push_sample([float(k)] * 4, -1.0)
        t0 = pylsl.local_clock()
        for first in range(6, 306, 20):
            push_indexed(outlet, t0, sfreq, first, 20)
        chunks = pull_until(source, 300)
        events = list(source.events)
    assert sum(c.n_samples for c in chunks) == 300 and chunks[0].first_sample == 0
    assert chunks[0].data[0, 0] == 6.0  # the first sample with a real stamp
    assert all(c.gap_before == 0 for c in chunks) and not [e for e in events if e.kind == "gap"]
    dropped = [e for e in events if e.kind == "unstamped"]
    assert len(dropped) == 1 and dropped[0].n_samples == 6, events
    t = np.concatenate([c.t_lsl for c in chunks])
    np.testing.assert_allclose(t, t0 + np.arange(6, 306) / sfreq, atol=2e-3)


def test_jittered_stamps_are_not_gaps_and_are_smoothed(source_id: str) -> None:
    """Push times jitter by up to 1 ms: no false gap, a real 50-sample gap found, stamps smoothed."""
    sfreq, chunk = 1000.0, 10
    outlet = make_outlet(source_id, 2, sfreq)
    rng = np.random.default_rng(1)
    with LSLSource(source_id=source_id, sfreq=sfreq) as source:
        t0 = pylsl.local_clock()
        k = 0
        for i in range(150):
            if i == 100:
                k += 50
            push_indexed(outlet, t0, sfreq, k, chunk, jitter_s=rng.uniform(0, 1e-3))
            k += chunk
        chunks = pull_until(source, 1500)
        assert sum(c.n_samples for c in chunks) == 1500
    gaps = [c.gap_before for c in chunks if c.gap_before]
    assert gaps == [50]
    # the numbering after the gap is the outlet's own: channel 0 holds each sample's true index
    for c in chunks:
        np.testing.assert_array_equal(c.data[:, 0], c.first_sample + np.arange(c.n_samples))
    assert next(c for c in chunks if c.gap_before).first_sample == 1050
    assert chunks[-1].last_sample == 1549
    # Smoothed stamps sit closer to the true sample times than the jittered ones liblsl delivered.
    index = np.concatenate([c.data[:, 0] for c in chunks]).astype(np.float64)
    true_t = t0 + index / sfreq
    t = np.concatenate([c.t_lsl for c in chunks])
    late = index >= 500  # after the fit has settled
    err_ours = np.abs(t[late] - true_t[late] - np.median(t[late] - true_t[late]))
    assert np.percentile(err_ours, 95) < 0.25e-3  # raw stamps are uniformly spread over 1 ms


def test_nan_samples_pass_through_flagged(source_id: str) -> None:
    outlet = make_outlet(source_id, 3, 500.0)
    with LSLSource(source_id=source_id, sfreq=500.0) as source:
        data = np.ones((50, 3), dtype=np.float32)
        data[[5, 6, 40], 1] = np.nan
        outlet.push(data, timestamp=pylsl.local_clock())
        chunks = pull_until(source, 50)
        status = source.status()
        events = list(source.events)
    nan_rows = np.concatenate([c.nan_rows for c in chunks])
    assert np.flatnonzero(nan_rows).tolist() == [5, 6, 40]
    received = np.concatenate([c.data for c in chunks])
    assert np.isnan(received).sum() == 3 and np.nansum(received) == 147
    assert status["nan_samples"] == 3
    assert [e.kind for e in events].count("nan") >= 1


def test_metadata_arrives_in_spec(source_id: str) -> None:
    labels = ["CA1-a", "CA1-b", "CA3-a"]
    positions = [[0.0, 0.0], [16.0, 20.0], [0.0, 40.0]]
    _outlet = make_outlet(source_id, 3, 30000.0, labels=labels, units="mV", positions=positions)
    with LSLSource(source_id=source_id) as source:
        spec = source.spec()
    assert spec.kind == "signal" and spec.n_channels == 3 and spec.rate_hz == 30000.0
    assert spec.channel_names == tuple(labels)
    assert spec.unit == "mV"
    assert spec.positions == ((0.0, 0.0), (16.0, 20.0), (0.0, 40.0))
    assert spec.origin is not None and spec.origin.source_id == source_id


def test_wrong_channel_count_and_rate_refused_with_both_values(source_id: str) -> None:
    _outlet = make_outlet(source_id, 8, 30000.0)
    with pytest.raises(StreamMismatchError) as err:
        LSLSource(source_id=source_id, n_channels=16, sfreq=20000.0, timeout_s=3.0).open()
    message = str(err.value)
    assert "expected 16, got 8" in message
    assert "expected 20000 Hz, got 30000 Hz" in message
    assert source_id in message


def test_wrong_format_and_string_stream_refused(source_id: str) -> None:
    _outlet = make_outlet(source_id, 2, 1000.0, "int16")
    with pytest.raises(StreamMismatchError, match="expected 'float32', got 'int16'"):
        LSLSource(source_id=source_id, channel_format="float32", timeout_s=3.0).open()
    marker_info = make_stream_info("markers", "Markers", 1, 0.0, "string", source_id + "-m")
    _markers = pylsl.StreamOutlet(marker_info)
    with pytest.raises(StreamMismatchError, match="numeric format.*irregular"):
        LSLSource(source_id=source_id + "-m", timeout_s=3.0).open()


def test_stream_not_found_lists_existing_streams(source_id: str) -> None:
    _outlet = make_outlet(source_id, 5, 250.0)
    wrong = source_id + "-nope"
    with pytest.raises(StreamNotFoundError) as err:
        LSLSource(name=f"test-{source_id}", source_id=wrong, timeout_s=0.3).open()
    message = str(err.value)
    assert f"source_id={wrong!r}" in message and "0.3 s" in message
    # The stream that shares the name is listed, with what a user needs to fix the query.
    assert f"source_id={source_id!r} (5 ch, 250 Hz, float32" in message


def test_query_and_parameters_validated() -> None:
    with pytest.raises(ConfigError, match="at least one of 'name', 'stype' or 'source_id'"):
        LSLSource()
    with pytest.raises(ConfigError, match="'n_channels'"):
        LSLSource(source_id="x", n_channels=0)
    with pytest.raises(ConfigError, match="'channel_format'"):
        LSLSource(source_id="x", channel_format="float16")


def test_stall_then_resume_reports_silence_and_gap(source_id: str) -> None:
    """In-process: the outlet pauses 300 ms (its device lost those samples) and then goes on."""
    sfreq = 1000.0
    outlet = make_outlet(source_id, 2, sfreq)
    with LSLSource(source_id=source_id, sfreq=sfreq, stall_after_s=0.1) as source:
        t0 = pylsl.local_clock()
        for k in range(0, 100, 10):
            push_indexed(outlet, t0, sfreq, k, 10)
        pull_until(source, 100)
        t_pause = time.monotonic()
        while time.monotonic() - t_pause < 0.3:
            assert source.pull(timeout=0.02) is None
        status = source.status()
        assert status["state"] == "stalled" and status["last_data_age_ms"] > 250
        push_indexed(outlet, t0, sfreq, 400, 10)
        chunks = pull_until(source, 10)
        kinds = [e.kind for e in source.events]
        assert source.status()["state"] == "connected"
    assert kinds.count("stall") == 1 and kinds.index("stall") < kinds.index("reconnect")
    stall = next(e for e in source.events if e.kind == "stall")
    assert "No data" in stall.message and "threshold 100 ms" in stall.message
    reconnect = next(e for e in source.events if e.kind == "reconnect")
    assert reconnect.n_samples == 300 and chunks[0].first_sample == 400


def test_close_and_context_manager(source_id: str) -> None:
    _outlet = make_outlet(source_id, 2, 1000.0)
    source = LSLSource(source_id=source_id)
    with source:
        assert source.status()["state"] == "waiting"
    assert source.status()["state"] == "closed"
    with pytest.raises(SourceClosedError):
        source.pull()
    source.close()  # idempotent


def test_outlet_killed_and_restarted_recovers_with_gap(source_id: str) -> None:
    """A separate outlet process is SIGKILLed and restarted with the same source_id."""
    sfreq, n_ch, chunk = 1000.0, 4, 10
    t_start = pylsl.local_clock()
    args = [
        sys.executable,
        str(OUTLET_SCRIPT),
        "killtest",
        source_id,
        str(n_ch),
        str(sfreq),
        str(chunk),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def start_outlet() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*args, repr(t_start), "60"], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    procs = [start_outlet()]
    try:
        source = LSLSource(source_id=source_id, n_channels=n_ch, sfreq=sfreq, timeout_s=10.0).open()
        chunks: list[SignalChunk] = []

        def pull_for(seconds: float, stop_on_data: bool = False) -> None:
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                got = source.pull(timeout=0.005)
                if got is not None:
                    chunks.append(got)
                    if stop_on_data:
                        return

        pull_for(0.8)
        n_before = len(chunks)
        assert n_before > 0
        procs[0].kill()
        procs[0].wait(5)
        pull_for(0.5)
        assert source.status()["stalled"]
        # what the dead outlet had pushed before the kill may arrive after it: the stall says
        # everything has arrived, so the next chunk comes from the restarted outlet
        n_dead = len(chunks)
        procs.append(start_outlet())
        pull_for(10.0, stop_on_data=True)
        pull_for(0.3)
        status = source.status()
        events = list(source.events)
        source.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
    assert len(chunks) > n_dead, "no data after the outlet restarted"
    index = np.concatenate([c.data[:, 0] for c in chunks]).astype(np.int64)
    first_samples = np.concatenate([c.first_sample + np.arange(c.n_samples) for c in chunks])
    # The time base stays true across the outage: sample k of ours is sample k of the outlet.
    np.testing.assert_array_equal(first_samples - first_samples[0], index - index[0])
    resumed = chunks[n_dead]
    missing = int(resumed.data[0, 0]) - int(chunks[n_dead - 1].data[-1, 0]) - 1
    assert missing > 0.3 * sfreq  # at least the 0.5 s the outlet was dead, minus slack
    assert resumed.gap_before == missing
    assert status["gaps"] == 1 and status["gap_samples"] == missing
    assert status["state"] == "connected"
    kinds = [e.kind for e in events]
    stall = events[kinds.index("stall")]
    assert stall.message.startswith("No data from 'killtest' for")
    reconnect = events[kinds.index("reconnect")]
    assert reconnect.n_samples == missing
    assert f"{missing} samples" in reconnect.message


class _MeanOfChannels(Stage):
    accepts = ("signal",)

    def process(self, chunk: SignalChunk) -> SignalChunk:
        return SignalChunk(
            chunk.data.mean(axis=1, keepdims=True), chunk.first_sample, chunk.sfreq, chunk.t_lsl
        )


def test_pipeline_steps_from_the_source_and_reports_its_health(source_id: str) -> None:
    outlet = make_outlet(source_id, 4, 1000.0)
    with LSLSource(source_id=source_id) as source:
        pipeline = Pipeline([_MeanOfChannels()], source=source)
        pipeline.prepare(source.spec())
        assert pipeline.step() is None  # nothing pushed yet
        data = np.arange(40, dtype=np.float32).reshape(10, 4)
        outlet.push(data, timestamp=pylsl.local_clock())
        outputs = []
        t_end = time.monotonic() + 5.0
        while sum(o.n_samples for o in outputs) < 10 and time.monotonic() < t_end:
            out = pipeline.step()
            if out is not None:
                outputs.append(out)
        means = np.concatenate([o.data[:, 0] for o in outputs])
        np.testing.assert_array_equal(means, data.mean(axis=1))
        health = pipeline.status()["source"]
        assert health["samples_received"] == 10 and health["state"] == "connected"


def test_raw_stamps_when_dejitter_is_off(source_id: str) -> None:
    """dejitter=False passes each chunk's own (clock-corrected) stamps, jitter and all."""
    sfreq = 1000.0
    outlet = make_outlet(source_id, 2, sfreq)
    with LSLSource(source_id=source_id, dejitter=False) as source:
        t0 = pylsl.local_clock()
        lateness = [0.0, 0.8e-3, 0.0, 0.5e-3]
        for i, late in enumerate(lateness):
            push_indexed(outlet, t0, sfreq, i * 10, 10, jitter_s=late)
        chunks = pull_until(source, 40)
    t = np.concatenate([c.t_lsl for c in chunks])
    expected = t0 + np.arange(40) / sfreq + np.repeat(lateness, 10)
    np.testing.assert_allclose(t, expected, atol=5e-5)


def test_lost_stream_raises_without_recover(source_id: str) -> None:
    outlet = make_outlet(source_id, 2, 1000.0)
    source = LSLSource(source_id=source_id, recover=False).open()
    outlet.push(np.zeros((10, 2)), timestamp=pylsl.local_clock())
    assert pull_until(source, 10)
    del outlet
    with pytest.raises(StreamLostError, match="recover=False"):
        t_end = time.monotonic() + 10.0
        while time.monotonic() < t_end:
            source.pull(timeout=0.05)
    assert source.events[-1].kind == "lost"
    source.close()


def test_start_up_silence_is_waiting_not_a_stall(source_id: str) -> None:
    """An outlet that exists but sends its first sample 1.3 s later (a publisher starting up)."""
    outlet = make_outlet(source_id, 2, 1000.0)
    with LSLSource(source_id=source_id, stall_after_s=0.1) as source:
        t_end = time.monotonic() + 1.3
        while time.monotonic() < t_end:
            assert source.pull(timeout=0.02) is None
        assert source.status()["state"] == "waiting"
        push_indexed(outlet, pylsl.local_clock(), 1000.0, 0, 10)
        assert pull_until(source, 10)
        kinds = [e.kind for e in source.events]
    assert "stall" not in kinds and "reconnect" not in kinds


def test_two_streams_with_one_name_are_refused_with_both_listed(source_id: str) -> None:
    from bci.acquisition import AmbiguousStreamError
    from bci.cli.main import cli

    name = f"twin-{source_id}"
    live = SignalOutlet(make_stream_info(name, "Neural", 2, 1000.0, "float32", source_id))
    replay = SignalOutlet(
        make_stream_info(name, "Neural", 2, 1000.0, "float32", source_id + "-replay")
    )
    with pytest.raises(AmbiguousStreamError) as err:
        LSLSource(name=name, timeout_s=5.0).open()
    message = str(err.value)
    assert f"source_id={source_id!r}" in message and f"source_id='{source_id}-replay'" in message
    assert "host" in message and "type='Neural'" in message and "--source-id" in message
    out = CliRunner().invoke(cli, ["record", "--stream", name, "--out", "unused-dir"])
    assert out.exit_code == 2, out.output
    assert f"{source_id}-replay" in out.output and "--source-id" in out.output
    assert not Path("unused-dir").exists()
    # the source_id picks one
    with LSLSource(source_id=source_id + "-replay") as source:
        assert source.source_id.endswith("-replay")
    del live, replay


def test_constructing_does_no_network_io_and_to_dict_rebuilds_it(source_id: str) -> None:
    """Building a source only checks arguments (no stream needed); open() connects; to_dict is
    Stage.to_dict's format and stage_from_dict rebuilds an equal, unopened source."""
    from bci.stream import stage_from_dict

    source = LSLSource(source_id=source_id, sfreq=1000.0, timeout_s=30.0, stall_after_s=0.5)
    assert source.status()["state"] == "not opened"
    with pytest.raises(SourceClosedError, match="open"):
        source.pull()
    described = source.to_dict()
    assert described["stage"] == "bci.acquisition.source:LSLSource"
    assert described["params"]["source_id"] == source_id
    assert described["params"]["stall_after_s"] == 0.5 and described["params"]["scale"] is None
    again = stage_from_dict(described)
    assert isinstance(again, LSLSource) and again.to_dict() == described
    _outlet = make_outlet(source_id, 3, 1000.0)
    with again:  # now the stream exists: open() resolves it
        assert again.n_channels == 3 and again.status()["state"] == "waiting"


def test_a_busy_consumer_is_not_a_stalled_stream(source_id: str) -> None:
    """Data waiting in the inlet while the pipeline was busy (e.g. compiling) is no stall."""
    sfreq = 1000.0
    outlet = make_outlet(source_id, 2, sfreq)
    with LSLSource(source_id=source_id, sfreq=sfreq, stall_after_s=0.1) as source:
        t0 = pylsl.local_clock()
        push_indexed(outlet, t0, sfreq, 0, 10)
        assert pull_until(source, 10)
        push_indexed(outlet, t0, sfreq, 10, 10)
        time.sleep(0.3)  # the consumer is busy elsewhere for 3x the stall threshold
        assert source.status()["state"] == "connected"
        assert pull_until(source, 10)[0].first_sample == 10
        kinds = [e.kind for e in source.events]
    assert "stall" not in kinds
