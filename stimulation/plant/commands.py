"""The stimulation-command stream the plant's LSL bridge obeys, and the check of who sent it.

Format
------
An irregular-rate LSL stream of type ``"StimCommands"``, ``double64``, four channels labelled
:data:`COMMAND_CHANNELS`: ``amplitude`` (in the stimulator's units: uA/cm2 for the simulated
plant), ``frequency_hz``, ``pulse_width_us`` and ``seq`` (increasing by one per command, as in
:class:`bci.stream.StimCommand`). One sample is one command; it holds until the next.

Authorisation
-------------
LSL has no authentication: any process on the network can publish a stream with the name a
stimulator listens to. :class:`CommandListener` therefore opens every stream of the command
stream's name and obeys only samples from streams whose ``source_id`` is the session's controller
(given on the command line); everything else is read, ignored and counted
(:attr:`CommandListener.n_unauthorised`). This guards against mis-wired sessions (a second
controller, a replayed recording), not against a malicious peer that copies the source_id.
Commands from the controller that are not valid pulse trains (NaN, negative amplitude, a pulse
longer than the period, an amplitude above the plant's ``max_amplitude``) are refused, counted
(:attr:`CommandListener.n_invalid`) and reported with the reason, never raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

from bci.acquisition.metadata import make_stream_info
from bci.errors import BCIError
from stimulation.errors import PulseParameterError
from stimulation.pulses import PulseTrain, Waveform

#: Channels of a command sample, in order.
COMMAND_CHANNELS: tuple[str, ...] = ("amplitude", "frequency_hz", "pulse_width_us", "seq")
#: LSL content type of command streams.
COMMAND_STREAM_TYPE = "StimCommands"


def command_stream_info(
    name: str, source_id: str, amplitude_unit: str = "uA/cm2"
) -> pylsl.StreamInfo:
    """``StreamInfo`` of a command stream (module docstring), with XDF channel metadata."""
    return make_stream_info(
        name,
        COMMAND_STREAM_TYPE,
        len(COMMAND_CHANNELS),
        0.0,
        "double64",
        source_id,
        labels=COMMAND_CHANNELS,
        units=[amplitude_unit, "Hz", "us", ""],
        channel_types="Stim",
        model="stimulation.plant",
    )


class CommandOutlet:
    """Publish stimulation commands (what a controller, or the safety limiter, sends).

    Sends what it is given without checks: validating is the receiver's job, and tests use this
    to send bad commands on purpose.
    """

    def __init__(self, name: str, source_id: str, amplitude_unit: str = "uA/cm2") -> None:
        self.outlet = pylsl.StreamOutlet(command_stream_info(name, source_id, amplitude_unit))
        self.seq = 0

    def send(
        self,
        amplitude: float,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        timestamp: float = 0.0,
    ) -> int:
        """Push one command; returns its ``seq``."""
        seq = self.seq
        self.outlet.push_sample(
            [float(amplitude), float(frequency_hz), float(pulse_width_us), float(seq)], timestamp
        )
        self.seq += 1
        return seq

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait until an inlet (the bridge) is connected."""
        return bool(self.outlet.wait_for_consumers(timeout))


@dataclass(frozen=True)
class ReceivedCommand:
    """One command from the authorised controller.

    ``train`` is the pulse train it asks for (amplitude already in the plant's units), or None
    when the command was invalid; ``error`` then says why.
    """

    train: PulseTrain | None
    seq: int
    t_lsl: float
    error: str = ""


