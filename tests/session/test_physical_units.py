"""int16 and float32 recordings of one seeded synthetic source agree in physical units (uV).

The int16 stream carries counts of ``scale_uv_per_bit`` uV (its header says so); every path that
turns recorded samples into values (``bci.session.load``, ``session.nix``, replay into
``LSLSource``) must apply that scale, so both recordings give the same microvolts to within half a
step.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest
import quantities as pq
from lsl_testing import wait_until

from bci.acquisition import LSLSource
from bci.acquisition.player import Player
from bci.session import load
from bci.session.nix import load_nix, write_run_nix
from bci.session.recorder import Recorder, find_streams
from bci.synthesis import SyntheticPublisher, generate_recording

SCALE = 0.195
PARAMS = {"n_channels": 4, "n_units": 3, "seed": 11, "firing_rates_hz": (20.0, 40.0)}


def _record(rec, fmt: str, folder: Path) -> Path:
    """Publish ``rec`` once in ``fmt`` while the recorder records it; return the run folder."""
    sid = f"phys-{fmt}-{uuid.uuid4().hex[:8]}"
    pub = SyntheticPublisher(
        rec, name=sid, source_id=sid, channel_format=fmt, loop=False, ground_truth=False,
        scale_uv_per_bit=SCALE,
    )  # fmt: skip
    folder.mkdir()
    recorder = Recorder(find_streams([{"source_id": sid}]), folder / "recording.xdf")
    recorder.start()
    try:
        assert pub.wait_for_consumers(5.0)
        pub.run()
        assert wait_until(lambda: recorder.stats[0].sample_count == rec.n_samples, 10.0)
    finally:
        recorder.stop()
        pub.close()
    return folder


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rec = generate_recording(duration_s=0.4, **PARAMS)
    tmp = tmp_path_factory.mktemp("phys")
    return {
        "truth": rec,
        "int16": _record(rec, "int16", tmp / "int16"),
        "float32": _record(rec, "float32", tmp / "float32"),
    }


def _signal(folder: Path):
    (sig,) = load(folder).segments[0].analogsignals
    return sig


def test_int16_and_float32_recordings_load_in_the_same_microvolts(recordings):
    truth = recordings["truth"].traces
    as_int16, as_float32 = _signal(recordings["int16"]), _signal(recordings["float32"])
    assert as_int16.units == pq.uV and as_float32.units == pq.uV
    assert as_int16.annotations["lsl_scale_uv_per_bit"] == SCALE
    np.testing.assert_array_equal(as_float32.magnitude, truth)
    # counts of 0.195 uV: the int16 recording is the truth rounded to the step, not raw counts
    assert np.max(np.abs(as_int16.magnitude - truth)) <= SCALE / 2 + 1e-4
    mad = [np.median(np.abs(s.magnitude)) for s in (as_int16, as_float32)]
    assert mad[0] == pytest.approx(mad[1], rel=0.02)


def test_session_nix_of_an_int16_recording_holds_microvolts(recordings):
    folder = recordings["int16"]
    write_run_nix(folder)
    (sig,) = load_nix(folder).segments[0].analogsignals
    assert sig.units == pq.uV
    assert np.max(np.abs(sig.magnitude - recordings["truth"].traces)) <= SCALE / 2 + 1e-4


def test_replayed_int16_recording_reaches_lslsource_in_microvolts(recordings):
    truth = recordings["truth"].traces
    suffix = f"-rp{uuid.uuid4().hex[:6]}"
    with Player(recordings["int16"], source_id_suffix=suffix) as player:
        sid = player.infos[0].source_id()
        with LSLSource(source_id=sid, timeout_s=5.0) as source:  # no scale given
            assert source.scale == SCALE
            assert source.spec().origin.scale_uv_per_bit == SCALE
            assert player.wait_for_consumers(5.0)
            player.start()
            chunks = []
            deadline = pylsl.local_clock() + 10.0
            while sum(len(c.data) for c in chunks) < len(truth) and pylsl.local_clock() < deadline:
                chunk = source.pull(timeout=0.05)
                if chunk is not None:
                    chunks.append(chunk)
    data = np.concatenate([c.data for c in chunks])
    assert data.shape == truth.shape
    assert np.max(np.abs(data - truth)) <= SCALE / 2 + 1e-4
