"""Stimulation-artifact removal: causal blanking around pulses, optional running template subtraction."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from bci.checks import check_value, ensure_float
from bci.errors import ConfigError, StageCompatibilityError
from bci.stream import SignalChunk, Stage, StreamSpec

BlankMode = Literal["zero", "hold", "interpolate-causal"]


def _samples(n: float) -> int:
    """Round a duration in samples up, ignoring float noise (1.5 ms at 30 kHz is 45, not 46)."""
    return math.ceil(round(n, 6))


class ArtifactBlanker(Stage, name="artifact_blanker"):
    """Blank a window around each stimulation pulse, holding the stream back just enough to be causal.

    Pulses come from :meth:`add_pulses` (sample indices of pulse onsets, fed by the runner from the
    stimulation command stream) and/or from detection: a pulse is declared where the median across
    channels of ``|x[n] - x[n-1]|`` exceeds ``detect_threshold`` times its running noise level
    (a stimulation transient is steep on every contact at once; a spike is steep on a few).

    Parameters
    ----------
    window_ms : (float, float)
        Window blanked around each pulse onset, in ms relative to it (default -0.2 to +1.5 ms, the
        duration of a typical charge-balanced DBS pulse plus amplifier recovery; Hashimoto et al.
        2002, J Neurosci Methods 113:181).
    mode : {"zero", "hold", "interpolate-causal"}
        What replaces the window: zeros (use after a band-pass, where the baseline is 0), the last
        value before the window (no step on broadband data), or a straight line from the last value
        before the window to the first value after it.
    subtract_template : bool
        Subtract a running artifact template (mean of aligned raw snippets, baseline = first sample
        of the window, exponential forgetting) over the whole window, and blank only the core
        ``blank_core_ms`` (the pulse itself, where residuals are largest). This recovers the tail of
        the window for spike detection (Wagenaar & Potter 2002, J Neurosci Methods 120:113, for the
        idea of subtracting a fitted artifact instead of discarding the window). Each pulse is
        corrected with the template learned from the pulses *before* it.
    template_tau : float
        Forgetting time constant of the template, in pulses (each new pulse has weight 1/tau).
    blank_core_ms : (float, float)
        Window still blanked when ``subtract_template`` is on.
    detect_threshold : float or None
        Detection threshold in multiples of the running noise (robust: median / 0.6745 of the
        statistic above); ``None`` turns detection off (pulses only from :meth:`add_pulses`).

    Notes
    -----
    **Latency.** A pulse may be known only when its onset sample arrives, but its window starts
    ``-window_ms[0]`` ms earlier, so the stage holds back that many samples
    (:attr:`delay_samples`: 6 at 30 kHz for the default 0.2 ms) and emits every sample that much
    later; ``interpolate-causal`` needs the first sample after the window and holds back the whole
    window plus one sample (52 samples, 1.73 ms at 30 kHz). Output chunks keep their true sample
    indices (``first_sample``) and LSL times, so nothing downstream needs a correction (the emitted spec is
    the upstream one); the hold-back is :attr:`delay_samples`. A pulse added after part of its window
    was emitted blanks only what has not been emitted yet (counted in :attr:`late_pulses`).

    **Gaps.** When a chunk does not continue the stream (``first_sample`` jumps), the held-back
    samples are dropped and the next emitted chunk's ``gap_before`` counts them with the gap.
    """

    accepts = ("signal",)

    def __init__(
        self,
        window_ms: Sequence[float] = (-0.2, 1.5),
        mode: BlankMode = "zero",
        subtract_template: bool = False,
        template_tau: float = 20.0,
        blank_core_ms: Sequence[float] = (-0.2, 0.5),
        detect_threshold: float | None = None,
    ) -> None:
        self.window_ms = self._window(window_ms, "window_ms")
        self.blank_core_ms = self._window(blank_core_ms, "blank_core_ms")
        self.mode: BlankMode = check_value(mode, ("zero", "hold", "interpolate-causal"), "mode")
        self.subtract_template = bool(subtract_template)
        self.template_tau = ensure_float(template_tau, "template_tau", minimum=1.0)
        self.detect_threshold = (
            None
            if detect_threshold is None
            else ensure_float(
                detect_threshold, "detect_threshold", minimum=0.0, strict_minimum=True
            )
        )
        self._sfreq = 0.0
        self._n_channels = 0
        self.delay_samples = 0
        self._pre = self._post = 0
        self.reset()

    @staticmethod
    def _window(value: Sequence[float], name: str) -> tuple[float, float]:
        if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 2:
            raise ConfigError(
                f"Invalid value for the '{name}' parameter: expected (start_ms, end_ms), got {value!r}."
            )
        start = ensure_float(value[0], name, maximum=0.0)
        end = ensure_float(value[1], name, minimum=0.0)
        return (start, end)

    # -- set-up -------------------------------------------------------------------------------------
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        """Convert the windows to samples at the stream's rate; emit the spec with the delay noted."""
        super().prepare(upstream)
        self._sfreq = float(upstream.rate_hz)
        self._n_channels = int(upstream.n_channels)
        self._pre = _samples(-self.window_ms[0] * 1e-3 * self._sfreq)
        self._post = _samples(self.window_ms[1] * 1e-3 * self._sfreq)
        win = self.blank_core_ms if self.subtract_template else self.window_ms
        self._blank = (
            _samples(-win[0] * 1e-3 * self._sfreq),
            _samples(win[1] * 1e-3 * self._sfreq),
        )
        self.delay_samples = (
            self._pre + self._post + 1 if self.mode == "interpolate-causal" else self._pre
        )
        self.output_spec = upstream
        pending = list(self._pulses)  # pulses registered before prepare() are kept
        self.reset()
        self.add_pulses(pending)
        return self.output_spec

    def reset(self) -> None:
        """Forget held-back samples, pending pulses, the template and the noise estimate."""
        self._buf = np.zeros((0, self._n_channels), dtype=np.float32)
        self._tbuf = np.zeros(0, dtype=np.float64)
        self._buf_start: int | None = None
        self._emitted_upto = -1  # last sample index emitted
        self._pulses: list[int] = []
        self._pulse_templates: dict[int, npt.NDArray[np.float32] | None] = {}
        self._template: npt.NDArray[np.float32] | None = None
        self._learned: set[int] = set()
        self._snapped: set[int] = set()
        self._left: dict[int, npt.NDArray[np.float32]] = {}
        self._n_learned = 0
        self._raw_tail = np.zeros((0, self._n_channels), dtype=np.float32)
        self._prev_out = np.zeros(self._n_channels, dtype=np.float32)
        self._prev_raw: npt.NDArray[np.float32] | None = None
        self._noise: float | None = None
        self._last_detected = -(10**18)
        self.pulses_seen: list[int] = []
        self.late_pulses = 0

    # -- pulses -------------------------------------------------------------------------------------
    def add_pulses(self, sample_indices: Iterable[int]) -> None:
        """Register stimulation pulse onsets (sample indices on this stream's clock)."""
        for p in sorted(
            int(s) for s in np.atleast_1d(np.asarray(list(sample_indices), dtype=np.int64))
        ):
            if p in self._pulse_templates:
                continue
            if p - self._pre <= self._emitted_upto:
                self.late_pulses += 1
            if p + self._post <= self._emitted_upto:
                continue  # entirely in the past: nothing left to blank
            self._pulses.append(p)
            self._pulse_templates[p] = None  # snapshot taken by _snapshot() when first needed
            self.pulses_seen.append(p)
        self._pulses.sort()

    def _detect(self, data: npt.NDArray[np.float32], first_sample: int) -> None:
        """Declare pulses where the across-channel median slope jumps above threshold."""
        if self.detect_threshold is None or data.shape[0] == 0:
            return
        prev = data[:1] if self._prev_raw is None else self._prev_raw[None, :]
        slope = np.median(np.abs(np.diff(np.vstack([prev, data]), axis=0)), axis=1)
        if self._noise is None:
            self._noise = max(float(np.median(slope)) / 0.6745, 1e-12)
        above = np.flatnonzero(slope > self.detect_threshold * self._noise)
        found = []
        for i in above:
            s = first_sample + int(i)
            if s > self._last_detected + self._post:
                found.append(s)
                self._last_detected = s
        if found:
            self.add_pulses(found)
        else:  # learn the noise only from artifact-free chunks
            level = max(float(np.median(slope)) / 0.6745, 1e-12)
            self._noise = 0.95 * self._noise + 0.05 * level

    def _learn(self, data: npt.NDArray[np.float32], first_sample: int) -> None:
        """Update the template with every pulse whose raw window is now complete."""
        raw = np.vstack([self._raw_tail, data])
        r0 = first_sample - self._raw_tail.shape[0]
        last = first_sample + data.shape[0] - 1
        for p in self._pulses:
            a, b = p - self._pre, p + self._post
            if b > last or a < r0 or p in self._learned:
                continue
            self._snapshot(p)  # this pulse is corrected with the template from before it
            snippet = raw[a - r0 : b + 1 - r0].astype(np.float32)
            snippet = snippet - snippet[:1]
            if self._template is None:
                self._template = snippet.copy()
            else:
                self._template += (snippet - self._template) / np.float32(
                    min(self.template_tau, self._n_learned + 1)
                )
            self._n_learned += 1
            self._learned.add(p)
        keep = self._pre + self._post + 1
        self._raw_tail = raw[-keep:].copy()

    def _snapshot(self, p: int) -> None:
        """Freeze, once, the template that pulse ``p`` will be corrected with."""
        if p not in self._snapped:
            self._snapped.add(p)
            self._pulse_templates[p] = None if self._template is None else self._template.copy()

    # -- the contract -------------------------------------------------------------------------------
    def process(self, chunk: SignalChunk) -> SignalChunk | None:
        """Take a chunk; emit the samples that are now ``delay_samples`` old, blanked."""
        if self.input_spec is None:
            self.prepare(StreamSpec("signal", chunk.n_channels, chunk.sfreq))
        if chunk.n_channels != self._n_channels:
            raise StageCompatibilityError(
                f"ArtifactBlanker was prepared for {self._n_channels} channels, but got a chunk "
                f"with {chunk.n_channels} channels."
            )
        if self._buf_start is None:
            self._buf_start = chunk.first_sample
            self._emitted_upto = chunk.first_sample - 1
        elif chunk.first_sample != self._buf_start + self._buf.shape[0]:
            # A gap: the held-back samples cannot be joined to this chunk. Drop them (they are
            # reported downstream as part of the gap) and restart the buffer here.
            self._buf = self._buf[:0]
            self._tbuf = self._tbuf[:0]
            self._raw_tail = self._raw_tail[:0]
            self._prev_raw = None
            self._buf_start = chunk.first_sample
        self._detect(chunk.data, chunk.first_sample)
        if chunk.n_samples:
            self._prev_raw = chunk.data[-1].copy()
        work = np.vstack([self._buf, chunk.data])
        times = np.concatenate([self._tbuf, chunk.t_lsl])
        w0 = self._buf_start
        last = chunk.first_sample + chunk.n_samples - 1
        n_emit = max(0, last - self.delay_samples - w0 + 1)
        self._clean(work, w0, n_emit)
        if self.subtract_template:
            self._learn(chunk.data, chunk.first_sample)
        out, self._buf = work[:n_emit], work[n_emit:]
        t_out, self._tbuf = times[:n_emit], times[n_emit:]
        self._buf_start = w0 + n_emit
        if n_emit == 0:
            return None
        previous_end = self._emitted_upto
        self._emitted_upto = w0 + n_emit - 1
        self._prev_out = out[-1].copy()
        self._pulses = [p for p in self._pulses if p + self._post > self._emitted_upto]
        for key in [k for k in self._pulse_templates if k + self._post <= self._emitted_upto]:
            del self._pulse_templates[key]
            self._learned.discard(key)
            self._snapped.discard(key)
            self._left.pop(key, None)
        return dataclasses.replace(
            chunk,
            data=np.ascontiguousarray(out),
            first_sample=w0,
            t_lsl=t_out,
            gap_before=w0 - (previous_end + 1),
        )

    def _clean(self, work: npt.NDArray[np.float32], w0: int, n_emit: int) -> None:
        """Subtract templates and blank, in place, the first ``n_emit`` rows of ``work``."""
        e_end = w0 + n_emit - 1  # last emitted index
        for p in self._pulses:
            a, b = p - self._pre, p + self._post
            if a > e_end or b < w0:
                continue
            if self.subtract_template:
                self._snapshot(p)
                tmpl = self._pulse_templates.get(p)
                if tmpl is not None:
                    lo, hi = max(a, w0), min(b, e_end)
                    work[lo - w0 : hi + 1 - w0] -= tmpl[lo - a : hi + 1 - a]
            ba, bb = p - self._blank[0], p + self._blank[1]
            lo, hi = max(ba, w0), min(bb, e_end)
            if lo > hi:
                continue
            if self.mode == "zero":
                work[lo - w0 : hi + 1 - w0] = 0.0
                continue
            if p not in self._left:  # value before the window, kept while the window is emitted
                self._left[p] = (work[ba - 1 - w0] if ba - 1 >= w0 else self._prev_out).copy()
            left = self._left[p]
            if self.mode == "hold":
                work[lo - w0 : hi + 1 - w0] = left
                continue
            right_i = bb + 1 - w0  # in work: delay covers the window plus one sample
            right = work[right_i] if right_i < work.shape[0] else left
            frac = (np.arange(lo, hi + 1) - (ba - 1)) / float(bb + 1 - (ba - 1))
            work[lo - w0 : hi + 1 - w0] = left + frac[:, None].astype(np.float32) * (right - left)