class CommandListener:
    """Read every stream named ``stream_name``; keep the commands of ``controller_source_id``.

    Parameters
    ----------
    stream_name : str
        Name of the command stream(s) to open.
    controller_source_id : str
        The only ``source_id`` whose commands are obeyed.
    biphasic : bool
        Build charge-balanced biphasic trains from commands (else monophasic).
    amplitude_scale : float
        Plant units per command unit (1: commands already in uA/cm2).
    max_amplitude : float
        Largest amplitude the plant accepts (plant units); larger commands are invalid.
    resolve_interval_s : float
        How often to look for new command streams.
    """

    def __init__(
        self,
        stream_name: str,
        controller_source_id: str,
        *,
        biphasic: bool = False,
        amplitude_scale: float = 1.0,
        max_amplitude: float = 1000.0,
        resolve_interval_s: float = 0.25,
    ) -> None:
        if not controller_source_id:
            raise BCIError(
                "Invalid value for the 'controller_source_id' parameter: a non-empty source_id "
                "is needed to tell the controller's commands from others."
            )
        self.stream_name = stream_name
        self.controller_source_id = controller_source_id
        self.waveform: Waveform = "biphasic" if biphasic else "monophasic"
        self.amplitude_scale = float(amplitude_scale)
        self.max_amplitude = float(max_amplitude)
        self.resolve_interval_s = float(resolve_interval_s)
        self._resolver = pylsl.ContinuousResolver(prop="name", value=stream_name, forget_after=5.0)
        self._inlets: dict[str, tuple[pylsl.StreamInlet, bool]] = {}  # uid -> (inlet, authorised)
        self._next_resolve = 0.0
        self.n_accepted = 0
        self.n_invalid = 0
        self.n_unauthorised = 0
        self.unauthorised_sources: set[str] = set()
        self.last_error = ""

    @property
    def n_streams(self) -> int:
        """Command streams opened so far (authorised or not)."""
        return len(self._inlets)

    @property
    def connected(self) -> bool:
        """Whether a stream of the controller is open."""
        return any(auth for _, auth in self._inlets.values())

    def _resolve(self) -> None:
        now = time.monotonic()
        if now < self._next_resolve:
            return
        self._next_resolve = now + self.resolve_interval_s
        for info in self._resolver.results():
            uid = info.uid()
            if uid in self._inlets:
                continue
            if info.channel_count() < 3 or info.channel_format() == pylsl.cf_string:
                # not a command stream, whoever sent it: never obeyed
                authorised = False
            else:
                authorised = info.source_id() == self.controller_source_id
            inlet = pylsl.StreamInlet(info, max_buflen=60, recover=True)
            try:
                inlet.open_stream(timeout=1.0)
            except (LSLTimeoutError, LostError):
                continue  # gone again, or slow to answer: the next resolve retries
            self._inlets[uid] = (inlet, authorised)
            if not authorised:
                self.unauthorised_sources.add(info.source_id())

    def wait_for_controller(self, timeout: float) -> bool:
        """Wait until the controller's command stream is found and opened."""
        deadline = time.monotonic() + timeout
        while True:
            self._next_resolve = 0.0
            self._resolve()
            if self.connected:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def poll(self, timeout: float = 0.0) -> list[ReceivedCommand]:
        """Read everything pending; return the controller's commands in arrival order.

        Waits up to ``timeout`` seconds for the first command of the controller.
        """
        deadline = time.monotonic() + timeout
        out: list[ReceivedCommand] = []
        while True:
            self._resolve()
            for inlet, authorised in list(self._inlets.values()):
                try:
                    samples, stamps = inlet.pull_chunk(timeout=0.0)
                except LostError:
                    continue
                if not stamps:
                    continue
                if not authorised:
                    self.n_unauthorised += len(stamps)
                    continue
                for sample, t in zip(samples, stamps, strict=True):
                    out.append(self._parse(sample, t))
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(0.001)

    def _parse(self, sample: list[float], t_lsl: float) -> ReceivedCommand:
        values = np.asarray(sample, dtype=np.float64)
        seq = int(values[3]) if values.size > 3 and np.isfinite(values[3]) else -1
        amplitude, frequency_hz, pulse_width_us = (float(v) for v in values[:3])
        try:
            if not np.isfinite(amplitude) or amplitude < 0.0:
                raise PulseParameterError(
                    "Invalid value for the 'amplitude' command channel: must be a finite "
                    f"number >= 0, but got {amplitude}."
                )
            scaled = amplitude * self.amplitude_scale
            if scaled > self.max_amplitude:
                raise PulseParameterError(
                    f"Invalid value for the 'amplitude' command channel: {scaled:g} exceeds the "
                    f"plant's max_amplitude ({self.max_amplitude:g})."
                )
            train = PulseTrain(scaled, frequency_hz, pulse_width_us, self.waveform)
        except PulseParameterError as err:
            self.n_invalid += 1
            self.last_error = str(err)
            return ReceivedCommand(None, seq, t_lsl, str(err))
        self.n_accepted += 1
        return ReceivedCommand(train, seq, t_lsl)

    def close(self) -> None:
        """Close every inlet."""
        for inlet, _ in self._inlets.values():
            inlet.close_stream()
        self._inlets.clear()
