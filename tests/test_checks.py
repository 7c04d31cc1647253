import math

import pytest

from bci import BCIError, ConfigError
from bci.checks import check_type, check_value, ensure_float, ensure_int


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


def test_rooms_pass_their_own_error_type() -> None:
    from bci.checks import check_value, ensure_float, ensure_int
    from stimulation.errors import PlantParameterError

    with pytest.raises(PlantParameterError, match="'dt_ms'.*must be > 0"):
        ensure_float(0.0, "dt_ms", minimum=0.0, strict_minimum=True, error=PlantParameterError)
    with pytest.raises(PlantParameterError, match="'n_cells'"):
        ensure_int(1.5, "n_cells", error=PlantParameterError)
    with pytest.raises(PlantParameterError, match="Allowed values are 'pd', 'healthy'"):
        check_value("x", ("pd", "healthy"), "state", error=PlantParameterError)
