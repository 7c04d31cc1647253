"""Corrupt, truncated and mismatched model files: decoders (npz and NIR/HDF5) and the sorter's
template files. Each gives the room's own error (``ModelFileError``, ``TemplateFileError``) or a
model that runs (its outputs may be NaN: the safety limiter turns a NaN command into its safe
state); never a raw traceback, never code: the loaders use ``np.load(allow_pickle=False)``.

Controllers have no model files on this branch yet (the shipped controllers are parameters only).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_support import EDIT, clear_error_or_value, long_run, mutate, short_run
from hypothesis import given
from hypothesis import strategies as st

from bci.errors import BCIError
from bci.sorting import OnlineSorter, TemplateBank
from bci.sorting.errors import SortingError, TemplateFileError
from bci.stream import SignalChunk, StreamSpec
from decoders import DecoderError, KalmanDecoder, ModelFileError, WienerDecoder
from decoders.modelfile import load_decoder

N_UNITS = 6


class Blob(bytes):
    """File bytes with a short repr (hypothesis prints the fixtures of a failing example)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _json_paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _json_paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


# ------------------------------------------------------------------ decoders
def _fitted(kind: str) -> Any:
    rng = np.random.default_rng(0)
    X = rng.poisson(2.0, size=(400, N_UNITS)).astype(np.float64)
    Y = X @ rng.normal(size=(N_UNITS, 2)) + rng.normal(size=(400, 2))
    dec = WienerDecoder(n_lags=3) if kind == "wiener" else KalmanDecoder()
    return dec.fit(X, Y)


@pytest.fixture(scope="module")
def decoder_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("decoders")
    out = {k: Blob(_fitted(k).save(folder / f"{k}.npz").read_bytes()) for k in ("wiener", "kalman")}
    return out


def _use_decoder(path: Path) -> None:
    """Load as the online stage would, and decode a few bins."""
    dec, err = clear_error_or_value(lambda: load_decoder(path, n_units=N_UNITS), (ModelFileError,))
    if dec is None:
        return
    for _ in range(3):
        y, err = clear_error_or_value(lambda: dec.step(np.ones(N_UNITS)), (DecoderError,))
        if y is not None:
            assert np.asarray(y).shape == (dec.n_outputs,)


def _mutated_decoder(tmp: Path, blob: bytes, edits: list[Any]) -> None:
    path = tmp / "model.npz"
    path.write_bytes(mutate(blob, edits))
    _use_decoder(path)


@short_run(120)
@given(st.sampled_from(["wiener", "kalman"]), st.lists(EDIT, min_size=1, max_size=4))
def test_corrupt_decoder_files_give_a_model_file_error(
    decoder_files: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    edits: list[Any],
) -> None:
    _mutated_decoder(tmp_path_factory.mktemp("m"), decoder_files[kind], edits)


@pytest.mark.slow
@long_run(2000)
@given(st.sampled_from(["wiener", "kalman"]), st.lists(EDIT, min_size=1, max_size=8))
def test_corrupt_decoder_files_long(
    decoder_files: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    edits: list[Any],
) -> None:
    _mutated_decoder(tmp_path_factory.mktemp("m"), decoder_files[kind], edits)


