"""The report renders in a real browser: headless Chromium takes a screenshot that is not blank."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _plant_run import record_plant_run

from bci.analysis import analyze_run, write_analysis

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--hide-scrollbars",
]  # fmt: skip


def chromium_binary() -> str | None:
    return next(
        (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::quantities.QuantitiesDeprecationWarning")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    run = record_plant_run(tmp_path / "runs", seconds=2.0)
    _, page = write_analysis(analyze_run(run.run_dir))
    shot = tmp_path / "report.png"
    subprocess.run(
        [binary, *CHROMIUM_FLAGS, "--window-size=1100,2400", f"--screenshot={shot}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2400, 1100)
    gray = pixels[..., :3].mean(axis=2)
    # text, tables and figures: many dark pixels spread over the page, not a blank or error page
    dark_rows = np.flatnonzero((gray < 0.5).sum(axis=1) > 20)
    assert dark_rows.size > 300 and dark_rows.max() > 1500
