"""The path of a command: controller -> safety limiter -> stimulator's LSL stream.

:class:`CommandPath` numbers the commands it hands the limiter (in this process the runner is the
transport between controller and limiter), counts what the limiter dropped or changed, collects
the limiter's events and publishes them after the command went out (so they cost the loop no
latency), pushes what the limiter let out to the stimulator, and on the way out commands the
limiter's safe state and follows its slew-limited ramp there.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pylsl

from bci.runner.outlets import LoopOutlets
from bci.runner.parts import CommandLimiter, LoopParts, off_command, safe_command
from bci.stream import StageTimer, StimCommand

__all__ = ["CommandPath"]

#: Longest the safe state's ramp is followed on the way out (s).
SAFE_STATE_RAMP_S = 1.0
#: Step of that ramp (s): one control period.
SAFE_STATE_STEP_S = 0.02
#: The safe state is sent this long after the limiter reached it (s), so a stimulator whose own
#: limiter ramps more slowly gets there too.
SAFE_STATE_HOLD_S = 0.5


class CommandPath:
    """Controller commands through the limiter to the stimulator (module docstring)."""

    def __init__(self) -> None:
        self.parts: LoopParts | None = None
        self.outlets: LoopOutlets | None = None
        self.n_from_controller = 0
        self.n_limited = 0  # handed to the limiter
        self.n_dropped = 0
        self.n_changed = 0
        self.n_sent = 0
        self.last_sent: StimCommand | None = None
        self.limiter_time = StageTimer(window=1 << 16)
        self.safety_counts: dict[str, int] = {}
        self._pending: list[str] = []
        self.t_last_send = 0.0  # time.monotonic() of the last push
        #: the limiter's clock in lockstep (model seconds); None in real time (LSL clock)
        self.lockstep_clock: float | None = None

    def attach(self, parts: LoopParts) -> None:
        self.parts = parts

    @property
    def limiter(self) -> CommandLimiter:
        assert self.parts is not None and self.parts.limiter is not None
        return self.parts.limiter

    # ------------------------------------------------------------------ limiter events
    def on_safety_event(self, event: Any) -> None:
        """A limiter event: counted now, published after the command went out."""
        kind = str(getattr(event, "kind", "event"))
        self.safety_counts[kind] = self.safety_counts.get(kind, 0) + 1
        marker = event.to_marker() if hasattr(event, "to_marker") else str(event)
        self._pending.append(f"safety {marker}")

    def flush_events(self) -> None:
        """Publish the limiter events collected since the last flush."""
        if self._pending and self.outlets is not None:
            for text in self._pending:
                self.outlets.event(text)
        self._pending.clear()

    # ------------------------------------------------------------------ commands
    def limited(self, command: StimCommand, now: float) -> StimCommand | None:
        """``command`` through the limiter at limiter time ``now`` (None: dropped)."""
        command = dataclasses.replace(command, seq=self.n_limited)
        self.n_limited += 1
        t0 = time.perf_counter_ns()
        # submit(): None when the limiter drops the command (apply() hides drops)
        submit = getattr(self.limiter, "submit", None)
        out = submit(command, now) if callable(submit) else self.limiter.apply(command, now)
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

    def tick(self, held: StimCommand | None, now: float) -> StimCommand | None:
        """The limiter's output at ``now`` without a new command (ramps, watchdog)."""
        tick = getattr(self.limiter, "tick", None)
        return tick(now) if callable(tick) else held

    def send(self, command: StimCommand) -> float:
        """Push a limited command to the stimulator; return the LSL time of the push."""
        assert self.outlets is not None
        command = dataclasses.replace(command, seq=self.n_sent)
        t = self.outlets.push_stimulator(command)
        self.t_last_send = time.monotonic()
        self.n_sent += 1
        self.last_sent = command
        return t

    def off(self, now: float) -> StimCommand:
        """Stimulation off, signed as the session's controller."""
        assert self.parts is not None
        return off_command(self.parts.source_id, 0, now, self.parts.session_token)

    def safe_state(self) -> None:
        """Command the limiter's safe state, follow its ramp there (at most 1 s), and hold it for
        :data:`SAFE_STATE_HOLD_S` (one command per control period)."""
        assert self.parts is not None
        lockstep = self.lockstep_clock is not None
        now = self.lockstep_clock if self.lockstep_clock is not None else pylsl.local_clock()
        target = safe_command(self.limiter, self.parts.source_id, 0, now, self.parts.session_token)
        out = self.limited(target, now)
        if out is not None:
            self.send(out)
        deadline = now + SAFE_STATE_RAMP_S + SAFE_STATE_HOLD_S
        hold_until: float | None = None
        while out is not None and now < deadline:
            if out.amplitude_ma == target.amplitude_ma:
                hold_until = now + SAFE_STATE_HOLD_S if hold_until is None else hold_until
                if now >= hold_until:
                    break
            if lockstep:
                now += SAFE_STATE_STEP_S  # each command moves the plant one period on
            else:
                time.sleep(SAFE_STATE_STEP_S)
                now = pylsl.local_clock()
            out = self.tick(out, now)
            if out is not None:
                self.send(out)
        self.flush_events()

    def summary(self) -> dict[str, Any]:
        """Counts of the commands at each step of the path."""
        return {
            "from_controller": self.n_from_controller,
            "to_limiter": self.n_limited,
            "dropped_by_limiter": self.n_dropped,
            "changed_by_limiter": self.n_changed,
            "sent": self.n_sent,
        }
