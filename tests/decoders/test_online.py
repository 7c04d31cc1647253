"""A decoder trained offline decodes a live ``bci source motor`` stream (loopback LSL) as well as
offline: acquisition -> band-pass -> threshold crossings -> binning -> DecoderStage."""

from __future__ import annotations

import time

import numpy as np
import pytest

pylsl = pytest.importorskip("pylsl")

from bci.acquisition import LSLSource  # noqa: E402
from bci.features import SpikeBinner  # noqa: E402
from bci.preprocessing import BandPass  # noqa: E402
from bci.sorting import ThresholdCrossings  # noqa: E402
from bci.stream import Pipeline  # noqa: E402
from bci.synthesis.motor import MotorSource, simulate_reaching  # noqa: E402
from bci.synthesis.publisher import SyntheticPublisher  # noqa: E402
from decoders import DecoderStage, WienerDecoder  # noqa: E402


def r2(y, p):
    return float((1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)).mean())


def test_online_r2_within_005_of_offline(source_id):
    seed, n_units, stream_s, calibration_s = 41, 16, 14.0, 2.0
    session = simulate_reaching(n_units=n_units, duration_s=300.0, seed=seed)
    dec = WienerDecoder().fit(session.counts, session.velocity)
    pub = SyntheticPublisher(
        MotorSource(n_units=n_units, seed=seed, noise_uv=5.0),
        name="motor-online-test", source_id=source_id, channel_format="float32",
        chunk_ms=10.0, ground_truth=False,
    )  # fmt: skip
    stages = [
        BandPass(300.0, 6000.0),
        ThresholdCrossings(threshold_rms=-4.5, calibration_s=calibration_s),
        SpikeBinner(bin_s=0.02),
        DecoderStage(dec),
    ]
    with LSLSource(source_id=source_id, sfreq=30000.0, n_channels=n_units) as source:
        pipe = Pipeline(stages)
        pipe.prepare(source.spec())
        assert pub.wait_for_consumers(5.0)
        pub.start(stream_s)
        outs, gaps, got = [], 0, 0
        deadline = time.monotonic() + stream_s + 20.0
        while got < int(stream_s * 30000) and time.monotonic() < deadline:
            chunk = source.pull(timeout=0.05)
            if chunk is None:
                continue
            gaps += chunk.gap_before
            got += chunk.n_samples
            out = pipe.process(chunk)
            if out is not None:
                outs.append(out)
        pub.close()
    assert gaps == 0 and got == int(stream_s * 30000)
    values = np.vstack([o.values for o in outs])
    bins = np.round(np.concatenate([o.t for o in outs]) / 0.02).astype(int) - 1
    keep = bins >= int(calibration_s / 0.02) + 10  # crossings start after calibration
    online = r2(session.velocity[bins[keep]], values[keep])
    offline = r2(
        session.velocity[bins[keep]], dec.predict(session.counts[: bins.max() + 1])[bins[keep]]
    )
    print(f"online R2 {online:.3f}, offline R2 {offline:.3f} over {keep.sum()} bins")
    assert keep.sum() > 400
    assert abs(online - offline) <= 0.05, (online, offline)
