"""bci sweep: seeds and --set values, checked before anything runs."""

from __future__ import annotations

import pytest

from bci.analysis.sweep import SweepJob, parse_seeds, parse_sets
from bci.errors import ConfigError


def test_seed_ranges_and_lists() -> None:
    assert parse_seeds("0-19") == list(range(20))
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-2, 7,9-10") == [0, 1, 2, 7, 9, 10]


@pytest.mark.parametrize("bad", ["", "a", "3-1", "1--2", "-1"])
def test_bad_seeds_name_the_flag(bad: str) -> None:
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(bad)


def test_sets_give_every_combination() -> None:
    combos = parse_sets(["controller.params.gain=0.5,1.0", "duration_s=4"])
    assert combos == [
        ["controller.params.gain=0.5", "duration_s=4"],
        ["controller.params.gain=1.0", "duration_s=4"],
    ]
    assert parse_sets([]) == [[]]
    with pytest.raises(ConfigError, match="--set"):
        parse_sets(["novalue"])
    job = SweepJob("s.yaml", 3, ("controller.params.gain=0.5",))
    assert job.label == "seed3-controller.params.gain_0.5"
