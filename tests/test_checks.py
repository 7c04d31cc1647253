import math

import pytest

from bci import BCIError, ConfigError
from bci._checks import check_type, check_value, ensure_float, ensure_int


def test_check_value_message_names_parameter_allowed_and_got():
    with pytest.raises(ConfigError) as info:
        check_value("mean", ("median", "average"), "mode")
    msg = str(info.value)
    assert "'mode'" in msg and "'median', 'average'" in msg and "'mean'" in msg
    assert isinstance(info.value, BCIError) and isinstance(info.value, ValueError)


def test_check_type():
    assert check_type(3, int, "n") == 3
    with pytest.raises(ConfigError, match="Allowed types are int, float"):
        check_type("3", (int, float), "n")


def test_ensure_int_refuses_bools_floats_and_small_values():
    assert ensure_int(5, "n") == 5
    for bad in (True, 2.5, "3"):
        with pytest.raises(ConfigError):
            ensure_int(bad, "n")
    with pytest.raises(ConfigError, match=">= 1"):
        ensure_int(0, "n", minimum=1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "x", None, False])
def test_ensure_float_refuses_non_finite_and_non_numbers(bad):
    with pytest.raises(ConfigError):
        ensure_float(bad, "amplitude")


def test_ensure_float_bounds():
    assert ensure_float(0, "x", minimum=0) == 0.0
    with pytest.raises(ConfigError, match="> 0"):
        ensure_float(0, "x", minimum=0, strict_minimum=True)
    with pytest.raises(ConfigError, match="<= 1"):
        ensure_float(2, "x", maximum=1)
