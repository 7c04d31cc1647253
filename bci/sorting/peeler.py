"""The matching kernel: detect, match a template with amplitude scaling, subtract, detect again.

Greedy "peeling" in time order (the template-matching scheme of Tridesclous and SpyKING CIRCUS;
Pouzat et al. 2002, J Neurosci Methods 122:43; Yger et al. 2018, eLife 7:e34518): each locally
exclusive peak of the residual is compared with the templates that can produce a trough on its
channel, at a few alignments; the best fit (largest drop of residual energy, amplitude scaled within
bounds) is accepted if it explains the peak, and is then subtracted from the residual, so a spike
hidden under it can be found at the same sample. A peak no template explains is reported as
unsorted and not subtracted.

Every decision at sample ``t`` depends only on the residual up to ``t + lookahead``, and the
residual is changed only by decisions at earlier samples, so the result does not depend on where
the stream is cut into chunks.

:func:`peel` is the compiled kernel (its inputs grouped: :class:`PeelTables` from the bank,
:class:`PeelSettings` from the config, :class:`PeelState` carried between calls); a
:class:`Matcher` binds a template bank and a config to it, for the online stage and for
calibration's refinement rounds alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from bci.sorting.detection import channel_neighbours, is_local_peak
from bci.sorting.geometry import Margins

if TYPE_CHECKING:
    from bci.sorting.config import SorterConfig
    from bci.sorting.templates import TemplateBank


class PeelTables(NamedTuple):
    """A template bank as the kernel reads it (see :class:`~bci.sorting.templates.TemplateBank`).

    ``templates`` and ``norms`` are the bank's own arrays: template tracking updates them in place.
    """

    templates: npt.NDArray[np.float32]
    pre: int
    n_match: int
    support: npt.NDArray[np.int32]
    n_support: npt.NDArray[np.int32]
    norms: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int32]
    candidates: npt.NDArray[np.int32]
    n_candidates: npt.NDArray[np.int32]


class PeelSettings(NamedTuple):
    """What the kernel takes as a peak and as a fit (thresholds in noise sigmas, times in samples)."""

    threshold: float
    match_threshold: float
    sweep: int
    refractory: int
    neighbours: npt.NDArray[np.int32]
    n_neighbours: npt.NDArray[np.int32]
    max_shift: int
    amp_min: float
    amp_max: float
    amp_prior: float
    explain_fraction: float
    residual_guard: float
    max_passes: int


class PeelState(NamedTuple):
    """What the kernel carries from one call to the next, per channel (``floor``: one value)."""

    last_unsorted: npt.NDArray[np.int64]
    guard_until: npt.NDArray[np.int64]
    guard_level: npt.NDArray[np.float64]
    floor: npt.NDArray[np.int64]

    @classmethod
    def fresh(cls, n_channels: int) -> PeelState:
        """Nothing detected, nothing guarded."""
        return cls(
            last_unsorted=np.full(n_channels, -(10**12), np.int64),
            guard_until=np.full(n_channels, -(10**12), np.int64),
            guard_level=np.zeros(n_channels, np.float64),
            floor=np.full(1, -(10**12), np.int64),
        )

    def shift_rows(self, rows: int) -> None:
        """Buffer rows moved ``rows`` towards the front: shift the row-valued state with them."""
        self.last_unsorted[:] -= rows
        self.guard_until[:] -= rows
        self.floor[:] -= rows


@numba.njit(cache=True, nogil=True)
def peel(x, start, stop, tables, settings, state, tracking_rate, masked):  # pragma: no cover
    """Peel spikes off the residual ``x`` (modified in place) at samples ``[start, stop)``.

    Matching compares the first ``n_match`` samples of each template (trough at ``pre``); the
    subtraction removes the whole template, whose tail may reach past the samples that have
    arrived (``x`` then holds minus the pending subtraction there, and arriving data is added).
    ``state`` (:class:`PeelState`) is carried between calls. After each accepted spike the scan
    restarts at the same sample, all channels, up to ``settings.max_passes`` times, so a spike
    the subtracted one hid is found there. No peak is taken at a sample where ``masked`` (uint8,
    one per row of ``x``) is 1; where it is 2, only peaks beyond ``threshold`` are.
    Returns ``(times, channels, units, scale, depth)``: unit -1 is an unsorted peak, ``scale`` the
    fitted template amplitude (0 when unsorted), ``depth`` the peak's value in noise sigmas.
    """
    templates, pre, n_match = tables.templates, tables.pre, tables.n_match
    support, n_support, norms = tables.support, tables.n_support, tables.norms
    offsets, candidates, n_candidates = tables.offsets, tables.candidates, tables.n_candidates
    threshold, match_threshold = settings.threshold, settings.match_threshold
    sweep, refractory, max_shift = settings.sweep, settings.refractory, settings.max_shift
    neighbours, n_neighbours = settings.neighbours, settings.n_neighbours
    amp_min, amp_max, amp_prior = settings.amp_min, settings.amp_max, settings.amp_prior
    explain_fraction, residual_guard = settings.explain_fraction, settings.residual_guard
    max_passes = settings.max_passes
    last_unsorted, guard_until, guard_level = (
        state.last_unsorted,
        state.guard_until,
        state.guard_level,
    )
    floor_state = state.floor
    n_channels = x.shape[1]
    n_t = templates.shape[1]
    cap = 256
    out_t = np.empty(cap, np.int64)
    out_c = np.empty(cap, np.int32)
    out_k = np.empty(cap, np.int32)
    out_a = np.empty(cap, np.float32)
    out_v = np.empty(cap, np.float32)
    n = 0
    floor = floor_state[0]
    t = start
    t_front = start  # the furthest sample scanned so far
    passes = 0
    while t < stop:
        if t > t_front:
            t_front = t
            passes = 0
        if masked[t] == 1:  # next to a stimulation pulse: what is there is the artifact's
            t += 1
            continue
        # in the tail of a pulse (masked 2) only peaks beyond the blind threshold are taken
        low = threshold if masked[t] == 2 else match_threshold
        # fast path: most samples hold nothing below the threshold on any channel
        below = False
        for c in range(n_channels):
            if x[t, c] <= -low:
                below = True
                break
        if not below:
            t += 1
            continue
        restart = False
        c = 0
        while c < n_channels:
            v = x[t, c]
            thr = low
            if t <= guard_until[c] and guard_level[c] > thr:
                thr = guard_level[c]
            if v > -thr or t - last_unsorted[c] < refractory:
                c += 1
                continue
            if not is_local_peak(x, t, c, v, sweep, neighbours, n_neighbours):
                c += 1
                continue
            best_k = -1
            best_score = 0.0
            best_t0 = 0
            best_a = 0.0
            for j in range(n_candidates[c]):
                k = candidates[c, j]
                for s in range(-max_shift, max_shift + 1):
                    t0 = t - offsets[k, c] + s
                    base = t0 - pre
                    dot = 0.0
                    for ii in range(n_support[k]):
                        ch = support[k, ii]
                        for i in range(n_match):
                            dot += x[base + i, ch] * templates[k, i, ch]
                    a_ls = dot / norms[k]
                    if a_ls < amp_min or a_ls > amp_max:
                        continue
                    # least squares with a Gaussian prior on the amplitude around 1: an overlapping
                    # spike must not inflate the fit (Kilosort's amplitude penalty)
                    a = (a_ls + amp_prior) / (1.0 + amp_prior)
                    score = 2.0 * a * dot - a * a * norms[k] - amp_prior * (a - 1.0) ** 2 * norms[k]
                    if score > best_score:
                        best_score = score
                        best_k = k
                        best_t0 = t0
                        best_a = a
            accepted = False
            after = v
            if best_k >= 0:
                after = v - best_a * templates[best_k, t - best_t0 + pre, c]
                if after > explain_fraction * v:
                    accepted = True
            if not accepted and v > -threshold:
                # shallower than the detection threshold: a spike only if a template explains it
                c += 1
                continue
            if n == cap:
                cap *= 2
                t2 = np.empty(cap, np.int64)
                c2 = np.empty(cap, np.int32)
                k2 = np.empty(cap, np.int32)
                a2 = np.empty(cap, np.float32)
                v2 = np.empty(cap, np.float32)
                v2[:n] = out_v[:n]
                t2[:n] = out_t[:n]
                c2[:n] = out_c[:n]
                k2[:n] = out_k[:n]
                a2[:n] = out_a[:n]
                out_t, out_c, out_k, out_a, out_v = t2, c2, k2, a2, v2
            out_t[n] = t
            out_c[n] = c
            out_v[n] = v
            if not accepted:
                out_k[n] = -1
                out_a[n] = 0.0
                n += 1
                last_unsorted[c] = t
                c += 1
                continue
            out_k[n] = best_k
            out_a[n] = best_a
            n += 1
            base = best_t0 - pre
            end = base + n_t - 1
            for ii in range(n_support[best_k]):
                ch = support[best_k, ii]
                peak = 0.0
                for i in range(n_t):
                    w = best_a * templates[best_k, i, ch]
                    if tracking_rate > 0.0:
                        templates[best_k, i, ch] += tracking_rate * (
                            x[base + i, ch] - templates[best_k, i, ch]
                        )
                    x[base + i, ch] -= w
                    if -w > peak:
                        peak = -w
                # what a slightly wrong template leaves behind must not become a spike of its own
                level = residual_guard * peak
                if guard_until[ch] >= t and guard_level[ch] > level:
                    level = guard_level[ch]
                guard_level[ch] = level
                if end > guard_until[ch]:
                    guard_until[ch] = end
            if after < 0.0 and -after >= guard_level[c]:
                # never detect what is left of this very peak as a second spike
                guard_level[c] = -after * 1.001
                if t > guard_until[c]:
                    guard_until[c] = t
            if tracking_rate > 0.0:
                norm = 0.0
                for ii in range(n_support[best_k]):
                    ch = support[best_k, ii]
                    for i in range(n_match):
                        norm += templates[best_k, i, ch] * templates[best_k, i, ch]
                norms[best_k] = norm
            passes += 1
            if passes < max_passes:
                # a smaller spike that this one hid (it was no local peak next to it) may now
                # show: scan this sample again, all channels, never below an earlier restart.
                # (Stepping further back, by the stream's ``rescan`` margin, was meant here but
                # never ran: a flag shadowed the step; enabling it changes the output.)
                back = t
                if back < floor:
                    back = floor
                floor = back
                t = back
                restart = True
                break
            c += 1
        if not restart:
            t += 1
    floor_state[0] = floor
    return out_t[:n], out_c[:n], out_k[:n], out_a[:n], out_v[:n]


def _plain_arrays(x: npt.NDArray[Any], state: PeelState) -> bool:
    """Whether the buffer and the state have the one layout the entry point was compiled for."""
    return (
        x.dtype == np.float32
        and x.ndim == 2
        and x.flags.c_contiguous
        and x.flags.writeable
        and all(
            a.dtype == t and a.ndim == 1 and a.flags.c_contiguous and a.flags.writeable
            for a, t in zip(state, _STATE_DTYPES, strict=True)
        )
    )


def _plain_mask(masked: npt.NDArray[Any]) -> bool:
    return masked.dtype == np.uint8 and masked.ndim == 1 and masked.flags.c_contiguous


_STATE_DTYPES = (np.int64, np.int64, np.float64, np.int64)


class Matcher:
    """A template bank bound to the kernel with a sorter's settings.

    Built once per bank; holds no stream state (that is the caller's :class:`PeelState`), so the
    online stage and calibration's refinement rounds share it.

    Parameters
    ----------
    bank : TemplateBank
        Templates in noise-sigma units; tracking (``config.tracking_rate``) updates its
        templates and norms in place.
    config : SorterConfig
        Thresholds, neighbourhood radius, alignment and amplitude knobs.
    """

    def __init__(self, bank: TemplateBank, config: SorterConfig) -> None:
        self.bank = bank
        self.windows = config.windows(bank.sfreq)
        self.margins = Margins.of(bank, self.windows)
        self.tracking_rate = float(config.tracking_rate)
        self._compiled: Callable[..., tuple[npt.NDArray[Any], ...]] | None = None
        self._checked: tuple[Any, Any] = (None, None)
        neighbours, n_neighbours = channel_neighbours(bank.positions, config.radius_um)
        self.settings = PeelSettings(
            threshold=float(config.threshold),
            match_threshold=float(min(config.match_threshold, config.threshold)),
            sweep=int(self.windows.sweep),
            refractory=int(self.windows.refractory),
            neighbours=neighbours,
            n_neighbours=n_neighbours,
            max_shift=int(config.max_shift),
            amp_min=float(config.amplitude_range[0]),
            amp_max=float(config.amplitude_range[1]),
            amp_prior=float(config.amplitude_prior),
            explain_fraction=float(config.explain_fraction),
            residual_guard=float(config.residual_guard),
            max_passes=8,
        )
        templates = bank.templates
        if templates.shape[0] == 0:  # the kernel needs one (never a candidate) template
            templates = np.zeros((1, bank.n_samples, bank.n_channels), np.float32)
        self.tables = PeelTables(
            templates=templates,
            pre=int(bank.pre),
            n_match=int(bank.n_match),
            support=bank.support,
            n_support=bank.n_support,
            norms=bank.norms,
            offsets=bank.offsets,
            candidates=bank.candidates,
            n_candidates=bank.n_candidates,
        )

    def peel(
        self,
        x: npt.NDArray[np.float32],
        start: int,
        stop: int,
        state: PeelState,
        masked: npt.NDArray[np.uint8],
        tracking_rate: float | None = None,
    ) -> tuple[npt.NDArray[Any], ...]:
        """Run the kernel on rows ``[start, stop)`` of ``x`` (see :func:`peel`)."""
        rate = self.tracking_rate if tracking_rate is None else float(tracking_rate)
        args = (x, int(start), int(stop), self.tables, self.settings, state, rate, masked)
        if x is not self._checked[0] or state is not self._checked[1]:
            # a segment's buffer and state live for many calls: check their layout once
            if not _plain_arrays(x, state):
                return peel(*args)
            self._checked = (x, state)
        if not _plain_mask(masked):
            return peel(*args)
        if self._compiled is None:
            # numba types the named tuples in Python on every call through the dispatcher
            # (several us per chunk); the compiled entry point for these exact types skips that
            out = peel(*args)
            key = tuple(peel.typeof_pyval(a) for a in args)
            self._compiled = peel.overloads[key].entry_point  # type: ignore[attr-defined]
            return out
        return self._compiled(*args)

    def match_array(
        self, xn: npt.NDArray[np.float32], masked: npt.NDArray[np.uint8] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """Peel a whole normalised array (zero-padded at both ends, no tracking): times,
        channels, units."""
        m = self.margins
        pad = m.history + m.lookahead + m.pending
        x = np.zeros((xn.shape[0] + 2 * pad, xn.shape[1]), np.float32)
        x[pad : pad + xn.shape[0]] = xn
        mask = np.zeros(x.shape[0], np.uint8)
        if masked is not None:
            mask[pad : pad + xn.shape[0]] = masked
        state = PeelState.fresh(self.bank.n_channels)
        t, c, k, _, _ = self.peel(x, pad, pad + xn.shape[0], state, mask, tracking_rate=0.0)
        return t - pad, c, k
