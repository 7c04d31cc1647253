"""The live view of a running session in the terminal (rich), and the result tables.

:class:`LiveView` is given a snapshot of the loop (:meth:`bci.runner.loop.SessionRunner.snapshot`)
about four times a second and redraws from its own thread, so drawing never runs inside the loop:
stream health (rate, gaps, stalls), units and firing rates, the decoded symptom against the true
one (plant sessions), the stimulation (amplitude, frequency, energy so far), loop latency p50/p99,
deadline misses and what the limiter changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

__all__ = ["LiveView", "compare_table", "summary_table"]


def _num(value: Any, fmt: str = ".3f", missing: str = "-") -> str:
    if value is None:
        return missing
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return missing if not math.isfinite(x) else format(x, fmt)


class LiveView:
    """Redraw the latest snapshot in the terminal (use as a context manager)."""

    def __init__(self, console: Console | None = None, title: str = "bci run") -> None:
        self.console = console or Console()
        self.title = title
        self._snapshot: dict[str, Any] = {}
        self._live: Live | None = None

    def __call__(self, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot  # one assignment: the drawing thread sees old or new, whole

    def __enter__(self) -> LiveView:
        self._live = Live(
            console=self.console,
            refresh_per_second=4,
            get_renderable=self.render,
            transient=True,
        )
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def render(self) -> RenderableType:
        s = self._snapshot
        if not s:
            return Panel("starting the source, the recorder and the loop ...", title=self.title)
        src = s.get("source") or {}
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        phase = "calibrating (DBS off)" if s.get("calibrating") else "closed loop"
        table.add_row(
            "progress",
            Group(
                ProgressBar(total=1.0, completed=min(1.0, float(s.get("progress", 0.0))), width=40),
                f"{_num(s.get('signal_s'), '.1f')} s of signal, {phase}",
            ),
        )
        table.add_row(
            "stream",
            f"{src.get('name', '?')}: {src.get('state', '?')}, "
            f"{_num(src.get('effective_rate_hz'), '.0f')} Hz, gaps {src.get('gaps', 0)} "
            f"({src.get('gap_samples', 0)} samples), data age "
            f"{_num(src.get('last_data_age_ms'), '.1f')} ms",
        )
        rates = s.get("rates_hz") or []
        shown = " ".join(_num(r, ".1f") for r in rates[:12]) + (" ..." if len(rates) > 12 else "")
        table.add_row("units", f"{s.get('units', 0)} sorted; rates (Hz) {shown or '-'}")
        if s.get("decoded_names"):
            decoded = s.get("decoded_values") or [None] * len(s["decoded_names"])
            true = s.get("true_values") or [None] * len(s["decoded_names"])
            table.add_row(
                "decoded (true)",
                "   ".join(
                    f"{n} {_num(d, '.1f')} ({_num(t, '.1f')})"
                    for n, d, t in zip(s["decoded_names"], decoded, true, strict=False)
                ),
            )
        elif s.get("decoded") is not None or s.get("true") is not None:
            table.add_row(
                "symptom",
                f"decoded {_num(s.get('decoded'))}   true GPi beta {_num(s.get('true'))}   "
                f"error index {_num(s.get('error_index'))}",
            )
        command = s.get("command")
        if command is not None:
            table.add_row(
                "stimulation",
                f"{_num(command['amplitude_ma'], '.2f')} mA, {_num(command['frequency_hz'], '.0f')} "
                f"Hz, {_num(command['pulse_width_us'], '.0f')} us; energy so far "
                f"{_num(s.get('energy_j'), '.2e')} J",
            )
        table.add_row(
            "loop latency",
            f"p50 {_num(s.get('latency_p50_ms'), '.2f')} ms, p99 "
            f"{_num(s.get('latency_p99_ms'), '.2f')} ms; deadline misses "
            f"{s.get('deadline_misses', 0)}",
        )
        table.add_row("safety", f"{s.get('safety_changes', 0)} commands changed by the limiter")
        for event in s.get("events") or []:
            table.add_row("event", str(event)[:110])
        title = f"{self.title}: {s.get('session')}" + (f" ({s['label']})" if s.get("label") else "")
        return Panel(table, title=title)


def summary_table(summary: dict[str, Any]) -> Table:
    """What one run measured, one row per number."""
    table = Table(title=f"{summary.get('session')}: {summary.get('status')}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    lat = summary.get("loop_latency") or {}
    table.add_row("signal processed (s)", _num(summary.get("signal_s"), ".2f"))
    table.add_row("wall time (s)", _num(summary.get("wall_s"), ".1f"))
    table.add_row("sorted units", str(summary.get("units")))
    table.add_row(
        "loop latency p50 / p99 (ms)",
        f"{_num(lat.get('p50_ms'), '.2f')} / {_num(lat.get('p99_ms'), '.2f')}",
    )
    table.add_row(
        "deadline misses / commands", f"{lat.get('deadline_misses', 0)} / {lat.get('commands', 0)}"
    )
    for row in summary.get("stages") or []:
        table.add_row(
            f"  {row['stage']} p50 / p99 (ms), share",
            f"{_num(row['p50_ms'])} / {_num(row['p99_ms'])}, {100 * row['share']:.0f}%",
        )
    plant = summary.get("plant") or {}
    if plant:
        table.add_row("error index", _num(plant.get("error_index")))
        table.add_row("GPi beta", _num(plant.get("gpi_beta")))
        table.add_row("energy (J)", _num(plant.get("energy_j"), ".3e"))
        table.add_row("time on stimulation", _num(plant.get("time_on_stim"), ".0%"))
    tracking = summary.get("decoder_tracking") or {}
    if tracking.get("outputs"):
        for name, row in tracking["outputs"].items():
            table.add_row(
                f"decoded {name} vs true: r (R2)",
                f"{_num(row.get('r'), '.2f')} ({_num(row.get('r2'), '.2f')})",
            )
    elif tracking:
        truth = {"beta_gpi": "GPi beta", "pd_state": "state"}.get(tracking.get("truth", ""), "")
        table.add_row(
            f"decoder vs true {truth or 'GPi beta'}: r (R2)",
            f"{_num(tracking.get('r'), '.2f')} ({_num(tracking.get('r2'), '.2f')})",
        )
    if summary.get("error"):
        table.add_row("error", str(summary["error"]))
    return table


def compare_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> Table:
    """The runs of one seed side by side: symptom, energy, time on stimulation, latency, units."""
    table = Table(title="same plant seed, one run per controller", padding=(0, 1))
    for col in (
        "run",
        "error index",
        "GPi beta",
        "energy J",
        "vs cont.",
        "on stim",
        "latency p50/p99 ms",
        "units",
        "decoder r",
    ):
        table.add_column(col, justify="left" if col == "run" else "right")
    ref = next(
        (
            (s.get("plant") or {}).get("energy_j")
            for label, s in rows
            if label == "continuous" or s.get("controller") == "continuous"
        ),
        None,
    )
    for label, s in rows:
        plant = s.get("plant") or {}
        lat = s.get("loop_latency") or {}
        tracking = s.get("decoder_tracking") or {}
        energy = plant.get("energy_j")
        rel = energy / ref if ref and energy is not None else None
        status = s.get("status")
        table.add_row(
            label if status == "completed" else f"{label} ({status})",
            _num(plant.get("error_index")),
            _num(plant.get("gpi_beta")),
            _num(energy, ".2e"),
            _num(rel, ".0%"),
            _num(plant.get("time_on_stim"), ".0%"),
            f"{_num(lat.get('p50_ms'), '.1f')}/{_num(lat.get('p99_ms'), '.1f')}",
            str(s.get("units")),
            _num(tracking.get("r"), ".2f"),
        )
    return table
