"""OnlineSorter: the Stage that matches spikes chunk by chunk against a calibrated template bank.

The parts, one job each: :class:`~bci.sorting.config.SorterConfig` (the knobs, checked),
:func:`~bci.sorting.calibration.calibrate` (calibration data -> :class:`TemplateBank`),
:class:`~bci.sorting.peeler.Matcher` (a bank bound to the compiled peeling kernel),
:class:`~bci.sorting.streaming.SegmentBuffer` (the carried margin: a spike near the end of a
chunk needs samples that have not arrived yet, so the last ``lookahead`` samples of every chunk
wait for the next), :class:`~bci.sorting.pulses.PulseSchedule` and
:class:`~bci.sorting.locking.LockingMonitor` (stimulation). This module wires them into the
:class:`~bci.stream.Stage` contract. Every spike is reported exactly once, and the output does
not depend on how the stream is cut into chunks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.errors import StageCompatibilityError
from bci.sorting.calibration import calibrate, time_first
from bci.sorting.config import SorterConfig
from bci.sorting.errors import SortingConfigError, SortingError, TemplateFileError
from bci.sorting.locking import LockingMonitor
from bci.sorting.peeler import Matcher, PeelState
from bci.sorting.pulses import PulseSchedule
from bci.sorting.streaming import SegmentBuffer, SpikeRelease
from bci.sorting.templates import TemplateBank
from bci.stream import (
    SPIKE_DTYPE,
    UNSORTED,
    SignalChunk,
    SpikeChunk,
    Stage,
    StreamSpec,
    mask_spans,
)

_KNOBS = frozenset(f.name for f in dataclasses.fields(SorterConfig))


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
    config : SorterConfig or None
        The knobs (default ``SorterConfig()``).
    **knobs
        Any field of :class:`~bci.sorting.config.SorterConfig` by name (``threshold=4.5``),
        replacing the value of ``config``; the meanings are documented there.

    Notes
    -----
    **Stimulation.** With pulses given to :meth:`fit`, calibration leaves them out, learns their
    residue and drops the templates locked to them; online, :meth:`add_pulses` registers pulses,
    and a unit found locked to them (:class:`~bci.sorting.locking.LockingMonitor`, every 25
    spikes) is listed in :attr:`pulse_locked_units` and its later spikes come out unsorted.

    **Bad input.** Invalid knobs raise :class:`~bci.sorting.errors.SortingConfigError`. A chunk
    with another channel count or rate than calibration raises
    :class:`~bci.errors.StageCompatibilityError`; calibration data without spikes above the
    noise raises :class:`SortingError`; a bad template file :class:`TemplateFileError`. NaN
    samples (gaps the source could not fill) are treated as zeros, so no spike is detected in
    them, and counted in :attr:`nan_samples`. A non-contiguous chunk (``first_sample`` jumps)
    finishes the old segment as if it ended there and starts a new one; gaps are counted in
    :attr:`gaps`.
    """

    accepts = ("signal",)
    _monitor: LockingMonitor | None
    _segment: SegmentBuffer | None
    _pulses: PulseSchedule | None
    _inv_noise: npt.NDArray[np.float32] | None
    _residue_queue: npt.NDArray[np.int64]

    def __init__(self, config: SorterConfig | None = None, **knobs: Any) -> None:
        if config is not None and not isinstance(config, SorterConfig):
            raise SortingConfigError(
                "Invalid type for the 'config' parameter. Allowed types are SorterConfig, but "
                f"got {type(config).__name__} instead (pass knobs by name: threshold=4.5)."
            )
        base = SorterConfig() if config is None else config
        self.config = base.replace(**knobs) if knobs else base
        self._bank: TemplateBank | None = None
        self._matcher: Matcher | None = None
        self.calibration_info: dict[str, Any] = {}
        self.templates_file: str | None = None
        self._delay = 0
        self.reset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _KNOBS:
            raise AttributeError(
                f"'{name}' is a knob of the sorter's SorterConfig; to change it on a calibrated "
                f"sorter, reload it: OnlineSorter.load(sorter.save(path), {name}=...)."
            )
        super().__setattr__(name, value)

    # -- calibration ------------------------------------------------------------------------------
    @property
    def bank(self) -> TemplateBank | None:
        """The calibrated templates (``None`` before :meth:`fit` or :meth:`load`)."""
        return self._bank

    def _set_bank(self, bank: TemplateBank, info: dict[str, Any]) -> None:
        self._bank = bank
        self._matcher = Matcher(bank, self.config)
        self.calibration_info = info
        self.reset()

    @property
    def is_fitted(self) -> bool:
        return self._bank is not None

    @property
    def n_units(self) -> int:
        """Number of templates (0 before fit)."""
        return 0 if self._bank is None else self._bank.n_units

    def fit(
        self,
        traces: npt.ArrayLike,
        sfreq: float | None = None,
        positions: npt.ArrayLike | None = None,
        pulses: npt.ArrayLike | None = None,
    ) -> OnlineSorter:
        """Learn noise levels and unit templates from a calibration segment
        (:func:`~bci.sorting.calibration.calibrate`).

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
            within ``calibration_pulse_window_ms`` of them are not learned from.

        Returns
        -------
        self
        """
        x = time_first(traces, "traces")
        spec = self.input_spec
        if sfreq is None:
            if spec is None:
                raise SortingConfigError(
                    "OnlineSorter.fit needs sfreq (or prepare() the stage first)."
                )
            sfreq = float(spec.rate_hz)
        if spec is not None and spec.n_channels != x.shape[1]:
            raise StageCompatibilityError(
                f"OnlineSorter was prepared for {spec.n_channels} channels, but the "
                f"calibration traces have {x.shape[1]}."
            )
        if positions is None and spec is not None and spec.positions:
            positions = spec.positions
        bank, info = calibrate(x, sfreq, self.config, positions, pulses)
        self._set_bank(bank, info)
        return self

    def _require_fit(self) -> tuple[TemplateBank, Matcher]:
        if self._bank is None or self._matcher is None:
            raise SortingError(
                "OnlineSorter has no templates: call fit(calibration_traces) or "
                "OnlineSorter.load(path) before process()."
            )
        return self._bank, self._matcher

    @property
    def lookahead_samples(self) -> int:
        """Signal a spike needs after its trough before it is reported (the latency floor)."""
        return self._require_fit()[1].margins.latency

    # -- stimulation pulses -----------------------------------------------------------------------
    def add_pulses(self, sample_indices: npt.ArrayLike) -> None:
        """Register stimulation pulse onsets (sample indices of the stream).

        No spike is taken within ``pulse_window_ms`` of a pulse and only full-threshold ones up
        to ``pulse_tail_ms``: even after blanking and artifact-template subtraction upstream,
        what is left there is mostly the artifact's (its residue and the filter's response to
        the blanked step). The residue learned at calibration is subtracted. Register a pulse
        before the chunk that holds it is processed (the runner feeds the stimulator's commands
        to both the :class:`~bci.preprocessing.ArtifactBlanker` and the sorter). Pulses given
        before :meth:`fit` are ignored (calibration takes its pulses as an argument).
        """
        new = np.asarray(sample_indices, dtype=np.int64).ravel()
        if new.size == 0 or self._bank is None:
            return  # before fit: fit resets the stage, which forgets pulses anyway
        bank = self._bank
        self._schedule().add(new)
        monitor = self._locking_monitor()
        if monitor is not None:
            monitor.add_pulses(new)
        if self._segment is not None and bank.residue is not None:
            self._segment.subtract_residue(new, bank.residue, bank.residue_start)
        else:
            self._residue_queue = np.unique(np.concatenate([self._residue_queue, new]))

    def _schedule(self) -> PulseSchedule:
        if self._pulses is None:
            w = self._require_fit()[1].windows
            self._pulses = PulseSchedule(w.pulse_window, w.pulse_tail)
        return self._pulses

    @property
    def pulse_locked_units(self) -> list[int]:
        """Units found locked to the stimulation pulses online (their spikes now come out as
        :data:`~bci.stream.UNSORTED`); cleared by :meth:`reset`."""
        return [] if self._monitor is None else np.flatnonzero(self._monitor.locked).tolist()

    def _locking_monitor(self) -> LockingMonitor | None:
        if not self.config.reject_pulse_locked or self._matcher is None:
            return None
        if self._monitor is None:
            w = self._matcher.windows
            self._monitor = LockingMonitor(self.n_units, w.locking_horizon, w.pulse_window)
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

    # -- the Stage contract -----------------------------------------------------------------------
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Check the stream against calibration; emit a spike stream with one channel per unit."""
        super().prepare(upstream)
        self._delay = int(round(float(upstream.group_delay_samples)))
        if self._bank is not None:
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
        bank, _ = self._require_fit()
        if n_channels != bank.n_channels:
            raise StageCompatibilityError(
                f"OnlineSorter was calibrated on {bank.n_channels} channels, but got a "
                f"chunk with {n_channels} channels."
            )
        if abs(sfreq - bank.sfreq) > 1e-6 * bank.sfreq:
            raise StageCompatibilityError(
                f"OnlineSorter was calibrated at {bank.sfreq} Hz, but the stream runs at "
                f"{sfreq} Hz."
            )

    def reset(self) -> None:
        """Forget the carried margin, the stream position, the pulses and the online locking
        flags (templates stay)."""
        self._monitor = None
        self._segment = None
        self._release = SpikeRelease()
        self._inv_noise = None
        self._pulses = None
        self._residue_queue = np.zeros(0, np.int64)
        self.nan_samples = 0
        self.gaps = 0
        #: NaN sample spans not yet handed out with a SpikeChunk
        self._invalid: list[list[int]] = []

    def process(self, chunk: SignalChunk) -> SpikeChunk:
        """Scan what the chunk completes; return the spikes labelled in that span."""
        bank, _ = self._require_fit()
        if self.input_spec is None:
            self.prepare(StreamSpec("signal", chunk.n_channels, chunk.sfreq))
        self._check_stream(chunk.n_channels, chunk.sfreq)
        data = chunk.data
        if np.isnan(data.sum()):  # cheaper than a full mask when, as usual, there is no NaN
            nan_rows = np.isnan(data).any(axis=1)
            self.nan_samples += int(nan_rows.sum())
            data = np.where(np.isnan(data), np.float32(0.0), data)
            # zeros there are not silence: the spans go out with the next SpikeChunk (on the
            # output's clock), and a binner marks their bins invalid
            self._invalid.extend(mask_spans(nan_rows, chunk.first_sample - self._delay).tolist())
        if self._inv_noise is None:
            self._inv_noise = (1.0 / bank.noise).astype(np.float32)
        released = []
        segment = self._segment
        if segment is not None and chunk.first_sample != segment.arrived_end:
            self.gaps += 1  # finish the old segment as if it ended here, start a new one
            released.append(self._release_results([segment.finish(self._peel)], segment.pos))
            segment = None
        if segment is None:
            segment = self._start(chunk.first_sample)
        segment.append(data * self._inv_noise)
        if bank.residue is not None:
            segment.apply_residue(bank.residue, bank.residue_start)
        result = segment.scan_available(self._peel)
        # a rescan may still find spikes a few samples back: those wait
        released.append(self._release_results([result], segment.final_before))
        out = self._release.emit(released, segment.final_before, self._delay, chunk.sfreq)
        out = self._screen_locked(out)
        if self._invalid:
            out = dataclasses.replace(
                out, invalid=np.asarray(self._invalid, dtype=np.int64).reshape(-1, 2)
            )
            self._invalid = []
        return out

    def flush(self) -> SpikeChunk:
        """Decide the held-back margin as if the stream ended here (end of a recording)."""
        bank, _ = self._require_fit()
        segment = self._segment
        if segment is None:
            upto = 0 if self._release.emitted_upto is None else self._release.emitted_upto
            return SpikeChunk(np.zeros(0, SPIKE_DTYPE), upto, upto - 1, bank.sfreq)
        spikes = self._release_results([segment.finish(self._peel)], segment.pos)
        self._segment = None
        out = self._release.emit([spikes], segment.pos, self._delay, bank.sfreq)
        return self._screen_locked(out)

    # -- internals --------------------------------------------------------------------------------
    def _start(self, first_sample: int) -> SegmentBuffer:
        bank, matcher = self._require_fit()
        m = matcher.margins
        pending = m.pending
        if bank.residue is not None:
            pending = max(pending, bank.residue_start + bank.residue.shape[0] + 1)
        segment = SegmentBuffer(
            bank.n_channels, first_sample, m.history, m.lookahead, pending, m.rescan
        )
        if self._residue_queue.size and bank.residue is not None:
            segment.subtract_residue(self._residue_queue, bank.residue, bank.residue_start)
            self._residue_queue = np.zeros(0, np.int64)
        if self._release.emitted_upto is None:
            self._release.emitted_upto = first_sample - self._delay
        self._segment = segment
        return segment

    def _peel(
        self, x: npt.NDArray[np.float32], start: int, stop: int, state: PeelState, first: int
    ) -> tuple[npt.NDArray[Any], ...]:
        """Peel rows ``[start, stop)`` of a segment buffer whose row 0 is stream sample ``first``."""
        _, matcher = self._require_fit()
        schedule = self._schedule()
        out = matcher.peel(x, start, stop, state, schedule.mask(first, x.shape[0]))
        # forget pulses whose window lies behind every future scan
        schedule.forget_before(first + stop - matcher.margins.rescan - 1)
        return out

    def _release_results(
        self, results: list[tuple[npt.NDArray[Any], ...]], final_before: int
    ) -> npt.NDArray[np.void]:
        bank, _ = self._require_fit()
        return self._release.release(results, final_before, self._delay, bank.noise)

    # -- persistence ------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """Every knob of this sorter (its :class:`SorterConfig`), by name."""
        return self.config.to_dict()

    def save(self, path: str | Path) -> Path:
        """Save the calibrated templates and this sorter's knobs (``.npz``)."""
        bank, _ = self._require_fit()
        saved = bank.save(
            path, extra={"params": self.params, "calibration_info": self.calibration_info}
        )
        self.templates_file = str(saved)
        return saved

    @classmethod
    def load(cls, path: str | Path, **knobs: Any) -> OnlineSorter:
        """Rebuild a calibrated sorter saved by :meth:`save`, ready to ``process``.

        ``knobs`` replace saved ones (e.g. ``tracking_rate=0.01`` to track this session).

        Raises
        ------
        TemplateFileError
            The path is missing, not a template file, from a newer version, or inconsistent.
        """
        bank, extra = TemplateBank.load(path)
        try:
            config = SorterConfig.from_dict(extra.get("params", {}))
        except (SortingConfigError, TypeError, AttributeError) as exc:
            raise TemplateFileError(
                f"{path} is not a template file this version can use: its sorter parameters "
                f"are invalid ({exc})"
            ) from None
        info = extra.get("calibration_info") or {}
        if not isinstance(info, dict):
            raise TemplateFileError(
                f"{path} is not a template file this version can use: its calibration_info is a "
                f"{type(info).__name__}, not a mapping."
            )
        sorter = cls(config, **knobs)
        sorter._set_bank(bank, dict(info))
        sorter.templates_file = str(path)
        return sorter

    def to_dict(self) -> dict[str, Any]:
        """Every knob, plus the template file when the sorter was saved or loaded."""
        out = {"stage": type(self).stage_name, "params": self.params}
        if self.templates_file is not None:
            out["templates_file"] = self.templates_file
        return out

    @classmethod
    def from_dict(cls, description: dict[str, Any]) -> OnlineSorter:
        """Rebuild from :meth:`to_dict`; loads the templates when a file is named (the
        ``params`` then replace the saved knobs)."""
        params = dict(description.get("params", {}))
        if description.get("templates_file"):
            return cls.load(description["templates_file"], **params)
        return cls(**params)
