"""Batches of runs: a failing run is reported and the others finish (in-process and on Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _plant_run import PlantRun, record_plant_run
from click.testing import CliRunner

from bci.analysis.batch import analyze_runs
from bci.cli.main import cli

pytestmark = pytest.mark.filterwarnings("ignore::quantities.QuantitiesDeprecationWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sessions/runs-like folder: two good runs and one whose report cannot be written."""
    root = tmp_path_factory.mktemp("batch")
    run: PlantRun = record_plant_run(root / "src", seconds=1.5)
    for name in ("a-good", "b-broken", "c-good"):
        shutil.copytree(run.run_dir, root / "runs" / name)
    (root / "runs" / "b-broken" / "report.html").mkdir()  # writing the report fails
    return root / "runs"


def test_a_failing_run_is_reported_and_the_others_finish(runs: Path) -> None:
    paths = sorted(runs.iterdir())
    seen: list[str] = []
    result = analyze_runs(paths, on_done=lambda p, row, err: seen.append(Path(p).name))
    assert sorted(seen) == ["a-good", "b-broken", "c-good"]
    assert [r["run"] for r in result.rows] == ["a-good", "c-good"]
    assert len(result.errors) == 1 and result.errors[0]["run"].endswith("b-broken")
    assert "IsADirectoryError" in result.errors[0]["error"]
    assert (runs / "c-good" / "report.html").is_file()


@pytest.mark.slow
def test_many_on_ray_reports_the_failed_task_and_writes_one_table(runs: Path) -> None:
    pytest.importorskip("ray")
    for name in ("a-good", "c-good"):
        (runs / name / "report.html").unlink(missing_ok=True)
    result = CliRunner().invoke(cli, ["analyze", "--many", str(runs / "*"), "--cpus", "2"])
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.output and "b-broken" in result.output
    assert "IsADirectoryError" in result.output and "Ray start-up" in result.output
    assert (runs / "a-good" / "report.html").is_file() and (
        runs / "c-good" / "report.html"
    ).is_file()
    csv = (runs / "comparison.csv").read_text().splitlines()
    assert len(csv) == 4 and csv[3].startswith(str(runs / "b-broken"))
