"""What a controller observes in simulation: the symptom decoder on the probe's cells, and its
memory of its own stimulation (stimulation.controllers.observation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from decoders.symptom import DEFAULT_MODEL, SymptomDecoder
from stimulation.controllers import ControllerConfigError, evaluate
from stimulation.controllers.observation import (
    DecodedSymptom,
    StimulationMemory,
    check_symptom_source,
    visible_spikes,
)
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.probe import VirtualProbe


def test_the_decoded_symptom_is_the_decoder_on_the_probes_visible_spikes() -> None:
    """Fed record by record, the decoded symptom equals the decoder applied to the spike times of
    exactly the cells the probe of that seed records, less the spikes under the artifact."""
    net = BasalGangliaNetwork(cells_per_nucleus=10, seed=5, dt_ms=0.025)
    net.run(0.3)
    decoded = DecodedSymptom(10)
    decoded.reset(5)
    cells = VirtualProbe(10, "stn", 8, seed=5).cells
    assert list(decoded.cells) == list(cells) and len(set(cells)) == 8
    reference = SymptomDecoder.load(DEFAULT_MODEL)
    seen: list[list[np.ndarray]] = [[] for _ in range(10)]
    n_true = n_seen = 0
    for _ in range(20):  # 0.4 s of DBS at 1.67 mA, 100 Hz: past the decoder's 0.25-s window
        rec = net.step(0.02, amplitude=200.0, frequency_hz=100.0)
        value = decoded.update(rec)
        for c in range(10):
            visible = visible_spikes(rec.spike_times["stn"][c], rec.dbs_pulse_times)
            seen[c].append(visible)
            n_true += rec.spike_times["stn"][c].size
            n_seen += visible.size
    whole = [np.concatenate(seen[c]) for c in cells]
    expected = reference.estimate_from_spike_times(whole, rec.t_stop_s)
    assert value == pytest.approx(expected, rel=1e-9)
    # DBS drives the STN cells right after each pulse: the artifact hides most of their spikes
    assert n_true > 300 and n_seen < 0.2 * n_true


def test_spikes_within_the_blind_window_of_a_pulse_are_not_seen() -> None:
    pulses = np.array([0.010, 0.020])
    spikes = np.array([0.0050, 0.00985, 0.0099, 0.0103, 0.0106, 0.0150, 0.0199, 0.0204, 0.03])
    # hidden: from 0.2 ms before to 0.5 ms after each onset
    expected = [0.0050, 0.0106, 0.0150, 0.03]
    np.testing.assert_allclose(visible_spikes(spikes, pulses), expected)
    np.testing.assert_allclose(visible_spikes(spikes, np.array([])), spikes)


def test_the_memory_is_an_exponential_average_of_the_amplitude_asked_for() -> None:
    memory = StimulationMemory(tau_s=1.0, period_s=0.02)
    assert memory.size == 1 and memory.entries() == [0.0]
    for _ in range(50):  # 1 s at 1.0
        memory.update(1.0)
    assert memory.entries()[0] == pytest.approx(1.0 - math.exp(-1.0), rel=1e-9)
    memory.update(math.nan)  # a NaN action counts as off, never poisons the memory
    assert 0.0 < memory.entries()[0] < 1.0 - math.exp(-1.0)
    memory.reset()
    assert memory.entries() == [0.0]
    assert StimulationMemory(0.0, 0.02).entries() == []
    with pytest.raises(ControllerConfigError, match="memory_tau_s"):
        StimulationMemory(-1.0, 0.02)


def test_evaluate_gives_controllers_the_decoder_output_by_default() -> None:
    kw = {"duration_s": 0.6, "settle_s": 0.3, "traces": True}
    decoded = evaluate("off", [3], **kw)[0]
    plant = evaluate("off", [3], symptom_source="plant_beta", **kw)[0]
    assert decoded["symptom_source"] == "decoder" and plant["symptom_source"] == "plant_beta"
    # the same plant (same seed, no stimulation) either way; only the observation differs
    assert decoded["error_index"] == plant["error_index"]
    assert decoded["gpi_beta"] == plant["gpi_beta"]
    assert not np.allclose(decoded["trace"]["beta"], plant["trace"]["beta"])
    assert np.all(np.isfinite(decoded["trace"]["beta"]))
    with pytest.raises(ControllerConfigError, match="symptom_source"):
        check_symptom_source("lfp")
    with pytest.raises(ControllerConfigError, match="symptom_source"):
        evaluate("off", [3], duration_s=0.1, symptom_source="lfp")


def test_the_state_source_sees_the_parkinsonian_state_through_stimulation() -> None:
    """The STN probe is blind under therapeutic DBS; the GPe probe's state decoder is not."""
    kw = {"duration_s": 3.0, "traces": True, "amplitude_ma": 1.67, "frequency_hz": 100.0}
    row = evaluate("continuous", [25], plant="fluctuating", symptom_source="state", **kw)[0]
    assert row["symptom_source"] == "state"
    estimate, state = row["trace"]["beta"], row["trace"]["pd_state"]
    assert 0.2 < state.mean() < 0.8  # this seed switches within the run
    assert estimate[state == 1].mean() - estimate[state == 0].mean() > 0.4
    blind = evaluate("continuous", [25], plant="fluctuating", **kw)[0]["trace"]["beta"]
    assert np.ptp(blind) < 0.01  # the STN decoder's output hardly moves under DBS
