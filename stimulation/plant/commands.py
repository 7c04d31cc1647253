"""The stimulation-command stream: :class:`bci.stream.StimCommand` on LSL, in device units.

Format
------
An irregular-rate LSL stream of type ``"StimCommands"``, ``double64``, five channels labelled
:data:`COMMAND_CHANNELS`: ``amplitude_ma`` (mA), ``frequency_hz`` (Hz), ``pulse_width_us`` (us per
phase), ``seq`` and ``t_issue`` (s), the numeric fields of :class:`~bci.stream.StimCommand`. One
sample is one command. The command's ``source_id`` is the stream's ``source_id``; its
``session_token`` is in the stream's metadata (``desc/command/session_token``), so the XDF
recording keeps both. Units are device units only: a stimulator maps them to its own (the plant's
uA/cm2) through :mod:`stimulation.safety`, nowhere else.

Who is obeyed
-------------
LSL has no authentication: any process can publish a stream of the name a stimulator listens to.
:class:`CommandListener` opens every stream of the command stream's name and turns every sample
into a :class:`~bci.stream.StimCommand` carrying the stream's ``source_id`` and token; the
stimulator's :class:`~stimulation.safety.SafetyLimiter` then drops those of another source or
token and those out of sequence. A stream that is not a command stream (text, too few channels)
is never read from and is counted (:attr:`CommandListener.n_malformed`). This guards against
mis-wired sessions (a second controller, a replayed recording of an earlier session), not against
a malicious peer that copies the source_id and token.
"""

from __future__ import annotations

import time

import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

from bci.acquisition.metadata import make_stream_info
from bci.stream.chunks import StimCommand

#: Channels of a command sample, in order.
COMMAND_CHANNELS: tuple[str, ...] = (
    "amplitude_ma",
    "frequency_hz",
    "pulse_width_us",
    "seq",
    "t_issue",
)
#: Units of :data:`COMMAND_CHANNELS`.
COMMAND_UNITS: tuple[str, ...] = ("mA", "Hz", "us", "", "s")
#: LSL content type of command streams.
COMMAND_STREAM_TYPE = "StimCommands"


def command_stream_info(name: str, source_id: str, session_token: str = "") -> pylsl.StreamInfo:
    """``StreamInfo`` of a command stream (module docstring), with XDF channel metadata."""
    info = make_stream_info(
        name,
        COMMAND_STREAM_TYPE,
        len(COMMAND_CHANNELS),
        0.0,
        "double64",
        source_id,
        labels=COMMAND_CHANNELS,
        units=list(COMMAND_UNITS),
        channel_types="Stim",
        model="stimulation",
    )
    desc = info.desc().append_child("command")
    desc.append_child_value("session_token", session_token)
    desc.append_child_value("units", "device")
    return info


def command_to_sample(command: StimCommand) -> list[float]:
    """The LSL sample of a command (:data:`COMMAND_CHANNELS`)."""
    return [
        float(command.amplitude_ma),
        float(command.frequency_hz),
        float(command.pulse_width_us),
        float(command.seq),
        float(command.t_issue),
    ]


def command_from_sample(sample: list[float], source_id: str, session_token: str) -> StimCommand:
    """The command a sample of stream ``source_id`` carries (``seq`` -1 when unreadable)."""
    seq_value = float(sample[3])
    seq = int(seq_value) if seq_value == seq_value and abs(seq_value) < 2**62 else -1
    return StimCommand(
        amplitude_ma=float(sample[0]),
        frequency_hz=float(sample[1]),
        pulse_width_us=float(sample[2]),
        t_issue=float(sample[4]),
        source_id=source_id,
        seq=seq,
        session_token=session_token,
    )


