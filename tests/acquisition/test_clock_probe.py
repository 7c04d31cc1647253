"""Clock offsets on short-lived inlets, kept current by a thread: what keeps a long run's memory flat.

liblsl's time receiver, once started on an inlet, probes every 2 s and holds a little more memory
after every round until its inlet is destroyed. An ``LSLSource``'s data inlet lives as long as the
session, so it must never be asked for the offset; short-lived probe inlets are, from a thread that
the pull path never waits for.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid

import numpy as np
import pylsl
import pytest
from lsl_testing import TimeCorrectionSpy, wait_until

from bci import ConfigError
from bci.acquisition import LSLSource, SignalOutlet, make_stream_info
from bci.acquisition.clock_probe import ClockProbe, ClockTracker

#: What the spy adds to liblsl's answer per probe inlet asked so far: 1st inlet +0.25 s, 2nd +0.5 s...
STEP_S = 0.25


def clock_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("bci-clock-")]


def resolve(source_id: str) -> pylsl.StreamInfo:
    found = pylsl.resolve_bypred(f"source_id='{source_id}'", 1, 10.0)
    assert found, f"stream {source_id} not resolved"
    return found[0]


def push_and_pull(outlet: SignalOutlet, source: LSLSource, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Push ``n`` samples stamped one by one; return their stamps and the source's stamps for them."""
    stamps = pylsl.local_clock() + np.arange(n) / source.sfreq
    for k in range(n):
        outlet.push(np.full((1, outlet.n_channels), k, np.float32), timestamp=float(stamps[k]))
    got: list[np.ndarray] = []
    deadline = time.monotonic() + 5.0
    while sum(len(t) for t in got) < n and time.monotonic() < deadline:
        chunk = source.pull(timeout=0.05)
        if chunk is not None:
            got.append(chunk.t_lsl)
    t_out = np.concatenate(got)
    assert len(t_out) == n
    return stamps, t_out


def test_source_measures_offsets_on_probe_inlets_never_on_its_data_inlet(source_id, monkeypatch):
    spy = TimeCorrectionSpy(monkeypatch, extra_s=lambda n_inlets: STEP_S * n_inlets)
    outlet = SignalOutlet(make_stream_info("clk", "Neural", 2, 1000.0, "float32", source_id))
    source = LSLSource(source_id=source_id, dejitter=False).open()
    data_inlet = source._inlet
    try:
        assert clock_threads() == ["bci-clock-clk"]
        # the first offset, measured in open(), is on the first chunk
        assert len(spy.inlets) == 1
        stamps, t_out = push_and_pull(outlet, source, 20)
        offsets = np.round((t_out - stamps) / STEP_S)
        assert offsets.min() >= 1  # not 0: measured before the first chunk
        np.testing.assert_allclose(t_out - stamps, offsets * STEP_S, atol=0.01)
        # and it is measured again, on a new inlet each time, while the source pulls
        t_wait = time.monotonic()
        while len(spy.inlets) < 3 and time.monotonic() - t_wait < 10.0:
            source.pull(timeout=0.05)
        n_probes = len(spy.inlets)
        assert n_probes >= 3
        stamps, t_out = push_and_pull(outlet, source, 20)
        n_after = len(spy.inlets)
        offsets = np.round((t_out - stamps) / STEP_S)
        assert offsets.min() >= n_probes - 1  # the newest offset (or the one being measured)
        assert offsets.max() <= n_after
        np.testing.assert_allclose(t_out - stamps, offsets * STEP_S, atol=0.01)
    finally:
        source.close()
    assert clock_threads() == []
    assert not spy.asked(data_inlet)
    assert spy.max_alive <= 1  # one probe inlet at a time ...
    del data_inlet
    assert spy.alive() == 0  # ... and none left


def test_clocksync_off_starts_no_thread_and_asks_no_inlet(source_id, monkeypatch):
    spy = TimeCorrectionSpy(monkeypatch)
    outlet = SignalOutlet(make_stream_info("noclk", "Neural", 2, 1000.0, "float32", source_id))
    with LSLSource(source_id=source_id, clocksync=False, dejitter=False) as source:
        assert clock_threads() == []
        stamps, t_out = push_and_pull(outlet, source, 10)
    np.testing.assert_array_equal(t_out, stamps)
    assert spy.calls == 0


