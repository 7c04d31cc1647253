"""Run folders: unique time-stamped directories, config.yaml with every stage, summary.json."""

from __future__ import annotations

import datetime as dt
import json
import threading

import numpy as np
import pytest
import yaml

from bci import ConfigError
from bci.session.run_folder import create_run_dir, write_config, write_summary
from bci.stream.pipeline import Pipeline
from bci.stream.stage import Stage, stage_from_dict


class _Gain(Stage, name="test_run_folder_gain"):
    def __init__(self, gain_db: float = 0.0, channels: tuple[int, ...] = ()) -> None:
        self.gain_db = gain_db

    def process(self, chunk):
        return chunk


def test_run_dir_name_and_uniqueness_within_one_second(tmp_path):
    now = dt.datetime(2025, 3, 4, 5, 6, 7)
    first = create_run_dir("closed_loop_dbs", tmp_path / "runs", now=now)
    assert first.name == "20250304-050607-closed_loop_dbs" and first.is_dir()
    second = create_run_dir("closed_loop_dbs", tmp_path / "runs", now=now)
    assert second != first and second.name.startswith("20250304-050607-closed_loop_dbs")
    # many runs started in the same second from several threads never share a folder
    made: list = []
    threads = [
        threading.Thread(target=lambda: made.append(create_run_dir("x", tmp_path, now=now)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8
    fresh = create_run_dir("demo", tmp_path)
    stamp = dt.datetime.strptime(fresh.name[:15], "%Y%m%d-%H%M%S")
    assert abs((dt.datetime.now() - stamp).total_seconds()) < 60


@pytest.mark.parametrize("bad", ["", "two words", "a/b", "../up"])
def test_bad_run_names_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="'name'"):
        create_run_dir(bad, tmp_path)


def test_config_yaml_holds_every_stage_and_rebuilds_it(tmp_path):
    pipeline = Pipeline([_Gain(gain_db=np.float32(6.0), channels=(1, 2)), _Gain()])
    config = {"name": "demo", "seed": np.int64(3), "pipeline": pipeline.to_dict()}
    path = write_config(tmp_path, config)
    assert path.name == "config.yaml"
    loaded = yaml.safe_load(path.read_text())
    assert loaded["seed"] == 3
    assert [s["stage"] for s in loaded["pipeline"]["stages"]] == ["test_run_folder_gain"] * 2
    rebuilt = stage_from_dict(loaded["pipeline"]["stages"][0])
    assert rebuilt.params == {"gain_db": 6.0, "channels": [1, 2]}


def test_summary_json_converts_numpy_types(tmp_path):
    metrics = {
        "error_index": np.float64(0.25),
        "n_spikes": np.int32(12),
        "rates_hz": np.array([1.5, 2.0]),
        "stable": np.bool_(True),
        "beta_power": float("nan"),
        "per_unit": {np.int64(3): np.float32(0.5)},
    }
    data = json.loads(write_summary(tmp_path, metrics).read_text())
    assert data == {
        "error_index": 0.25,
        "n_spikes": 12,
        "rates_hz": [1.5, 2.0],
        "stable": True,
        "beta_power": None,
        "per_unit": {"3": 0.5},
    }
    with pytest.raises(ConfigError, match="object"):
        write_summary(tmp_path, {"x": object()})


def test_a_run_folder_on_a_read_only_file_system_is_a_clear_error() -> None:
    from bci.errors import BCIError

    with pytest.raises(
        BCIError, match="Cannot create a run folder in '/sys/bci-runs'.*--runs-root"
    ):
        create_run_dir("demo", "/sys/bci-runs")
