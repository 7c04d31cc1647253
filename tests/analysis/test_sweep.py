"""bci sweep: seeds and --set values, checked before anything runs."""

from __future__ import annotations

import pytest

from bci.analysis.sweep import SweepJob, parse_seeds, parse_sets
from bci.errors import ConfigError


def test_seed_ranges_and_lists() -> None:
    assert parse_seeds("0-19") == list(range(20))
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-2, 7,9-10") == [0, 1, 2, 7, 9, 10]


@pytest.mark.parametrize("bad", ["", "a", "3-1", "1--2", "-1"])
def test_bad_seeds_name_the_flag(bad: str) -> None:
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(bad)


def test_sets_give_every_combination() -> None:
    combos = parse_sets(["controller.params.gain=0.5,1.0", "duration_s=4"])
    assert combos == [
        ["controller.params.gain=0.5", "duration_s=4"],
        ["controller.params.gain=1.0", "duration_s=4"],
    ]
    assert parse_sets([]) == [[]]
    with pytest.raises(ConfigError, match="--set"):
        parse_sets(["novalue"])
    job = SweepJob("s.yaml", 3, ("controller.params.gain=0.5",))
    assert job.label == "seed3-controller.params.gain_0.5"


def _mini_session(tmp_path):  # type: ignore[no-untyped-def]
    """The whole-loop test's lockstep session (its stand-in decoder and controller), 4 s."""
    import sys
    from pathlib import Path

    import yaml

    pytest.importorskip("bci.runner")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from test_closed_loop import loop_config

    config = loop_config(tmp_path / "runs", name="mini_loop", duration_s=4.0)
    config["calibration"] = {"duration_s": 2.0}
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_bad_sweep_value_fails_before_any_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from bci.cli.main import cli

    session = _mini_session(tmp_path)
    result = CliRunner().invoke(
        cli, ["sweep", str(session), "--seeds", "0-3", "--set", "duration_s=4,-1", "--no-ray"]
    )
    assert result.exit_code == 2 and "duration_s" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("use_ray", [False, True])
def test_sweep_runs_every_seed_into_run_folders(tmp_path, use_ray: bool) -> None:  # type: ignore[no-untyped-def]
    import csv

    from click.testing import CliRunner

    from bci.cli.main import cli

    if use_ray:
        pytest.importorskip("ray")
    session = _mini_session(tmp_path)
    args = [
        "sweep",
        str(session),
        "--seeds",
        "0-1",
        "--set",
        "controller.params.amplitude_ma=1.0,2.0",
    ]
    result = CliRunner().invoke(cli, [*args, "--ray" if use_ray else "--no-ray", "--cpus", "2"])
    assert result.exit_code == 0, result.output
    with (tmp_path / "runs" / "sweep.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["seed"], r["set"]) for r in rows] == [
        ("0", "controller.params.amplitude_ma=1.0"), ("0", "controller.params.amplitude_ma=2.0"),
        ("1", "controller.params.amplitude_ma=1.0"), ("1", "controller.params.amplitude_ma=2.0"),
    ]  # fmt: skip
    assert all(r["status"] == "completed" and float(r["error_index"]) >= 0 for r in rows)
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert len(folders) == 4 and all("mini_loop-seed" in f for f in folders)
    for f in folders:
        assert (tmp_path / "runs" / f / "recording.xdf").is_file()
