"""Offline analysis of recorded sessions with neo and elephant: metrics, reports, comparisons.

``bci analyze RUN_DIR [RUN_DIR...]`` (and ``--many 'sessions/runs/*'`` on Ray) is the command; in
Python, :func:`analyze_run` returns every number and :func:`write_analysis` writes ``analysis.json``
and ``report.html``. Needs no Ray unless asked to (``bci.analysis.batch``).
"""

from bci.analysis.data import RunData, load_run
from bci.analysis.metrics import AnalysisSettings
from bci.analysis.report import write_analysis, write_comparison
from bci.analysis.run import RunAnalysis, analyze_run

__all__ = [
    "AnalysisSettings",
    "RunAnalysis",
    "RunData",
    "analyze_run",
    "load_run",
    "write_analysis",
    "write_comparison",
]
