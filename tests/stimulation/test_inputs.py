"""The plant's inputs, checked directly against So, Kent & Grill (2012), not against our own code.

The numpy oracle (test_reference_oracle.py) integrates the same cortical pulses, DBS schedule and
connectivity as the compiled model (it imports them), so a wrong input would be invisible to it.
Here each input is checked against numbers written out from the paper and its ModelDB code
(141699: createSMC.m, creatdbs.m, BGnetwork.m), and the current the compiled loop actually
injects is measured: one forward-Euler step from the same state with and without the input
changes the membrane potential by exactly ``dt * I`` (C_m = 1 uF/cm2).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.inputs import CorticalPulses, DbsPulses, connectivity, seed_streams
from stimulation.plant.integrator import Interval, LaneIntegrator, NetworkState

DT_MS = 0.01
K0 = 100_000  # an arbitrary global step for the one-step probes
NONE_I64 = np.empty(0, dtype=np.int64)


def test_cortical_pulse_intervals_have_so_2012_statistics() -> None:
    """createSMC.m draws each interval as 1 / f with the rate f ~ Gamma(k = 1 / CV^2, 14 Hz / k)
    (CV 0.2): the interval mean is E[1 / f] = k / ((k - 1) 14 Hz) = 74.4 ms (close to 1 / 14 Hz
    = 71.4 ms) and its CV 1 / sqrt(k - 2) = 0.209."""
    k = 1.0 / 0.2**2
    mean_ms = 1000.0 / 14.0 * k / (k - 1.0)
    cv = 1.0 / math.sqrt(k - 2.0)
    intervals = []
    for seed in range(10):  # 10 x 20 s: the mean to about 0.3 ms (1 SE)
        _, smc_rng = seed_streams(seed)
        onsets = CorticalPulses(smc_rng, DT_MS).onsets(0, round(20_000 / DT_MS))[1]
        steps = np.diff(onsets) * DT_MS
        # each 20-s train on its own is already close to the expected statistics
        assert steps.mean() == pytest.approx(mean_ms, rel=0.08)
        assert steps.std() / steps.mean() == pytest.approx(cv, abs=0.06)
        intervals.append(steps)
    pooled = np.concatenate(intervals)
    se_ms = pooled.std() / math.sqrt(pooled.size)
    assert abs(pooled.mean() - mean_ms) < 4 * se_ms
    assert pooled.std() / pooled.mean() == pytest.approx(cv, abs=0.02)


def _probe(n: int = 10) -> tuple[LaneIntegrator, NetworkState]:
    net = BasalGangliaNetwork(state="pd", cells_per_nucleus=n, seed=3)
    net.run(0.05)  # away from the initial conditions
    return LaneIntegrator(n, 1, DT_MS, 100), copy.deepcopy(net.variables)


def _one_step(
    integrator: LaneIntegrator,
    state: NetworkState,
    smc_onsets: np.ndarray = NONE_I64,
    dbs: DbsPulses | None = None,
    target: int = 0,
) -> NetworkState:
    """The state after one step from ``state`` (left untouched) at global step ``K0``."""
    out = copy.deepcopy(state)
    interval = Interval(
        k0=K0,
        n_steps=1,
        target=target,
        smc_width=round(5.0 / DT_MS),
        smc_onsets=np.asarray(smc_onsets, dtype=np.int64),
        smc_new=NONE_I64,
        dbs=DbsPulses.empty() if dbs is None else dbs,
        new_dbs=DbsPulses.empty(),
        severity=np.empty(0),
    )
    integrator.integrate([out], [interval])
    return out


def test_cortical_pulses_inject_3_5_ua_cm2_into_thalamus_for_5_ms() -> None:
    integrator, state = _probe()
    base = _one_step(integrator, state).th[0]
    delivered = []
    for age in range(0, 600, 7):  # the pulse began ``age`` steps before this step
        dv = _one_step(integrator, state, smc_onsets=np.array([K0 - age])).th[0] - base
        np.testing.assert_allclose(dv, dv[0], rtol=0, atol=1e-12)  # every thalamic cell
        delivered.append((age, dv[0] / DT_MS))
    for age, current in delivered:
        expected = 3.5 if age * DT_MS < 5.0 else 0.0
        assert current == pytest.approx(expected, abs=1e-9), f"{age} steps into the pulse"


@pytest.mark.parametrize(("target", "row"), [(0, "stn"), (1, "gpe"), (2, "gpi")])
def test_biphasic_dbs_is_plus_a_gap_minus_a_with_zero_net_charge(target: int, row: str) -> None:
    amplitude, pw, gap = 200.0, 30, 5  # 300 us phases, 50 us interphase gap at dt 0.01 ms
    integrator, state = _probe(6)
    base = getattr(_one_step(integrator, state, target=target), row)[0]
    current = []
    for age in range(0, 2 * pw + gap + 10):
        dbs = DbsPulses(
            np.array([K0 - age]),
            np.array([amplitude]),
            np.array([pw]),
            np.array([gap]),
            np.array([1], dtype=np.uint8),
        )
        after = _one_step(integrator, state, dbs=dbs, target=target)
        dv = getattr(after, row)[0] - base
        np.testing.assert_allclose(dv, dv[0], rtol=0, atol=1e-9)  # every cell of the target
        current.append(dv[0] / DT_MS)
        for other in {"stn", "gpe", "gpi"} - {row}:  # and no other nucleus
            assert np.array_equal(
                getattr(after, other)[0], getattr(_one_step(integrator, state), other)[0]
            )
    current_arr = np.array(current)
    expected = np.concatenate(
        [np.full(pw, amplitude), np.zeros(gap), np.full(pw, -amplitude), np.zeros(10)]
    )
    np.testing.assert_allclose(current_arr, expected, rtol=0, atol=1e-6)
    assert abs(current_arr.sum() * DT_MS) < 1e-6  # zero net charge (uA/cm2 x ms)


# So 2012 BGnetwork.m, 10 cells (0-based here): the two presynaptic cells of cell i.
SO_2012_RING = {
    "gpe->stn": [(i, (i + 1) % 10) for i in range(10)],
    "stn->gpe": [(i, (i - 1) % 10) for i in range(10)],
    "gpe->gpe": [((i + 1) % 10, (i - 2) % 10) for i in range(10)],
    "stn->gpi": [(i, (i - 1) % 10) for i in range(10)],
    "gpe->gpi": [((i + 1) % 10, (i - 2) % 10) for i in range(10)],
}


def test_connectivity_is_so_2012_ring() -> None:
    pre = connectivity(10)
    for p, pairs in enumerate(SO_2012_RING.values()):
        assert sorted(map(tuple, pre[p].tolist())) == sorted(pairs)
        assert [tuple(x) for x in pre[p].tolist()] == pairs
    # spelled out for two cells, as a reader of BGnetwork.m would check them
    assert SO_2012_RING["gpe->stn"][9] == (9, 0)
    assert SO_2012_RING["gpe->gpe"][0] == (1, 8)


@pytest.mark.parametrize("cell", [0, 4, 9])
def test_the_loop_wires_synapses_along_the_ring(cell: int) -> None:
    """A synaptic variable raised in one presynaptic cell changes, after one step, the membrane
    potential of exactly its postsynaptic cells on the ring."""
    integrator, state = _probe()
    base = _one_step(integrator, state)

    def targets(row: str, s_row: int, post: str) -> set[int]:
        raised = copy.deepcopy(state)
        getattr(raised, row)[s_row, cell] += 0.3
        after = _one_step(integrator, raised)
        return set(np.flatnonzero(getattr(after, post)[0] != getattr(base, post)[0]).tolist())

    def expected(projection: str) -> set[int]:
        return {i for i, pair in enumerate(SO_2012_RING[projection]) if cell in pair}

    gpe_targets = expected("gpe->stn"), expected("gpe->gpe"), expected("gpe->gpi")
    assert (targets("gpe", 5, "stn"), targets("gpe", 5, "gpe"), targets("gpe", 5, "gpi")) == (
        gpe_targets
    )
    assert targets("stn", 6, "gpe") == expected("stn->gpe")
    assert targets("stn", 6, "gpi") == expected("stn->gpi")
    assert targets("gpi", 5, "th") == {cell}  # GPi -> TH one to one
