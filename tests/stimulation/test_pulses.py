"""PulseTrain: validation, timing, charge per phase, energy and time on stimulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci import BCIError
from stimulation import PulseParameterError, PulseTrain


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amplitude": -1.0}, "amplitude"),
        ({"amplitude": float("nan")}, "amplitude"),
        ({"amplitude": 1.0, "frequency_hz": 0.0}, "frequency_hz"),
        ({"amplitude": 1.0, "frequency_hz": float("nan")}, "frequency_hz"),
        ({"amplitude": 1.0, "pulse_width_us": 0.0}, "pulse_width_us"),
        ({"amplitude": 1.0, "waveform": "triphasic"}, "waveform"),
        ({"amplitude": 1.0, "interphase_us": -5.0}, "interphase_us"),
        ({"amplitude": 1.0, "start_s": 2.0, "stop_s": 1.0}, "stop_s"),
        ({"amplitude": 1.0, "frequency_hz": 1000.0, "pulse_width_us": 1000.0}, "shorter than"),
        (
            {
                "amplitude": 1.0,
                "frequency_hz": 2000.0,
                "pulse_width_us": 200.0,
                "waveform": "biphasic",
                "interphase_us": 100.0,
            },
            "shorter than",
        ),
    ],
)
def test_bad_parameters_raise_a_clear_error(kwargs: dict, match: str) -> None:
    with pytest.raises(PulseParameterError, match=match) as info:
        PulseTrain(**kwargs)
    assert isinstance(info.value, BCIError)
    assert isinstance(info.value, ValueError)


def test_pulse_times_are_regular_and_respect_start_and_stop() -> None:
    train = PulseTrain(1.0, frequency_hz=100.0, pulse_width_us=60.0, start_s=0.005, stop_s=0.05)
    times = train.pulse_times(0.0, 1.0)
    np.testing.assert_allclose(times, 0.005 + np.arange(5) * 0.01)
    # a window that starts between pulses
    np.testing.assert_allclose(train.pulse_times(0.02, 0.04), [0.025, 0.035])
    assert train.pulse_times(0.3, 0.4).size == 0
    with pytest.raises(PulseParameterError):
        train.pulse_times(1.0, 0.5)


def test_zero_amplitude_delivers_nothing() -> None:
    off = PulseTrain(0.0, 130.0, 60.0)
    assert off.pulse_times(0.0, 1.0).size == 0
    assert off.energy_j(10.0) == 0.0
    assert off.time_on_s(10.0) == 0.0


def test_charge_per_phase_and_per_second() -> None:
    train = PulseTrain(3.0, frequency_hz=130.0, pulse_width_us=60.0)  # 3 mA, 60 us
    assert math.isclose(train.charge_per_phase_uc(), 0.18)  # 3 mA x 60 us = 0.18 uC
    assert math.isclose(train.charge_per_phase_uc(amplitude_ma=1.0), 0.06)
    assert math.isclose(train.charge_per_second_uc(), 0.18 * 130.0)
    biphasic = PulseTrain(3.0, 130.0, 60.0, waveform="biphasic", interphase_us=20.0)
    assert biphasic.n_phases == 2
    assert math.isclose(biphasic.pulse_duration_us, 140.0)
    assert math.isclose(biphasic.charge_per_second_uc(), 2 * 0.18 * 130.0)


def test_energy_is_i_squared_r_pw_summed_over_pulses() -> None:
    train = PulseTrain(2.0, frequency_hz=100.0, pulse_width_us=100.0)
    # 100 pulses in 1 s, each (2 mA)^2 x 1 kOhm x 100 us = 4e-7 J
    assert math.isclose(train.energy_j(1.0, impedance_ohm=1000.0), 100 * 4e-7)
    # doubling the impedance doubles the energy; biphasic doubles it again
    assert math.isclose(train.energy_j(1.0, impedance_ohm=2000.0), 2 * 100 * 4e-7)
    bi = PulseTrain(2.0, 100.0, 100.0, waveform="biphasic")
    assert math.isclose(bi.energy_j(1.0), 2 * 100 * 4e-7)
    with pytest.raises(PulseParameterError, match="impedance_ohm"):
        train.energy_j(1.0, impedance_ohm=0.0)


def test_time_on_stimulation_clips_to_the_train() -> None:
    train = PulseTrain(1.0, 130.0, 60.0, start_s=1.0, stop_s=3.0)
    assert math.isclose(train.time_on_s(10.0), 2.0)
    assert math.isclose(train.time_on_s(2.0), 1.0)
    assert train.time_on_s(0.5) == 0.0


def test_to_dict_round_trips() -> None:
    train = PulseTrain(1.5, 60.0, 90.0, waveform="biphasic", interphase_us=10.0)
    assert PulseTrain(**train.to_dict()) == train
