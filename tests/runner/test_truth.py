"""A motor session's summary scores the decoded velocity against the true one, output by output."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from bci.acquisition import make_stream_info
from bci.runner.truth import TruthFeed, decoded_tracking


def test_decoded_tracking_pairs_each_bin_with_the_truth_at_its_centre() -> None:
    t_truth = 100.0 + np.arange(1000) * 0.01  # 100 Hz kinematics, 10 s
    truth = np.column_stack([np.sin(t_truth), np.cos(t_truth), t_truth])
    centres = 100.0 + (np.arange(500) + 0.5) * 0.02
    exact_vx = np.sin(centres)
    half_vy = 0.5 * np.cos(centres)
    decoded = np.column_stack([exact_vx, half_vy])
    decoded[:50] = 99.0  # the first second is calibration: garbage, and left out
    out = decoded_tracking(
        decoded, centres, ["vx", "vy"], truth, t_truth, ["vx", "vy", "x"], t_from=101.0
    )
    assert out["pairs"] == 450
    assert out["outputs"]["vx"]["r2"] == pytest.approx(1.0, abs=1e-4)
    assert out["outputs"]["vy"]["r"] == pytest.approx(1.0, abs=1e-4)
    assert out["outputs"]["vy"]["r2"] < 0.9
    assert out["r2"] == pytest.approx((out["outputs"]["vx"]["r2"] + out["outputs"]["vy"]["r2"]) / 2)
    # a decoder whose outputs the truth does not name is not scored
    none = decoded_tracking(decoded, centres, ["gpi_beta"], truth, t_truth, ["vx"], 101.0)
    assert none["pairs"] == 0 and none["outputs"] == {} and np.isnan(none["r2"])


def test_truth_feed_pulls_the_kinematics_stream_by_name() -> None:
    name = f"motor-{uuid.uuid4().hex[:8]}-kinematics"
    outlet = pylsl.StreamOutlet(
        make_stream_info(
            name,
            "Kinematics",
            4,
            100.0,
            "float32",
            name,
            labels=["vx", "vy", "x", "y"],
            units=["cm/s", "cm/s", "cm", "cm"],
        )  # fmt: skip
    )
    feed = TruthFeed(name, timeout_s=5.0)
    try:
        assert feed.connected and feed.labels == ["vx", "vy", "x", "y"]
        assert feed.latest(["vy"]) == [None]  # nothing yet
        t0 = pylsl.local_clock()
        rows = np.arange(20, dtype=np.float32).reshape(5, 4)
        outlet.push_chunk(rows, t0)
        deadline = time.monotonic() + 5.0
        while len(feed.stamps) < 5 and time.monotonic() < deadline:
            feed.poll()
            time.sleep(0.01)
        assert len(feed.stamps) == 5
        assert feed.latest(["vy", "vx", "speed"]) == [17.0, 16.0, None]
    finally:
        feed.close()
        del outlet
