"""The safety limiter: the only path from any controller to any stimulator.

:class:`SafetyLimiter` turns whatever a controller emits into a command a stimulator may deliver,
in device units (mA, Hz, us), and keeps the output safe as time passes:

1. **Who sent it.** Commands from another ``source_id`` than the session's controller, or without
   the session token, are dropped (they never reach the stimulator).
2. **In sequence.** A command whose ``seq`` is not above the last accepted one (a replay, or one
   that overtook another) is dropped; one issued more than ``max_command_age_s`` ago is dropped as
   stale.
3. **Valid.** NaN, infinite or negative amplitude, and non-positive or non-finite rate or width,
   set the target to the safe state; finite values outside the ranges are clamped to them (or set
   the safe state, ``out_of_range="safe_state"``).
4. **Charge.** The amplitude is lowered until the charge per phase meets the Shannon criterion
   and the charge-density cap (:class:`~stimulation.safety.limits.SafetyLimits`).
5. **Slew.** The delivered amplitude moves toward the target by at most ``max_slew_ma_per_s``
   times the time since the last output, up or down, including toward the safe state. Should the
   pulse width grow faster than the amplitude can fall, the pulse width is shortened so the charge
   limits hold on every output.
6. **Watchdog.** Without a fresh (accepted) command for ``watchdog_timeout_s``, the target becomes
   the safe state until the next fresh command.

Time is what the caller says it is (``now``: the LSL clock online, model time in simulation); a
clock that runs backwards or is not finite allows no change. Every drop, clamp and watchdog trip
is counted in :attr:`SafetyLimiter.counts` and handed to the ``events`` callback as a
:class:`SafetyEvent` (:class:`~stimulation.safety.events.SafetyEventOutlet` publishes them on LSL,
so the recorder keeps them).

Invariants (property-tested): every output is finite, within the ranges and the charge limits, and
its amplitude differs from the previous output's by at most ``max_slew_ma_per_s`` times the
(non-negative) time between them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bci.stream.chunks import StimCommand
from stimulation.safety.limits import SafetyConfigError, SafetyLimits, charge_per_phase_uc

#: Every event kind the limiter counts.
EVENT_KINDS: tuple[str, ...] = (
    "rejected_source",
    "rejected_token",
    "rejected_seq",
    "rejected_stale",
    "invalid",
    "out_of_range",
    "clamp_amplitude",
    "clamp_frequency",
    "clamp_pulse_width",
    "clamp_charge",
    "clamp_slew",
    "watchdog_trip",
    "watchdog_recover",
    "bad_clock",
)
#: Events that mean a command was dropped (never reached the stimulator).
DROPS: tuple[str, ...] = ("rejected_source", "rejected_token", "rejected_seq", "rejected_stale")


@dataclass(frozen=True)
class SafetyEvent:
    """One thing the limiter did: ``kind`` (:data:`EVENT_KINDS`) at limiter time ``t``, about the
    command ``seq`` of ``source_id``, with ``detail`` (e.g. the value before and after a clamp)."""

    kind: str
    t: float
    seq: int
    source_id: str
    count: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_marker(self) -> str:
        """The event as one JSON marker string (what the LSL event stream carries)."""
        return json.dumps(
            {
                "event": self.kind,
                "t": _json_float(self.t),
                "seq": self.seq,
                "source_id": self.source_id,
                "count": self.count,
                **{k: _json_float(v) for k, v in self.detail.items()},
            },
            sort_keys=True,
        )


def _json_float(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/inf
    return value


def _finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


class SafetyLimiter:
    """Check, clamp, rate-limit and watch stimulation commands (module docstring).

    Parameters
    ----------
    limits : SafetyLimits
        The limits and the accepted source (:class:`~stimulation.safety.limits.SafetyLimits`).
    events : callable, optional
        Called with each :class:`SafetyEvent` as it happens (e.g.
        :meth:`~stimulation.safety.events.SafetyEventOutlet.publish`).
    name : str
        ``source_id`` of the commands the limiter lets out.
    **limit_values
        Instead of ``limits``: the :class:`~stimulation.safety.limits.SafetyLimits` fields
        (what a session config's ``safety.limits`` holds).

    Examples
    --------
    >>> from bci.stream import StimCommand
    >>> limiter = SafetyLimiter(SafetyLimits(max_slew_ma_per_s=10.0))
    >>> limiter.apply(StimCommand(9.0, 130.0, 60.0, 0.0, "pi", 0), now=0.0).amplitude_ma
    0.0
    >>> limiter.apply(StimCommand(9.0, 130.0, 60.0, 0.1, "pi", 1), now=0.1).amplitude_ma
    1.0
    >>> limiter.counts["clamp_amplitude"], limiter.counts["clamp_slew"]
    (2, 2)
    """

    def __init__(
        self,
        limits: SafetyLimits | None = None,
        *,
        events: Callable[[SafetyEvent], None] | None = None,
        name: str = "safety-limiter",
        **limit_values: Any,
    ) -> None:
        if limits is not None and limit_values:
            raise SafetyConfigError(
                "Give the limits either as a SafetyLimits object or as keyword values, not both."
            )
        self.limits = limits if limits is not None else SafetyLimits.from_dict(limit_values)
        self.events = events
        self.name = str(name)
        self.counts: Counter[str] = Counter()
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, now: float | None = None) -> None:
        """Forget the last command, the sequence and the clock: back to the safe state, off.

        With ``now``, the output has been off since limiter time ``now`` (e.g. a stimulator
        that starts one control period from now), so the first change may use the time since;
        the watchdog counts from then too. Without, the clock starts at the next call.
        """
        lim = self.limits
        self._target = (lim.safe_amplitude, lim.safe_frequency_hz, lim.safe_pulse_width_us)
        self._amplitude = 0.0
        self._frequency = lim.safe_frequency_hz
        self._pulse_width = lim.safe_pulse_width_us
        start = None if now is None else _finite(now)
        self._t: float | None = start  # limiter clock: the latest finite `now` seen
        self._t_out: float | None = start  # limiter clock at the last output
        self._last_fresh: float | None = None  # when the last command was accepted
        self._armed_at: float | None = start
        self._last_seq: int | None = None
        self._out_seq = -1
        self.tripped = False
        self.n_accepted = 0

    @property
    def output(self) -> StimCommand:
        """What the stimulator delivers now (device units)."""
        return StimCommand(
            self._amplitude,
            self._frequency,
            self._pulse_width,
            self._t if self._t is not None else 0.0,
            self.name,
            self._out_seq,
            self.limits.session_token or "",
        )

    @property
    def n_dropped(self) -> int:
        """Commands dropped (foreign source or token, out of sequence, stale)."""
        return sum(self.counts[k] for k in DROPS)

    def _event(self, kind: str, seq: int, source_id: str, **detail: Any) -> None:
        self.counts[kind] += 1
        if self.events is not None:
            t = self._t if self._t is not None else math.nan
            self.events(SafetyEvent(kind, t, seq, source_id, self.counts[kind], detail))

    # ------------------------------------------------------------------ commands
    def apply(self, command: StimCommand, now: float | None = None) -> StimCommand:
        """Check ``command`` at limiter time ``now`` (default: the LSL clock); return what the
        stimulator delivers from now on. A dropped command changes nothing: the current output
        comes back (:meth:`submit` tells drops apart)."""
        if now is None:
            import pylsl

            now = pylsl.local_clock()
        out = self.submit(command, now)
        return out if out is not None else self.tick(now)

    def submit(self, command: StimCommand, now: float) -> StimCommand | None:
        """:meth:`apply`, but None when the command is dropped (it never reaches the
        stimulator; the output is unchanged): what a stimulator uses to obey only accepted
        commands.
        """
        lim = self.limits
        source = str(command.source_id)
        seq = command.seq if isinstance(command.seq, int) else -1
        self._advance_clock(now)
        if lim.source_id is not None and source != lim.source_id:
            self._event("rejected_source", seq, source, expected=lim.source_id)
            return None
        if lim.session_token is not None and command.session_token != lim.session_token:
            self._event("rejected_token", seq, source)
            return None
        if not isinstance(command.seq, int) or (
            self._last_seq is not None and command.seq <= self._last_seq
        ):
            self._event("rejected_seq", seq, source, last_seq=self._last_seq)
            return None
        if lim.max_command_age_s is not None and self._t is not None:
            t_issue = _finite(command.t_issue)
            if t_issue is None or self._t - t_issue > lim.max_command_age_s:
                self._event("rejected_stale", seq, source, t_issue=command.t_issue)
                return None
        self._last_seq = command.seq
        self._out_seq = command.seq
        self.n_accepted += 1
        self._last_fresh = self._t
        if self.tripped:
            self.tripped = False
            self._event("watchdog_recover", seq, source)
        self._target = self._checked(command, seq, source)
        return self._step(seq, source)

    def tick(self, now: float) -> StimCommand:
        """Move the output on to limiter time ``now`` (the ramp toward the target, the watchdog);
        return what the stimulator delivers from now on."""
        self._advance_clock(now)
        self._watchdog()
        return self._step(self._out_seq, self.name)

    # ------------------------------------------------------------------ internals
    def _advance_clock(self, now: float) -> None:
        t = _finite(now)
        if t is None:
            self._event("bad_clock", self._out_seq, self.name, now=_num(now))
            return
        if self._t is None:
            self._t = self._t_out = self._armed_at = t
            return
        if t < self._t:
            self._event("bad_clock", self._out_seq, self.name, now=t, clock=self._t)
        self._t = max(self._t, t)

    def _watchdog(self) -> None:
        timeout = self.limits.watchdog_timeout_s
        if timeout is None or self.tripped or self._t is None:
            return
        since = self._last_fresh if self._last_fresh is not None else self._armed_at
        if since is not None and self._t - since > timeout:
            self.tripped = True
            lim = self.limits
            self._target = (lim.safe_amplitude, lim.safe_frequency_hz, lim.safe_pulse_width_us)
            self._event("watchdog_trip", self._out_seq, self.name, silent_s=self._t - since)

    def _safe(self) -> tuple[float, float, float]:
        lim = self.limits
        return (lim.safe_amplitude, lim.safe_frequency_hz, lim.safe_pulse_width_us)

    def _checked(self, command: StimCommand, seq: int, source: str) -> tuple[float, float, float]:
        """The target a command asks for, after validity, range and charge checks."""
        lim = self.limits
        amp = _finite(command.amplitude_ma)
        freq = _finite(command.frequency_hz)
        pw = _finite(command.pulse_width_us)
        if amp is None or freq is None or pw is None or amp < 0.0 or freq <= 0.0 or pw <= 0.0:
            self._event(
                "invalid",
                seq,
                source,
                amplitude_ma=_num(command.amplitude_ma),
                frequency_hz=_num(command.frequency_hz),
                pulse_width_us=_num(command.pulse_width_us),
            )
            return self._safe()
        ranges = (
            ("amplitude", amp, 0.0, lim.max_amplitude_ma),
            ("frequency", freq, lim.min_frequency_hz, lim.max_frequency_hz),
            ("pulse_width", pw, lim.min_pulse_width_us, lim.max_pulse_width_us),
        )
        clamped = []
        for what, value, lo, hi in ranges:
            inside = min(max(value, lo), hi)
            if inside != value:
                if lim.out_of_range == "safe_state":
                    self._event("out_of_range", seq, source, **{what: value})
                    return self._safe()
                self._event(f"clamp_{what}", seq, source, requested=value, delivered=inside)
            clamped.append(inside)
        amp, freq, pw = clamped
        q_max = lim.max_charge_per_phase_uc
        if charge_per_phase_uc(amp, pw) > q_max:
            limited = q_max / (pw * 1e-3) * (1.0 - 1e-12)  # rounding stays below
            self._event("clamp_charge", seq, source, requested=amp, delivered=limited)
            amp = limited
        return (amp, freq, pw)

    def _step(self, seq: int, source: str) -> StimCommand:
        """Move the delivered amplitude toward the target within the slew limit."""
        lim = self.limits
        target_amp, freq, pw = self._target
        if self._t is None or self._t_out is None:  # no valid clock yet: nothing may change
            return self.output
        step = lim.max_slew_ma_per_s * (self._t - self._t_out)
        amp = min(max(target_amp, self._amplitude - step), self._amplitude + step)
        if amp != target_amp:
            self._event("clamp_slew", seq, source, requested=target_amp, delivered=amp)
        q_max = lim.max_charge_per_phase_uc
        if amp > 0.0 and charge_per_phase_uc(amp, pw) > q_max:
            # the amplitude cannot fall fast enough: shorten the pulse instead (the schema
            # guarantees max_amplitude_ma at min_pulse_width_us meets the charge limit)
            shorter = max(lim.min_pulse_width_us, q_max / (amp * 1e-3) * (1.0 - 1e-12))
            self._event("clamp_charge", seq, source, pulse_width_us=pw, delivered=shorter)
            pw = shorter
        self._amplitude, self._frequency, self._pulse_width = amp, freq, pw
        self._t_out = self._t
        return self.output


def _num(value: Any) -> Any:
    """A command value for an event's detail (JSON-safe, whatever the controller sent)."""
    if isinstance(value, (int, float)):
        return float(value)
    return repr(value)
