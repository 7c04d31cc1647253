"""Corrupt, truncated and mismatched controller files (the RL-SNN controller's spiking actor,
``.npz`` read with ``allow_pickle=False``): the controller's own error, or a controller that
runs; never a raw traceback, never code."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_support import EDIT, clear_error_or_value, long_run, mutate, short_run
from hypothesis import given
from hypothesis import strategies as st

from stimulation.errors import StimulationError

N_POP, HIDDEN = 4, 6


class Blob(bytes):
    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


@pytest.fixture(scope="module")
def actor_file(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    from stimulation.controllers.snn_actor import SpikingActorWeights

    rng = np.random.default_rng(0)
    weights = SpikingActorWeights(
        mu=np.tile(np.linspace(0, 1, N_POP), (2, 1)),
        sigma=np.full((2, N_POP), 0.3),
        w_in=[rng.normal(0, 1, (HIDDEN, 2 * N_POP))],
        b_in=[np.zeros(HIDDEN)],
        beta=[np.full(HIDDEN, 0.9)],
        threshold=[np.ones(HIDDEN)],
        w_out=rng.normal(0, 1, (1, HIDDEN)),
        b_out=np.zeros(1),
        substeps=4,
        meta={"max_amplitude_ma": 3.0, "frequency_hz": 130.0, "symptom_scale": 1.0},
    )
    path = weights.save(tmp_path_factory.mktemp("actor") / "actor.npz")
    _use(path)  # the unmodified file runs
    return Blob(path.read_bytes())


def _use(path: Path) -> None:
    from stimulation.controllers.rl_snn import RLSNNController

    ctl, _ = clear_error_or_value(lambda: RLSNNController(model=path), (StimulationError,))
    if ctl is None:
        return
    for t in (0.0, 0.02, 0.04):
        clear_error_or_value(lambda t=t: ctl.act(np.array([0.1]), t), (StimulationError,))


def _mutated(tmp: Path, blob: bytes, edits: list[Any]) -> None:
    path = tmp / "actor.npz"
    path.write_bytes(mutate(blob, edits))
    _use(path)


@short_run(100)
@given(st.lists(EDIT, min_size=1, max_size=4))
def test_corrupt_controller_files_give_the_controllers_error(
    actor_file: Blob, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _mutated(tmp_path_factory.mktemp("a"), actor_file, edits)


@pytest.mark.slow
@long_run(2000)
@given(st.lists(EDIT, min_size=1, max_size=8))
def test_corrupt_controller_files_long(
    actor_file: Blob, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _mutated(tmp_path_factory.mktemp("a"), actor_file, edits)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)
HEADER_KEYS = ["format", "version", "n_layers", "substeps", "meta"]
ARRAY_KEYS = ["mu", "sigma", "w_out", "b_out", "w_in_0", "b_in_0", "beta_0", "threshold_0"]


def _mismatched(tmp: Path, blob: bytes, key: str, value: Any, array: str, cut: int) -> None:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays["header"]).decode())
    if key == "meta.max_amplitude_ma":
        header["meta"]["max_amplitude_ma"] = value
    else:
        header[key] = value
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    a = arrays[array]
    arrays[array] = a.reshape(-1)[: max(0, a.size - cut)] if cut else a
    path = tmp / "actor.npz"
    np.savez(path, **arrays)
    _use(path)


@short_run(150)
@given(
    st.sampled_from([*HEADER_KEYS, "meta.max_amplitude_ma"]),
    JSON_VALUES,
    st.sampled_from(ARRAY_KEYS),
    st.integers(0, 3),
)
def test_controller_files_with_a_mismatched_header_or_arrays_give_the_controllers_error(
    actor_file: Blob,
    tmp_path_factory: pytest.TempPathFactory,
    key: str,
    value: Any,
    array: str,
    cut: int,
) -> None:
    _mismatched(tmp_path_factory.mktemp("h"), actor_file, key, value, array, cut)
