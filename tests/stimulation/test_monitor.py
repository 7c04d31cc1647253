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
    with pytest.raises(PlantParameterError, match="'features'"):
        monitor.features(("rate_stn", "beta_cortex"))


def _error_index(cells: list[np.ndarray], pulses: np.ndarray, t0: float, t1: float) -> float:
    """The monitor's pooled error index of per-cell spike lists."""
    from stimulation.plant.monitor import _error_index_pooled

    ids = np.concatenate(
        [np.zeros(0, np.intp), *(np.full(c.size, i, np.intp) for i, c in enumerate(cells))]
    )
    times = np.concatenate([np.zeros(0), *cells])
    return _error_index_pooled(ids, times, len(cells), pulses, t0, t1)


def test_vectorised_error_index_equals_the_reference_one() -> None:
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


def _beta_1d(x: np.ndarray, sfreq: float) -> float:
    """The one-segment relative beta power, written out for one LFP (the monitor's formula)."""
    from scipy.signal import get_window

    freqs = np.fft.rfftfreq(x.size, 1.0 / sfreq)
    spec = np.fft.rfft(get_window("hann", x.size) * (x - x.mean()))
    power = spec.real * spec.real + spec.imag * spec.imag
    total = float(power[(freqs >= 4.0) & (freqs <= 100.0)].sum())
    band = float(power[(freqs >= 13.0) & (freqs <= 30.0)].sum())
    return band / total if total > 0.0 else float("nan")


def test_incremental_window_equals_the_window_recomputed_bit_for_bit() -> None:
    net = BasalGangliaNetwork("pd", 5, seed=9)
    monitor = BiomarkerMonitor(1000.0, window_s=0.1)
    records: list[PlantRecord] = []
    # periods shorter and longer than the window, DBS on part of the way
    for k, duration in enumerate((0.003, 0.013, 0.3, 0.02, 0.02, 0.05, 0.011, 0.02, 0.15, 0.02)):
        rec = net.step(duration, 250.0 if 3 <= k <= 6 else 0.0)
        records.append(rec)
        monitor.update(rec)
        whole = PlantRecord.concatenate(records)
        t0, t1 = monitor.window_start_s, whole.t_stop_s
        assert t0 == max(whole.t_start_s, t1 - 0.1)
        for nu in ("th", "stn", "gpe", "gpi"):
            lfp = whole.lfp[nu].astype(np.float64)[-100:]
            expected = _beta_1d(lfp, 1000.0) if lfp.size >= 8 else float("nan")
            assert monitor.beta_power(nu) == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
            count = sum(int(np.count_nonzero(s >= t0)) for s in whole.spike_times[nu])
            assert monitor.firing_rate_hz(nu) == count / ((t1 - t0) * 5)
        th = [s[s >= t0] for s in whole.spike_times["th"]]
        expected_ei = _error_index_by_hand(th, whole.cortex_pulse_times, t0, t1)
        assert monitor.error_index() == pytest.approx(expected_ei, rel=0, abs=0, nan_ok=True)


def _error_index_by_hand(
    cells: list[np.ndarray], pulses: np.ndarray, t0: float, t1: float, window_s: float = 0.025
) -> float:
    """So et al. (2012)'s error index, pulse by pulse and cell by cell with plain loops (neither
    the monitor's vectorised version nor biomarkers.error_index): the pulses with onsets in
    [t0, t1 - 25 ms] are scored; for each and each cell, not exactly one spike in [p, p + 25 ms)
    is one error, and each spike in [p + 25 ms, next pulse or t1) one more."""
    onsets = sorted(float(p) for p in pulses)
    scored = [p for p in onsets if t0 <= p <= t1 - window_s]
    if not scored:
        return float("nan")
    errors = 0
    for p in scored:
        later = [q for q in onsets if q > p]
        end = min(later[0], t1) if later else t1
        for spikes in cells:
            errors += sum(1 for s in spikes if p <= s < p + window_s) != 1
            errors += sum(1 for s in spikes if p + window_s <= s < end)
    return errors / (len(scored) * len(cells))


def test_pooled_error_index_in_any_order_equals_the_reference_bit_for_bit() -> None:
    from stimulation.plant.monitor import _error_index_pooled

    rng = np.random.default_rng(1)
    for _ in range(50):
        t0 = rng.uniform(0, 100)
        t1 = t0 + rng.uniform(0.05, 1.0)
        pulses = np.sort(rng.uniform(t0 - 0.1, t1 + 0.1, rng.integers(0, 20)))
        n = int(rng.integers(1, 12))
        cells = [np.sort(rng.uniform(t0, t1, rng.integers(0, 30))) for _ in range(n)]
        cells[0] = np.sort(np.concatenate([cells[0], pulses[pulses >= t0] + 0.005]))
        ids = np.concatenate([np.full(c.size, i) for i, c in enumerate(cells)]).astype(np.intp)
        times = np.concatenate(cells)
        order = rng.permutation(times.size)  # pooled spikes in any order
        got = _error_index_pooled(ids[order], times[order], n, pulses, t0, t1)
        expected = biomarkers.error_index(cells, pulses, t0, t1)
        assert got == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
