"""OnlineSorter: calibrate templates once, then label spikes chunk by chunk, causally.

``fit`` learns templates from the first seconds of a session (:mod:`bci.sorting.fitting`, with
the clustering of :mod:`bci.sorting.calibration`);
``process`` takes band-passed, referenced :class:`~bci.stream.SignalChunk` objects and returns a
:class:`~bci.stream.SpikeChunk` of the spikes whose labels are final, using the peeler of
:mod:`bci.sorting.peeler`. A spike near the end of a chunk needs samples that have not arrived yet,
so the sorter carries a margin (:mod:`bci.sorting.streaming`): the last ``lookahead`` samples of
every chunk are held in a buffer and scanned when the next chunk completes them. Every spike is
therefore reported exactly once, and the output does not depend on how the stream is cut into
chunks.

Measured against SpikeInterface's ground truth (``benchmarks/bench_sorting.py``, 32 channels,
30 kHz, 60 s, 10 ms chunks, causal): 17/20 units well detected at noise 5 and 31/40 at noise 10,
where spykingcircus2 and tridesclous2 (offline, zero-phase) found 17/20 and 32/40 in the same run.
With 130 Hz stimulation artifacts (pulse times given): 15/20, and no artifact unit since
templates locked to the pulses are dropped (:mod:`bci.sorting.locking`; 7 before).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float, ensure_int
from bci.errors import StageCompatibilityError
from bci.sorting.calibration import CalibrationParams
from bci.sorting.detection import channel_neighbours
from bci.sorting.fitting import fit_sorter
from bci.sorting.locking import LOCKING_HORIZON_MS, LockingMonitor
from bci.sorting.noise import SortingError
from bci.sorting.peeler import peel
from bci.sorting.pulses import pulse_mask
from bci.sorting.streaming import SegmentBuffer, SpikeRelease, fresh_state
from bci.sorting.templates import TemplateBank
from bci.stream import SPIKE_DTYPE, UNSORTED, SignalChunk, SpikeChunk, Stage, StreamSpec


def _ms(value_ms: float, sfreq: float) -> int:
    return int(round(value_ms * 1e-3 * sfreq))


class OnlineSorter(Stage, name="online_sorter"):
    """Template-matching spike sorter for a live stream: ``fit`` once, then ``process`` chunks.

    Input: spike-band signal (after :class:`~bci.preprocessing.BandPass` and
    :class:`~bci.preprocessing.CommonReference`), in uV. Output: spikes with ``unit_index`` the
    template matched, or :data:`~bci.stream.UNSORTED` (-1) for a peak no template explains;
    ``amplitude`` is the trough on the peak channel in the input's unit. Spike times are the
    trough sample minus the upstream filters' group delay
    (``StreamSpec.group_delay_samples``, rounded), i.e. on the raw signal's clock; the output
    spec carries the residual fraction and the rounded part in ``corrected_delay_samples``.

    Parameters
    ----------
    threshold : float
        Detection threshold in multiples of each channel's noise sigma (MAD, from calibration).
        5 is SpikeInterface's default for sorting; BCI threshold crossings use 3-4.5 (Christie et
        al. 2015) because they need no clean clusters.
    match_threshold : float
        Peaks between ``match_threshold`` and ``threshold`` noise sigmas are reported only when a
        template explains them (never as unsorted): a known waveform is found below the blind
        detection threshold, as the template matchers of SpyKING CIRCUS and Kilosort do. Must be
        <= ``threshold`` (a larger value acts as ``threshold``).
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
    max_shift : int
        Alignments tried around the expected trough, in samples (+- ``max_shift``).
    amplitude_range : (float, float)
        Allowed scaling of a template to fit a spike (amplitude varies within bursts and with
        slow drift; Pouzat et al. 2002).
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
    refine : int
        Refinement rounds (match the calibration data, rebuild and re-merge the templates).
    pulse_window_ms : (float, float)
        Window around each registered stimulation pulse (:meth:`add_pulses`) where no spike is
        taken, in ms from the pulse onset; the default covers the core an
        :class:`~bci.preprocessing.ArtifactBlanker` blanks (-0.2 to 0.5 ms) plus the band-pass
        filter's response to it.
    pulse_tail_ms : float
        From the end of ``pulse_window_ms`` to this many ms after a pulse, a peak must reach
        ``threshold`` (not just ``match_threshold``) to be taken: the pulse's tail leaves random
        residue that shallow template matches would pick up.
    calibration_pulse_window_ms : (float, float)
        Wider window left out of calibration: templates are learned from artifact-free
        stretches only (spikes summed with a pulse's faint residue would form clusters of their
        own), and then matched during stimulation.
    reject_pulse_locked : bool
        With pulses given to :meth:`fit`, drop the calibration templates whose spikes are locked
        to the pulses (a Kolmogorov-Smirnov test of each unit's time since the last pulse against
        that of the time it could have fired, :func:`bci.sorting.locking.pulse_locking`): what
        blanking and residue subtraction leave of an artifact clusters like a unit, but fires at
        a few fixed latencies. The dropped units are listed in
        ``calibration_info["pulse_locked"]``. Online, the same test runs on the emitted spikes
        of every unit once pulses are registered (:class:`bci.sorting.locking.LockingMonitor`,
        every 25 spikes): a unit that becomes locked is listed in :attr:`pulse_locked_units`
        and its later spikes come out :data:`~bci.stream.UNSORTED`. A neuron truly driven by
        every pulse at a fixed latency looks the same; set ``False`` to keep such units.
    n_temporal_pcs, n_features, min_cluster_size, merge_threshold, merge_distance,
    max_peaks_per_channel, min_spikes, seed
        Calibration knobs, see :mod:`bci.sorting.calibration`.

    Notes
    -----
    **Bad input.** A chunk with another channel count or rate than calibration raises
    :class:`~bci.errors.StageCompatibilityError`; calibration data that yields no spikes or no
    cluster raises :class:`SortingError`. NaN samples (gaps the source could not fill) are
    treated as zeros, so no spike is detected in them, and counted in :attr:`nan_samples`. A
    non-contiguous chunk (``first_sample`` jumps) finishes the old segment as if it ended there and
    starts a new one; gaps are counted in :attr:`gaps`.
    """

    accepts = ("signal",)
    _pulses: npt.NDArray[np.int64]
    _residue_queue: npt.NDArray[np.int64]
    _no_mask: npt.NDArray[np.uint8]

    def __init__(
        self,
        threshold: float = 5.0,
        match_threshold: float = 4.0,
        radius_um: float = 50.0,
        feature_radius_um: float = 50.0,
        sweep_ms: float = 0.1,
        refractory_ms: float = 0.5,
        pre_ms: float = 0.7,
        post_ms: float = 1.0,
        tail_ms: float = 2.5,
        max_shift: int = 1,
        amplitude_range: Sequence[float] = (0.6, 1.6),
        amplitude_prior: float = 1.0,
        explain_fraction: float = 0.5,
        residual_guard: float = 0.3,
        tracking_rate: float = 0.0,
        pulse_window_ms: Sequence[float] = (-0.2, 0.5),
        pulse_tail_ms: float = 2.5,
        calibration_pulse_window_ms: Sequence[float] = (-0.5, 3.0),
        reject_pulse_locked: bool = True,
        n_temporal_pcs: int = 5,
        n_features: int = 10,
        min_cluster_size: int = 20,
        merge_threshold: float = 0.05,
        merge_distance: float = 40.0,
        max_peaks_per_channel: int = 2000,
        refine: int = 2,
        min_spikes: int = 20,
        seed: int = 0,
    ) -> None:
        self.threshold = ensure_float(threshold, "threshold", minimum=0.0, strict_minimum=True)
        self.match_threshold = ensure_float(
            match_threshold, "match_threshold", minimum=0.0, strict_minimum=True
        )
        self.radius_um = ensure_float(radius_um, "radius_um", minimum=0.0)
        self.feature_radius_um = ensure_float(feature_radius_um, "feature_radius_um", minimum=0.0)
        self.sweep_ms = ensure_float(sweep_ms, "sweep_ms", minimum=0.0)
        self.refractory_ms = ensure_float(refractory_ms, "refractory_ms", minimum=0.0)
        self.pre_ms = ensure_float(pre_ms, "pre_ms", minimum=0.0, strict_minimum=True)
        self.post_ms = ensure_float(post_ms, "post_ms", minimum=0.0, strict_minimum=True)
        self.tail_ms = ensure_float(tail_ms, "tail_ms", minimum=self.post_ms)
        self.max_shift = ensure_int(max_shift, "max_shift", minimum=0)
        if len(amplitude_range) != 2:
            raise SortingError(
                "Invalid value for the 'amplitude_range' parameter. Allowed values are "
                f"(min, max) with 0 < min <= 1 <= max, but got {amplitude_range!r} instead."
            )
        lo = ensure_float(amplitude_range[0], "amplitude_range", minimum=0.0, strict_minimum=True)
        hi = ensure_float(amplitude_range[1], "amplitude_range", minimum=1.0)
        if lo > 1.0:
            raise SortingError(
                "Invalid value for the 'amplitude_range' parameter. Allowed values are "
                f"(min, max) with 0 < min <= 1 <= max, but got {amplitude_range!r} instead."
            )
        self.amplitude_range = (lo, hi)
        self.amplitude_prior = ensure_float(amplitude_prior, "amplitude_prior", minimum=0.0)
        self.explain_fraction = ensure_float(
            explain_fraction, "explain_fraction", minimum=0.0, maximum=1.0
        )
        self.residual_guard = ensure_float(
            residual_guard, "residual_guard", minimum=0.0, maximum=1.0
        )
        if len(pulse_window_ms) != 2:
            raise SortingError(
                "Invalid value for the 'pulse_window_ms' parameter. Allowed values are "
                f"(start_ms, end_ms), but got {pulse_window_ms!r} instead."
            )
        self.pulse_window_ms = (
            ensure_float(pulse_window_ms[0], "pulse_window_ms", maximum=0.0),
            ensure_float(pulse_window_ms[1], "pulse_window_ms", minimum=0.0),
        )
        self.pulse_tail_ms = ensure_float(pulse_tail_ms, "pulse_tail_ms", minimum=0.0)
        if len(calibration_pulse_window_ms) != 2:
            raise SortingError(
                "Invalid value for the 'calibration_pulse_window_ms' parameter. Allowed values "
                f"are (start_ms, end_ms), but got {calibration_pulse_window_ms!r} instead."
            )
        self.calibration_pulse_window_ms = (
            ensure_float(
                calibration_pulse_window_ms[0], "calibration_pulse_window_ms", maximum=0.0
            ),
            ensure_float(
                calibration_pulse_window_ms[1], "calibration_pulse_window_ms", minimum=0.0
            ),
        )
        self.reject_pulse_locked = bool(reject_pulse_locked)
        self.tracking_rate = ensure_float(tracking_rate, "tracking_rate", minimum=0.0, maximum=1.0)
        self.refine = ensure_int(refine, "refine", minimum=0)
        self.seed = ensure_int(seed, "seed")
        self._calibration_knobs: dict[str, Any] = {
            "n_temporal_pcs": ensure_int(n_temporal_pcs, "n_temporal_pcs", minimum=1),
            "n_features": ensure_int(n_features, "n_features", minimum=1),
            "min_cluster_size": ensure_int(min_cluster_size, "min_cluster_size", minimum=2),
            "merge_threshold": ensure_float(merge_threshold, "merge_threshold", minimum=0.0),
            "merge_distance": ensure_float(merge_distance, "merge_distance", minimum=0.0),
            "max_peaks_per_channel": ensure_int(
                max_peaks_per_channel, "max_peaks_per_channel", minimum=10
            ),
            "min_spikes": ensure_int(min_spikes, "min_spikes", minimum=1),
        }
        self.bank: TemplateBank | None = None
        self._neigh: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]] | None = None
        self.calibration_info: dict[str, Any] = {}
        self.templates_file: str | None = None
        self._delay = 0
        self.reset()

    # -- geometry in samples ------------------------------------------------------------------------
    def _params(self, sfreq: float) -> CalibrationParams:
        return CalibrationParams(
            threshold=self.threshold,
            sweep=max(1, _ms(self.sweep_ms, sfreq)),
            refractory=_ms(self.refractory_ms, sfreq),
            detect_radius_um=self.radius_um,
            feature_radius_um=self.feature_radius_um,
            pre=max(1, _ms(self.pre_ms, sfreq)),
            post=max(1, _ms(self.post_ms, sfreq)),
            tail=max(1, _ms(self.tail_ms, sfreq)),
            merge_max_shift=max(self.max_shift, 2),
            seed=self.seed,
            **self._calibration_knobs,
        )

    # -- calibration --------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.bank is not None

    @property
    def n_units(self) -> int:
        """Number of templates (0 before fit)."""
        return 0 if self.bank is None else self.bank.n_units

    def fit(
        self,
        traces: npt.ArrayLike,
        sfreq: float | None = None,
        positions: npt.ArrayLike | None = None,
        pulses: npt.ArrayLike | None = None,
    ) -> OnlineSorter:
        """Learn noise levels and unit templates from a calibration segment.

        Parameters
        ----------
        traces : array, shape (n_samples, n_channels)
            The *preprocessed* signal this stage will see (band-passed, referenced), in uV;
            typically the first 30 s of a session.
        sfreq : float or None
            Sampling rate; ``None``: the prepared stream's rate.
        positions : array (n_channels, 2) or None
            Contact positions in um; ``None``: the prepared stream's positions, else a single
            column at 20 um pitch.
        pulses : array of int or None
            Stimulation pulse onsets in the calibration segment (samples from its start): peaks
            within ``pulse_window_ms`` of them are not learned from.

        Returns
        -------
        self
        """
        fit_sorter(self, traces, sfreq, positions, pulses)
        return self

    def _match_array(
        self,
        xn: npt.NDArray[np.float32],
        bank: TemplateBank,
        masked: npt.NDArray[np.uint8] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """Peel a whole normalised array (zero-padded at both ends): times, channels, units."""
        pad = self._history(bank) + self._lookahead(bank) + self._pending(bank)
        x = np.zeros((xn.shape[0] + 2 * pad, xn.shape[1]), np.float32)
        x[pad : pad + xn.shape[0]] = xn
        state = fresh_state(bank.n_channels)
        mask = np.zeros(x.shape[0], np.uint8)
        if masked is not None:
            mask[pad : pad + xn.shape[0]] = masked
        t, c, k, _, _ = self._peel(x, pad, pad + xn.shape[0], bank, state, 0.0, mask)
        return t - pad, c, k

    # -- geometry of the carried margin -------------------------------------------------------------
    def _sweep(self, bank: TemplateBank) -> int:
        return max(1, _ms(self.sweep_ms, bank.sfreq))

    def _rescan(self, bank: TemplateBank) -> int:
        """Samples the scan steps back after a subtraction (a hidden peak sits within
        ``sweep`` of the flank of the spike that hid it, a few samples before its trough)."""
        return 2 * self._sweep(bank) + 2

    def _lookahead(self, bank: TemplateBank) -> int:
        """Samples after a peak that must be present before it can be decided."""
        return max(self._sweep(bank), bank.post + bank.max_offset + self.max_shift)

    def _pending(self, bank: TemplateBank) -> int:
        """Rows past the arrived data that a subtracted template tail may reach."""
        return bank.tail + bank.max_offset + self.max_shift + 1

    def _history(self, bank: TemplateBank) -> int:
        """Samples before the scan position that matching may read or subtract from."""
        return max(self._sweep(bank), bank.pre + bank.max_offset + self.max_shift)

    @property
    def lookahead_samples(self) -> int:
        """Signal a spike needs after its trough before it is reported (the latency floor)."""
        self._require_fit()
        assert self.bank is not None
        return self._lookahead(self.bank) + self._rescan(self.bank)

    # -- stimulation pulses -------------------------------------------------------------------------
    def add_pulses(self, sample_indices: npt.ArrayLike) -> None:
        """Register stimulation pulse onsets (sample indices of the stream).

        No spike is taken within ``pulse_window_ms`` of a pulse and only full-threshold ones up
        to ``pulse_tail_ms``: even after blanking and artifact-template subtraction upstream,
        what is left there is mostly the artifact's (its residue and the filter's response to
        the blanked step). The residue learned at calibration is subtracted. Register a pulse
        before the chunk that holds it is processed (the runner feeds the stimulator's commands
        to both the :class:`~bci.preprocessing.ArtifactBlanker` and the sorter).
        """
        new = np.asarray(sample_indices, dtype=np.int64).ravel()
        if new.size == 0:
            return
        self._pulses = np.unique(np.concatenate([self._pulses, new]))
        monitor = self._locking_monitor()
        if monitor is not None:
            monitor.add_pulses(new)
        if self._segment is not None and self.bank is not None and self.bank.residue is not None:
            self._segment.subtract_residue(new, self.bank.residue, self.bank.residue_start)
        else:
            self._residue_queue = np.unique(np.concatenate([self._residue_queue, new]))

    def _window(self, window_ms: tuple[float, float], sfreq: float) -> tuple[int, int]:
        return _ms(window_ms[0], sfreq), _ms(window_ms[1], sfreq)

    def _online_mask(self, first: int, n: int, sfreq: float) -> npt.NDArray[np.uint8]:
        if self._pulses.size == 0:
            if self._no_mask.shape[0] != n:
                self._no_mask = np.zeros(n, np.uint8)
            return self._no_mask
        window = self._window(self.pulse_window_ms, sfreq)
        tail = _ms(self.pulse_tail_ms, sfreq)
        # only pulses whose window or tail reaches into [first, first + n) (pulse_mask loops
        # over the pulses it gets, and a replay may register thousands ahead)
        lo, hi = np.searchsorted(
            self._pulses, [first - max(window[1], tail), first + n - window[0]], side="left"
        )
        return pulse_mask(self._pulses[lo:hi], first, n, window, tail)

    def _peel(
        self,
        x: npt.NDArray[np.float32],
        start: int,
        stop: int,
        bank: TemplateBank,
        state: dict[str, npt.NDArray[Any]],
        tracking: float,
        masked: npt.NDArray[np.uint8],
    ) -> tuple[npt.NDArray[Any], ...]:
        if self._neigh is None or self._neigh[0].shape[0] != bank.n_channels:
            self._neigh = channel_neighbours(bank.positions, self.radius_um)
        templates = bank.templates
        if templates.shape[0] == 0:
            templates = np.zeros((1, bank.n_samples, bank.n_channels), np.float32)
        return peel(
            x,
            start,
            stop,
            self.threshold,
            min(self.match_threshold, self.threshold),
            self._sweep(bank),
            _ms(self.refractory_ms, bank.sfreq),
            self._neigh[0],
            self._neigh[1],
            templates,
            bank.pre,
            bank.n_match,
            bank.support,
            bank.n_support,
            bank.norms,
            bank.offsets,
            bank.candidates,
            bank.n_candidates,
            self.max_shift,
            self.amplitude_range[0],
            self.amplitude_range[1],
            self.amplitude_prior,
            self.explain_fraction,
            self.residual_guard,
            state["last_unsorted"],
            state["guard_until"],
            state["guard_level"],
            tracking,
            8,
            state["floor"],
            self._rescan(bank),
            masked,
        )

    # -- the Stage contract -------------------------------------------------------------------------
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Check the stream against calibration; emit a spike stream with one channel per unit."""
        super().prepare(upstream)
        self._delay = int(round(float(upstream.group_delay_samples)))
        if self.bank is not None:
            self._check_stream(int(upstream.n_channels), float(upstream.rate_hz))
        n_units = self.n_units
        self.output_spec = StreamSpec(
            kind="spikes",
            n_channels=n_units,
            rate_hz=float(upstream.rate_hz),
            channel_names=tuple(f"unit{k}" for k in range(n_units)),
            unit=upstream.unit,
            positions=upstream.positions,
            group_delay_samples=float(upstream.group_delay_samples) - self._delay,
            corrected_delay_samples=upstream.corrected_delay_samples + self._delay,
            origin=upstream.origin,
        )
        self.reset()
        return self.output_spec

    def _check_stream(self, n_channels: int, sfreq: float) -> None:
        assert self.bank is not None
        if n_channels != self.bank.n_channels:
            raise StageCompatibilityError(
                f"OnlineSorter was calibrated on {self.bank.n_channels} channels, but got a "
                f"chunk with {n_channels} channels."
            )
        if abs(sfreq - self.bank.sfreq) > 1e-6 * self.bank.sfreq:
            raise StageCompatibilityError(
                f"OnlineSorter was calibrated at {self.bank.sfreq} Hz, but the stream runs at "
                f"{sfreq} Hz."
            )

    def _require_fit(self) -> None:
        if self.bank is None:
            raise SortingError(
                "OnlineSorter has no templates: call fit(calibration_traces) or "
                "OnlineSorter.load(path) before process()."
            )

    def reset(self) -> None:
        """Forget the carried margin, the stream position, the pulses and the online locking
        flags (templates stay)."""
        self._monitor: LockingMonitor | None = None
        self._segment: SegmentBuffer | None = None
        self._release = SpikeRelease()
        self._neigh = None
        self._inv_noise: npt.NDArray[np.float32] | None = None
        self._pulses = np.zeros(0, np.int64)
        self._residue_queue = np.zeros(0, np.int64)
        self._no_mask = np.zeros(0, np.uint8)
        self.nan_samples = 0
        self.gaps = 0

    def process(self, chunk: SignalChunk) -> SpikeChunk:
        """Scan what the chunk completes; return the spikes labelled in that span."""
        self._require_fit()
        bank = self.bank
        assert bank is not None
        if self.input_spec is None:
            self.prepare(StreamSpec("signal", chunk.n_channels, chunk.sfreq))
        self._check_stream(chunk.n_channels, chunk.sfreq)
        data = chunk.data
        if np.isnan(data.sum()):  # cheaper than a full mask when, as usual, there is no NaN
            nan_rows = np.isnan(data).any(axis=1)
            self.nan_samples += int(nan_rows.sum())
            data = np.where(np.isnan(data), np.float32(0.0), data)
        if self._inv_noise is None:
            self._inv_noise = (1.0 / bank.noise).astype(np.float32)
        released = []
        segment = self._segment
        if segment is not None and chunk.first_sample != segment.arrived_end:
            self.gaps += 1  # finish the old segment as if it ended here, start a new one
            released.append(self._release_results([segment.finish(self._peel_fn)], segment.pos))
            segment = None
        if segment is None:
            segment = self._start(chunk.first_sample, bank)
        segment.append(data * self._inv_noise)
        if bank.residue is not None:
            segment.apply_residue(bank.residue, bank.residue_start)
        result = segment.scan_available(self._peel_fn)
        # a rescan may still find spikes a few samples back: those wait
        released.append(self._release_results([result], segment.final_before))
        out = self._release.emit(released, segment.final_before, self._delay, chunk.sfreq)
        return self._screen_locked(out)

    def flush(self) -> SpikeChunk:
        """Decide the held-back margin as if the stream ended here (end of a recording)."""
        self._require_fit()
        assert self.bank is not None
        segment = self._segment
        if segment is None:
            upto = 0 if self._release.emitted_upto is None else self._release.emitted_upto
            return SpikeChunk(np.zeros(0, SPIKE_DTYPE), upto, upto - 1, self.bank.sfreq)
        spikes = self._release_results([segment.finish(self._peel_fn)], segment.pos)
        self._segment = None
        out = self._release.emit([spikes], segment.pos, self._delay, self.bank.sfreq)
        return self._screen_locked(out)

    @property
    def pulse_locked_units(self) -> list[int]:
        """Units found locked to the stimulation pulses online (their spikes now come out as
        :data:`~bci.stream.UNSORTED`); cleared by :meth:`reset`."""
        return [] if self._monitor is None else np.flatnonzero(self._monitor.locked).tolist()

    def _locking_monitor(self) -> LockingMonitor | None:
        if not self.reject_pulse_locked or self.bank is None:
            return None
        if self._monitor is None:
            sfreq = self.bank.sfreq
            self._monitor = LockingMonitor(
                self.bank.n_units,
                _ms(LOCKING_HORIZON_MS, sfreq),
                self._window(self.pulse_window_ms, sfreq),
            )
        return self._monitor

    def _screen_locked(self, out: SpikeChunk) -> SpikeChunk:
        """Run the online locking test on emitted spikes; unlabel the units it flagged."""
        monitor = self._monitor
        if monitor is None or not monitor.active:
            return out
        spikes, d = out.spikes, self._delay  # spike times are on the raw clock, pulses are not
        units = spikes["unit_index"].astype(np.int64)
        monitor.observe(
            out.first_sample + d, out.last_sample + d, spikes["sample_index"] + d, units
        )
        if monitor.locked.any() and spikes.size:
            spikes["unit_index"][(units >= 0) & monitor.locked[np.maximum(units, 0)]] = UNSORTED
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _start(self, first_sample: int, bank: TemplateBank) -> SegmentBuffer:
        pending = self._pending(bank)
        if bank.residue is not None:
            pending = max(pending, bank.residue_start + bank.residue.shape[0] + 1)
        segment = SegmentBuffer(
            bank.n_channels,
            first_sample,
            self._history(bank),
            self._lookahead(bank),
            pending,
            self._rescan(bank),
        )
        if self._residue_queue.size and bank.residue is not None:
            segment.subtract_residue(self._residue_queue, bank.residue, bank.residue_start)
            self._residue_queue = np.zeros(0, np.int64)
        if self._release.emitted_upto is None:
            self._release.emitted_upto = first_sample - self._delay
        self._segment = segment
        return segment

    def _peel_fn(
        self,
        x: npt.NDArray[np.float32],
        start: int,
        stop: int,
        state: dict[str, npt.NDArray[Any]],
        first: int,
    ) -> tuple[npt.NDArray[Any], ...]:
        """Peel rows ``[start, stop)`` of a segment buffer whose row 0 is stream sample ``first``."""
        assert self.bank is not None
        masked = self._online_mask(first, x.shape[0], self.bank.sfreq)
        out = self._peel(x, start, stop, self.bank, state, self.tracking_rate, masked)
        if self._pulses.size:  # forget pulses whose window lies behind every future scan
            reach = max(
                _ms(self.pulse_window_ms[1], self.bank.sfreq),
                _ms(self.pulse_tail_ms, self.bank.sfreq),
            )
            horizon = first + stop - self._rescan(self.bank) - 1
            self._pulses = self._pulses[self._pulses + reach >= horizon]
        return out

    def _release_results(
        self, results: list[tuple[npt.NDArray[Any], ...]], final_before: int
    ) -> npt.NDArray[np.void]:
        assert self.bank is not None
        return self._release.release(results, final_before, self._delay, self.bank.noise)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save the calibrated templates and this sorter's parameters (``.npz``)."""
        self._require_fit()
        assert self.bank is not None
        saved = self.bank.save(
            path, extra={"params": self.params, "calibration_info": self.calibration_info}
        )
        self.templates_file = str(saved)
        return saved

    @classmethod
    def load(cls, path: str | Path) -> OnlineSorter:
        """Rebuild a calibrated sorter saved by :meth:`save`, ready to ``process``."""
        bank, extra = TemplateBank.load(path)
        sorter = cls(**extra.get("params", {}))
        sorter.bank = bank
        sorter.calibration_info = dict(extra.get("calibration_info", {}))
        sorter.templates_file = str(path)
        sorter.reset()
        return sorter

    def to_dict(self) -> dict[str, Any]:
        """Parameters, plus the template file when the sorter was saved or loaded."""
        out = super().to_dict()
        if self.templates_file is not None:
            out["templates_file"] = self.templates_file
        return out

    @classmethod
    def from_dict(cls, description: dict[str, Any]) -> OnlineSorter:
        """Rebuild from :meth:`to_dict`; loads the templates when a file is named."""
        if description.get("templates_file"):
            return cls.load(description["templates_file"])
        return cls(**dict(description.get("params", {})))
