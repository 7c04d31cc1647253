"""What a run reports: the live view's snapshots and ``summary.json``.

:class:`RunReport` is the reporting half of :class:`bci.runner.loop.SessionRunner` (a mixin over
the measurements the loop keeps): the snapshot the live view draws about four times a second, the
plant's numbers from its biomarker samples (:func:`bci.runner.metrics.plant_outcome`), the decoder's
tracking of the true symptom, and the summary written into the run folder.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bci.runner.chain import StageChain
from bci.runner.metrics import LatencyLog, decoder_tracking, plant_outcome
from bci.runner.outlets import LoopOutlets
from bci.runner.rows import Rows
from bci.runner.sources import SourceSession
from bci.runner.truth import TruthFeed, decoded_tracking
from bci.runner.windows import WindowLog
from bci.session.config import ControllerConfig, SessionConfig

if TYPE_CHECKING:
    from bci.runner.commands import CommandPath

__all__ = ["RunReport"]

#: Seconds after the first spike before a decoder is scored against the truth.
TRACKING_SETTLE_S = 1.0


class RunReport:
    """Snapshots and the summary, from what the loop measured (attributes set by the runner)."""

    config: SessionConfig
    controller_config: ControllerConfig | None
    label: str | None
    run_id: str
    run_dir: Path | None
    latency: LatencyLog
    source_session: SourceSession | None
    outlets: LoopOutlets | None
    chain: StageChain | None
    events: list[str]
    unit_counts: np.ndarray
    n_unsorted: int
    skipped_samples: int
    samples: int
    t0_lsl: float | None
    t_online: float | None
    decoded_t: Rows
    decoded_v: Rows
    decoded_rows: Rows
    decoded_centre_t: Rows
    decoded_names: list[str]
    t_first_spike: float | None
    truth: TruthFeed | None
    bio_values: Rows
    bio_stamps: Rows
    commands: CommandPath
    wall_s: float
    phases: dict[str, float]
    pulse_feed: Any
    windows: WindowLog | None
    recorder: Any
    _window_source: Any = None
    _window_sfreq: float = 0.0

    # ------------------------------------------------------------------ windows.csv
    def _start_windows(self, lsl: Any, sfreq: float) -> None:
        """Open ``windows.csv`` in the run folder (:mod:`bci.runner.windows`) as the loop starts."""
        if self.run_dir is None:
            return
        self._window_source, self._window_sfreq = lsl, float(sfreq)
        self.windows = WindowLog(self.run_dir / "windows.csv", self.latency)
        self.windows.start(time.monotonic(), self._window_counters())

    def _window_counters(self) -> dict[str, float]:
        counts: dict[str, Any] = {}
        if self._window_source is not None:
            try:
                counts = self._window_source.status()
            except Exception:  # a closed or broken source: the row says nothing about it
                counts = {}
        return {
            "signal_s": self.samples / self._window_sfreq if self._window_sfreq else 0.0,
            "commands": float(self.commands.n_sent),
            "periods": float(len(self.bio_stamps)),
            "chunks": float(self.latency.chunks),
            "gaps": float(counts.get("gaps", 0)),
            "gap_samples": float(counts.get("gap_samples", 0)),
            "nan_samples": float(counts.get("nan_samples", 0)),
        }

    def _window_pids(self) -> dict[str, int | None]:
        source = self.source_session
        child = None if source is None else source.child
        return {
            "runner": os.getpid(),
            "plant": None if child is None or not child.alive else child.pid,
            "recorder": None if self.recorder is None else self.recorder.process.pid,
        }

    def _close_window(self, now: float, counters: dict[str, float] | None = None) -> None:
        assert self.windows is not None
        counters = self._window_counters() if counters is None else counters
        self.windows.close_window(now, counters, self._window_pids())

    def _last_window(self) -> tuple[float, dict[str, float]] | None:
        """The loop's counters as it ends (cheap), taken before the safe state's commands go out
        so the last window holds what the loop did; None without windows."""
        if self.windows is None or self.windows.closed:
            return None
        try:
            return time.monotonic(), self._window_counters()
        except Exception:  # the way out must go on: the window is written from later counters
            return None

    def _end_windows(self, last: tuple[float, dict[str, float]] | None = None) -> None:
        """The last (partial) window (at ``last``: :meth:`_last_window`, else now),
        ``latency_ms.npy``; the CSV closed."""
        windows = self.windows
        if windows is None or windows.closed:
            return
        try:
            if last is None:
                self._close_window(time.monotonic())
            else:
                self._close_window(*last)
        except Exception as err:  # the way out must go on: safe state, recorder, summary
            self.events.append(f"last window not written: {type(err).__name__}: {err}")
        finally:
            try:
                windows.close(None if self.run_dir is None else self.run_dir / "latency_ms.npy")
            except OSError as err:
                self.events.append(f"latency_ms.npy not written: {err}")
        if windows.write_error is not None:
            self.events.append(f"windows.csv stopped: {windows.write_error}")

    def snapshot(self, source_status: dict[str, Any], total_samples: int) -> dict[str, Any]:
        """What the live view shows (cheap: called about four times a second)."""
        p50, p99 = self.latency.percentiles(recent=2000)
        sfreq = float(source_status.get("effective_rate_hz") or 1.0)
        online_s = max(1e-9, self._online_seconds(sfreq))
        bio = self._bio_latest()
        return {
            "session": self.config.name,
            "label": self.label,
            "progress": self.samples / max(1, total_samples),
            "signal_s": self.samples / sfreq,
            "source": source_status,
            "calibrating": self.chain.is_calibrating if self.chain is not None else True,
            "units": int(self.unit_counts.size),
            "rates_hz": (self.unit_counts / online_s).tolist(),
            "decoded": self.decoded_v[-1] if self.decoded_v else None,
            "true": bio.get("beta_gpi"),
            # a decoder with a true counterpart (motor kinematics): every output, by name
            "decoded_names": self.decoded_names if self.truth is not None else [],
            "decoded_values": self.decoded_rows[-1] if self.decoded_rows else None,
            "true_values": None if self.truth is None else self.truth.latest(self.decoded_names),
            "error_index": bio.get("error_index"),
            "command": None
            if self.commands.last_sent is None
            else dataclasses.asdict(self.commands.last_sent),
            "energy_j": self._energy_so_far(),
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "deadline_misses": self.latency.misses,
            "safety_changes": self.commands.n_changed,
            "events": self.events[-4:],
        }

    def _tracking_from(self) -> float:
        """Where scoring a decoder against the truth starts: one second after the first spike
        (a threshold detector's calibration ends there, then the decoder's state settles)."""
        if self.t_first_spike is None:
            return float("inf")
        return self.t_first_spike + TRACKING_SETTLE_S

    def _online_seconds(self, sfreq: float) -> float:
        if self.t_online is None or self.t0_lsl is None:
            return 0.0
        return (self.skipped_samples + self.samples) / sfreq - (self.t_online - self.t0_lsl)

    def _bio_labels(self) -> list[str]:
        from stimulation.plant.streams import BIOMARKER_CHANNELS

        return list(BIOMARKER_CHANNELS)

    def _bio_latest(self) -> dict[str, float]:
        if not self.bio_values:
            return {}
        return dict(zip(self._bio_labels(), self.bio_values[-1], strict=False))

    def _plant_numbers(self) -> dict[str, Any] | None:
        source = self.source_session
        if source is None or source.plant is None or not self.bio_values:
            return None
        window_s = source.plant.window_s
        t_online = self.t_online if self.t_online is not None else float("inf")
        return plant_outcome(
            self._bio_labels(),
            np.asarray(self.bio_values),
            np.asarray(self.bio_stamps),
            t_online,
            window_s,
            source.plant.control_period_s,
        )

    def _energy_so_far(self) -> float | None:
        numbers = self._plant_numbers()
        return None if numbers is None else numbers["energy_j"]

    def _summary(
        self, status: str, error: str | None, plant_stats: dict[str, Any], recorder: Any
    ) -> dict[str, Any]:
        config = self.config
        source = self.source_session
        plant = None if source is None else source.plant
        gate = getattr(self, "gate", None)
        out: dict[str, Any] = {
            "session": config.name,
            "label": self.label,
            "run_id": self.run_id,
            "status": status,
            "error": error,
            "pacing": config.pacing,
            "seed": config.source_seed,
            "controller": None if self.controller_config is None else self.controller_config.stage,
            "duration_s": config.duration_s,
            "signal_s": None,
            "skipped_samples": self.skipped_samples,
            "wall_s": self.wall_s,
            "wall_phases_s": self.phases,
            "t0_lsl": self.t0_lsl,
            "t_online_lsl": self.t_online,
            "calibration": [] if self.chain is None else self.chain.calibrations,
            "stages": [] if self.chain is None else self.chain.timing(),
            "limiter": self.commands.limiter_time.summary(),
            "loop_latency": self.latency.summary(),
            "units": int(self.unit_counts.size),
            "unit_spikes": self.unit_counts.tolist(),
            "unsorted_spikes": self.n_unsorted,
            "pulses_registered": 0 if self.pulse_feed is None else self.pulse_feed.n_pulses,
            "pulse_waits_timed_out": getattr(self, "pulse_waits_timed_out", 0),
            "streams": {} if self.outlets is None else dict(self.outlets.counts),
            "commands": self.commands.summary(),
            "safety_events": dict(self.commands.safety_counts),
            "events": self.events,
            "plant": None,
            "decoder_tracking": None,
            "plant_process": plant_stats,
            "recording": None,
            "windows": None if self.windows is None else self.windows.rows,
            "stimulation_enabled_s": None if gate is None else gate.enabled_at_s,
            "commands_held_calibrating": 0 if gate is None else gate.held,
            # bins marked invalid (NaN/inf or lost signal): not decoded, not acted on
            "invalid_bins": 0
            if self.chain is None
            else int(sum(getattr(st, "invalid_bins", 0) for st in self.chain.stages)),
        }
        if self.chain is not None and self.chain.specs:
            rate = self.chain.specs[0].rate_hz
            out["signal_s"] = self.samples / rate
        if plant is not None:
            out["plant"] = self._plant_numbers()
            out["plant"] = {
                **(out["plant"] or {}),
                "control_period_s": plant.control_period_s,
                "window_s": plant.window_s,
            }
            labels = self._bio_labels() if self.bio_values else []
            # the decoder's first output against the plant's own value of that quantity
            name = self.decoded_names[0] if self.decoded_names else "gpi_beta"
            column = {"gpi_beta": "beta_gpi"}.get(name, name)
            if self.decoded_v and column in labels and self.t_online is not None:
                bio = np.asarray(self.bio_values)
                out["decoder_tracking"] = decoder_tracking(
                    np.asarray(self.decoded_v),
                    np.asarray(self.decoded_t),
                    bio[:, labels.index(column)],
                    np.asarray(self.bio_stamps),
                    self.t_online + out["plant"]["window_s"],
                )
                out["decoder_tracking"]["truth"] = column
        truth = self.truth
        if truth is not None and self.decoded_rows:
            out["decoder_tracking"] = decoded_tracking(
                np.asarray(self.decoded_rows),
                np.asarray(self.decoded_centre_t),
                self.decoded_names,
                np.asarray(truth.values),
                np.asarray(truth.stamps),
                truth.labels,
                self._tracking_from(),
            )
            out["decoder_tracking"]["truth"] = truth.name
        if recorder is not None and self.run_dir is not None:
            out["recording"] = {
                "file": "recording.xdf",
                "nix": (self.run_dir / "session.nix").exists(),
            }
        return out
