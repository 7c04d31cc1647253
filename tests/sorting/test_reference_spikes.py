"""The sorter's output on a fixed recording, bit for bit: a refactor must not change one spike.

``data/reference_spikes.npz`` holds the spikes ``sort_recording`` gave on the recording below
(``generate_recording``, seed 11, 12 units, 32 channels, 20 s) before the sorter was split into
parts, in three runs that reach every part: clean, with 130 Hz stimulation pulses (artifact
residue, pulse windows, pulse-locked templates), and with template tracking on 7 ms chunks.
Rewrite it (``python tests/sorting/test_reference_spikes.py --write``) only for a change that is
meant to change the spikes, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bci.sorting import sort_recording
from bci.synthesis import generate_recording

SFREQ = 30_000.0
FIXTURE = Path(__file__).parent / "data" / "reference_spikes.npz"


def _recording() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    rec = generate_recording(n_channels=32, n_units=12, duration_s=20.0, seed=11)
    return rec.traces, rec.positions


def _with_pulses(
    traces: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """2 mV biphasic pulses at 130 Hz (67 us per phase), a random gain per channel."""
    pulses = np.arange(int(0.01 * SFREQ), traces.shape[0] - 100, int(SFREQ / 130.0))
    out = traces.copy()
    gain = np.random.default_rng(5).uniform(0.5, 1.5, traces.shape[1]).astype(np.float32) * 2000
    for p in pulses:
        out[p : p + 2] -= gain
        out[p + 2 : p + 4] += gain
    return out, pulses


def _digest(x: npt.NDArray[np.float32]) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def sort_runs() -> dict[str, npt.NDArray[np.void]]:
    """The three runs of the fixture, plus the digest of their input recording."""
    traces, positions = _recording()
    stimulated, pulses = _with_pulses(traces)
    common = {"sfreq": SFREQ, "positions": positions, "calibration_s": 10.0}
    return {
        "input_sha256": np.array(_digest(traces)),
        "clean": sort_recording(traces, chunk_ms=10, **common),
        "pulses": sort_recording(stimulated, chunk_ms=10, pulses=pulses, **common),
        "tracking": sort_recording(traces, chunk_ms=7, tracking_rate=0.02, **common),
    }


def test_spikes_bit_identical_to_reference() -> None:
    expected = np.load(FIXTURE, allow_pickle=False)
    traces, _ = _recording()
    if _digest(traces) != str(expected["input_sha256"]):
        pytest.fail(
            "generate_recording(seed=11) no longer gives the recording the reference spikes were "
            "sorted from: bci.synthesis changed, not necessarily the sorter. Check the sorter on "
            "the old recording before rewriting the fixture."
        )
    got = sort_runs()
    for name in ("clean", "pulses", "tracking"):
        assert got[name].dtype == expected[name].dtype
        assert got[name].size == expected[name].size, name
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    # the runs are not trivial: many units, many spikes
    assert np.unique(expected["clean"]["unit_index"]).size >= 10
    assert expected["pulses"].size > 1000


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/sorting/test_reference_spikes.py --write")
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **sort_runs())
    print(f"wrote {FIXTURE}")
