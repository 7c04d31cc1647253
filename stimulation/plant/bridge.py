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
``<name>-stim``      Markers     one ``"stim sample=S amp=A"`` per DBS pulse onset (``A`` in plant units).
``<name>-biomarkers`` Biomarkers one sample per control period (nominal rate ``1 / control_period_s``),
                                 float32 channels :data:`BIOMARKER_CHANNELS`: the sliding-window
                                 features of :mod:`stimulation.plant.monitor` (NaN where undefined)
                                 then the stimulation applied during the period and the ``seq`` of
                                 the command that set it (-1: none yet). Stamped with the period's end.
==================== =========== ======================================================================

Every stream's ``source_id`` is the bridge's ``source_id`` plus the suffix of its name (``-raw``...);
the stream definitions live in :mod:`stimulation.plant.streams`.

Stamps. Sample ``n`` of ``-raw`` is stamped ``t0 + n / sfreq``, where ``t0`` is the LSL time of
the stream's start, and every marker and biomarker is stamped on that same axis. In real time each
item is pushed when its stamp is due; the model runs ``lead_s`` (one control period by default)
ahead of the wall clock, so a command applies from the next period not yet simulated. In lockstep
the stamps follow model time from ``t0`` and run ahead of (or behind) the wall clock.

Commands come from :class:`~stimulation.plant.commands.CommandListener` (format and the
source_id check there): only the session's controller is obeyed; invalid commands keep the previous
stimulation and are counted, never raised. In lockstep every command of the controller, valid or
not, advances the plant by one control period, so controller and plant stay in step.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pylsl

from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import ConfigError
from stimulation.errors import PlantParameterError, StimulationError
from stimulation.plant import BasalGangliaNetwork
from stimulation.plant.commands import CommandListener, ReceivedCommand
from stimulation.plant.monitor import FEATURES, BiomarkerMonitor
from stimulation.plant.parameters import DBS_TARGETS, NUCLEI, STATES
from stimulation.plant.probe import ProbeChunk, VirtualProbe
from stimulation.plant.record import PlantRecord
from stimulation.plant.streams import BIOMARKER_CHANNELS, RAW_FORMATS, make_plant_outlets
from stimulation.pulses import PulseTrain, Waveform


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