def test_a_source_dropped_without_close_stops_its_clock_thread(source_id):
    _outlet = SignalOutlet(make_stream_info("drop", "Neural", 2, 1000.0, "float32", source_id))
    source = LSLSource(source_id=source_id).open()
    assert clock_threads() == ["bci-clock-drop"]
    del source
    gc.collect()
    assert wait_until(lambda: clock_threads() == [], 5.0), clock_threads()


def test_tracker_keeps_the_last_offset_through_an_outage_and_follows_the_restart(
    source_id, caplog, monkeypatch
):
    name = f"Restart-{uuid.uuid4().hex[:8]}"
    first = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Misc", 1, 10.0, "float32", source_id))
    probe = ClockProbe(resolve(source_id))
    tracker = ClockTracker(probe, 1.5, interval_s=0.2, timeout_s=2.0).start()
    lookups: list[float] = []
    refresh = probe.refresh

    def counted_refresh(timeout_s: float) -> bool:
        lookups.append(timeout_s)
        return refresh(timeout_s)

    monkeypatch.setattr(probe, "refresh", counted_refresh)
    try:
        assert wait_until(lambda: abs(tracker.offset_s) < 0.01, 10.0)  # replaced by a measurement
        with caplog.at_level(logging.INFO, logger="bci.acquisition.clock_probe"):
            del first
            assert wait_until(lambda: len(lookups) >= 2, 20.0)  # two failed measurements at least
            kept_s = tracker.offset_s
            assert abs(kept_s) < 0.01
            second = pylsl.StreamOutlet(
                pylsl.StreamInfo(name, "Misc", 1, 10.0, "float32", source_id)
            )
            assert wait_until(lambda: probe.info.uid() == second.get_info().uid(), 20.0)
            n_measured = probe.measurements
            assert wait_until(lambda: probe.measurements > n_measured, 10.0)
    finally:
        tracker.close()
    assert not tracker.running
    messages = [r.getMessage() for r in caplog.records]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, messages  # once per outage, not once per failed measurement
    assert name in warnings[0].getMessage() and "keeping the last one" in warnings[0].getMessage()
    assert any("measured again" in m for m in messages)


def test_tracker_close_does_not_wait_for_a_measurement_under_way(source_id):
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("Gone", "Misc", 1, 10.0, "float32", source_id))
    probe = ClockProbe(resolve(source_id))
    del outlet  # nothing will answer: each measurement waits its full 30 s
    with pytest.raises(ConfigError, match="'timeout_s'"):
        ClockTracker(probe, 0.0, timeout_s=0.0)
    tracker = ClockTracker(probe, 0.0, interval_s=0.0, timeout_s=30.0).start()
    time.sleep(0.3)  # well inside the first measurement
    t0 = time.monotonic()
    tracker.close()
    assert time.monotonic() - t0 < 5.0
    assert clock_threads() == []
    assert tracker.offset_s == 0.0


def test_probe_follows_a_source_that_restarted_with_the_same_source_id(source_id):
    name = f"Restart-{uuid.uuid4().hex[:8]}"
    first = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Misc", 1, 10.0, "float32", source_id))
    probe = ClockProbe(resolve(source_id))
    assert abs(probe.measure(timeout_s=5.0)) < 0.01
    assert not probe.refresh(timeout_s=2.0)  # still the same outlet
    del first
    second = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Misc", 1, 10.0, "float32", source_id))
    assert wait_until(lambda: probe.refresh(timeout_s=1.0), 20.0)
    assert probe.info.uid() == second.get_info().uid()
    assert abs(probe.measure(timeout_s=5.0)) < 0.01
    assert probe.measurements == 2


@pytest.mark.parametrize("stop_set", [False, True])
def test_measure_with_a_stop_event_answers_like_without(source_id, stop_set):
    _outlet = pylsl.StreamOutlet(pylsl.StreamInfo("Stop", "Misc", 1, 10.0, "float32", source_id))
    probe = ClockProbe(resolve(source_id))
    stop = threading.Event()
    if stop_set:
        stop.set()
        with pytest.raises(pylsl.util.TimeoutError):
            probe.measure(timeout_s=5.0, stop=stop)
        assert probe.measurements == 0
    else:
        assert abs(probe.measure(timeout_s=5.0, stop=stop)) < 0.01
        assert probe.measurements == 1
