"""What a controller observes in simulation: the symptom decoder on the probe's cells, and its
memory of its own stimulation (stimulation.controllers.observation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from decoders.symptom import DEFAULT_MODEL, SymptomDecoder
from stimulation.controllers import ControllerConfigError, evaluate
from stimulation.controllers.observation import DecodedSymptom, StimulationMemory, env_settings
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.probe import VirtualProbe


def test_the_decoded_symptom_is_the_decoder_on_the_probes_cells() -> None:
    """Fed period by period from the env's spike counts, the decoded symptom equals the decoder
    applied to the spike times of exactly the cells the probe of that seed records."""
    net = BasalGangliaNetwork(cells_per_nucleus=10, seed=5, dt_ms=0.025)
    net.run(0.3)
    decoded = DecodedSymptom(10)
    decoded.reset(5)
    cells = VirtualProbe(10, "stn", 8, seed=5).cells
    assert list(decoded.cells) == list(cells) and len(set(cells)) == 8
    reference = SymptomDecoder.load(DEFAULT_MODEL)
    spikes: list[list[np.ndarray]] = [[] for _ in range(10)]
    for _ in range(20):  # 0.4 s: past the decoder's 0.25-s window
        rec = net.step(0.02, amplitude=0.0)
        edges = rec.t_start_s + 0.005 * np.arange(5)
        counts = np.stack([np.histogram(s, edges)[0] for s in rec.spike_times["stn"]], axis=1)
        value = decoded.update(counts)
        for c in range(10):
            spikes[c].append(rec.spike_times["stn"][c])
    whole = [np.concatenate(spikes[c]) for c in cells]
    expected = reference.estimate_from_spike_times(whole, rec.t_stop_s)
    assert value == pytest.approx(expected, rel=1e-9)


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
        env_settings("lfp")
