"""The plant on LSL: publish its recording, ground truth and biomarkers; obey stimulation commands.

:class:`PlantBridge` runs a :class:`~stimulation.plant.BasalGangliaNetwork` one control period at
a time, either paced to the wall clock (real time) or in lockstep with a controller (one period per
command, as fast as both can go, deterministic), and publishes (``<name>`` is the bridge's name):

==================== =========== ======================================================================
stream               type        content
==================== =========== ======================================================================
``<name>-raw``       Neural      ``n_channels`` x 30 kHz broadband voltage (uV; int16 carries
                                 ``scale_uv_per_bit``) of a virtual probe among ``n_units`` cells of
                                 ``recorded_nucleus``: spikes, noise, the nucleus' LFP, DBS artifacts
                                 (:class:`~stimulation.plant.probe.VirtualProbe`). Contact positions
                                 under ``desc/channels/channel/location``; the plant's settings under
                                 ``desc/plant``.
``<name>-spikes``    Markers     ground truth, one marker per spike of a recorded cell:
                                 ``"unit=U ch=C sample=S amp=A cell=K"`` (``unit`` indexes the recorded
                                 cells, ``cell`` is the cell's index in its nucleus, ``sample`` the
                                 trough's sample on ``-raw``, ``amp`` the trough in uV), stamped with
                                 the trough's time; readable by :func:`bci.session.load.parse_spike_marker`.
``<name>-stim``      Markers     one ``"stim sample=S amp=A amp_ma=M"`` per DBS pulse onset (``A`` in
                                 the model's uA/cm2, ``M`` the device mA it stands for).
``<name>-biomarkers`` Biomarkers one sample per control period (nominal rate ``1 / control_period_s``),
                                 float32 channels :data:`BIOMARKER_CHANNELS`: the sliding-window
                                 features of :mod:`stimulation.plant.monitor` (NaN where undefined)
                                 then the stimulation applied during the period and the ``seq`` of
                                 the command that set it (-1: none yet). Stamped with the period's end.
``<name>-safety``    Markers     the safety limiter's events, one JSON marker each
                                 (:mod:`stimulation.safety.events`).
==================== =========== ======================================================================

Every stream's ``source_id`` is the bridge's ``source_id`` plus the suffix of its name (``-raw``...);
the stream definitions live in :mod:`stimulation.plant.streams`.

Stamps. Sample ``n`` of ``-raw`` is stamped ``t0 + n / sfreq``, where ``t0`` is the LSL time of
the stream's start, and every marker and biomarker is stamped on that same axis. In real time each
item is pushed when its stamp is due; the model runs ``lead_s`` (one control period by default)
ahead of the wall clock, so a command applies from the next period not yet simulated. In lockstep
the stamps follow model time from ``t0`` and run ahead of (or behind) the wall clock; a paced
lockstep (``BridgeTiming.max_speed``) waits before a period that would take the model time more
than ``lead_s`` ahead of ``max_speed`` times the wall time since its first period began (at 1.0
never faster than real time, as a stimulator), and is otherwise the same lockstep.

Commands. The bridge obeys only what its :class:`~stimulation.safety.SafetyLimiter` lets out:
every :class:`~bci.stream.StimCommand` read from the command stream
(:class:`~stimulation.plant.commands.CommandListener`, device units) goes through the limiter,
which drops commands of another source or session token and commands out of sequence, turns
invalid ones into its safe state, clamps, rate-limits, and moves to the safe state when the
controller falls silent (its watchdog runs on the bridge's clock, ``t0`` plus model time). The
limiter's output is mapped to model units by :func:`stimulation.safety.model_amplitude_ua_cm2`.
Open loop (the limiter accepts no particular source), the bridge stimulates with ``initial``,
through the same limiter. In lockstep every command the limiter accepts advances the plant by one
control period, so controller and plant stay in step; a dropped command advances nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pylsl

from bci.checks import ensure_float
from bci.stream.chunks import StimCommand
from stimulation.errors import PlantParameterError, StimulationError
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.bridge_config import BridgeTiming, RawFormat, StimSetting
from stimulation.plant.commands import CommandListener
from stimulation.plant.monitor import FEATURES, BiomarkerMonitor
from stimulation.plant.probe import VirtualProbe
from stimulation.plant.publisher import PeriodPublisher
from stimulation.plant.record import PlantRecord
from stimulation.plant.streams import BIOMARKER_CHANNELS, make_plant_outlets
from stimulation.pulses import PulseTrain, Waveform
from stimulation.safety import SafetyLimiter, SafetyLimits, model_amplitude_ua_cm2
from stimulation.safety.events import SafetyEventOutlet


@dataclass
class BridgeStats:
    """What the bridge has done since it was made."""

    periods: int = 0
    samples: int = 0
    spikes: int = 0
    pulses: int = 0
    commands_applied: int = 0
    late_periods: int = 0
    max_lag_s: float = 0.0
    wall_s: float = 0.0
    paced_s: float = 0.0  # wall time a paced lockstep waited for the clock
    safety: dict[str, int] = field(default_factory=dict)


class PlantBridge:
    """Run the basal-ganglia plant behind LSL streams (module docstring).

    Parameters
    ----------
    network : BasalGangliaNetwork
        The plant (state, seed, cells, DBS target, time step); the bridge steps it.
    probe : VirtualProbe
        The virtual probe recording it; its ``reference_amplitude`` is in model units (uA/cm2).
    name : str
        Prefix of the published stream names.
    source_id : str, optional
        Prefix of the published source_ids (default ``plant-<name>-<state>-<seed>``).
    limits : SafetyLimits, optional
        The limits of the bridge's safety limiter; ``limits.source_id`` (and
        ``limits.session_token``) name the only controller obeyed. With no ``source_id`` the
        plant runs open loop on ``initial`` (and refuses lockstep).
    command_stream : str, optional
        Name of the command stream(s) to read (default ``<name>-commands``).
    initial : StimSetting
        Stimulation before the first command, or all along open loop (device units).
    timing : BridgeTiming
        Control period, biomarker window, warm-up, lockstep or real time, a lockstep's pace.
    raw_format : RawFormat
        Sample format of ``-raw``.
    biphasic : bool
        Charge-balanced biphasic pulses.
    """

    def __init__(
        self,
        network: BasalGangliaNetwork,
        probe: VirtualProbe,
        *,
        name: str = "plant",
        source_id: str | None = None,
        limits: SafetyLimits | None = None,
        command_stream: str | None = None,
        initial: StimSetting | None = None,
        timing: BridgeTiming | None = None,
        raw_format: RawFormat | None = None,
        biphasic: bool = False,
    ) -> None:
        if not isinstance(network, BasalGangliaNetwork) or not isinstance(probe, VirtualProbe):
            raise PlantParameterError(
                "Invalid value for the 'network' or 'probe' parameter: expected a "
                "BasalGangliaNetwork and a VirtualProbe."
            )
        if probe.cells.size and int(probe.cells.max()) >= network.n_cells:
            raise PlantParameterError(
                f"The probe records cells up to {int(probe.cells.max())}, but the network has "
                f"{network.n_cells} cells per nucleus."
            )
        self.network = network
        self.probe = probe
        self.timing = BridgeTiming() if timing is None else timing
        self.raw_format = RawFormat() if raw_format is None else raw_format
        self.limits = SafetyLimits(watchdog_timeout_s=None) if limits is None else limits
        self.initial = StimSetting() if initial is None else initial
        self.state = network.state
        self.seed = network.seed
        self.control_period_s = self.timing.control_period_s
        self.lockstep = self.timing.lockstep
        self.lead_s = float(self.timing.lead_s or 0.0)
        self.max_speed = self.timing.max_speed  # BridgeTiming allows it with lockstep only
        self.channel_format = self.raw_format.channel_format
        self.scale_uv_per_bit = (
            self.raw_format.scale_uv_per_bit if self.channel_format == "int16" else 1.0
        )
        self.name = name
        self.source_id = source_id or f"plant-{name}-{self.state}-{self.seed}"
        self.waveform: Waveform = "biphasic" if biphasic else "monophasic"
        self.closed_loop = self.limits.source_id is not None
        if self.lockstep and not self.closed_loop:
            raise PlantParameterError(
                "Lockstep needs a controller: give the controller's command stream source_id "
                "(limits.source_id / --controller-source-id)."
            )
        self.command_stream = command_stream or f"{name}-commands"
        self.safety_outlet = SafetyEventOutlet(
            f"{name}-safety", f"{self.source_id}-safety", self.limits
        )
        self.limiter = SafetyLimiter(
            self.limits, events=self.safety_outlet.publish, name=f"{self.source_id}-limiter"
        )
        self.listener = CommandListener(self.command_stream) if self.closed_loop else None
        self.command_seq = -1
        self.command = self.limiter.output
        self.train = self._train(self.command)

        self.monitor = BiomarkerMonitor(network.lfp_sfreq, self.timing.window_s)
        self.sfreq = self.probe.sfreq
        self.chunk_samples = max(1, int(round(self.raw_format.chunk_ms * 1e-3 * self.sfreq)))
        if self.timing.warmup_s > 0.0:
            warm = self.network.step(self.timing.warmup_s, 0.0, 130.0, self.train.pulse_width_us)
            self.monitor.update(warm)
            if self.probe.lfp_uv > 0.0:
                self.probe.calibrate_lfp(warm)
        self.t_origin_s = float(self.network.t_s)
        self.probe.reset(self.t_origin_s)

        outlets = make_plant_outlets(
            name,
            self.source_id,
            self.probe,
            channel_format=self.channel_format,
            scale_uv_per_bit=self.scale_uv_per_bit,
            chunk_samples=self.chunk_samples,
            control_period_s=self.control_period_s,
            window_s=self.monitor.window_s,
            plant_desc={
                "state": self.state,
                "seed": str(self.seed),
                "cells_per_nucleus": str(network.n_cells),
                "dbs_target": network.dbs_target,
                "recorded_nucleus": self.probe.nucleus,
                "recorded_cells": " ".join(str(int(c)) for c in self.probe.cells),
                "control_period_s": repr(self.control_period_s),
                "lockstep": str(self.lockstep).lower(),
                "command_stream": self.command_stream,
                "controller_source_id": self.limits.source_id or "",
                "biomarker_stream": f"{name}-biomarkers",
                "safety_stream": f"{name}-safety",
            },
        )
        self.raw_outlet = outlets.raw
        self.spike_outlet = outlets.spikes
        self.stim_outlet = outlets.stim
        self.biomarker_outlet = outlets.biomarkers
        self.publisher = PeriodPublisher(
            outlets,
            self.probe.cells,
            sfreq=self.sfreq,
            chunk_samples=self.chunk_samples,
            channel_format=self.channel_format,
            scale_uv_per_bit=self.scale_uv_per_bit,
            lockstep=self.lockstep,
        )
        self.stats = BridgeStats()
        self.t0: float | None = None  # LSL time of sample 0 of -raw
        self._stop = threading.Event()
        self._closed = False
        self._open_loop_seq = 0
        self._wait: tuple[Callable[[float], None] | None, float, float, int] = (
            None,
            5.0,
            time.monotonic(),
            0,
        )
        self._n_wait_reports = 0
        self._pace_origin: float | None = None  # perf_counter() at model time 0 (paced)

    # ------------------------------------------------------------------ set-up
    def _train(self, command: StimCommand) -> PulseTrain:
        """The model's pulse train for a command the limiter let out (device -> model units)."""
        return PulseTrain(
            model_amplitude_ua_cm2(command.amplitude_ma),
            command.frequency_hz,
            command.pulse_width_us,
            self.waveform,
        )

    def _start(self) -> float:
        if self.t0 is None:
            self.t0 = pylsl.local_clock() + (0.0 if self.lockstep else self.lead_s)
            # the plant has been off (warm-up) for at least a period when the streams start
            self.limiter.reset(self.t0 - self.control_period_s)
            if not self.closed_loop:  # open loop: the initial setting, through the limiter
                self._submit(self._initial_command(self.t0))
        return self.t0

    def _initial_command(self, now: float) -> StimCommand:
        setting = self.initial
        self._open_loop_seq += 1
        return StimCommand(
            setting.amplitude_ma,
            setting.frequency_hz,
            setting.pulse_width_us,
            now,
            self.source_id,
            self._open_loop_seq,
        )

    # ------------------------------------------------------------------ one period
    @property
    def t_model_s(self) -> float:
        """Model time published so far, from the stream start."""
        return float(self.network.t_s - self.t_origin_s)

    @property
    def now(self) -> float:
        """The bridge's clock (what the limiter sees): ``t0`` plus the model time published."""
        return self._start() + self.t_model_s

    def _submit(self, command: StimCommand) -> StimCommand | None:
        """Hand a command to the limiter; apply what it lets out (None: dropped)."""
        out = self.limiter.submit(command, self.now)
        if out is not None:
            self.command_seq = command.seq
            self.stats.commands_applied += 1
            self._set(out)
        return out

    def _set(self, command: StimCommand) -> None:
        self.command = command
        self.train = self._train(command)

    def advance(self, command: StimCommand | None = None) -> PlantRecord:
        """For in-process use: submit ``command`` (if any) to the limiter, simulate one period,
        publish it. A command the limiter drops changes nothing; the period runs anyway (in a
        paced lockstep once the clock allows it)."""
        self._start()
        if command is not None:
            self._submit(command)
        return self._period()

    def _pace(self) -> None:
        """Paced lockstep: wait until the next period ends at most ``lead_s`` ahead of
        ``max_speed`` times the wall time since the first period began (a :meth:`stop` ends the
        wait)."""
        if self.max_speed is None:
            return
        if self._pace_origin is None:  # waiting for the controller's first command earns nothing
            self._pace_origin = time.perf_counter() - self.t_model_s / self.max_speed
        ahead_s = self.t_model_s + self.control_period_s - self.lead_s
        wait = self._pace_origin + ahead_s / self.max_speed - time.perf_counter()
        if wait > 0.0:
            self.stats.paced_s += wait
            self._stop.wait(wait)

    def _period(self) -> PlantRecord:
        if self._closed:
            raise StimulationError(f"The plant bridge {self.name!r} is closed.")
        self._pace()
        self._set(self.limiter.tick(self.now))
        train = self.train
        rec = self.network.step(
            self.control_period_s,
            train.amplitude,
            frequency_hz=train.frequency_hz,
            pulse_width_us=train.pulse_width_us,
            biphasic=self.waveform == "biphasic",
        )
        self.monitor.update(rec)
        chunk = self.probe.feed(rec, train.amplitude)
        self.publisher.publish(
            self.t0 if self.t0 is not None else 0.0,
            self.t_origin_s,
            rec,
            chunk,
            self.command,
            train,
            self.monitor.features(FEATURES),
            self.command_seq,
            float(self.network.pd_state[0]),
        )
        self.stats.samples += chunk.data.shape[0]
        self.stats.spikes += len(chunk.spikes)
        self.stats.pulses += int(chunk.pulse_samples.size)
        self.stats.periods += 1
        return rec

    def _flush(self, now: float) -> None:
        self.publisher.flush(now)

    @property
    def _outbox(self) -> list[tuple[float, int, Callable[[], None]]]:
        """Pushes waiting for their stamp (real time)."""
        return self.publisher.outbox

    # ------------------------------------------------------------------ commands
    def serve(self, timeout: float = 1.0) -> int:
        """Lockstep: wait up to ``timeout`` s for commands; one period per command the limiter
        accepts (paced: each once the clock allows it). Returns the number of periods advanced (0
        when none came or all were dropped).
        """
        if self.listener is None:
            raise PlantParameterError("serve() needs a controller (limits.source_id).")
        self._start()
        n = 0
        for command in self.listener.poll(timeout):
            if self._submit(command) is not None:
                self._period()
                n += 1
        return n

    # ------------------------------------------------------------------ loops
    def run(
        self,
        duration_s: float | None = None,
        on_wait: Callable[[float], None] | None = None,
        wait_report_s: float = 5.0,
    ) -> BridgeStats:
        """Publish until ``duration_s`` of model time has gone out, or :meth:`stop`.

        ``on_wait(silent_s)`` is called every ``wait_report_s`` seconds of wall time during
        which no command was accepted (in lockstep the plant stands still meanwhile; in real time
        the limiter holds its safe state), so a user learns what the plant waits for.
        """
        if duration_s is not None:
            duration_s = ensure_float(
                duration_s, "duration_s", minimum=0.0, error=PlantParameterError
            )
        # a stop asked before this run started (a SIGINT right after start-up) ends it at once;
        # the request is used up when the run returns
        wall = time.perf_counter()
        self._wait = (on_wait, float(wait_report_s), time.monotonic(), self.limiter.n_accepted)
        try:
            if self.lockstep:
                while not self._stop.is_set():
                    if duration_s is not None and self.t_model_s >= duration_s - 1e-9:
                        break
                    self.serve(timeout=0.1)
                    self._report_wait()
            else:
                self._run_realtime(duration_s)
        finally:
            self._stop.clear()
            self.stats.wall_s += time.perf_counter() - wall
            self.stats.safety = dict(self.limiter.counts)
        return self.stats

    def _run_realtime(self, duration_s: float | None) -> None:
        self._start()
        period = self.control_period_s
        while not self._stop.is_set():
            now = pylsl.local_clock()
            model_lsl = self.now  # LSL time where the simulated model stands
            more = duration_s is None or self.t_model_s < duration_s - 1e-9
            if more and model_lsl < now + self.lead_s:
                lag = now - model_lsl
                if lag > 0:
                    self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
                    if lag > period:
                        self.stats.late_periods += 1
                if self.listener is not None:
                    for command in self.listener.poll(0.0):
                        self._submit(command)
                    self._report_wait()
                self._period()
                # behind the clock, what is due goes out now, not once the model has caught up
                # (a plant that stays late would otherwise publish nothing at all)
                self._flush(pylsl.local_clock())
                continue
            self._flush(now)
            if not more and not self._outbox:
                break
            due = self._outbox[0][0] if self._outbox else now + period
            if more:
                due = min(due, model_lsl - self.lead_s)
            wait = min(due - now, 0.005)
            if wait > 0:
                self._stop.wait(wait)

    def _report_wait(self) -> None:
        on_wait, every_s, since, n_seen = self._wait
        if self.limiter.n_accepted != n_seen:
            self._wait = (on_wait, every_s, time.monotonic(), self.limiter.n_accepted)
            self._n_wait_reports = 0
            return
        silent = time.monotonic() - since
        if on_wait is not None and silent >= every_s * (1 + self._n_wait_reports):
            self._n_wait_reports += 1
            on_wait(silent)

    def stop(self) -> None:
        """Ask :meth:`run` to return (after the current period; at once if it has not started).

        It takes a lock: from a signal handler, call it from another thread (a handler that
        interrupts the main thread inside this event's own wait would wait on itself).
        """
        self._stop.set()

    # ------------------------------------------------------------------ counters, closing
    @property
    def n_dropped(self) -> int:
        """Commands the limiter dropped (another source or token, out of sequence, stale)."""
        return self.limiter.n_dropped

    @property
    def n_unauthorised(self) -> int:
        """Commands dropped because another source or session sent them."""
        return self.limiter.counts["rejected_source"] + self.limiter.counts["rejected_token"]

    @property
    def n_invalid(self) -> int:
        """Commands of the controller replaced by the safe state (NaN, negative, ...)."""
        return self.limiter.counts["invalid"] + self.limiter.counts["out_of_range"]

    def close(self) -> None:
        """Stop, and close every outlet and inlet (inlets see the streams end)."""
        self.stop()
        self._closed = True
        if self.listener is not None:
            self.listener.close()
        self.safety_outlet.close()
        for attr in ("raw_outlet", "spike_outlet", "stim_outlet", "biomarker_outlet"):
            outlet = getattr(self, attr, None)
            if outlet is not None and hasattr(outlet, "outlet"):
                del outlet.outlet  # liblsl closes an outlet when its last reference goes

    @classmethod
    def from_settings(cls, **settings: Any) -> PlantBridge:
        """A bridge from flat settings (a session config's keys): see
        :func:`stimulation.plant.bridge_config.bridge_from_settings`."""
        from stimulation.plant.bridge_config import bridge_from_settings

        return bridge_from_settings(**settings)

    def __enter__(self) -> PlantBridge:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = [
    "BIOMARKER_CHANNELS",
    "BridgeStats",
    "BridgeTiming",
    "PlantBridge",
    "RawFormat",
    "StimSetting",
]
