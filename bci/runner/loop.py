"""The closed-loop runner: one session from its config to a complete run folder.

:class:`SessionRunner` builds every part first (a bad stage, parameter or model file fails before
any process starts), creates the run folder (``config.yaml`` with every stage's ``to_dict()``),
starts the source in its own process, opens the loop's streams, starts the recorder in its own
process, and runs the loop in this thread:

1. **calibration**: stimulation off (the limiter's answer to an "off" command) until every stage
   that calibrates is ready (:class:`~bci.runner.chain.CalibrationGate`): a stage the chain fits
   (the sorter) on the first ``calibration.duration_s`` of its input, whose results go into the
   run folder, and a stage that learns by itself and says so with ``is_calibrated`` (threshold
   crossings, a threshold controller); the event stream says when stimulation was enabled
   (``summary.json``: ``stimulation_enabled_s``), and the controller's commands before that are
   recorded, not sent;
2. **closed loop**: every chunk through the stages; every controller command through the limiter,
   then onto the stimulator's stream. ``realtime``: a command is sent as soon as it exists.
   ``lockstep``: the plant simulates one control period per command, and the loop sends exactly one
   per period, once all the period's samples have been processed (the limiter's latest output, or
   the held one), so the same seed gives the same run, sample for sample.

On the way out, whatever happened (the end, an exception, Ctrl-C, SIGTERM), it sends the safe
state first (stimulation off through the limiter), stops the source, lets the recorder close its
file, writes ``session.nix`` and ``summary.json``, and reports failure in
:attr:`RunResult.status`.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pylsl

from bci.errors import BCIError
from bci.runner.chain import CalibrationGate, ChainOutput, Rechunker, StageChain
from bci.runner.commands import CommandPath
from bci.runner.lifecycle import RunLifecycle, drain
from bci.runner.metrics import LatencyLog
from bci.runner.outlets import LoopOutlets
from bci.runner.parts import LoopParts, build_parts
from bci.runner.pulses import PulseFeed
from bci.runner.report import RunReport
from bci.runner.rows import Rows
from bci.runner.sources import SourceSession, start_source
from bci.runner.truth import TruthFeed
from bci.runner.windows import WindowLog
from bci.session.config import ControllerConfig, SessionConfig
from bci.session.run_folder import create_run_dir, write_summary
from bci.signals import STOP_SIGNALS
from bci.stream import SignalChunk, StimCommand

__all__ = ["RunInterrupted", "RunResult", "SessionRunner"]

#: Seconds without data after which a running source counts as dead.
SOURCE_SILENCE_S = 30.0
#: How often the loop checks that the recorder process is alive (seconds).
RECORDER_CHECK_S = 0.25
#: Folder of the run folder that holds the loop's measurements while it runs (removed at the end).
SPILL_DIR = ".measurements"
#: Lockstep: longest wait for a period's last pulse marker (s); a timeout is counted.
PULSE_WAIT_S = 1.0


class RunInterrupted(BCIError, RuntimeError):
    """The run was stopped by Ctrl-C or SIGTERM."""


@dataclass
class RunResult:
    """Where a run left its files, and what it measured."""

    run_dir: Path
    status: str  # "completed", "failed" or "interrupted"
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class SessionRunner(RunLifecycle, RunReport):
    """Run one session (module docstring).

    Parameters
    ----------
    config : SessionConfig
        The validated session.
    controller : ControllerConfig, optional
        Replaces the session's controller (compare runs); ``label`` names the run folder then.
    label : str, optional
        Suffix of the run folder name.
    view : callable, optional
        Called with a snapshot dict about four times a second (the live view).
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        controller: ControllerConfig | None = None,
        label: str | None = None,
        view: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.controller_config = controller if controller is not None else config.controller
        self.label = label
        self.view = view
        self.run_dir: Path | None = None
        self.tag = uuid.uuid4().hex[:8]
        self.run_id = f"{config.name}-{self.tag}"
        #: controller -> limiter -> stimulator
        self.commands = CommandPath()
        self.parts: LoopParts = build_parts(
            config,
            controller,
            run_id=self.run_id,
            session_token=uuid.uuid4().hex,
            events=self.commands.on_safety_event,
        )
        self.commands.attach(self.parts)
        #: source_id of the limited commands (the stimulator obeys only these)
        self.limiter_name = f"{self.run_id}-limiter"
        self._stop_reason: str | None = None
        self._shutting_down = False
        # what the loop measured
        self.latency = LatencyLog(config.timing.deadline_ms)
        self.source_session: SourceSession | None = None
        self.outlets: LoopOutlets | None = None
        self.chain: StageChain | None = None
        self.events: list[str] = []
        self.unit_counts = np.zeros(0, dtype=np.int64)
        self.n_unsorted = 0
        self.skipped_samples = 0
        self.samples = 0
        self.t0_lsl: float | None = None
        self.t_online: float | None = None
        # what the loop keeps for the summary, as compact rows (bci.runner.rows)
        self.decoded_t = Rows()
        self.decoded_v = Rows()
        #: every output of every decoded bin, and the LSL time of each bin's centre
        self.decoded_rows = Rows(None)
        self.decoded_centre_t = Rows()
        self.decoded_names: list[str] = []
        self.t_first_spike: float | None = None
        #: the true values of what is decoded, when the source publishes them (motor kinematics)
        self.truth: TruthFeed | None = None
        self.bio_values = Rows(None)
        self.bio_stamps = Rows()
        self._bio_inlet: pylsl.StreamInlet | None = None
        self.pulse_feed: PulseFeed | None = None
        #: the recorder process while the loop runs (watched: the loop stops if it dies)
        self.recorder: Any = None
        self._source_events_seen = 0  # LSLSource events already forwarded
        self._pulses_polled_for = -1  # lockstep: last period whose pulse markers were collected
        self.pulse_waits_timed_out = 0
        #: holds stimulation off until every stage that calibrates is ready
        self.gate: CalibrationGate | None = None
        #: one row per 10 s of the loop (windows.csv): latency, commands, memory of each process
        self.windows: WindowLog | None = None
        self.wall_s = 0.0
        self.phases: dict[str, float] = {}  # wall seconds of each phase of the run
        self._t_phase = time.perf_counter()

    # ------------------------------------------------------------------ the whole run
    def run(self) -> RunResult:
        """Run the session; never raises for a failure of the run (see :attr:`RunResult.status`)."""
        config = self.config
        name = config.name if self.label is None else f"{config.name}-{self.label}"
        self.run_dir = create_run_dir(name, config.runs_root)
        self._write_config()
        spill = self.run_dir / SPILL_DIR  # what the loop keeps for the summary, out of memory
        self.latency.spill_into(spill)
        for key in ("decoded_t", "decoded_v", "decoded_rows", "decoded_centre_t", "bio_values"):
            getattr(self, key).spill_into(spill / f"{key}.f64")
        self.bio_stamps.spill_into(spill / "bio_stamps.f64")
        status, error, trace = "completed", None, ""
        previous = self._install_signals()
        t_start = time.perf_counter()
        recorder = None
        source = None
        lsl = None  # the source's inlet, closed on the way out after the safe state
        try:
            self._t_phase = time.perf_counter()
            source = self.source_session = start_source(
                config,
                self.run_dir,
                self.tag,
                limiter_source_id=self.limiter_name,
                session_token=self.parts.session_token,
            )
            self._phase("start_source")
            lsl = source.open(config.timing.stream_timeout_s)
            self._phase("open_stream")
            spec = lsl.spec()
            self._event(f"source {lsl.name} {spec.n_channels} ch {spec.rate_hz:g} Hz")
            self.chain = StageChain(
                self.parts.chain_stages,
                config.calibration.duration_s,
                background_fit=config.pacing == "realtime",
            )
            self.chain.prepare(spec)
            self._open_outlets(source, lsl.source_id)
            self._phase("open_outlets")
            if config.recording.enabled:
                recorder = self.recorder = self._start_recorder(source, lsl.source_id)
                self._phase("start_recorder")
            if config.pacing == "realtime":
                # what arrived while the recorder started is not in the recording: skip it
                self.skipped_samples = drain(lsl)
            self._loop(lsl, source, spec.rate_hz)
            self._phase("loop")
        except (KeyboardInterrupt, RunInterrupted):
            status, error = "interrupted", f"stopped by {self._stop_reason or 'SIGINT'}"
        except BCIError as err:
            status, error = "failed", str(err)
        except Exception as err:  # an unexpected bug: keep the traceback in the run folder
            status, error = "failed", f"{type(err).__name__}: {err}"
            trace = traceback.format_exc()  # written after the safe state: a disk can be slow
        finally:
            self.wall_s = time.perf_counter() - t_start
            self._shutting_down = True  # a second Ctrl-C/SIGTERM must not cut the way out short
            last = self._last_window()  # the loop's counters, without the safe state's commands
            self._send_safe_state(status)  # first: before the windows, the inlets, the processes
            if trace:
                try:
                    (self.run_dir / "error.txt").write_text(trace, encoding="utf-8")
                except OSError as write_err:
                    self.events.append(f"error.txt not written: {write_err}")
            self._end_windows(last)
            plant_stats = self._shut_down(source, lsl, recorder, status, error)
            self._restore_signals(previous)
        summary = self._summary(status, error, plant_stats, recorder)
        try:
            write_summary(self.run_dir, summary)
        except OSError as err:  # the disk filled up or turned read-only: say so, fail the run
            status = "failed"
            note = f"summary.json not written: {err}"
            summary["status"] = status
            summary["error"] = f"{summary['error']}; {note}" if summary.get("error") else note
        shutil.rmtree(spill, ignore_errors=True)
        return RunResult(self.run_dir, status, summary)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            if self._shutting_down:  # already on the way out: safe state, recorder, summary
                self.events.append(f"{signal.Signals(signum).name} during the shut-down: ignored")
                return
            self._stop_reason = signal.Signals(signum).name
            raise RunInterrupted(f"Stopped by {self._stop_reason}.")

        return {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # ------------------------------------------------------------------ the loop
    def _loop(self, lsl: Any, source: SourceSession, sfreq: float) -> None:
        config = self.config
        chain = self.chain
        outlets = self.outlets
        assert chain is not None and outlets is not None
        total = int(round(config.duration_s * sfreq))
        plant = source.plant
        lockstep = plant is not None and plant.lockstep
        n_periods = total // plant.period_samples if lockstep and plant is not None else 0
        if lockstep and plant is not None:
            total = plant.published_after(n_periods)  # what the plant publishes in the session
        stimulating = self.parts.limiter is not None
        gate = self.gate = CalibrationGate(chain)
        held: StimCommand | None = None
        fresh = False  # a command reached the limiter since the last lockstep send
        if stimulating:
            now0 = 0.0 if lockstep else pylsl.local_clock()
            if lockstep:
                self.commands.lockstep_clock = 0.0
            held = self.commands.limited(self.commands.off(now0), now0)
            waiting = gate.waiting()
            if waiting:
                self._event(
                    "calibration: stimulation off until every stage that calibrates is ready ("
                    + ", ".join(waiting)
                    + ")"
                )
            else:
                gate.update(0.0)
                self._event("calibration: no stage calibrates; stimulation enabled from the start")
            if held is None:
                raise BCIError("The safety limiter refused the session's own 'off' command.")
            self.commands.send(held)  # lockstep: the plant's period 0; real time: a defined start
        done = 0  # stream samples up to the last one processed (lockstep: the plant's clock)
        start = self.skipped_samples  # real time: samples dropped before the loop began
        t_last_data = time.monotonic()
        # real time: the stimulator's watchdog wants a fresh command every control period
        keepalive_s = plant.control_period_s if plant is not None else 0.02
        self.commands.t_last_send = time.monotonic()
        t_view = 0.0
        t_recorder_check = time.monotonic()
        # lockstep: the stages get the same chunks in every run, whatever pieces LSL delivered:
        # one chunk per period, as the plant published it
        rechunker = None
        if lockstep and plant is not None:
            rechunker = Rechunker(plant.period_samples, plant.latency_samples)
        pending: deque[SignalChunk] = deque()
        self._start_windows(lsl, sfreq)
        while done - start < total:
            chunk = self._next_chunk(lsl, pending, rechunker)
            now = time.monotonic()
            if self.windows is not None and self.windows.due(now):
                self._close_window(now)
            if lsl.events_total != self._source_events_seen:
                self._forward_source_events(lsl)
            if chunk is None:
                if source.child is not None and not lockstep:
                    source.child.check_alive()
                if now - t_last_data > SOURCE_SILENCE_S:
                    raise BCIError(
                        f"No data from the source for {SOURCE_SILENCE_S:g} s after "
                        f"{(done - start) / sfreq:.2f} s of signal; stopping."
                    )
                self._poll_biomarkers()
                continue
            t_last_data = now
            if self.t0_lsl is None:
                self.t0_lsl = float(chunk.t_lsl[0]) - chunk.first_sample / sfreq
            if self.pulse_feed is not None and self.pulse_feed.active:
                if lockstep and plant is not None:
                    # the period's pulses went out before its biomarker sample: wait for that,
                    # then for its last pulse marker (runs must not depend on timing)
                    period_k = plant.period_of(chunk.last_sample)
                    while self._pulses_polled_for < period_k:
                        self._pulses_polled_for += 1
                        self._wait_for_period(self._pulses_polled_for)
                        self._wait_for_pulses(self._pulses_polled_for, plant, sfreq)
                self.pulse_feed.poll(self.t0_lsl, sfreq)
            t_work = time.perf_counter()
            c_work = time.thread_time()
            was_calibrating = chain.is_calibrating
            out = ChainOutput()
            chain.process(chunk, out)
            timed = not chain.is_calibrating and not was_calibrating  # a fit is not loop time
            if was_calibrating and not chain.is_calibrating:
                self.t_online = self._t_online_after_fit(chunk, sfreq)
                self._event(f"calibration done: {chain.calibrations}")
                self._save_calibration()
            elif self.t_online is None and not chain.is_calibrating:
                self.t_online = float(chunk.t_lsl[0])
            # the limiter's clock: in lockstep the model time at which the next command applies
            # (the start of the next period: how the stream was cut into chunks cannot change
            # it, so runs repeat exactly), the LSL clock otherwise
            if lockstep and plant is not None:
                now_l = self.commands.n_sent * plant.control_period_s
                self.commands.lockstep_clock = now_l
            else:
                now_l = pylsl.local_clock()
            if stimulating and gate.update((chunk.last_sample + 1) / sfreq):
                self._event(
                    f"stimulation enabled at {gate.enabled_at_s:.3f} s of signal: every stage "
                    "that calibrates is ready"
                )
            for command in out.commands:
                self.commands.n_from_controller += 1
                outlets.push_controller(command)
                if not gate.open:  # recorded, not sent: the stimulator stays in the safe state
                    gate.held += 1
                    continue
                limited = self.commands.limited(command, now_l)
                if limited is None:
                    continue
                held, fresh = limited, True
                if not lockstep:
                    t_push = self.commands.send(held)
                    self.latency.add((t_push - chunk.t_arrival) * 1e3)
            done = chunk.last_sample + 1
            if lockstep and held is not None and plant is not None:
                while self.commands.n_sent < n_periods and done >= plant.published_after(
                    self.commands.n_sent
                ):
                    now_p = self.commands.n_sent * plant.control_period_s
                    self.commands.lockstep_clock = now_p
                    if not fresh and not chain.is_calibrating:
                        held = self.commands.tick(held, now_p) or held
                    fresh = False
                    t_push = self.commands.send(held)
                    if self.t_online is not None and timed:
                        self.latency.add((t_push - chunk.t_arrival) * 1e3)
            if not lockstep and held is not None and now - self.commands.t_last_send >= keepalive_s:
                now_k = pylsl.local_clock()
                held = self.commands.tick(held, now_k) or held
                self.commands.send(dataclasses.replace(held, t_issue=now_k))
            self.commands.flush_events()
            self.latency.chunk(
                time.perf_counter() - t_work,
                chunk.n_samples / sfreq,
                (pylsl.local_clock() - chunk.t_arrival) * 1e3,
                (time.thread_time() - c_work) * 1e3,
            )
            self.samples = done - start
            self._publish(out, chunk, sfreq)
            self._poll_biomarkers()
            if now - t_recorder_check >= RECORDER_CHECK_S:
                t_recorder_check = now
                self._check_recorder()
            if self.view is not None and now - t_view >= 0.25:
                t_view = now
                self.view(self.snapshot(lsl.status(), total))

    def _forward_source_events(self, lsl: Any) -> None:
        """Publish the source's new events (stall, reconnect, gap, clock jump, NaN) on the loop's
        event stream and keep them for the summary: what the source saw is part of the run."""
        new = lsl.events_total - self._source_events_seen
        self._source_events_seen = lsl.events_total
        for event in list(lsl.events)[-min(new, len(lsl.events)) :]:
            self._event(f"source {event.kind}: {event.message}")

    def _publish(self, out: ChainOutput, chunk: SignalChunk, sfreq: float) -> None:
        outlets = self.outlets
        assert outlets is not None
        t_first = float(chunk.t_lsl[0]) - chunk.first_sample / sfreq
        for spikes in out.spikes:
            s = spikes.spikes
            if s.size == 0:
                continue
            rows = np.column_stack(
                [s["unit_index"], s["channel_index"], s["sample_index"], s["amplitude"]]
            ).astype(np.float64)
            outlets.push_spikes(rows, t_first + s["sample_index"] / sfreq)
            if self.t_first_spike is None:
                self.t_first_spike = float(t_first + s["sample_index"][0] / sfreq)
            units = s["unit_index"][s["unit_index"] >= 0]
            self.n_unsorted += int(s.size - units.size)
            if units.size:
                counts = np.bincount(units, minlength=self.unit_counts.size)
                if counts.size > self.unit_counts.size:
                    counts[: self.unit_counts.size] += self.unit_counts
                    self.unit_counts = counts
                else:
                    self.unit_counts += counts
        for state, binned in out.state:
            if binned is not None and binned.n_bins == state.values.shape[0]:
                ends = (binned.first_bin + np.arange(1, binned.n_bins + 1)) * binned.bin_s
                stamps = np.asarray(t_first + ends - 1.0 / sfreq, dtype=np.float64)
                centres = t_first + ends - binned.bin_s / 2
            else:
                stamps = np.asarray(state.t, dtype=np.float64)
                centres = stamps
            if self.truth is not None:
                self.decoded_rows.extend(np.asarray(state.values, dtype=float))
                self.decoded_centre_t.extend(np.asarray(centres, dtype=float))
            outlets.push_decoded(state.values, stamps)
            self.decoded_t.extend(stamps)
            self.decoded_v.extend(np.asarray(state.values)[:, 0])

    @staticmethod
    def _next_chunk(
        lsl: Any, pending: deque[SignalChunk], rechunker: Rechunker | None
    ) -> SignalChunk | None:
        """The next chunk to process: as pulled, or re-cut (lockstep)."""
        if not pending:
            pulled = lsl.pull(timeout=0.005)
            if pulled is None:
                return None
            if rechunker is None:
                return pulled
            pending.extend(rechunker.feed(pulled))
        return pending.popleft() if pending else None

    def _t_online_after_fit(self, chunk: SignalChunk, sfreq: float) -> float:
        """LSL time from which the loop ran closed: the first input the fitted stage took online
        (lockstep), or the end of the chunk that finished a background fit (real time)."""
        chain = self.chain
        assert chain is not None and self.t0_lsl is not None
        if chain.online_from is None:
            return float(chunk.t_lsl[-1]) + 1.0 / sfreq
        return self.t0_lsl + chain.online_from / chain.online_from_rate

    def _wait_for_pulses(self, period: int, plant: Any, sfreq: float) -> None:
        """Lockstep: wait for the marker of the period's last pulse, if it stimulated.

        A train on through a period has a pulse within its last inter-pulse interval, so the
        marker of a pulse there says every marker of the period has arrived (they travel on
        their own connection, beside the biomarker sample).
        """
        from stimulation.plant.streams import BIOMARKER_CHANNELS

        feed = self.pulse_feed
        assert feed is not None
        values = self.bio_values[period]
        amplitude = float(values[BIOMARKER_CHANNELS.index("amplitude_ma")])
        frequency = float(values[BIOMARKER_CHANNELS.index("frequency_hz")])
        if not (amplitude > 0.0 and frequency > 0.0):
            return
        end = (period + 1) * plant.period_samples
        need = end - int(np.ceil(sfreq / frequency))
        deadline = time.monotonic() + PULSE_WAIT_S
        while feed.last_plant_sample < need and time.monotonic() < deadline:
            assert self.t0_lsl is not None
            feed.poll(self.t0_lsl, sfreq, 0.0005)
        if feed.last_plant_sample < need:
            self.pulse_waits_timed_out += 1

    def _wait_for_period(self, period: int) -> None:
        """Lockstep: wait until the plant's biomarker sample of ``period`` has arrived."""
        deadline = time.monotonic() + SOURCE_SILENCE_S
        while len(self.bio_stamps) <= period and self._bio_inlet is not None:
            self._poll_biomarkers()
            if len(self.bio_stamps) > period:
                return
            if time.monotonic() > deadline:
                raise BCIError(
                    f"The plant's biomarker sample of period {period} did not come within "
                    f"{SOURCE_SILENCE_S:g} s."
                )
            time.sleep(0.0002)
