"""Write a run's ``analysis.json`` (every number) and ``report.html`` (self-contained: inline CSS,
figures embedded as base64 PNG), and the cross-run controller comparison (CSV, markdown, HTML)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bci.analysis.run import RunAnalysis
from bci.session.run_folder import to_builtin

__all__ = [
    "COMPARISON_COLUMNS",
    "comparison_rows",
    "write_analysis",
    "write_comparison",
]

REPORT_FILE_NAME = "report.html"
ANALYSIS_FILE_NAME = "analysis.json"
#: Columns of the controller comparison: (key, header)
COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("controller", "controller"),
    ("error_index", "error index"),
    ("gpi_beta", "GPi beta"),
    ("energy_j", "energy (J, 1 kOhm)"),
    ("time_on_stim_s", "time on stim (s)"),
    ("loop_latency_p50_ms", "latency p50 (ms)"),
    ("loop_latency_p99_ms", "latency p99 (ms)"),
    ("n_units", "units"),
    ("mean_rate_hz", "mean rate (Hz)"),
    ("beta_power_mean", "LFP beta"),
    ("missing", "missing"),
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.missing{background:#fff4e5;border:1px solid #f0b97a;padding:8px 12px}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}
.grid{display:flex;flex-wrap:wrap;gap:12px}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k, _ in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _unit_rows(numbers: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [dict(r) for r in numbers.get("units", [])]
    acc = {
        u["matched_unit"]: u
        for u in (numbers.get("sorting_accuracy") or {}).get("units", [])
        if u.get("matched_unit") is not None
    }
    for r in rows:
        if r["unit_id"] in acc:
            r["gt_unit"] = acc[r["unit_id"]]["gt_unit"]
            r["accuracy"] = acc[r["unit_id"]]["accuracy"]
    return rows


def comparison_row(numbers: dict[str, Any]) -> dict[str, Any]:
    """One run's row of the controller comparison (from its ``analysis.json`` numbers)."""
    loop = numbers.get("closed_loop", {})
    units = numbers.get("units", [])
    row = {k: loop.get(k) for k, _ in COMPARISON_COLUMNS if k in loop}
    row["run"] = numbers.get("run")
    row["n_units"] = len(units)
    rates = [u["mean_rate_hz"] for u in units]
    row["mean_rate_hz"] = sum(rates) / len(rates) if rates else None
    row["beta_power_mean"] = (numbers.get("lfp") or {}).get("beta_power_mean")
    row["missing"] = len(numbers.get("missing", []))
    return row


def comparison_rows(analyses: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [comparison_row(n) for n in analyses]


def _figure_html(figures: dict[str, bytes]) -> str:
    parts = []
    for title, png in figures.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
        )
    return "\n".join(parts)


def report_html(analysis: RunAnalysis, figures: dict[str, bytes]) -> str:
    """The self-contained HTML report of one run."""
    n = analysis.numbers
    missing = n.get("missing", [])
    miss = (
        '<div class="missing"><b>Missing or damaged:</b><ul>'
        + "".join(f"<li>{html.escape(m)}</li>" for m in missing)
        + "</ul></div>"
        if missing
        else ""
    )
    loop = comparison_row(n)
    unit_cols = [("unit_id", "unit"), ("n_spikes", "spikes"), ("mean_rate_hz", "mean rate (Hz)"),
                 ("instantaneous_rate_max_hz", "max inst. rate (Hz)"), ("isi_cv", "ISI CV"),
                 ("isi_lv", "ISI LV"), ("gt_unit", "GT unit"), ("accuracy", "accuracy")]  # fmt: skip
    sync = n.get("synchrony") or {}
    lfp = n.get("lfp") or {}
    sta = n.get("stim_triggered_average") or {}
    extra = [
        {"metric": "mean spike-time tiling coefficient", "value": sync.get("sttc_mean")},
        {"metric": "population spike contrast", "value": sync.get("spike_contrast")},
        {"metric": f"mean LFP beta power ({lfp.get('psd_unit', '')})", "value": lfp.get("beta_power_mean")},
        {"metric": "stimulation-triggered average peak-to-peak", "value": sta.get("peak_to_peak")},
        {"metric": "duration (s)", "value": n.get("duration_s")},
    ]  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bci analysis: {html.escape(str(n["run"]))}</title>
<style>{_CSS}</style></head><body>
<h1>Session {html.escape(str(n["run"]))}</h1>
<p>{html.escape(str(n["path"]))}, loaded from {html.escape(n.get("loaded_from") or "nothing")}.
Every number below is in <code>analysis.json</code> next to this file.</p>
{miss}
<h2>Closed loop</h2>
{_table([loop], COMPARISON_COLUMNS[1:-1])}
<h2>Units ({html.escape(str(n.get("units_source")))})</h2>
{_table(_unit_rows(n), unit_cols)}
<h2>Synchrony, LFP, stimulation</h2>
{_table(extra, [("metric", "metric"), ("value", "value")])}
<h2>Figures</h2>
{_figure_html(figures)}
</body></html>
"""


def write_analysis(analysis: RunAnalysis, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``analysis.json`` and ``report.html`` into ``out_dir`` (default: the run folder)."""
    from bci.analysis.figures import render_figures

    run_path = analysis.run.path
    out = (
        Path(out_dir)
        if out_dir is not None
        else (run_path if run_path.is_dir() else run_path.parent)
    )
    out.mkdir(parents=True, exist_ok=True)
    js = out / ANALYSIS_FILE_NAME
    js.write_text(json.dumps(to_builtin(analysis.numbers), indent=1) + "\n", encoding="utf-8")
    page = out / REPORT_FILE_NAME
    page.write_text(report_html(analysis, render_figures(analysis)), encoding="utf-8")
    return js, page


def comparison_markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = "| " + " | ".join(h for _, h in COMPARISON_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COMPARISON_COLUMNS) + "|"
    body = [
        "| " + " | ".join(html.unescape(_fmt(r.get(k))) for k, _ in COMPARISON_COLUMNS) + " |"
        for r in rows
    ]
    return "\n".join([head, sep, *body]) + "\n"


def write_comparison(
    rows: Sequence[dict[str, Any]], out_dir: str | Path, *, errors: Sequence[dict[str, str]] = ()
) -> dict[str, Path]:
    """Write ``comparison.csv``, ``comparison.md``, ``comparison.html`` and ``comparison.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"comparison.{ext}" for ext in ("csv", "md", "html", "json")}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[k for k, _ in COMPARISON_COLUMNS] + ["error"])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k) for k, _ in COMPARISON_COLUMNS})
    for e in errors:
        writer.writerow({"run": e["run"], "error": e["error"]})
    paths["csv"].write_text(buf.getvalue(), encoding="utf-8")
    md = comparison_markdown(rows)
    if errors:
        md += "\nFailed:\n\n" + "".join(f"- {e['run']}: {e['error']}\n" for e in errors)
    paths["md"].write_text(md, encoding="utf-8")
    err_html = "".join(
        f"<li>{html.escape(e['run'])}: {html.escape(e['error'])}</li>" for e in errors
    )
    paths["html"].write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Controller comparison</title>"
        f"<style>{_CSS}</style></head><body><h1>Controller comparison</h1>"
        f"{_table(rows, COMPARISON_COLUMNS)}"
        + (f"<div class='missing'><b>Failed:</b><ul>{err_html}</ul></div>" if errors else "")
        + "</body></html>\n",
        encoding="utf-8",
    )
    paths["json"].write_text(
        json.dumps(to_builtin({"rows": list(rows), "errors": list(errors)}), indent=1) + "\n",
        encoding="utf-8",
    )
    return paths
