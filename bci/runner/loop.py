"""The closed-loop runner: one session from its config to a complete run folder.

:class:`SessionRunner` builds every part first (a bad stage, parameter or model file fails before
any process starts), creates the run folder (``config.yaml`` with every stage's ``to_dict()``),
starts the source in its own process, opens the loop's streams, starts the recorder in its own
process, and runs the loop in this thread:

1. **calibration**: the first ``calibration.duration_s`` with DBS off (the limiter's answer to an
   "off" command), while uncalibrated stages (the sorter) learn; their results go into the run
   folder;
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
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pylsl

from bci.errors import BCIError
from bci.runner.chain import ChainOutput, StageChain
from bci.runner.metrics import LatencyLog, decoder_tracking, plant_outcome
from bci.runner.outlets import LoopOutlets
from bci.runner.parts import LoopParts, build_parts, off_command, safe_command
from bci.runner.pulses import PulseFeed
from bci.runner.sources import SourceSession, start_source
from bci.session.config import ControllerConfig, SessionConfig
from bci.session.run_folder import create_run_dir, write_config, write_summary
from bci.stream import SignalChunk, StimCommand

__all__ = ["RunInterrupted", "RunResult", "SessionRunner"]

#: Seconds without data after which a running source counts as dead.
SOURCE_SILENCE_S = 30.0


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


class SessionRunner:
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
        self.safety_counts: dict[str, int] = {}
        self._safety_pending: list[str] = []
        self.parts: LoopParts = build_parts(
            config,
            controller,
            run_id=self.run_id,
            session_token=uuid.uuid4().hex,
            events=self._on_safety_event,
        )
        #: source_id of the limited commands (the stimulator obeys only these)
        self.limiter_name = f"{self.run_id}-limiter"
        self._stop_reason: str | None = None
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
        self.n_commands_in = 0
        self.n_limited = 0  # commands handed to the limiter (the runner numbers them)
        self.n_dropped = 0
        self.n_changed = 0
        self.n_sent = 0
        self.last_sent: StimCommand | None = None
        self.t0_lsl: float | None = None
        self.t_online: float | None = None
        self.decoded_t: list[float] = []
        self.decoded_v: list[float] = []
        self.bio_values: list[list[float]] = []
        self.bio_stamps: list[float] = []
        self._bio_inlet: pylsl.StreamInlet | None = None
        self.pulse_feed: PulseFeed | None = None
        self.limiter_time = StageTimerLike()
        self.wall_s = 0.0
        self._t_last_send = 0.0
        self._lockstep_clock: float | None = None  # the limiter's clock in lockstep (model s)
        self.phases: dict[str, float] = {}  # wall seconds of each phase of the run
        self._t_phase = time.perf_counter()

    # ------------------------------------------------------------------ the whole run
    def run(self) -> RunResult:
        """Run the session; never raises for a failure of the run (see :attr:`RunResult.status`)."""
        config = self.config
        name = config.name if self.label is None else f"{config.name}-{self.label}"
        self.run_dir = create_run_dir(name, config.runs_root)
        self._write_config()
        status, error = "completed", None
        previous = self._install_signals()
        t_start = time.perf_counter()
        recorder = None
        source = None
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
            try:
                spec = lsl.spec()
                self._event(f"source {lsl.name} {spec.n_channels} ch {spec.rate_hz:g} Hz")
                self.chain = StageChain(
                    [
                        *self.parts.stages,
                        *([self.parts.decoder] if self.parts.decoder else []),
                        *([self.parts.controller] if self.parts.controller else []),
                    ],
                    config.calibration.duration_s,
                    background_fit=config.pacing == "realtime",
                )
                self.chain.prepare(spec)
                self._open_outlets(source, lsl.source_id)
                self._phase("open_outlets")
                if config.recording.enabled:
                    recorder = self._start_recorder(source, lsl.source_id)
                    self._phase("start_recorder")
                if config.pacing == "realtime":
                    # what arrived while the recorder started is not in the recording: skip it
                    self.skipped_samples = _drain(lsl)
                self._loop(lsl, source, spec.rate_hz)
                self._phase("loop")
            finally:
                lsl.close()
        except (KeyboardInterrupt, RunInterrupted):
            status, error = "interrupted", f"stopped by {self._stop_reason or 'SIGINT'}"
        except BCIError as err:
            status, error = "failed", str(err)
        except Exception as err:  # an unexpected bug: keep the traceback in the run folder
            status, error = "failed", f"{type(err).__name__}: {err}"
            (self.run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        finally:
            self.wall_s = time.perf_counter() - t_start
            plant_stats = self._shut_down(source, recorder, status, error)
            self._restore_signals(previous)
        summary = self._summary(status, error, plant_stats, recorder)
        write_summary(self.run_dir, summary)
        return RunResult(self.run_dir, status, summary)

    def _write_config(self) -> None:
        assert self.run_dir is not None
        resolved = self.config.resolved()
        if self.controller_config is not None:
            resolved["controller"] = self.controller_config.model_dump(mode="json")
        resolved["compare"] = []
        write_config(
            self.run_dir,
            {
                "session": resolved,
                "stages": self.parts.describe(),
                "run": {"id": self.run_id, "label": self.label},
            },
        )

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            self._stop_reason = signal.Signals(signum).name
            raise RunInterrupted(f"Stopped by {self._stop_reason}.")

        return {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # ------------------------------------------------------------------ set-up
    def _open_outlets(self, source: SourceSession, source_id: str) -> None:
        decoder = self.parts.decoder
        labels = None
        if decoder is not None:
            spec = decoder.output_spec
            labels = list(spec.channel_names) if spec is not None else []
        stimulator = None
        if self.parts.limiter is not None:
            if source.plant is not None:
                stimulator = (source.plant.command_stream, self.limiter_name)
            else:
                stream = self.config.stimulator.command_stream
                assert stream is not None
                stimulator = (stream, self.limiter_name)
        self.outlets = LoopOutlets(self.run_id, labels, stimulator, self.parts.session_token)
        if source.plant is not None and stimulator is not None:
            # the plant must listen before the first command, or lockstep never starts
            if not self.outlets.wait_for_stimulator(60.0):
                raise BCIError("The plant did not connect to the command stream within 60 s.")
        if source.plant is not None:
            found = pylsl.resolve_byprop("source_id", source.plant.biomarker_source_id, 1, 10.0)
            if found:
                self._bio_inlet = pylsl.StreamInlet(found[0], max_buflen=600, recover=False)
                self._bio_inlet.open_stream(timeout=10.0)
            assert self.chain is not None
            self.pulse_feed = PulseFeed(source.plant.stim_source_id, self.chain.stages)

    def _start_recorder(self, source: SourceSession, source_id: str) -> Any:
        from bci.session.recorder_process import spawn_recorder

        assert self.run_dir is not None and self.outlets is not None
        ids = list(dict.fromkeys([*source.record_source_ids, source_id, *self.outlets.source_ids]))
        return spawn_recorder(
            self.run_dir / "recording.xdf",
            source_ids=ids,
            names=[*source.record_names, *self.config.recording.extra_streams],
            timeout_s=10.0,
            extra_args=[
                "--flush-interval",
                repr(self.config.recording.flush_interval_s),
                "--status-interval",
                "0",
            ],
        )

    def _phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self._t_phase, 3)
        self._t_phase = now

    def _event(self, text: str, keep: bool = True) -> None:
        """Publish an event on the loop's event stream; ``keep`` it for the summary too."""
        if keep:
            self.events.append(text)
        if self.outlets is not None:
            self.outlets.event(text)

    # ------------------------------------------------------------------ commands
    def _on_safety_event(self, event: Any) -> None:
        """A limiter event: counted now, published after the command went out."""
        kind = str(getattr(event, "kind", "event"))
        self.safety_counts[kind] = self.safety_counts.get(kind, 0) + 1
        marker = event.to_marker() if hasattr(event, "to_marker") else str(event)
        self._safety_pending.append(f"safety {marker}")

    def _flush_safety_events(self) -> None:
        if self._safety_pending and self.outlets is not None:
            for text in self._safety_pending:
                self.outlets.event(text)
        self._safety_pending.clear()

    def _limited(self, command: StimCommand, now: float) -> StimCommand | None:
        """``command`` through the limiter (None: dropped). In this process the runner is the
        transport between controller and limiter, so it numbers the commands in order."""
        limiter = self.parts.limiter
        assert limiter is not None
        command = dataclasses.replace(command, seq=self.n_limited)
        self.n_limited += 1
        t0 = time.perf_counter_ns()
        out = limiter.apply(command, now)
        self.limiter_time.add(time.perf_counter_ns() - t0)
        if out is None:
            self.n_dropped += 1
            return None
        if (out.amplitude_ma, out.frequency_hz, out.pulse_width_us) != (
            command.amplitude_ma,
            command.frequency_hz,
            command.pulse_width_us,
        ):
            self.n_changed += 1
        return out

    def _tick(self, held: StimCommand | None, now: float) -> StimCommand | None:
        """The limiter's output at ``now`` without a new command (ramps, watchdog)."""
        tick = getattr(self.parts.limiter, "tick", None)
        return tick(now) if callable(tick) else held

    def _send(self, command: StimCommand) -> float:
        assert self.outlets is not None
        command = dataclasses.replace(command, seq=self.n_sent)
        t = self.outlets.push_stimulator(command)
        self._t_last_send = time.monotonic()
        self.n_sent += 1
        self.last_sent = command
        return t

    def _off(self, now: float) -> StimCommand:
        return off_command(self.parts.source_id, 0, now, self.parts.session_token)

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
        held: StimCommand | None = None
        fresh = False  # a command reached the limiter since the last lockstep send
        if stimulating:
            now0 = 0.0 if lockstep else pylsl.local_clock()
            if lockstep:
                self._lockstep_clock = 0.0
            held = self._limited(self._off(now0), now0)
            self._event("calibration: stimulation off")
            if held is None:
                raise BCIError("The safety limiter refused the session's own 'off' command.")
            self._send(held)  # lockstep: the plant's period 0; real time: a defined start
        done = 0  # stream samples up to the last one processed (lockstep: the plant's clock)
        start = self.skipped_samples  # real time: samples dropped before the loop began
        t_last_data = time.monotonic()
        # real time: the stimulator's watchdog wants a fresh command every control period
        keepalive_s = plant.control_period_s if plant is not None else 0.02
        self._t_last_send = time.monotonic()
        t_view = 0.0
        while done - start < total:
            chunk: SignalChunk | None = lsl.pull(timeout=0.005)
            now = time.monotonic()
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
                    # the period's pulses went out before its biomarker sample: wait for that
                    self._wait_for_period(plant.period_of(chunk.last_sample))
                self.pulse_feed.poll(self.t0_lsl, sfreq)
            t_work = time.perf_counter()
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
            # the limiter's clock: model time in lockstep (seconds of signal processed, so runs
            # repeat exactly), the LSL clock otherwise
            if lockstep:
                now_l = self._lockstep_clock = (chunk.last_sample + 1) / sfreq
            else:
                now_l = pylsl.local_clock()
            for command in out.commands:
                self.n_commands_in += 1
                outlets.push_controller(command)
                limited = self._limited(command, now_l)
                if limited is None:
                    continue
                held, fresh = limited, True
                if not lockstep:
                    t_push = self._send(held)
                    self.latency.add((t_push - chunk.t_arrival) * 1e3)
            done = chunk.last_sample + 1
            if lockstep and held is not None and plant is not None:
                while self.n_sent < n_periods and done >= plant.published_after(self.n_sent):
                    if not fresh and not chain.is_calibrating:
                        held = self._tick(held, now_l) or held
                    fresh = False
                    t_push = self._send(held)
                    if self.t_online is not None and timed:
                        self.latency.add((t_push - chunk.t_arrival) * 1e3)
            if not lockstep and held is not None and now - self._t_last_send >= keepalive_s:
                now_k = pylsl.local_clock()
                held = self._tick(held, now_k) or held
                self._send(dataclasses.replace(held, t_issue=now_k))
            self._flush_safety_events()
            self.latency.chunk(
                time.perf_counter() - t_work,
                chunk.n_samples / sfreq,
                (pylsl.local_clock() - chunk.t_arrival) * 1e3,
            )
            self.samples = done - start
            self._publish(out, chunk, sfreq)
            self._poll_biomarkers()
            if self.view is not None and now - t_view >= 0.25:
                t_view = now
                self.view(self.snapshot(lsl.status(), total))

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
                stamps = t_first + ends - 1.0 / sfreq
            else:
                stamps = np.asarray(state.t, dtype=np.float64)
            outlets.push_decoded(state.values, stamps)
            self.decoded_t.extend(stamps.tolist())
            self.decoded_v.extend(np.asarray(state.values)[:, 0].astype(float).tolist())

    def _t_online_after_fit(self, chunk: SignalChunk, sfreq: float) -> float:
        """LSL time from which the loop ran closed: the first input the fitted stage took online
        (lockstep), or the end of the chunk that finished a background fit (real time)."""
        chain = self.chain
        assert chain is not None and self.t0_lsl is not None
        if chain.online_from is None:
            return float(chunk.t_lsl[-1]) + 1.0 / sfreq
        return self.t0_lsl + chain.online_from / chain.online_from_rate

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

    def _poll_biomarkers(self) -> None:
        inlet = self._bio_inlet
        if inlet is None:
            return
        try:
            values, stamps = inlet.pull_chunk(timeout=0.0)
        except pylsl.util.LostError:
            self._bio_inlet = None
            return
        if stamps:
            self.bio_values.extend(values)
            self.bio_stamps.extend(stamps)

    def _save_calibration(self) -> None:
        assert self.run_dir is not None and self.chain is not None
        for i, stage in enumerate(self.chain.stages[: self.chain.ready]):
            save = getattr(stage, "save", None)
            if callable(save) and getattr(stage, "is_fitted", False):
                save(self.run_dir / f"calibration_{i}_{type(stage).__name__}.npz")
        self._write_config()  # again: to_dict() now names the saved templates

    # ------------------------------------------------------------------ the end
    def _safe_state(self) -> None:
        """Command the limiter's safe state and follow its ramp there (at most 1 s)."""
        limiter = self.parts.limiter
        assert limiter is not None
        lockstep = self._lockstep_clock is not None
        now = self._lockstep_clock if self._lockstep_clock is not None else pylsl.local_clock()
        target = safe_command(limiter, self.parts.source_id, 0, now, self.parts.session_token)
        out = self._limited(target, now)
        if out is not None:
            self._send(out)
        deadline = now + 1.0
        period = 0.02
        while out is not None and out.amplitude_ma != target.amplitude_ma and now < deadline:
            if lockstep:
                now += period  # each command moves the plant one period on
            else:
                time.sleep(period)
                now = pylsl.local_clock()
            out = self._tick(out, now)
            if out is not None:
                self._send(out)
        self._flush_safety_events()

    def _shut_down(
        self, source: SourceSession | None, recorder: Any, status: str, error: str | None
    ) -> dict[str, Any]:
        """Safe state first, then the source, the recorder, the NIX copy."""
        if self.outlets is not None and self.outlets.stimulator is not None:
            try:
                self._safe_state()
                self._event(f"safe state sent ({status})")
            except Exception as err:  # the stimulator must still be told; say why it was not
                self.events.append(f"safe state FAILED: {err}")
        if self.outlets is not None:
            self._event(f"stop: {status}" + (f": {error}" if error else ""))
        time.sleep(0.3 + self.config.recording.flush_interval_s)  # the recorder pulls the last
        self._poll_biomarkers()
        # our inlets go first, so the source's outlets do not close under them
        if self._bio_inlet is not None:
            self._bio_inlet.close_stream()
            self._bio_inlet = None
        if self.pulse_feed is not None:
            self.pulse_feed.close()
        plant_stats: dict[str, Any] = {}
        if source is not None:
            plant_stats = source.stop()
        self._phase("stop_source")
        if recorder is not None:
            try:
                recorder.stop()
            except BCIError as err:
                self.events.append(f"recorder: {err}")
        if self.outlets is not None:
            self.outlets.close()
        self._phase("stop_recorder")
        if recorder is not None and self.config.recording.nix and self.run_dir is not None:
            from bci.session.nix import write_run_nix

            try:
                write_run_nix(self.run_dir)
            except BCIError as err:
                self.events.append(f"session.nix not written: {err}")
            self._phase("write_nix")
        return plant_stats

    # ------------------------------------------------------------------ reporting
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
            "error_index": bio.get("error_index"),
            "command": None if self.last_sent is None else dataclasses.asdict(self.last_sent),
            "energy_j": self._energy_so_far(),
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "deadline_misses": self.latency.misses,
            "safety_changes": self.n_changed,
            "events": self.events[-4:],
        }

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
            "limiter": self.limiter_time.summary(),
            "loop_latency": self.latency.summary(),
            "units": int(self.unit_counts.size),
            "unit_spikes": self.unit_counts.tolist(),
            "unsorted_spikes": self.n_unsorted,
            "pulses_registered": 0 if self.pulse_feed is None else self.pulse_feed.n_pulses,
            "streams": {} if self.outlets is None else dict(self.outlets.counts),
            "commands": {
                "from_controller": self.n_commands_in,
                "to_limiter": self.n_limited,
                "dropped_by_limiter": self.n_dropped,
                "changed_by_limiter": self.n_changed,
                "sent": self.n_sent,
            },
            "safety_events": dict(self.safety_counts),
            "events": self.events,
            "plant": None,
            "decoder_tracking": None,
            "plant_process": plant_stats,
            "recording": None,
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
            if self.decoded_v and self.bio_values and self.t_online is not None:
                labels = self._bio_labels()
                bio = np.asarray(self.bio_values)
                out["decoder_tracking"] = decoder_tracking(
                    np.asarray(self.decoded_v),
                    np.asarray(self.decoded_t),
                    bio[:, labels.index("beta_gpi")],
                    np.asarray(self.bio_stamps),
                    self.t_online + out["plant"]["window_s"],
                )
        if recorder is not None and self.run_dir is not None:
            out["recording"] = {
                "file": "recording.xdf",
                "nix": (self.run_dir / "session.nix").exists(),
            }
        return out


def _drain(lsl: Any) -> int:
    """Pull and drop everything waiting in the source; return how many samples."""
    n = 0
    while (chunk := lsl.pull(timeout=0.0)) is not None:
        n += chunk.n_samples
    return n


class StageTimerLike:
    """Compute time of the limiter (same summary as :class:`bci.stream.StageTimer`)."""

    def __init__(self) -> None:
        from bci.stream import StageTimer

        self._timer = StageTimer(window=1 << 16)

    def add(self, duration_ns: int) -> None:
        self._timer.add(duration_ns)

    def summary(self) -> dict[str, float]:
        return self._timer.summary()
