"""BiomarkerMonitor: its sliding-window biomarkers equal the PlantRecord ones of the same window."""

from __future__ import annotations

import numpy as np
import pytest

from stimulation.errors import PlantParameterError
from stimulation.plant import BasalGangliaNetwork, PlantRecord, biomarkers
from stimulation.plant.monitor import FEATURES, BiomarkerMonitor


def test_window_biomarkers_match_the_record_of_the_window() -> None:
    net = BasalGangliaNetwork("pd", 6, seed=4)
    monitor = BiomarkerMonitor(1000.0, window_s=0.2)
    records = []
    for k in range(25):
        rec = net.step(0.02, 300.0 if k >= 15 else 0.0)
        records.append(rec)
        monitor.update(rec)
        if k in (3, 12, 24):  # window not yet full, full, straddling the DBS onset
            window = PlantRecord.concatenate(records[-10:])
            discard = max(0.0, window.duration_s - 0.2)
            assert monitor.window_start_s == pytest.approx(window.t_start_s + discard)
            for nu in ("th", "stn", "gpe", "gpi"):
                assert monitor.firing_rate_hz(nu) == pytest.approx(window.firing_rates(discard)[nu])
                lfp = window.lfp_segment(nu, discard).astype(np.float64)
                expected = biomarkers.relative_beta_power(lfp, 1000.0, segment_s=0.2)
                assert monitor.beta_power(nu) == pytest.approx(expected, rel=1e-9)
                sync = monitor.synchrony(nu)
                assert sync == pytest.approx(window.synchrony(nu, discard), nan_ok=True)
            assert monitor.error_index() == pytest.approx(window.error_index(discard), nan_ok=True)
    values = monitor.features(FEATURES)
    assert values.shape == (len(FEATURES),) and np.isfinite(values).all()


def test_bad_input_is_refused() -> None:
    net = BasalGangliaNetwork("pd", 4, seed=0)
    monitor = BiomarkerMonitor(1000.0)
    with pytest.raises(PlantParameterError, match="not been fed"):
        monitor.firing_rate_hz("stn")
    monitor.update(net.step(0.02, 0.0))
    net.step(0.02, 0.0)  # skipped: the next record is not consecutive
    with pytest.raises(PlantParameterError, match="not consecutive"):
        monitor.update(net.step(0.02, 0.0))
    with pytest.raises(PlantParameterError, match="'nucleus'"):
        monitor.beta_power("cortex")
    with pytest.raises(PlantParameterError, match="Nyquist"):
        BiomarkerMonitor(150.0)


def test_vectorised_error_index_equals_the_reference_one() -> None:
    from stimulation.plant.monitor import _error_index

    rng = np.random.default_rng(0)
    for _ in range(50):
        t0 = rng.uniform(0, 100)
        t1 = t0 + rng.uniform(0.05, 1.0)
        pulses = np.sort(rng.uniform(t0 - 0.1, t1 + 0.1, rng.integers(0, 20)))
        cells = [
            np.sort(rng.uniform(t0, t1, rng.integers(0, 30)))
            for _ in range(int(rng.integers(1, 12)))
        ]
        # responses: one spike 2-10 ms after some pulses, bursts after others
        cells[0] = np.sort(np.concatenate([cells[0], pulses[pulses >= t0] + 0.005]))
        expected = biomarkers.error_index(cells, pulses, t0, t1)
        assert _error_index(cells, pulses, t0, t1) == pytest.approx(expected, nan_ok=True)
