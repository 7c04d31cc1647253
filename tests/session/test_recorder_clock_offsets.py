"""Clock offsets without a lasting time receiver: what keeps a long recording's memory flat.

liblsl's time receiver, once started on an inlet, probes every 2 s and holds a little more memory
after every round until its inlet is destroyed; the recorder must never start it on a recording
inlet (whose life is the recording's), only on inlets that live for one measurement.
"""

from __future__ import annotations

import numpy as np
import pylsl
import pytest
from lsl_testing import TimeCorrectionSpy, streams_by_name, wait_until

from bci.session.files import read_xdf
from bci.session.recorder import Recorder, find_streams
from bci.session.xdf_read import scan_xdf


def test_recorder_measures_offsets_on_inlets_that_live_one_measurement(
    tmp_path, source_id, monkeypatch
):
    spy = TimeCorrectionSpy(monkeypatch)
    outlets = [
        pylsl.StreamOutlet(pylsl.StreamInfo("ClkA", "Misc", 2, 100.0, "float32", source_id)),
        pylsl.StreamOutlet(
            pylsl.StreamInfo("ClkB", "Markers", 1, 0.0, "string", source_id + "-mk")
        ),
    ]
    infos = find_streams([{"source_id": source_id}, {"source_id": source_id + "-mk"}])
    n_offsets = 8  # 40 s of LabRecorder's interval
    with Recorder(infos, tmp_path / "r.xdf", clock_offset_interval_s=0.1) as rec:
        for k in range(20):
            outlets[0].push_sample([float(k), 0.0])
        outlets[1].push_sample(["go"])
        assert wait_until(
            lambda: all(len(s.clock_offsets) >= n_offsets for s in rec.stats), 60.0
        ), [len(s.clock_offsets) for s in rec.stats]
    # liblsl's time receiver never ran on a recording inlet (alive as long as the recorder) ...
    recording = [t.inlet for t in rec._tracks]
    assert not any(ref() is inlet for ref in spy.inlets for inlet in recording)
    stats = rec.stats
    del recording
    # ... and each measurement's inlet was gone before the stream's next one: at most one per
    # stream at a time, none left once the recording stopped
    assert len(spy.inlets) == sum(len(s.clock_offsets) for s in stats)
    assert spy.max_alive <= len(stats)
    assert spy.alive() == 0
    # every measurement is in the file: a ClockOffset chunk each and the footer's list
    streams = streams_by_name(read_xdf(tmp_path / "r.xdf", synchronize_clocks=False)[0])
    for s in stats:
        got = streams[s.name]
        np.testing.assert_array_equal(got["clock_times"], [t for t, _ in s.clock_offsets])
        np.testing.assert_array_equal(got["clock_values"], [v for _, v in s.clock_offsets])
        assert len(got["footer"]["info"]["clock_offsets"][0]["offset"]) == len(s.clock_offsets)
        # streams stamped on this host: the offset is liblsl's loopback estimate, near zero
        assert np.abs(got["clock_values"]).max() < 0.01
    assert scan_xdf(tmp_path / "r.xdf").is_complete


def test_a_failed_recording_stops_without_measuring_another_offset(
    tmp_path, source_id, monkeypatch
):
    """When the file fails (disk full, read-only), the recorder must exit at once, so that the
    loop learns it and goes to the safe state within its bound: a measurement under way is cut
    short and no last offset is measured for a file that takes nothing more."""
    import time

    from bci.acquisition.clock_probe import ClockProbe
    from bci.session.recorder import RecorderError
    from bci.session.xdf import XDFWriter

    calls: list[tuple[float, bool]] = []  # (when, given the stop event)
    measure = ClockProbe.measure

    def spy(self, timeout_s, stop=None):
        calls.append((pylsl.local_clock(), stop is not None))
        return measure(self, timeout_s, stop)

    monkeypatch.setattr(ClockProbe, "measure", spy)
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("Fail", "Misc", 1, 100.0, "float32", source_id))
    infos = find_streams([{"source_id": source_id}])
    rec = Recorder(infos, tmp_path / "r.xdf", flush_interval_s=0.1, clock_offset_interval_s=0.1)
    rec.start()
    outlet.push_sample([1.0])
    assert wait_until(lambda: len(calls) >= 2, 20.0)
    assert all(given for _, given in calls)  # every measurement while recording can be cut short

    def broken(self):
        raise RecorderError("Read-only file system (injected)")

    monkeypatch.setattr(XDFWriter, "flush", broken)
    deadline = time.monotonic() + 5.0
    with pytest.raises(RecorderError, match="injected"):
        while time.monotonic() < deadline:  # as `bci record` polls it
            rec.check()
            time.sleep(0.05)
    with pytest.raises(RecorderError, match="injected"):
        rec.stop()
    # no last offset for a file that takes nothing more (that one cannot be cut short: on a
    # healthy stop it is worth its probe round), and every clock thread is done
    assert all(given for _, given in calls), calls
    assert not [t for t in rec._tracks for th in t.threads if th.is_alive()]
