"""Biomarkers on hand-made spike trains and signals, and PlantRecord's windows and joining."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stimulation import PlantParameterError
from stimulation.plant import PlantRecord
from stimulation.plant.biomarkers import (
    error_index,
    firing_rate_hz,
    golomb_chi,
    relative_beta_power,
)

PULSES = np.arange(10) * 0.1  # one cortical pulse every 100 ms


def test_error_index_of_a_faithful_relay_is_zero() -> None:
    cells = [PULSES + 0.005, PULSES + 0.010]
    assert error_index(cells, PULSES, 0.0, 1.0) == 0.0


def test_misses_bursts_and_spurious_spikes_are_errors() -> None:
    pulses = PULSES[:4]  # scored pulses at 0, 0.1, 0.2, 0.3 (window 25 ms, interval to 0.4 s)
    miss = [np.array([0.005, 0.105, 0.205])]  # no spike after the pulse at 0.3 -> 1 error
    burst = [np.array([0.005, 0.007, 0.105, 0.205, 0.305])]  # 2 spikes in one window -> 1 error
    spurious = [np.array([0.005, 0.05, 0.06, 0.105, 0.205, 0.305])]  # 2 between pulses
    assert error_index(miss, pulses, 0.0, 0.4) == pytest.approx(1 / 4)
    assert error_index(burst, pulses, 0.0, 0.4) == pytest.approx(1 / 4)
    assert error_index(spurious, pulses, 0.0, 0.4) == pytest.approx(2 / 4)
    # errors are divided by pulses x cells
    assert error_index(miss + burst, pulses, 0.0, 0.4) == pytest.approx(2 / 8)


def test_error_index_scores_only_pulses_in_the_window() -> None:
    cells = [np.array([0.005, 0.105, 0.505])]  # faithful only to the first two pulses
    assert error_index(cells, PULSES[:2], 0.0, 0.2) == 0.0
    # pulses in [0.3, 0.6 - 25 ms]: 0.3 and 0.4 missed, 0.5 relayed
    assert error_index(cells, PULSES, 0.3, 0.6) == pytest.approx(2 / 3)
    assert math.isnan(error_index(cells, PULSES, 2.0, 3.0))


def test_relative_beta_power_of_beta_and_gamma_sines() -> None:
    sfreq = 1000.0
    t = np.arange(4000) / sfreq
    beta = np.sin(2 * np.pi * 20.0 * t)
    gamma = np.sin(2 * np.pi * 70.0 * t)
    assert relative_beta_power(beta, sfreq) > 0.95
    assert relative_beta_power(gamma, sfreq) < 0.05
    assert relative_beta_power(beta + gamma, sfreq) == pytest.approx(0.5, abs=0.05)
    assert math.isnan(relative_beta_power(np.zeros(4000), sfreq))
    with pytest.raises(PlantParameterError, match="Nyquist"):
        relative_beta_power(beta, 150.0)


def test_firing_rate_and_synchrony() -> None:
    cells = [np.arange(0, 2, 0.05), np.arange(0.01, 2, 0.1)]
    assert firing_rate_hz(cells, 0.0, 2.0) == pytest.approx((40 + 20) / (2 * 2.0))
    same = [np.arange(0, 2, 0.037)] * 5
    assert golomb_chi(same, 0.0, 2.0, 0.01) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    independent = [np.sort(rng.uniform(0, 20, 400)) for _ in range(25)]
    assert golomb_chi(independent, 0.0, 20.0, 0.01) < 0.35  # ~ 1 / sqrt(25)


def _record(t0: float, t1: float, spikes: float) -> PlantRecord:
    lfp_n = round((t1 - t0) * 1000)
    return PlantRecord(
        t_start_s=t0,
        t_stop_s=t1,
        spike_times={nu: [np.array([spikes])] for nu in ("th", "stn", "gpe", "gpi")},
        cortex_pulse_times=np.array([t0]),
        dbs_pulse_times=np.empty(0),
        lfp={nu: np.zeros(lfp_n, np.float32) for nu in ("th", "stn", "gpe", "gpi")},
        lfp_sfreq=1000.0,
    )


def test_record_concatenate_and_window_errors() -> None:
    a, b = _record(0.0, 1.0, 0.5), _record(1.0, 2.0, 1.5)
    joined = PlantRecord.concatenate([a, b])
    assert joined.duration_s == 2.0
    np.testing.assert_array_equal(joined.spike_times["stn"][0], [0.5, 1.5])
    assert joined.lfp["gpi"].size == 2000
    with pytest.raises(PlantParameterError, match="consecutive"):
        PlantRecord.concatenate([a, _record(1.5, 2.0, 1.7)])
    with pytest.raises(PlantParameterError):
        PlantRecord.concatenate([])
    with pytest.raises(PlantParameterError, match="leaves nothing"):
        a.error_index(discard_s=1.0)
    with pytest.raises(PlantParameterError, match="discard_s"):
        a.firing_rates(discard_s=-1.0)
    with pytest.raises(PlantParameterError, match="nucleus"):
        a.beta_power("putamen")
