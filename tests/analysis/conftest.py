"""Analysis tests share the recorded lockstep plant session of tests/session/_plant_run.py."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ is no package: make the session room's recording helper importable here too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "session"))