class CommandOutlet:
    """Publish stimulation commands: what a controller (or ``bci stim``) sends.

    Sends what it is given without checks: checking is the limiter's job, and tests use this to
    send bad commands on purpose. :meth:`send` numbers the commands (``seq``) itself.
    """

    def __init__(self, name: str, source_id: str, session_token: str = "") -> None:
        self.source_id = source_id
        self.session_token = session_token
        self.outlet = pylsl.StreamOutlet(command_stream_info(name, source_id, session_token))
        self.seq = 0

    def send(
        self,
        amplitude_ma: float,
        frequency_hz: float = 130.0,
        pulse_width_us: float = 300.0,
        timestamp: float = 0.0,
    ) -> StimCommand:
        """Push one command with the next ``seq``; returns it."""
        command = StimCommand(
            amplitude_ma,
            frequency_hz,
            pulse_width_us,
            timestamp if timestamp else pylsl.local_clock(),
            self.source_id,
            self.seq,
            self.session_token,
        )
        self.push(command, timestamp)
        self.seq += 1
        return command

    def push(self, command: StimCommand, timestamp: float = 0.0) -> None:
        """Push ``command`` as it is (its own ``seq``: replays and gaps are possible)."""
        self.outlet.push_sample(command_to_sample(command), timestamp)

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait until an inlet (the stimulator) is connected."""
        return bool(self.outlet.wait_for_consumers(timeout))


class CommandListener:
    """Read every command stream named ``stream_name``; return every command, checked by nobody.

    Parameters
    ----------
    stream_name : str
        Name of the command stream(s) to open.
    resolve_interval_s : float
        How often to look for new command streams.
    """

    def __init__(self, stream_name: str, *, resolve_interval_s: float = 0.25) -> None:
        self.stream_name = stream_name
        self.resolve_interval_s = float(resolve_interval_s)
        self._resolver = pylsl.ContinuousResolver(prop="name", value=stream_name, forget_after=5.0)
        # uid -> (inlet or None for a stream that is not a command stream, source_id, token)
        self._inlets: dict[str, tuple[pylsl.StreamInlet | None, str, str]] = {}
        self._next_resolve = 0.0
        self.n_malformed = 0

    @property
    def n_streams(self) -> int:
        """Streams of the name seen so far (command streams or not)."""
        return len(self._inlets)

    def source_ids(self) -> set[str]:
        """source_ids of the command streams opened so far."""
        return {sid for inlet, sid, _ in self._inlets.values() if inlet is not None}

    def _resolve(self) -> None:
        now = time.monotonic()
        if now < self._next_resolve:
            return
        self._next_resolve = now + self.resolve_interval_s
        for info in self._resolver.results():
            uid = info.uid()
            if uid in self._inlets:
                continue
            if (
                info.channel_count() < len(COMMAND_CHANNELS)
                or info.channel_format() == pylsl.cf_string
            ):
                self._inlets[uid] = (None, info.source_id(), "")  # never read: not commands
                self.n_malformed += 1
                continue
            inlet = pylsl.StreamInlet(info, max_buflen=60, recover=True)
            try:
                full = inlet.info(timeout=1.0)
                inlet.open_stream(timeout=1.0)
            except (LSLTimeoutError, LostError):
                continue  # gone again, or slow to answer: the next resolve retries
            token = full.desc().child("command").child_value("session_token")
            self._inlets[uid] = (inlet, info.source_id(), token)

    def wait_for_source(self, source_id: str, timeout: float) -> bool:
        """Wait until a command stream of ``source_id`` is found and opened."""
        deadline = time.monotonic() + timeout
        while True:
            self._next_resolve = 0.0
            self._resolve()
            if source_id in self.source_ids():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def poll(self, timeout: float = 0.0) -> list[StimCommand]:
        """Read everything pending on every stream; return the commands in arrival order.

        Waits up to ``timeout`` seconds for the first command.
        """
        deadline = time.monotonic() + timeout
        out: list[StimCommand] = []
        while True:
            self._resolve()
            for inlet, source_id, token in list(self._inlets.values()):
                if inlet is None:
                    continue
                try:
                    samples, _ = inlet.pull_chunk(timeout=0.0)
                except LostError:
                    continue
                out.extend(command_from_sample(s, source_id, token) for s in samples)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(0.001)

    def close(self) -> None:
        """Close every inlet."""
        for inlet, _, _ in self._inlets.values():
            if inlet is not None:
                inlet.close_stream()
        self._inlets.clear()
