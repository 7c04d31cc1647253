"""The sorter's knobs in physical units (ms, um, noise sigmas), checked once, in one place.

:class:`SorterConfig` is what a session config names (``params`` of an ``online_sorter`` stage)
and what a template file stores beside its templates; :meth:`SorterConfig.windows` and
:meth:`SorterConfig.calibration_params` turn it into samples at the recording's rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bci.checks import ensure_float, ensure_int
from bci.sorting.clustering import CalibrationParams
from bci.sorting.errors import SortingConfigError
from bci.sorting.geometry import SampleWindows

_E = SortingConfigError


def _pair(value: Any, name: str, allowed: str) -> tuple[Any, Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise _E(
            f"Invalid value for the '{name}' parameter. Allowed values are {allowed}, but got "
            f"{value!r} instead."
        )
    return value[0], value[1]


def _window(value: Any, name: str) -> tuple[float, float]:
    start, end = _pair(value, name, "(start_ms, end_ms) with start_ms <= 0 <= end_ms")
    return (
        ensure_float(start, name, maximum=0.0, error=_E),
        ensure_float(end, name, minimum=0.0, error=_E),
    )


#: Longest window (ms) any sorting setting may ask for: spike windows are a few ms, refractory
#: periods and pulse tails tens of ms at most.
MAX_WINDOW_MS: float = 50.0
#: Most alignments (+- samples) the matcher may try around the expected trough.
MAX_SHIFT_SAMPLES: int = 64


@dataclass(frozen=True)
class SorterConfig:
    """Every knob of :class:`~bci.sorting.OnlineSorter`, validated at construction.

    Invalid values raise :class:`~bci.sorting.errors.SortingConfigError` (a
    :class:`bci.ConfigError`) naming the parameter.

    Parameters
    ----------
    threshold : float
        Detection threshold in multiples of each channel's noise sigma (MAD, from calibration).
        5 is SpikeInterface's default for sorting; BCI threshold crossings use 3-4.5 (Christie et
        al. 2015) because they need no clean clusters.
    match_threshold : float
        Peaks between ``match_threshold`` and ``threshold`` noise sigmas are reported only when a
        template explains them (never as unsorted): a known waveform is found below the blind
        detection threshold, as the template matchers of SpyKING CIRCUS and Kilosort do. A value
        above ``threshold`` acts as ``threshold``.
    radius_um : float
        Contacts within this distance are neighbours for locally exclusive detection.
    feature_radius_um : float
        Contacts within this distance of the peak channel give a spike's calibration features.
    sweep_ms : float
        Half-width of the local-minimum test in time (0.1 ms, SpikeInterface's default).
    refractory_ms : float
        After an *unsorted* peak, its channel is not re-detected for this long (one slow or
        ragged trough is one event). Matched spikes are subtracted instead, so a second unit firing
        on the same channel right after is still found.
    pre_ms, post_ms : float
        Template window before and after the trough. ``post_ms`` sets the latency floor: a spike is
        labelled once ``post_ms`` (+ a few samples of alignment slack) of signal after its trough has
        arrived. 1 ms after the trough holds the repolarisation that separates most units.
    tail_ms : float
        Template length after the trough that is *subtracted* (not compared): the slow
        after-potential of a big spike would otherwise be detected again as a spike of its own.
        At least ``post_ms``.
    max_shift : int
        Alignments tried around the expected trough, in samples (+- ``max_shift``).
    amplitude_range : (float, float)
        Allowed scaling of a template to fit a spike, ``0 < min <= 1 <= max`` (amplitude varies
        within bursts and with slow drift; Pouzat et al. 2002).
    amplitude_prior : float
        Weight of a Gaussian prior pulling the fitted amplitude towards 1 (0: plain least
        squares): the amplitude is ``(a_ls + prior) / (1 + prior)``, so a spike overlapping
        another cannot make the template absorb its neighbour (Kilosort's amplitude penalty,
        Pachitariu et al. 2024, Nat Methods 21:914). The least-squares amplitude must still lie
        in ``amplitude_range``.
    explain_fraction : float
        A fit is accepted only if it leaves less than this fraction of the peak's depth.
    residual_guard : float
        After a subtraction, the channels it touched need a peak deeper than this fraction of the
        subtracted trough (for the template's duration) to give a new detection, so the small
        mismatch a big spike leaves behind is not reported as a spike.
    tracking_rate : float
        Slow template tracking for drift: every matched spike moves its template by this fraction
        towards the spike (shape and amplitude; an exponential moving average over about
        ``1 / tracking_rate`` spikes). 0 (default) freezes the templates.
    pulse_window_ms : (float, float)
        Window around each registered stimulation pulse where no spike is taken, in ms from the
        pulse onset; the default covers the core an :class:`~bci.preprocessing.ArtifactBlanker`
        blanks (-0.2 to 0.5 ms) plus the band-pass filter's response to it.
    pulse_tail_ms : float
        From the end of ``pulse_window_ms`` to this many ms after a pulse, a peak must reach
        ``threshold`` (not just ``match_threshold``) to be taken: the pulse's tail leaves random
        residue that shallow template matches would pick up.
    calibration_pulse_window_ms : (float, float)
        Wider window left out of calibration: templates are learned from artifact-free
        stretches only (spikes summed with a pulse's faint residue would form clusters of their
        own), and then matched during stimulation.
    reject_pulse_locked : bool
        Drop the units whose spikes are locked to the stimulation pulses, at calibration and
        online (:mod:`bci.sorting.locking`). A neuron truly driven by every pulse at a fixed
        latency looks the same; set ``False`` to keep such units.
    n_temporal_pcs, n_features, min_cluster_size, merge_threshold, merge_distance,
    max_peaks_per_channel, min_spikes, seed
        Clustering knobs, see :mod:`bci.sorting.clustering`.
    refine : int
        Refinement rounds (match the calibration data, rebuild and re-merge the templates).
    """

    threshold: float = 5.0
    match_threshold: float = 4.0
    radius_um: float = 50.0
    feature_radius_um: float = 50.0
    sweep_ms: float = 0.1
    refractory_ms: float = 0.5
    pre_ms: float = 0.7
    post_ms: float = 1.0
    tail_ms: float = 2.5
    max_shift: int = 1
    amplitude_range: tuple[float, float] = (0.6, 1.6)
    amplitude_prior: float = 1.0
    explain_fraction: float = 0.5
    residual_guard: float = 0.3
    tracking_rate: float = 0.0
    pulse_window_ms: tuple[float, float] = (-0.2, 0.5)
    pulse_tail_ms: float = 2.5
    calibration_pulse_window_ms: tuple[float, float] = (-0.5, 3.0)
    reject_pulse_locked: bool = True
    n_temporal_pcs: int = 5
    n_features: int = 10
    min_cluster_size: int = 20
    merge_threshold: float = 0.05
    merge_distance: float = 40.0
    max_peaks_per_channel: int = 2000
    refine: int = 2
    min_spikes: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        def positive(name: str) -> float:
            return ensure_float(
                getattr(self, name), name, minimum=0.0, strict_minimum=True, error=_E
            )

        def non_negative(name: str, maximum: float | None = None) -> float:
            return ensure_float(getattr(self, name), name, minimum=0.0, maximum=maximum, error=_E)

        def count(name: str, minimum: int | None) -> int:
            return ensure_int(getattr(self, name), name, minimum=minimum, error=_E)

        def window_ms(name: str, minimum: float = 0.0) -> float:
            # windows become sample buffers: a bound keeps a bad value (or a tampered template
            # file) from asking for gigabytes
            return ensure_float(
                getattr(self, name),
                name,
                minimum=minimum,
                strict_minimum=minimum == 0.0,
                maximum=MAX_WINDOW_MS,
                error=_E,
            )

        checked: dict[str, Any] = {
            "threshold": positive("threshold"),
            "match_threshold": positive("match_threshold"),
            "pre_ms": window_ms("pre_ms"),
            "post_ms": window_ms("post_ms"),
        }
        for name in ("radius_um", "feature_radius_um"):
            checked[name] = non_negative(name)
        for name in ("sweep_ms", "refractory_ms", "pulse_tail_ms"):
            checked[name] = non_negative(name, maximum=MAX_WINDOW_MS)
        for name in ("amplitude_prior", "merge_threshold", "merge_distance"):
            checked[name] = non_negative(name)
        for name in ("explain_fraction", "residual_guard", "tracking_rate"):
            checked[name] = non_negative(name, maximum=1.0)
        checked["tail_ms"] = ensure_float(
            self.tail_ms, "tail_ms", minimum=checked["post_ms"], maximum=MAX_WINDOW_MS, error=_E
        )
        lo, hi = _pair(
            self.amplitude_range, "amplitude_range", "(min, max) with 0 < min <= 1 <= max"
        )
        lo = ensure_float(lo, "amplitude_range", minimum=0.0, strict_minimum=True, error=_E)
        hi = ensure_float(hi, "amplitude_range", minimum=1.0, error=_E)
        if lo > 1.0:
            raise _E(
                "Invalid value for the 'amplitude_range' parameter. Allowed values are "
                f"(min, max) with 0 < min <= 1 <= max, but got {self.amplitude_range!r} instead."
            )
        checked["amplitude_range"] = (lo, hi)
        checked["pulse_window_ms"] = _window(self.pulse_window_ms, "pulse_window_ms")
        checked["calibration_pulse_window_ms"] = _window(
            self.calibration_pulse_window_ms, "calibration_pulse_window_ms"
        )
        checked["reject_pulse_locked"] = bool(self.reject_pulse_locked)
        for name, minimum in (
            ("max_shift", 0),
            ("n_temporal_pcs", 1),
            ("n_features", 1),
            ("min_cluster_size", 2),
            ("max_peaks_per_channel", 10),
            ("refine", 0),
            ("min_spikes", 1),
            ("seed", None),
        ):
            checked[name] = count(name, minimum)
        if checked["max_shift"] > MAX_SHIFT_SAMPLES:
            raise _E(
                f"Invalid value for the 'max_shift' parameter: must be <= {MAX_SHIFT_SAMPLES}, "
                f"but got {checked['max_shift']}."
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SorterConfig:
        """Build from keyword values; an unknown name is an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise _E(
                f"Unknown sorter parameter(s) {', '.join(map(repr, unknown))}. Allowed names are "
                f"{', '.join(sorted(known))}."
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Every knob by name, as plain values (pairs as lists): YAML and JSON can hold it."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

    def replace(self, **changes: Any) -> SorterConfig:
        """A copy with some knobs changed (validated again)."""
        return self.from_dict({**dataclasses.asdict(self), **changes})

    def windows(self, sfreq: float) -> SampleWindows:
        """The time knobs in samples at ``sfreq``."""
        return SampleWindows.from_config(self, sfreq)

    def calibration_params(self, sfreq: float) -> CalibrationParams:
        """What the clustering of :mod:`bci.sorting.clustering` needs, in samples at ``sfreq``."""
        w = self.windows(sfreq)
        return CalibrationParams(
            threshold=self.threshold,
            sweep=w.sweep,
            refractory=w.refractory,
            detect_radius_um=self.radius_um,
            feature_radius_um=self.feature_radius_um,
            pre=w.pre,
            post=w.post,
            tail=w.tail,
            merge_max_shift=max(self.max_shift, 2),
            seed=self.seed,
            n_temporal_pcs=self.n_temporal_pcs,
            n_features=self.n_features,
            min_cluster_size=self.min_cluster_size,
            merge_threshold=self.merge_threshold,
            merge_distance=self.merge_distance,
            max_peaks_per_channel=self.max_peaks_per_channel,
            min_spikes=self.min_spikes,
        )
