"""Every shipped session config loads and builds; `bci sessions` lists them; the short ones run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bci.cli.main import cli
from bci.runner import build_parts, shipped_sessions
from bci.runner.session import resolve_session_path, sessions_dir
from bci.session.config import load_session

SESSIONS = sorted(p.stem for p in sessions_dir().glob("*.yaml"))


def test_the_shipped_sessions_are_the_ones_the_readme_names() -> None:
    assert set(SESSIONS) >= {
        "closed_loop_dbs",
        "compare_controllers",
        "first_look",
        "lsl_device",
        "motor_decoding",
        "replay",
    }


@pytest.mark.parametrize("name", SESSIONS)
def test_every_shipped_session_loads_and_builds(name: str) -> None:
    path = resolve_session_path(name)
    config = load_session(path)  # every model file a shipped session names is shipped
    assert config.name == name and config.description
    parts = build_parts(config)
    assert len(parts.stages) == len(config.pipeline)
    for entry in config.compare:
        build_parts(config, entry.controller)


def test_bci_sessions_lists_each_shipped_session_on_one_line() -> None:
    out = CliRunner().invoke(cli, ["sessions"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == len(SESSIONS) == len(shipped_sessions())
    for name, line in zip(SESSIONS, lines, strict=True):
        assert line.startswith(name) and len(line.split(None, 1)[1]) > 20


def test_run_help_and_a_bad_session_exit_with_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["run", "--help"])
    assert out.exit_code == 0 and "--set" in out.output and "--quiet" in out.output
    out = runner.invoke(cli, ["run", "no_such_session"])
    assert out.exit_code == 2 and "first_look" in out.output  # lists what exists
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        resolve_session_path("first_look").read_text().replace("duration_s: 12", "duration_s: -3")
    )
    out = runner.invoke(cli, ["run", str(bad)])
    assert out.exit_code == 2 and "'duration_s'" in out.output and "-3" in out.output
    out = runner.invoke(cli, ["run", "first_look", "--set", "pipeline.0.stage=bandpas"])
    assert out.exit_code == 2 and "'bandpas'" in out.output and "'bandpass'" in out.output


def test_a_controller_fed_another_decoder_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    """The shipped RL-SNN actor reads the decoded state; with the STN beta decoder in front of it
    the session must fail at once (behind the calibrating sorter the chain would meet the
    mismatch only after the plant and the recorder had run for the calibration)."""
    runs = tmp_path / "runs"
    out = CliRunner().invoke(
        cli,
        ["run", "closed_loop_dbs", "--quiet", "--no-compare", "--runs-root", str(runs),
         "--set", "decoder.model=../decoders/models/symptom_gpi_beta.npz"],
    )  # fmt: skip
    assert out.exit_code != 0
    assert "trained on the decoded 'pd_state'" in out.output and "'gpi_beta'" in out.output
    assert "Traceback" not in out.output
    assert not runs.exists() or not any(runs.iterdir())  # no run folder: nothing started
