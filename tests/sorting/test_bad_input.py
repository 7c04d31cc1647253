"""What a user meets with bad input: clear errors, never a raw numpy traceback or a made-up unit."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bci.errors import ConfigError
from bci.sorting import (
    OnlineSorter,
    SorterConfig,
    SortingConfigError,
    SortingError,
    TemplateFileError,
    ThresholdCrossings,
    sort_recording,
)
from bci.sorting.templates import TemplateBank
from bci.synthesis import generate_recording

SFREQ = 30_000.0


# -- bad knobs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "knobs",
    [
        {"threshold": -1.0},
        {"amplitude_range": (1.2, 2.0)},
        {"amplitude_range": (0.5,)},
        {"pulse_window_ms": (0.1, 0.5)},
        {"max_shift": 1.5},
        {"tail_ms": 0.5},
        {"min_cluster_size": 1},
        {"no_such_knob": 1},
    ],
)
def test_bad_knobs_are_config_errors_naming_the_knob(knobs: dict) -> None:
    with pytest.raises(SortingConfigError) as info:
        OnlineSorter(**knobs)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, SortingError)
    assert next(iter(knobs)) in str(info.value)


def test_other_bad_arguments_are_config_errors() -> None:
    with pytest.raises(SortingConfigError, match="threshold_rms"):
        ThresholdCrossings(threshold_rms=4.5)
    with pytest.raises(SortingConfigError, match="config"):
        OnlineSorter({"threshold": 4.5})  # type: ignore[arg-type]
    x = np.zeros((3000, 4), np.float32)
    with pytest.raises(SortingConfigError, match="positions"):
        sort_recording(x, SFREQ, positions=np.zeros((5, 2)))
    with pytest.raises(SortingConfigError, match="sfreq"):
        sort_recording(x, -1.0)
    # a config is built once and reused, and knobs replace its values
    config = SorterConfig(threshold=4.5)
    assert OnlineSorter(config, tracking_rate=0.1).config == config.replace(tracking_rate=0.1)


def test_knobs_cannot_be_set_as_attributes() -> None:
    with pytest.raises(AttributeError, match="load"):
        OnlineSorter().tracking_rate = 0.1  # type: ignore[misc]


# -- template files (OnlineSorter.load) --------------------------------------------------------------
@pytest.fixture(scope="module")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real template file: an OnlineSorter fitted on 6 s of a 4-unit, 16-channel recording."""
    rec = generate_recording(
        n_channels=16, n_units=4, duration_s=6.0, seed=2, amplitude_uv=(100, 200)
    )
    x = rec.traces - np.median(rec.traces, axis=0)
    sorter = OnlineSorter(min_spikes=10, min_cluster_size=10).fit(x, SFREQ, rec.positions)
    return sorter.save(tmp_path_factory.mktemp("bank") / "templates.npz")


def _rewrite(src: Path, dst: Path, **changes: object) -> Path:
    """Copy a template file, replacing arrays (``header`` given as a dict is JSON-encoded)."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        elif isinstance(value, dict):
            arrays[key] = np.array(json.dumps(value))
        else:
            arrays[key] = np.asarray(value)
    np.savez(dst, **arrays)
    return dst


def _header(src: Path) -> dict:
    with np.load(src, allow_pickle=False) as data:
        return json.loads(str(data["header"]))


def test_load_round_trip_still_works(template_file: Path) -> None:
    assert OnlineSorter.load(template_file).n_units >= 1


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "directory",
        "empty",
        "text",
        "npy",
        "truncated",
        "plain_zip",
        "no_header",
        "bad_json",
    ],
)
def test_load_not_a_template_file(template_file: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.npz"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("threshold: 5\n")
    elif kind == "npy":
        with path.open("wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "truncated":
        path.write_bytes(template_file.read_bytes()[:500])
    elif kind == "plain_zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "hello")
    elif kind == "no_header":
        _rewrite(template_file, path, header=None)
    elif kind == "bad_json":
        _rewrite(template_file, path, header=np.array("{not json"))
    with pytest.raises(TemplateFileError) as info:
        OnlineSorter.load(path)
    message = str(info.value)
    assert str(path) in message
    if kind == "missing":
        assert "no such file" in message.lower()
    else:
        assert "not a template file" in message
    assert "pickle" not in message


def test_load_file_from_a_newer_version(template_file: Path, tmp_path: Path) -> None:
    header = _header(template_file)
    header["format"] = header["format"] + 1
    path = _rewrite(template_file, tmp_path / "newer.npz", header=header)
    with pytest.raises(TemplateFileError, match="newer version"):
        OnlineSorter.load(path)


@pytest.mark.parametrize("array", ["noise", "positions"])
def test_load_file_with_wrong_channel_count(
    template_file: Path, tmp_path: Path, array: str
) -> None:
    with np.load(template_file, allow_pickle=False) as data:
        shorter = data[array][:-1]
    path = _rewrite(template_file, tmp_path / "short.npz", **{array: shorter})
    with pytest.raises(TemplateFileError, match="channel"):
        OnlineSorter.load(path)


# -- channels-first arrays (sort_recording, fit) ------------------------------------------------------
def test_channels_first_traces_are_refused() -> None:
    x = np.random.default_rng(0).normal(0.0, 5.0, (2000, 4)).astype(np.float32)
    with pytest.raises(SortingConfigError, match="channels-first"):
        sort_recording(x.T, SFREQ)
    with pytest.raises(SortingConfigError, match="channels-first"):
        OnlineSorter().fit(x.T, SFREQ)


def test_positions_matching_the_sample_axis_say_channels_first() -> None:
    x = np.random.default_rng(0).normal(0.0, 5.0, (2000, 4)).astype(np.float32)
    positions = np.column_stack([np.zeros(4), 20.0 * np.arange(4)])
    with pytest.raises(SortingConfigError, match="channels-first"):
        sort_recording(x.T, SFREQ, positions)


# -- calibration on noise -----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_white_noise_gives_no_unit(seed: int) -> None:
    """2 s of white noise on 4 channels: the median reference fattens the tails past 5 MAD-sigma,
    and before this was checked the sorter clustered those noise peaks into one or two units."""
    x = np.random.default_rng(seed).normal(0.0, 10.0, (int(2 * SFREQ), 4)).astype(np.float32)
    with pytest.raises(SortingError, match="noise"):
        sort_recording(x, SFREQ)


@pytest.mark.parametrize(
    "setting", [{"sweep_ms": 1e9}, {"max_shift": 10**9}, {"tail_ms": 1e6}, {"pre_ms": 1e4}]
)
def test_settings_that_would_allocate_gigabytes_are_refused(setting: dict[str, float]) -> None:
    # a fuzzed template header with these values made the sorter ask for 24 GB
    name = next(iter(setting))
    with pytest.raises(ConfigError, match=name):
        OnlineSorter(**setting)


def test_a_template_bank_whose_windows_do_not_fit_its_templates_is_refused() -> None:
    templates = np.zeros((1, 40, 4), np.float32)
    common = dict(templates=templates, noise=np.ones(4), positions=np.zeros((4, 2)), sfreq=3e4)
    with pytest.raises(SortingError, match="max_offset"):
        TemplateBank(pre=12, n_match=24, n_spikes=np.array([5]), max_offset=10**9, **common)
    with pytest.raises(SortingError, match="do not fit"):
        TemplateBank(pre=12, n_match=10**6, n_spikes=np.array([5]), **common)
