"""The sorter's windows in samples: what the knobs in ms become at a sampling rate, and the
margins the online stage carries around its scan position.

Every window is rounded once, here, so calibration and online matching count the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bci.sorting.locking import LOCKING_HORIZON_MS

if TYPE_CHECKING:
    from bci.sorting.config import SorterConfig
    from bci.sorting.templates import TemplateBank


def ms_to_samples(value_ms: float, sfreq: float) -> int:
    """``value_ms`` in samples at ``sfreq``, rounded to the nearest sample."""
    return int(round(value_ms * 1e-3 * sfreq))


@dataclass(frozen=True)
class SampleWindows:
    """The time knobs of a :class:`~bci.sorting.config.SorterConfig` in samples at one rate.

    Attributes
    ----------
    sweep : int
        Half-width of the local-minimum test (at least 1).
    refractory : int
        Dead time of a channel after an unsorted peak.
    pre, post, tail : int
        Template samples before the trough, compared after it, and subtracted after it.
    max_shift : int
        Alignments tried around the expected trough (+-).
    pulse_window, calibration_pulse_window : (int, int)
        Samples from a pulse onset where no spike is taken online / learned from at calibration.
    pulse_tail : int
        Samples after a pulse up to which only full-threshold peaks are taken.
    locking_horizon : int
        Latencies after a pulse that the pulse-locking test compares.
    """

    sweep: int
    refractory: int
    pre: int
    post: int
    tail: int
    max_shift: int
    pulse_window: tuple[int, int]
    pulse_tail: int
    calibration_pulse_window: tuple[int, int]
    locking_horizon: int

    @classmethod
    def from_config(cls, config: SorterConfig, sfreq: float) -> SampleWindows:
        def ms(value_ms: float) -> int:
            return ms_to_samples(value_ms, sfreq)

        return cls(
            sweep=max(1, ms(config.sweep_ms)),
            refractory=ms(config.refractory_ms),
            pre=max(1, ms(config.pre_ms)),
            post=max(1, ms(config.post_ms)),
            tail=max(1, ms(config.tail_ms)),
            max_shift=config.max_shift,
            pulse_window=(ms(config.pulse_window_ms[0]), ms(config.pulse_window_ms[1])),
            pulse_tail=ms(config.pulse_tail_ms),
            calibration_pulse_window=(
                ms(config.calibration_pulse_window_ms[0]),
                ms(config.calibration_pulse_window_ms[1]),
            ),
            locking_horizon=ms(LOCKING_HORIZON_MS),
        )


@dataclass(frozen=True)
class Margins:
    """Samples the online stage keeps around its scan position (see
    :mod:`bci.sorting.streaming`), from a template bank's shape and the matching windows.

    Attributes
    ----------
    rescan : int
        Samples the scan steps back after a subtraction: a peak hidden by a spike sits within
        ``sweep`` of its flank, a few samples before its trough.
    lookahead : int
        Samples after a peak that must have arrived before it can be decided.
    pending : int
        Rows past the arrived data that a subtracted template tail may reach.
    history : int
        Samples before the scan position that matching may read or subtract from.
    """

    rescan: int
    lookahead: int
    pending: int
    history: int

    @classmethod
    def of(cls, bank: TemplateBank, windows: SampleWindows) -> Margins:
        sweep, reach = windows.sweep, bank.max_offset + windows.max_shift
        return cls(
            rescan=2 * sweep + 2,
            lookahead=max(sweep, bank.post + reach),
            pending=bank.tail + reach + 1,
            history=max(sweep, bank.pre + reach),
        )

    @property
    def latency(self) -> int:
        """Signal a spike needs after its trough before it is reported (the latency floor)."""
        return self.lookahead + self.rescan
