"""The compiled model against the plain-numpy oracle: same spike trains from the same seed.

The oracle (stimulation.plant.reference) writes every rate function as its own sigmoid and
divides where the kernel multiplies by reciprocals and merges fractions, so the two agree up to
rounding: spike counts must be equal and spike times equal to far below the 10 us time step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stimulation import PulseTrain
from stimulation.plant import BasalGangliaNetwork, PlantRecord
from stimulation.plant.parameters import NUCLEI
from stimulation.plant.reference import ReferenceNetwork

TOL_S = 1e-9


def assert_same_trains(fast: PlantRecord, slow: PlantRecord) -> int:
    n_spikes = 0
    for nu in NUCLEI:
        for i, (x, y) in enumerate(zip(fast.spike_times[nu], slow.spike_times[nu], strict=True)):
            assert x.size == y.size, f"{nu} cell {i}: {x.size} vs {y.size} spikes"
            np.testing.assert_allclose(x, y, rtol=0.0, atol=TOL_S)
            n_spikes += x.size
        np.testing.assert_allclose(fast.lfp[nu], slow.lfp[nu], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(fast.cortex_pulse_times, slow.cortex_pulse_times)
    np.testing.assert_array_equal(fast.dbs_pulse_times, slow.dbs_pulse_times)
    return n_spikes


@pytest.mark.parametrize(
    ("state", "n_cells", "dbs_target", "dbs"),
    [
        ("pd", 4, "stn", None),
        ("healthy", 3, "stn", PulseTrain(300.0, 130.0, 300.0)),
        ("pd", 2, "gpi", PulseTrain(150.0, 80.0, 100.0, waveform="biphasic", interphase_us=50.0)),
    ],
)
def test_compiled_model_gives_the_oracle_spike_trains(
    state: str, n_cells: int, dbs_target: str, dbs: PulseTrain | None
) -> None:
    kwargs: dict[str, Any] = {
        "state": state,
        "cells_per_nucleus": n_cells,
        "seed": 7,
        "dbs_target": dbs_target,
    }
    fast = BasalGangliaNetwork(**kwargs).run(0.06, dbs=dbs)
    slow = ReferenceNetwork(**kwargs).run(0.06, dbs=dbs)
    # enough activity to mean something: the pallidum fires several spikes per cell
    assert assert_same_trains(fast, slow) > 5 * n_cells


def test_oracle_agrees_across_consecutive_runs() -> None:
    dbs = PulseTrain(300.0, 130.0, 300.0)
    fast = BasalGangliaNetwork(cells_per_nucleus=2, seed=8)
    slow = ReferenceNetwork(cells_per_nucleus=2, seed=8)
    for duration in (0.0155, 0.0145):  # the split falls inside the pulse at 2 / 130 Hz
        assert_same_trains(fast.run(duration, dbs=dbs), slow.run(duration, dbs=dbs))


@pytest.mark.slow
def test_ten_cell_network_matches_the_oracle_over_half_a_second() -> None:
    dbs = PulseTrain(300.0, 130.0, 300.0)
    fast = BasalGangliaNetwork(seed=1).run(0.5, dbs=dbs)
    slow = ReferenceNetwork(seed=1).run(0.5, dbs=dbs)
    assert assert_same_trains(fast, slow) > 1000


def test_vectorisable_exp_matches_numpy() -> None:
    from numba import njit

    from stimulation.plant._vexp import vexp

    @njit
    def apply(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = vexp(x[i])
        return out

    x = np.concatenate([np.linspace(-700.0, 200.0, 200001), [0.0, 1e-300, -1e-300, 0.5, -0.5]])
    np.testing.assert_allclose(apply(x), np.exp(x), rtol=4e-16, atol=0.0)
    # clipped outside [-700, 200]: finite, no overflow to inf, no subnormals
    np.testing.assert_allclose(apply(np.array([1e4, -1e4])), np.exp([200.0, -700.0]), rtol=4e-16)
