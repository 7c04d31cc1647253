"""Our operation counts agree with NeuroBench's own metric code (the bench extra).

``benchmarks/_neurobench.py`` rebuilds each decoder as a torch module and runs NeuroBench's
``Footprint``, ``ActivationSparsity`` and ``SynapticOperations`` on it; the decoders' own counts
(``count_ops``, ``n_parameters``) must give the same numbers, and the module the same outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("neurobench")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _neurobench  # noqa: E402

from bci.synthesis.motor import simulate_reaching  # noqa: E402
from decoders.ann import GRUDecoder, MLPDecoder  # noqa: E402
from decoders.snn.decoder import RecurrentSNNDecoder, SNNDecoder  # noqa: E402


@pytest.fixture(scope="module")
def reaching() -> tuple[np.ndarray, np.ndarray]:
    data = simulate_reaching(16, 40.0, 0.02, seed=2)
    return data.counts, data.velocity


@pytest.mark.parametrize("make", [SNNDecoder, RecurrentSNNDecoder], ids=["snn", "rsnn"])
def test_neurobench_counts_the_spiking_decoders_operations_as_we_do(make, reaching):
    X, Y = reaching
    dec = make(hidden=(24,), seed=0, epochs=2).fit(X[:1500], Y[:1500])
    nb = _neurobench.measure(dec, X[1500:], Y[1500:])
    ours = dec.count_ops(X[1500:])
    assert nb["max_abs_diff"] < 1e-4  # NeuroBench measured the decoder itself
    assert nb["footprint_bytes"] == 4 * dec.n_parameters
    assert nb["sparsity"] == pytest.approx(ours.activation_sparsity, abs=1e-9)
    assert nb["dense"] == pytest.approx(ours.dense / ours.bins, rel=1e-9)
    # NeuroBench decides MACs vs ACs per bin (a bin of 0/1 counts is "spikes"), we per recording:
    # the split may differ, the total may not
    assert nb["macs"] + nb["acs"] == pytest.approx(ours.macs_per_bin + ours.acs_per_bin, rel=1e-9)
    assert nb["acs"] >= ours.acs_per_bin


def test_neurobench_counts_the_ann_baselines_as_we_do(reaching):
    X, Y = reaching
    for dec in (MLPDecoder(seed=0, epochs=2), GRUDecoder(seed=0, epochs=2)):
        dec.fit(X[:1500], Y[:1500])
        nb = _neurobench.measure(dec, X[1500:], Y[1500:])
        ours = dec.count_ops(X[1500:])
        assert nb["max_abs_diff"] < 1e-4
        assert nb["footprint_bytes"] == 4 * dec.n_parameters
        assert nb["dense"] >= ours.dense / ours.bins
        total = nb["macs"] + nb["acs"]
        # the GRU: NeuroBench adds its gates' element-wise products (3 per hidden unit);
        # the MLP: its lag history starts at raw zeros, ours at the mean (first n_lags bins)
        assert total == pytest.approx(ours.macs_per_bin + ours.acs_per_bin, rel=0.02)
