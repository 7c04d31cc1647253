"""The safety limiter: nothing outside the limits ever leaves it, whatever goes in (hypothesis)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bci.stream import StimCommand
from stimulation.safety import (
    SafetyConfigError,
    SafetyEvent,
    SafetyLimiter,
    SafetyLimits,
    charge_per_phase_uc,
    shannon_k,
)

ANY_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),  # anything, NaN, inf, huge, negative
    st.floats(0.0, 20.0),  # plausible amplitudes
    st.floats(0.0, 1000.0),  # plausible rates and widths
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 3.0, 60.0, 130.0, 450.0]),
)


@st.composite
def limits(draw: Any) -> SafetyLimits:
    """Any configuration the schema accepts (drawn consistent, so nothing is filtered)."""
    max_freq = draw(st.floats(50.0, 1000.0))
    min_freq = draw(st.floats(1.0, max_freq))
    max_pw = draw(st.floats(10.0, 0.499e6 / max_freq))
    area = draw(st.floats(0.005, 0.5))
    k = draw(st.floats(1.0, 2.0))
    density = draw(st.floats(5.0, 60.0))
    q_max = min(math.sqrt(10.0**k * area), density * area)
    # the shortest pulse must leave room for the smallest amplitude drawn below (0.01 mA) under
    # the charge cap: a long minimum pulse on a small contact admits no amplitude at all
    min_pw = draw(st.floats(5.0, min(max_pw, 0.99 * q_max / (0.01 * 1e-3))))
    max_amp = draw(st.floats(0.01, 0.999 * q_max / (min_pw * 1e-3)).filter(lambda a: a <= 50))
    safe_pw = draw(st.floats(min_pw, max_pw))
    safe_amp = draw(st.floats(0.0, min(max_amp, 0.999 * q_max / (safe_pw * 1e-3))))
    return SafetyLimits(
        max_amplitude_ma=max_amp,
        min_frequency_hz=min_freq,
        max_frequency_hz=max_freq,
        min_pulse_width_us=min_pw,
        max_pulse_width_us=max_pw,
        electrode_area_cm2=area,
        shannon_k=k,
        max_charge_density_uc_cm2=density,
        max_slew_ma_per_s=draw(st.floats(0.1, 1000.0)),
        watchdog_timeout_s=draw(st.one_of(st.none(), st.floats(0.005, 1.0))),
        safe_state=draw(st.sampled_from(["off", "continuous"])),
        safe_amplitude_ma=safe_amp,
        safe_frequency_hz=draw(st.floats(min_freq, max_freq)),
        safe_pulse_width_us=safe_pw,
        out_of_range=draw(st.sampled_from(["clamp", "safe_state"])),
    )


COMMANDS = st.lists(
    st.tuples(
        ANY_FLOAT,  # amplitude_ma
        ANY_FLOAT,  # frequency_hz
        ANY_FLOAT,  # pulse_width_us
        st.floats(-0.05, 0.5, allow_nan=False),  # time step to the next call (may go back)
        st.booleans(),  # a command (True) or only a tick
        st.integers(-2, 3),  # seq step (<= 0: replay or out of order)
        st.sampled_from(["ctl", "ctl", "ctl", "intruder"]),
        st.sampled_from([True, True, True, False]),  # right token?
        st.sampled_from([None] * 8 + [math.nan, math.inf]),  # a broken clock now and then
    ),
    min_size=1,
    max_size=60,
)


def _check_output(out: StimCommand, lim: SafetyLimits) -> None:
    for value in (out.amplitude_ma, out.frequency_hz, out.pulse_width_us):
        assert math.isfinite(value)
    assert 0.0 <= out.amplitude_ma <= lim.max_amplitude_ma
    assert lim.min_frequency_hz <= out.frequency_hz <= lim.max_frequency_hz
    assert lim.min_pulse_width_us <= out.pulse_width_us <= lim.max_pulse_width_us
    q = charge_per_phase_uc(out.amplitude_ma, out.pulse_width_us)
    assert q <= lim.max_charge_per_phase_uc * (1 + 1e-9)
    assert q / lim.electrode_area_cm2 <= lim.max_charge_density_uc_cm2 * (1 + 1e-9)
    assert shannon_k(out.amplitude_ma, out.pulse_width_us, lim.electrode_area_cm2) <= (
        lim.shannon_k + 1e-9
    )
    # the pulse fits the period (biphasic, no gap)
    assert 2 * out.pulse_width_us < 1e6 / out.frequency_hz


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lim=limits(), commands=COMMANDS, t0=st.floats(-1e6, 1e6))
def test_nothing_outside_the_limits_ever_leaves_and_every_transition_obeys_the_slew(
    lim: SafetyLimits, commands: list[tuple[Any, ...]], t0: float
) -> None:
    lim = SafetyLimits(**{**lim.to_dict(), "source_id": "ctl", "session_token": "tok"})
    events: list[SafetyEvent] = []
    limiter = SafetyLimiter(lim, events=events.append)
    now, clock, seq = t0, None, 0
    previous = limiter.output
    t_previous: float | None = None
    for amp, freq, pw, dt, is_command, dseq, source, right_token, glitch in commands:
        now += dt
        seq += dseq
        t_call = now if glitch is None else glitch
        if is_command:
            token = "tok" if right_token else "old"
            out = limiter.submit(StimCommand(amp, freq, pw, now, source, seq, token), t_call)
            if source != "ctl" or not right_token:
                assert out is None  # a foreign command never leaves
        else:
            out = limiter.tick(t_call)
        if glitch is None:  # the limiter's clock never goes back and ignores a broken one
            clock = now if clock is None else max(clock, now)
        if clock is None:
            assert out is None or out.amplitude_ma == 0.0
            continue
        if t_previous is None:
            t_previous = clock  # the initial output (off) holds from the first call on
        if out is None:
            continue
        _check_output(out, lim)
        elapsed = clock - t_previous
        step = abs(out.amplitude_ma - previous.amplitude_ma)
        assert step <= lim.max_slew_ma_per_s * elapsed + 1e-9
        previous, t_previous = out, clock
    for event in events:  # every event is a JSON marker the recorder can keep
        assert json.loads(event.to_marker())["event"] == event.kind
    assert sum(limiter.counts.values()) == len(events)


def test_each_check_counts_and_reports_what_it_did() -> None:
    events: list[SafetyEvent] = []
    lim = SafetyLimits(source_id="ctl", session_token="tok", max_slew_ma_per_s=1e4)
    limiter = SafetyLimiter(lim, events=events.append)
    limiter.reset(now=0.0)

    def cmd(amp: float, seq: int, source: str = "ctl", token: str = "tok", pw: float = 60.0):
        return StimCommand(amp, 130.0, pw, 0.0, source, seq, token)

    assert limiter.submit(cmd(2.0, 1), 0.02) is not None
    assert limiter.submit(cmd(2.0, 2, source="other"), 0.04) is None
    assert limiter.submit(cmd(2.0, 3, token="stale-session"), 0.04) is None
    assert limiter.submit(cmd(2.0, 1), 0.04) is None  # replay
    out = limiter.apply(cmd(float("nan"), 4), 0.06)
    assert out is not None and out.amplitude_ma == 0.0  # safe state: off
    out = limiter.apply(cmd(2.9, 5, pw=450.0), 0.08)
    # 30 uC/cm2 on 0.06 cm2 caps a phase at 1.8 uC: 4.0 mA at 450 us; Shannon k 1.75 at
    # sqrt(10**1.75 * 0.06) = 1.837 uC is looser here
    assert out is not None and out.amplitude_ma == pytest.approx(2.9)
    out = limiter.apply(cmd(3.0, 6, pw=450.0), 0.10)
    assert out is not None and charge_per_phase_uc(out.amplitude_ma, 450.0) <= 1.8 + 1e-9
    before = limiter.output
    after = limiter.apply(cmd(2.5, 7, source="other"), 0.11)  # apply: the unchanged output
    assert (after.amplitude_ma, after.pulse_width_us) == (before.amplitude_ma, 450.0)
    assert [e.kind for e in events[:4]] == [
        "rejected_source",
        "rejected_token",
        "rejected_seq",
        "invalid",
    ]
    assert limiter.n_dropped == 4 and limiter.counts["invalid"] == 1
    assert SafetyLimiter(max_amplitude_ma=2.0, source_id="ctl").limits.max_amplitude_ma == 2.0
    with pytest.raises(SafetyConfigError, match="max_amp"):
        SafetyLimiter(max_amp=2.0)
    big = SafetyLimits(max_amplitude_ma=10.0, min_pulse_width_us=20.0, max_slew_ma_per_s=1e4)
    limiter = SafetyLimiter(big, events=events.append)
    limiter.reset(now=0.0)
    out = limiter.apply(cmd(10.0, 1, pw=450.0), 0.02)
    assert out is not None and out.amplitude_ma == pytest.approx(1.8 / 0.45)
    assert events[-1].kind == "clamp_charge" and events[-1].detail["requested"] == 10.0


def test_the_watchdog_moves_to_the_configured_safe_state_at_the_slew_rate() -> None:
    lim = SafetyLimits(
        watchdog_timeout_s=0.09,
        safe_state="continuous",
        safe_amplitude_ma=1.0,
        max_slew_ma_per_s=10.0,
    )
    limiter = SafetyLimiter(lim)
    limiter.reset(now=0.0)
    t = 0.0
    for seq in range(20):  # ramp up to 3 mA, commands every 20 ms
        t += 0.02
        limiter.apply(StimCommand(3.0, 130.0, 60.0, t, "ctl", seq), t)
    assert limiter.output.amplitude_ma == pytest.approx(3.0) and not limiter.tripped
    amps = []
    for _ in range(40):  # the controller is silent
        t += 0.02
        amps.append(limiter.tick(t).amplitude_ma)
    assert limiter.tripped and limiter.counts["watchdog_trip"] == 1
    # still 3 mA until the timeout (ticks 20-80 ms after the last command), then down at
    # 0.2 mA per 20 ms to the continuous 1 mA
    assert amps[:4] == pytest.approx([3.0] * 4)
    assert amps[4:7] == pytest.approx([2.8, 2.6, 2.4]) and amps[-1] == pytest.approx(1.0)
    t += 0.02
    out = limiter.apply(StimCommand(0.0, 130.0, 60.0, t, "ctl", 99), t)
    assert out is not None and not limiter.tripped and limiter.counts["watchdog_recover"] == 1


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"max_amplitude_ma": -1.0}, "max_amplitude_ma"),
        ({"max_amplitude_ma": float("nan")}, "max_amplitude_ma"),
        ({"min_frequency_hz": 300.0}, "min_frequency_hz"),
        ({"max_pulse_width_us": 3000.0}, "does not fit"),
        ({"max_amplitude_ma": 100.0}, "charge limit"),
        ({"safe_state": "on"}, "safe_state"),
        ({"safe_state": "continuous", "safe_amplitude_ma": 9.0}, "safe_amplitude_ma"),
        ({"source_id": ""}, "source_id"),
        ({"watchdog_timeout_s": 0.0}, "watchdog_timeout_s"),
    ],
)
def test_contradictory_or_invalid_limits_are_refused_by_name(
    values: dict[str, Any], match: str
) -> None:
    with pytest.raises(SafetyConfigError, match=match):
        SafetyLimits(**values)


def test_limits_round_trip_through_a_config_and_unknown_keys_are_named() -> None:
    lim = SafetyLimits(max_amplitude_ma=2.0, source_id="ctl", watchdog_timeout_s=None)
    assert SafetyLimits.from_dict(lim.to_dict()) == lim
    with pytest.raises(SafetyConfigError, match="max_amplitude"):
        SafetyLimits.from_dict({"max_amplitude": 2.0})
