"""The plant reproduces So, Kent & Grill (2012): thalamic fidelity lost in the Parkinsonian state,
restored by 130 Hz STN DBS and not by 20 Hz DBS; more GPi beta in the Parkinsonian state.

4 s simulated, the first 2 s discarded. The default run checks seed 1; the slow test the mean
over seeds 1-5 (the issue's acceptance criterion).
"""

from __future__ import annotations

import numpy as np
import pytest

from stimulation import PulseTrain
from stimulation.plant import BasalGangliaNetwork

DURATION_S, DISCARD_S = 4.0, 2.0
SO_2012_DBS_UA_CM2, SO_2012_PW_US = 300.0, 300.0
CONDITIONS = {
    "healthy": ("healthy", None),
    "pd": ("pd", None),
    "dbs130": ("pd", 130.0),
    "dbs20": ("pd", 20.0),
}


def biomarkers(seed: int) -> dict[str, tuple[float, float]]:
    """(error index, GPi relative beta) of each condition."""
    out = {}
    for name, (state, freq) in CONDITIONS.items():
        dbs = None if freq is None else PulseTrain(SO_2012_DBS_UA_CM2, freq, SO_2012_PW_US)
        rec = BasalGangliaNetwork(state=state, seed=seed).run(DURATION_S, dbs=dbs)
        out[name] = (rec.error_index(DISCARD_S), rec.beta_power("gpi", DISCARD_S))
    return out


def check_so_2012(ei: dict[str, float], beta: dict[str, float]) -> None:
    """So 2012 shows the effects, not a numeric EI table (shared/REFERENCES.md). The bounds: a
    healthy relay makes few errors (< 0.1); the Parkinsonian EI is several-fold the healthy one
    (> 5x) and far from it in absolute terms (> 0.25: ModelDB 141699's own code gives 0.34-0.53
    over seeds 1-5, mean 0.40, SD 0.08, so any of those seeds passes with a margin, not only
    seed 1's 0.41)."""
    assert ei["healthy"] < 0.1
    assert ei["pd"] > 5.0 * ei["healthy"]
    assert ei["pd"] > 0.25
    assert ei["dbs130"] < 0.5 * ei["pd"]  # high-frequency DBS restores relay fidelity
    assert ei["dbs20"] >= 0.5 * ei["pd"]  # low-frequency DBS does not
    assert beta["pd"] >= 3.0 * beta["healthy"]


def test_so_2012_effects_seed_1() -> None:
    values = biomarkers(1)
    check_so_2012({k: v[0] for k, v in values.items()}, {k: v[1] for k, v in values.items()})


@pytest.mark.slow
def test_so_2012_effects_mean_over_seeds_1_to_5() -> None:
    runs = [biomarkers(seed) for seed in range(1, 6)]
    ei = {name: float(np.mean([r[name][0] for r in runs])) for name in CONDITIONS}
    beta = {name: float(np.mean([r[name][1] for r in runs])) for name in CONDITIONS}
    check_so_2012(ei, beta)