def _rewrite_npz(blob: bytes, change: Any) -> bytes:
    """The archive with its JSON header (entry ``header_key``) changed by ``change``."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = "decoders" if "decoders" in arrays else "header"
    arrays[key] = np.array(json.dumps(change(json.loads(str(arrays[key])))))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _mismatched_header(tmp: Path, blob: bytes, path_index: int, value: Any) -> None:
    def change(meta: Any) -> Any:
        paths = _json_paths(meta)
        return _set(meta, paths[path_index % len(paths)], value)

    path = tmp / "model.npz"
    path.write_bytes(_rewrite_npz(blob, change))
    _use_decoder(path)


@short_run(150)
@given(st.sampled_from(["wiener", "kalman"]), st.integers(0, 200), JSON_VALUES)
def test_decoder_files_with_a_mismatched_header_give_a_model_file_error(
    decoder_files: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    path_index: int,
    value: Any,
) -> None:
    _mismatched_header(tmp_path_factory.mktemp("m"), decoder_files[kind], path_index, value)


@pytest.mark.slow
@long_run(2000)
@given(st.sampled_from(["wiener", "kalman"]), st.integers(0, 200), JSON_VALUES)
def test_decoder_headers_long(
    decoder_files: dict[str, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    path_index: int,
    value: Any,
) -> None:
    _mismatched_header(tmp_path_factory.mktemp("m"), decoder_files[kind], path_index, value)


def test_a_decoder_file_holding_a_pickled_object_is_refused_without_running_it(
    decoder_files: dict[str, bytes], tmp_path: Path
) -> None:
    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self) -> Any:
            import os

            return (os.system, (f"touch {marker}",))

    with np.load(io.BytesIO(decoder_files["wiener"]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["a_weights"] = np.array([Exploit()], dtype=object)  # saved with pickle inside
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = tmp_path / "pickled.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError):
        load_decoder(path)
    assert not marker.exists()


def test_a_decoder_for_another_unit_count_is_refused_by_name(
    decoder_files: dict[str, bytes], tmp_path: Path
) -> None:
    path = tmp_path / "wiener.npz"
    path.write_bytes(decoder_files["wiener"])
    with pytest.raises(ModelFileError, match=f"fitted on {N_UNITS} units.*has 9"):
        load_decoder(path, n_units=9)


@pytest.fixture(scope="module")
def snn_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    pytest.importorskip("torch")
    from decoders.snn.decoder import SNNDecoder

    rng = np.random.default_rng(1)
    X = rng.poisson(1.0, size=(300, N_UNITS)).astype(np.float64)
    Y = X[:, :2] + rng.normal(size=(300, 2))
    dec = SNNDecoder(hidden=(8,), epochs=1, seed=0).fit(X, Y)
    return Blob(dec.save(tmp_path_factory.mktemp("snn") / "snn.nir").read_bytes())


def _mutated_nir(tmp: Path, blob: bytes, edits: list[Any]) -> None:
    path = tmp / "model.nir"
    path.write_bytes(mutate(blob, edits, keep=8))  # keep the HDF5 magic: the HDF5 path
    _use_decoder(path)


@short_run(40)
@given(st.lists(EDIT, min_size=1, max_size=4))
def test_corrupt_nir_decoder_files_give_a_model_file_error(
    snn_file: bytes, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _mutated_nir(tmp_path_factory.mktemp("n"), snn_file, edits)


@pytest.mark.slow
@long_run(800)
@given(st.lists(EDIT, min_size=1, max_size=8))
def test_corrupt_nir_decoder_files_long(
    snn_file: bytes, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _mutated_nir(tmp_path_factory.mktemp("n"), snn_file, edits)


# ------------------------------------------------------------------ sorter templates
N_CH = 4
SFREQ = 30000.0


@pytest.fixture(scope="module")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rng = np.random.default_rng(2)
    t = np.arange(40)
    shape = -np.exp(-0.5 * ((t - 12) / 2.0) ** 2) * 8.0
    templates = np.stack([np.outer(shape, rng.uniform(0.3, 1.0, N_CH)) for _ in range(3)])
    bank = TemplateBank(
        templates=templates.astype(np.float32),
        pre=12,
        n_match=24,
        noise=np.full(N_CH, 5.0),
        positions=np.column_stack([np.zeros(N_CH), 20.0 * np.arange(N_CH)]),
        sfreq=SFREQ,
        n_spikes=np.array([50, 60, 70]),
    )
    path = bank.save(
        tmp_path_factory.mktemp("templates") / "bank.npz",
        extra={"params": OnlineSorter().params, "calibration_info": {}},
    )
    OnlineSorter.load(path)  # the unmodified file is usable
    return Blob(path.read_bytes())


def _use_templates(path: Path) -> None:
    """Load as a session would, prepare on a matching stream and sort a chunk."""
    sorter, err = clear_error_or_value(lambda: OnlineSorter.load(path), (TemplateFileError,))
    if sorter is None:
        return
    spec = StreamSpec("signal", N_CH, SFREQ, unit="uV")
    _, err = clear_error_or_value(lambda: sorter.prepare(spec), (BCIError,))
    if err is not None:
        return
    data = np.random.default_rng(3).normal(0, 5, (600, N_CH)).astype(np.float32)
    chunk = SignalChunk(data, 0, SFREQ, np.arange(600) / SFREQ)
    clear_error_or_value(lambda: sorter.process(chunk), (SortingError,))


def _mutated_templates(tmp: Path, blob: bytes, edits: list[Any]) -> None:
    path = tmp / "bank.npz"
    path.write_bytes(mutate(blob, edits))
    _use_templates(path)


@short_run(120)
@given(st.lists(EDIT, min_size=1, max_size=4))
def test_corrupt_template_files_give_a_template_file_error(
    template_file: bytes, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _mutated_templates(tmp_path_factory.mktemp("t"), template_file, edits)


@pytest.mark.slow
@long_run(2000)
@given(st.lists(EDIT, min_size=1, max_size=8))
def test_corrupt_template_files_long(
    template_file: bytes, tmp_path_factory: pytest.TempPathFactory, edits: list[Any]
) -> None:
    _mutated_templates(tmp_path_factory.mktemp("t"), template_file, edits)


def _mismatched_templates(tmp: Path, blob: bytes, path_index: int, value: Any) -> None:
    def change(header: Any) -> Any:
        paths = _json_paths(header)
        return _set(header, paths[path_index % len(paths)], value)

    path = tmp / "bank.npz"
    path.write_bytes(_rewrite_npz(blob, change))
    _use_templates(path)


@short_run(150)
@given(st.integers(0, 300), JSON_VALUES)
def test_template_files_with_a_mismatched_header_give_a_template_file_error(
    template_file: bytes, tmp_path_factory: pytest.TempPathFactory, path_index: int, value: Any
) -> None:
    _mismatched_templates(tmp_path_factory.mktemp("t"), template_file, path_index, value)


@pytest.mark.slow
@long_run(2000)
@given(st.integers(0, 300), JSON_VALUES)
def test_template_headers_long(
    template_file: bytes, tmp_path_factory: pytest.TempPathFactory, path_index: int, value: Any
) -> None:
    _mismatched_templates(tmp_path_factory.mktemp("t"), template_file, path_index, value)


@pytest.mark.parametrize("array", ["templates", "noise", "positions", "n_spikes"])
def test_template_arrays_of_the_wrong_shape_are_refused(
    template_file: bytes, tmp_path: Path, array: str
) -> None:
    with zipfile.ZipFile(io.BytesIO(template_file)) as z:
        names = z.namelist()
    assert f"{array}.npy" in names
    with np.load(io.BytesIO(template_file), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[array] = arrays[array][..., :-1] if arrays[array].ndim > 1 else arrays[array][:-1]
    path = tmp_path / "bank.npz"
    np.savez(path, **arrays)
    with pytest.raises(TemplateFileError):
        OnlineSorter.load(path)
