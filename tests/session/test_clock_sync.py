"""One pooled clock correction per sending host (bci.session.clock_sync)."""

from __future__ import annotations

import numpy as np
import pytest

from bci.session.clock_sync import fit_clock_offset, synchronize_host_clocks


def _stream(host: str, stamps, clock_times, clock_values) -> dict:
    return {
        "info": {"hostname": [host] if host else [None], "name": [f"s-{host}"]},
        "time_stamps": np.asarray(stamps, dtype=float),
        "clock_times": list(clock_times),
        "clock_values": list(clock_values),
    }


def test_streams_of_one_host_get_one_correction_despite_noisy_measurements():
    rng = np.random.default_rng(0)
    true_offset = 2.0
    times = np.arange(100.0, 160.0, 5.0)
    # each stream's own measurements are noisy (loopback round trips on a loaded machine)
    a = _stream("lab-pc", [120.0, 130.0], times, true_offset + rng.normal(0, 3e-5, times.size))
    b = _stream("lab-pc", [120.0, 130.0], times, true_offset + rng.normal(0, 3e-5, times.size))
    synchronize_host_clocks([a, b])
    # stamped by the same clock with the same stamps: identical after correction
    np.testing.assert_array_equal(a["time_stamps"], b["time_stamps"])
    np.testing.assert_allclose(a["time_stamps"], [122.0, 132.0], atol=3e-5)


def test_hosts_are_corrected_separately_and_streams_without_offsets_untouched():
    here = _stream("recorder", [10.0], [0.0, 5.0], [0.0, 0.0])
    remote = _stream("amp", [10.0], [0.0, 5.0], [-1.5, -1.5])
    bare = _stream("amp", [10.0], [], [])
    synchronize_host_clocks([here, remote, bare])
    assert here["time_stamps"][0] == pytest.approx(10.0)
    assert remote["time_stamps"][0] == pytest.approx(8.5)
    assert bare["time_stamps"][0] == 10.0


def test_a_clock_reset_is_left_to_the_caller():
    jumped = _stream("pc", [10.0, 20.0], [0.0, 5.0, 10.0], [0.0, 0.0, 3600.0])
    assert synchronize_host_clocks([jumped]) == [0]
    np.testing.assert_array_equal(jumped["time_stamps"], [10.0, 20.0])


def test_drift_is_fitted_only_over_a_long_enough_span():
    t = np.arange(0.0, 60.0, 5.0)
    intercept, slope = fit_clock_offset(t, 1.0 + 1e-5 * t)
    assert slope == pytest.approx(1e-5) and intercept == pytest.approx(1.0)
    # two seconds of measurements cannot tell drift from noise: constant median offset
    intercept, slope = fit_clock_offset(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.1, 1.0]))
    assert slope == 0.0 and intercept == pytest.approx(1.0)
    assert fit_clock_offset(np.array([]), np.array([])) == (0.0, 0.0)


def test_streams_of_the_recorders_own_host_are_left_as_stamped():
    # loopback offset measurements are noise around 0: the recorder's host shares its clock
    local = _stream("rig", [10.0, 11.0], [0.0, 5.0, 10.0], [-3e-6, -36e-6, -11e-6])
    remote = _stream("amp", [10.0], [0.0, 5.0], [0.25, 0.25])
    synchronize_host_clocks([local, remote], recorder_host="rig")
    np.testing.assert_array_equal(local["time_stamps"], [10.0, 11.0])
    assert remote["time_stamps"][0] == pytest.approx(10.25)