class PlantBridge:
    """Run the basal-ganglia plant behind LSL streams (module docstring).

    Parameters
    ----------
    state : {"healthy", "pd"}
        Network state.
    seed : int
        Seeds the network, the choice of recorded cells, their templates and the noise.
    name : str
        Prefix of the published stream names.
    source_id : str, optional
        Prefix of the published source_ids (default ``plant-<name>-<state>-<seed>``).
    controller_source_id : str, optional
        source_id of the only command stream obeyed; None runs open loop on the initial
        stimulation (and refuses lockstep).
    command_stream : str, optional
        Name of the command stream(s) to read (default ``<name>-commands``).
    lockstep : bool
        One control period per controller command instead of wall-clock pacing.
    cells_per_nucleus, dbs_target, dt_ms, lfp_sfreq
        Network settings (:class:`~stimulation.plant.BasalGangliaNetwork`).
    control_period_s : float
        Simulated time per period (and per command in lockstep).
    window_s : float
        Sliding window of the biomarkers.
    warmup_s : float
        Simulated, unpublished and unstimulated, before the streams start (the network leaves its
        initial conditions; the LFP scale is calibrated on it).
    recorded_nucleus : str
        Where the virtual probe sits.
    n_units, n_channels, layout, sfreq, noise_uv, lfp_uv, artifact_amplitude_uv
        Virtual probe settings (:class:`~stimulation.plant.probe.VirtualProbe`).
    channel_format : {"float32", "int16"}
        Sample format of ``-raw``.
    scale_uv_per_bit : float
        uV per integer step of an int16 ``-raw``.
    chunk_ms : float
        Chunk length of ``-raw``.
    amplitude, frequency_hz, pulse_width_us : float
        Stimulation before the first command (amplitude in plant units, uA/cm2; 0: off).
    biphasic : bool
        Charge-balanced biphasic pulses.
    amplitude_scale : float
        Plant units per command amplitude unit.
    max_amplitude : float
        Commands above this amplitude (plant units) are invalid.
    lead_s : float, optional
        How far the model runs ahead of the wall clock in real time (default one period).
    """

    def __init__(
        self,
        state: str = "pd",
        seed: int = 0,
        *,
        name: str = "plant",
        source_id: str | None = None,
        controller_source_id: str | None = None,
        command_stream: str | None = None,
        lockstep: bool = False,
        cells_per_nucleus: int = 10,
        dbs_target: str = "stn",
        dt_ms: float = 0.01,
        lfp_sfreq: float = 1000.0,
        control_period_s: float = 0.02,
        window_s: float = 0.25,
        warmup_s: float = 0.5,
        recorded_nucleus: str = "stn",
        n_units: int = 8,
        n_channels: int = 16,
        layout: str = "linear",
        sfreq: float = 30000.0,
        noise_uv: float = 5.0,
        lfp_uv: float = 50.0,
        artifact_amplitude_uv: float = 2000.0,
        channel_format: str = "float32",
        scale_uv_per_bit: float = 0.195,
        chunk_ms: float = 1.0,
        amplitude: float = 0.0,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        biphasic: bool = False,
        amplitude_scale: float = 1.0,
        max_amplitude: float = 1000.0,
        lead_s: float | None = None,
    ) -> None:
        try:
            self.state = check_value(state, STATES, "state")
            self.seed = ensure_int(seed, "seed", minimum=0)
            check_value(dbs_target, DBS_TARGETS, "dbs_target")
            check_value(recorded_nucleus, NUCLEI, "recorded_nucleus")
            self.channel_format = check_value(channel_format, RAW_FORMATS, "channel_format")
            self.control_period_s = ensure_float(
                control_period_s, "control_period_s", minimum=0.0, strict_minimum=True
            )
            warmup_s = ensure_float(warmup_s, "warmup_s", minimum=0.0)
            self.max_amplitude = ensure_float(
                max_amplitude, "max_amplitude", minimum=0.0, strict_minimum=True
            )
            self.lead_s = (
                self.control_period_s
                if lead_s is None
                else ensure_float(lead_s, "lead_s", minimum=0.0)
            )
            scale = ensure_float(
                scale_uv_per_bit, "scale_uv_per_bit", minimum=0.0, strict_minimum=True
            )
            chunk_ms = ensure_float(chunk_ms, "chunk_ms", minimum=0.0, strict_minimum=True)
        except ConfigError as err:
            if isinstance(err, StimulationError):
                raise
            raise PlantParameterError(str(err)) from None
        self.scale_uv_per_bit = scale if channel_format == "int16" else 1.0
        self.name = name
        self.source_id = source_id or f"plant-{name}-{state}-{seed}"
        self.lockstep = bool(lockstep)
        self.waveform: Waveform = "biphasic" if biphasic else "monophasic"
        self.train = self._train(amplitude, frequency_hz, pulse_width_us)
        self.command_seq = -1
        if self.lockstep and not controller_source_id:
            raise PlantParameterError(
                "Lockstep needs a controller: give the controller's command stream source_id "
                "(controller_source_id / --controller-source-id)."
            )
        self.command_stream = command_stream or f"{name}-commands"
        self.listener = (
            CommandListener(
                self.command_stream,
                controller_source_id,
                biphasic=biphasic,
                amplitude_scale=amplitude_scale,
                max_amplitude=self.max_amplitude,
            )
            if controller_source_id
            else None
        )

        self.network = BasalGangliaNetwork(
            state=self.state,
            cells_per_nucleus=cells_per_nucleus,
            seed=self.seed,
            dbs_target=dbs_target,
            dt_ms=dt_ms,
            lfp_sfreq=lfp_sfreq,
        )
        self.monitor = BiomarkerMonitor(lfp_sfreq, window_s)
        self.probe = VirtualProbe(
            cells_per_nucleus,
            recorded_nucleus,
            n_units,
            n_channels,
            layout,
            sfreq,
            self.seed,
            noise_uv=noise_uv,
            lfp_uv=lfp_uv,
            artifact_amplitude_uv=artifact_amplitude_uv,
            reference_amplitude=300.0,
            artifact_pulse_us=self.train.pulse_width_us,
        )
        self.sfreq = self.probe.sfreq
        self.chunk_samples = max(1, int(round(chunk_ms * 1e-3 * self.sfreq)))
        if warmup_s > 0.0:
            warm = self.network.step(warmup_s, 0.0, 130.0, self.train.pulse_width_us)
            self.monitor.update(warm)
            if lfp_uv > 0.0:
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
                "cells_per_nucleus": str(cells_per_nucleus),
                "dbs_target": dbs_target,
                "recorded_nucleus": recorded_nucleus,
                "recorded_cells": " ".join(str(int(c)) for c in self.probe.cells),
                "control_period_s": repr(self.control_period_s),
                "lockstep": str(self.lockstep).lower(),
                "command_stream": self.command_stream,
                "biomarker_stream": f"{name}-biomarkers",
            },
        )
        self.raw_outlet = outlets.raw
        self.spike_outlet = outlets.spikes
        self.stim_outlet = outlets.stim
        self.biomarker_outlet = outlets.biomarkers
        self.stats = BridgeStats()
        self.t0: float | None = None  # LSL time of sample 0 of -raw
        self._outbox: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stop = threading.Event()
        self._closed = False

    # ------------------------------------------------------------------ set-up
    def _train(self, amplitude: float, frequency_hz: float, pulse_width_us: float) -> PulseTrain:
        train = PulseTrain(amplitude, frequency_hz, pulse_width_us, self.waveform)
        if train.amplitude > self.max_amplitude:
            raise PlantParameterError(
                f"Invalid value for the 'amplitude' parameter: must be <= max_amplitude "
                f"({self.max_amplitude:g}), but got {train.amplitude:g}."
            )
        return train

    # ------------------------------------------------------------------ one period
    @property
    def t_model_s(self) -> float:
        """Model time published so far, from the stream start."""
        return float(self.network.t_s - self.t_origin_s)

    def advance(
        self,
        amplitude: float | None = None,
        frequency_hz: float | None = None,
        pulse_width_us: float | None = None,
    ) -> PlantRecord:
        """Set the stimulation (None keeps each current value), simulate one period, publish it.

        For in-process lockstep (one period per call). Raises
        :class:`~stimulation.errors.PulseParameterError` on a negative or NaN amplitude or a pulse
        longer than the period, and :class:`~stimulation.errors.PlantParameterError` above
        ``max_amplitude``; the stimulation is then unchanged.
        """
        if amplitude is not None or frequency_hz is not None or pulse_width_us is not None:
            self.train = self._train(
                self.train.amplitude if amplitude is None else amplitude,
                self.train.frequency_hz if frequency_hz is None else frequency_hz,
                self.train.pulse_width_us if pulse_width_us is None else pulse_width_us,
            )
        if self.t0 is None:
            self.t0 = pylsl.local_clock() + (0.0 if self.lockstep else self.lead_s)
        return self._period()

    def _period(self) -> PlantRecord:
        if self._closed:
            raise StimulationError(f"The plant bridge {self.name!r} is closed.")
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
        self._publish(rec, chunk, train)
        self.stats.periods += 1
        return rec

    def _publish(self, rec: PlantRecord, chunk: ProbeChunk, train: PulseTrain) -> None:
        t0 = self.t0 if self.t0 is not None else 0.0
        sfreq = self.sfreq
        data = chunk.data
        if self.channel_format == "int16":
            data = data / np.float32(self.scale_uv_per_bit)
        for lo in range(0, data.shape[0], self.chunk_samples):
            piece = data[lo : lo + self.chunk_samples]
            stamp = t0 + (chunk.first_sample + lo + piece.shape[0] - 1) / sfreq
            self._send(stamp, partial(self.raw_outlet.push, piece, stamp))
        self.stats.samples += data.shape[0]
        for s in chunk.spikes:
            unit = int(s["unit_index"])
            marker = (
                f"unit={unit} ch={int(s['channel_index'])} sample={int(s['sample_index'])} "
                f"amp={float(s['amplitude']):.1f} cell={int(self.probe.cells[unit])}"
            )
            stamp = t0 + int(s["sample_index"]) / sfreq
            self._send(stamp, partial(self.spike_outlet.push, marker, stamp))
        self.stats.spikes += len(chunk.spikes)
        for onset, amp in zip(chunk.pulse_samples, chunk.pulse_amplitudes, strict=True):
            marker = f"stim sample={int(onset)} amp={float(amp):g}"
            stamp = t0 + int(onset) / sfreq
            self._send(stamp, partial(self.stim_outlet.push, marker, stamp))
        self.stats.pulses += int(chunk.pulse_samples.size)
        values = np.concatenate(
            [
                self.monitor.features(FEATURES),
                [train.amplitude, train.frequency_hz, train.pulse_width_us, self.command_seq],
            ]
        ).astype(np.float32)[None, :]
        stamp = t0 + (rec.t_stop_s - self.t_origin_s)
        self._send(stamp, partial(self.biomarker_outlet.push, values, stamp))

    def _send(self, due: float, push: Callable[[], None]) -> None:
        if self.lockstep:
            push()
        else:
            heapq.heappush(self._outbox, (due, next(self._order), push))

    def _flush(self, now: float) -> None:
        while self._outbox and self._outbox[0][0] <= now:
            _, _, push = heapq.heappop(self._outbox)
            push()

    # ------------------------------------------------------------------ commands
    def _apply(self, command: ReceivedCommand) -> None:
        self.command_seq = command.seq
        if command.train is not None:
            self.train = command.train
            self.stats.commands_applied += 1

    def serve(self, timeout: float = 1.0) -> int:
        """Lockstep: wait up to ``timeout`` s for controller commands; one period per command.

        Returns the number of periods advanced (0 when no command of the controller came).
        """
        if self.listener is None:
            raise PlantParameterError("serve() needs a controller_source_id.")
        if self.t0 is None:
            self.t0 = pylsl.local_clock()
        n = 0
        for command in self.listener.poll(timeout):
            self._apply(command)
            self._period()
            n += 1
        return n

    # ------------------------------------------------------------------ loops
    def run(self, duration_s: float | None = None) -> BridgeStats:
        """Publish until ``duration_s`` of model time has gone out, or :meth:`stop`."""
        if duration_s is not None:
            try:
                duration_s = ensure_float(duration_s, "duration_s", minimum=0.0)
            except ConfigError as err:
                raise PlantParameterError(str(err)) from None
        self._stop.clear()
        wall = time.perf_counter()
        try:
            if self.lockstep:
                while not self._stop.is_set():
                    if duration_s is not None and self.t_model_s >= duration_s - 1e-9:
                        break
                    self.serve(timeout=0.1)
            else:
                self._run_realtime(duration_s)
        finally:
            self.stats.wall_s += time.perf_counter() - wall
        return self.stats

    def _run_realtime(self, duration_s: float | None) -> None:
        if self.t0 is None:
            self.t0 = pylsl.local_clock() + self.lead_s
        period = self.control_period_s
        while not self._stop.is_set():
            now = pylsl.local_clock()
            model_lsl = self.t0 + self.t_model_s  # LSL time where the simulated model stands
            more = duration_s is None or self.t_model_s < duration_s - 1e-9
            if more and model_lsl < now + self.lead_s:
                lag = now - model_lsl
                if lag > 0:
                    self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
                    if lag > period:
                        self.stats.late_periods += 1
                if self.listener is not None:
                    for command in self.listener.poll(0.0):
                        self._apply(command)
                self._period()
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

    def stop(self) -> None:
        """Ask :meth:`run` to return (after the current period)."""
        self._stop.set()

    # ------------------------------------------------------------------ counters, closing
    @property
    def n_unauthorised(self) -> int:
        """Commands read from streams of another source_id (ignored)."""
        return 0 if self.listener is None else self.listener.n_unauthorised

    @property
    def n_invalid(self) -> int:
        """Commands of the controller refused as invalid pulse trains."""
        return 0 if self.listener is None else self.listener.n_invalid

    def close(self) -> None:
        """Stop, and close every outlet and inlet (inlets see the streams end)."""
        self.stop()
        self._closed = True
        if self.listener is not None:
            self.listener.close()
        for attr in ("raw_outlet", "spike_outlet", "stim_outlet", "biomarker_outlet"):
            outlet = getattr(self, attr, None)
            if outlet is not None and hasattr(outlet, "outlet"):
                del outlet.outlet  # liblsl closes an outlet when its last reference goes

    def __enter__(self) -> PlantBridge:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["BIOMARKER_CHANNELS", "BridgeStats", "PlantBridge"]
