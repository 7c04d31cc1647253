"""Clustering: detected peaks -> snippets -> features -> clusters -> merged, refined unit templates.

The steps of calibration (:func:`bci.sorting.calibration.calibrate`), run once, offline, on the
first seconds of a session:

1. Peaks: locally exclusive threshold crossings (:mod:`bci.sorting.detection`).
2. Features: each peak's snippet on the contacts within ``feature_radius_um`` of its peak channel,
   compressed by a temporal PCA (SVD) shared by all channels, then a PCA of the concatenated
   per-channel coefficients. Peaks are clustered per peak channel, so every feature vector of a
   group lives on the same contacts (the local strategy of Tridesclous 2 and SpyKING CIRCUS 2).
3. Clustering: scikit-learn's :class:`~sklearn.cluster.HDBSCAN` (Campello et al. 2013). Why:
   the number of units is unknown (k-means and Gaussian mixtures need it, or a model-selection
   loop around them); clusters of spike features have unequal sizes and densities, which a single
   DBSCAN radius cannot serve; and noise peaks are left unlabelled instead of forced into a unit.
   It is the clusterer SpyKING CIRCUS 2 and Tridesclous 2 use through the ``hdbscan`` package;
   scikit-learn's port needs no extra dependency.
4. Over-splitting: one unit seen on two peak channels, or cut in two by HDBSCAN, gives templates
   that differ by little more than noise. Two templates are merged when, at the best alignment
   within a few samples and the best relative scale in [0.8, 1.25], their difference on the
   contacts either one reaches, minus what estimating each template from its spikes explains
   (the median of n spikes has variance ~pi/(2n) per point), has less energy than
   ``merge_distance`` noise-sigma^2 (a matched filter could not tell them apart on single
   spikes: sqrt(40) ~ 6 sigma), or less than
   ``merge_threshold`` of the smaller template's energy (big units whose clusters differ by
   sub-sample jitter). Two units 15 um apart differ by ~8% of their energy, hundreds of sigma^2.
5. Refinement: the templates are matched against the calibration data with the online peeler
   itself, each template is rebuilt from the spikes assigned to it, templates that collect too
   few spikes are dropped, and the rebuilt templates are merged again (one step of
   template-matching EM; it cleans clusters polluted by overlaps and aligns every template on its
   own trough).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bci.sorting.detection import channel_neighbours, detect_peaks
from bci.sorting.errors import SortingError


@dataclass(frozen=True)
class CalibrationParams:
    """Knobs of :func:`cluster_templates` in samples (from
    :meth:`bci.sorting.config.SorterConfig.calibration_params`, where their meanings are)."""

    threshold: float = 5.0
    sweep: int = 3
    refractory: int = 15
    detect_radius_um: float = 50.0
    feature_radius_um: float = 50.0
    pre: int = 20
    post: int = 30
    tail: int = 60
    n_temporal_pcs: int = 5
    n_features: int = 10
    min_cluster_size: int = 20
    max_peaks_per_channel: int = 2000
    merge_threshold: float = 0.05
    merge_distance: float = 40.0
    merge_max_shift: int = 3
    split_depth: int = 2
    n_split_pcs: int = 3
    min_spikes: int = 20
    seed: int = 0


def snippets(
    x: npt.NDArray[np.float32],
    times: npt.NDArray[np.int64],
    pre: int,
    post: int,
    channels: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.float32]:
    """Windows ``x[t - pre : t + post + 1]`` of each time, shape (n, pre + post + 1, channels)."""
    idx = times[:, None] + np.arange(-pre, post + 1)[None, :]
    if channels is None:
        return x[idx]
    return x[idx[:, :, None], channels[None, None, :]]


def _robust_mean(w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Median over spikes: a template that overlapping spikes do not drag."""
    return np.median(w, axis=0).astype(np.float32)


#: Templates are medians of at most this many spikes.
_TEMPLATE_SPIKES = 1000


def _template_from_times(
    x: npt.NDArray[np.float32],
    times: npt.NDArray[np.int64],
    pre: int,
    post: int,
    limit: int = _TEMPLATE_SPIKES,
) -> npt.NDArray[np.float32]:
    if times.size > limit:
        times = times[np.linspace(0, times.size - 1, limit).astype(np.int64)]
    return _robust_mean(snippets(x, times, pre, post))


def _align(
    x: npt.NDArray[np.float32], times: npt.NDArray[np.int64], pre: int, post: int, max_shift: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Template of ``times`` re-centred on the trough of its main channel (shift bounded)."""
    template = _template_from_times(x, times, pre, post)
    main = int(np.argmin(template[: 2 * pre + 1].min(axis=0)))
    shift = int(np.clip(int(np.argmin(template[: 2 * pre + 1, main])) - pre, -max_shift, max_shift))
    if shift:
        times = times + shift
        template = _template_from_times(x, times, pre, post)
    return template, times


def _distance(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], max_shift: int
) -> tuple[float, float, int, int]:
    """Smallest ``||a - c * b_shifted||^2`` over shifts and a scale ``c`` in [0.8, 1.25].

    Returns ``(absolute, relative, shift, n_points)``: the distance in noise-sigma^2 (what a
    matched filter sees on one spike), the same over the smaller template's energy, the best
    shift, and the number of (sample, channel) points compared.
    """
    n = a.shape[0]
    support = (np.abs(a).max(axis=0) >= 1.0) | (np.abs(b).max(axis=0) >= 1.0)
    a, b = a[:, support].astype(np.float64), b[:, support].astype(np.float64)
    best, best_s = np.inf, 0
    ea, eb = float((a**2).sum()), float((b**2).sum())
    for s in range(-max_shift, max_shift + 1):
        lo, hi = max(0, s), min(n, n + s)
        aa, bb = a[lo:hi], b[lo - s : hi - s]
        c = float(np.clip((aa * bb).sum() / max(float((bb**2).sum()), 1e-12), 0.8, 1.25))
        d = float(((aa - c * bb) ** 2).sum())
        if d < best:
            best, best_s = d, s
    return best, best / max(min(ea, eb), 1e-12), best_s, int(a.size)


#: Variance of a median of n unit-variance Gaussian samples is about pi / (2 n).
_MEDIAN_VARIANCE = np.pi / 2


def _cluster_group(
    features: npt.NDArray[np.float32], min_cluster_size: int, seed: int
) -> npt.NDArray[np.int64]:
    from sklearn.cluster import HDBSCAN

    if features.shape[0] < 2 * min_cluster_size:
        return np.zeros(features.shape[0], np.int64)
    labels = HDBSCAN(
        min_cluster_size=min_cluster_size, min_samples=5, allow_single_cluster=True, copy=True
    ).fit_predict(features)
    return np.asarray(labels, dtype=np.int64)


def _split(
    w: npt.NDArray[np.float32], times: npt.NDArray[np.int64], p: CalibrationParams, depth: int
) -> list[npt.NDArray[np.int64]]:
    """Split a cluster again in the principal components of its own waveforms, recursively.

    A density clustering of all the peaks of a channel can leave two units with similar
    waveforms in one cluster; within that cluster, the direction that separates them is the
    dominant one, so a second clustering on the cluster's own PCA separates them (the iterative
    local split of Tridesclous 2 and SpyKING CIRCUS 2).
    """
    if depth >= p.split_depth or times.size < 2 * p.min_cluster_size:
        return [times]
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    flat -= flat.mean(axis=0)
    _, _, v = np.linalg.svd(flat, full_matrices=False)
    feats = (flat @ v[: p.n_split_pcs].T).astype(np.float32)
    labels = _cluster_group(feats, p.min_cluster_size, p.seed)
    kept = np.unique(labels[labels >= 0])
    if kept.size < 2:
        return [times]
    out: list[npt.NDArray[np.int64]] = []
    for lab in kept:
        sel = labels == lab
        out.extend(_split(w[sel], times[sel], p, depth + 1))
    return out


def find_peaks(
    x: npt.NDArray[np.float32], positions: npt.NDArray[np.float64], p: CalibrationParams
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """Locally exclusive peaks of the whole calibration segment (edges kept clear for snippets)."""
    neighbours, n_neighbours = channel_neighbours(positions, p.detect_radius_um)
    margin = max(p.pre, p.tail) + p.merge_max_shift + p.sweep + 1
    if x.shape[0] <= 2 * margin:
        raise SortingError(
            f"Calibration needs more than {2 * margin} samples, but got {x.shape[0]}."
        )
    return detect_peaks(
        x, margin, x.shape[0] - margin, p.threshold, p.sweep, p.refractory, neighbours, n_neighbours
    )


def check_spikes_above_noise(
    x: npt.NDArray[np.float32],
    times: npt.NDArray[np.int64],
    chans: npt.NDArray[np.int32],
    positions: npt.NDArray[np.float64],
    p: CalibrationParams,
    masked: npt.NDArray[np.uint8] | None = None,
) -> dict[str, float]:
    """Refuse calibration data whose negative peaks do not stand out from the noise's own.

    Noise is symmetric (band-passed and referenced noise as much as white noise: ``-x`` is as
    likely as ``x``), extracellular spikes are not: a trough, then a shallower repolarisation. So
    the same detector run on ``-x`` (positive peaks) measures what noise alone gives beyond the
    threshold, in the same data with the same noise estimate: heavy tails (a median reference
    over few channels makes them) fool a threshold in MAD sigmas, not this comparison. A peak
    that follows a peak of the other sign on its own or a neighbouring channel within the
    template's tail is left out on both sides (that removes a spike's repolarisation; the rule is
    its own mirror image, so noise still gives both sides alike). The statistic is the summed
    depth beyond the threshold of the negative peaks minus that of the positive ones; under noise
    alone it is zero on average, with the standard deviation of the summed squares. It must
    exceed 3 standard deviations.

    ``x`` is negated and restored in place (exactly: negation is exact). Returns the sums
    (``negative``, ``positive``, ``sd``) for the calibration report.

    Raises
    ------
    SortingError
        If the negative peaks do not stand out from the positive ones.
    """
    neighbours, n_neighbours = channel_neighbours(positions, p.detect_radius_um)
    margin = max(p.pre, p.tail) + p.merge_max_shift + p.sweep + 1
    np.negative(x, out=x)
    try:
        up_t, up_c = detect_peaks(
            x,
            margin,
            x.shape[0] - margin,
            p.threshold,
            p.sweep,
            p.refractory,
            neighbours,
            n_neighbours,
        )
    finally:
        np.negative(x, out=x)
    if masked is not None:
        keep = masked[up_t] == 0
        up_t, up_c = up_t[keep], up_c[keep]
    near = (neighbours, n_neighbours)
    down_kept = ~_follows(times, chans, up_t, up_c, near, p.tail)
    up_kept = ~_follows(up_t, up_c, times, chans, near, p.tail)
    down = -x[times[down_kept], chans[down_kept]].astype(np.float64) - p.threshold
    up = x[up_t[up_kept], up_c[up_kept]].astype(np.float64) - p.threshold
    stats = {
        "negative": float(down.sum()),
        "positive": float(up.sum()),
        "sd": float(np.sqrt((down**2).sum() + (up**2).sum())),
    }
    if stats["negative"] - stats["positive"] <= 3.0 * stats["sd"]:
        raise SortingError(
            f"Calibration found {down.size} negative peaks beyond {p.threshold} x noise, but "
            f"also {up.size} positive ones, nearly as deep in sum ({stats['negative']:.1f} "
            f"against {stats['positive']:.1f} noise sigmas beyond the threshold): what noise "
            "alone gives, not spikes. There are no spikes above the noise to learn templates from: "
            "calibrate on a segment with spiking units (is the probe in the tissue, the "
            "amplifier on?)."
        )
    return stats


def _follows(
    times: npt.NDArray[np.int64],
    chans: npt.NDArray[np.int32],
    other_times: npt.NDArray[np.int64],
    other_chans: npt.NDArray[np.int32],
    near: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]],
    window: int,
) -> npt.NDArray[np.bool_]:
    """True for each peak with an ``other`` peak 1..``window`` samples before it, on its own
    channel or a neighbour."""
    out = np.zeros(times.size, bool)
    neighbours, n_neighbours = near
    for c in np.unique(chans):
        mine = np.flatnonzero(chans == c)
        around = np.concatenate([[c], neighbours[c, : n_neighbours[c]]])
        before = np.sort(other_times[np.isin(other_chans, around)])
        if before.size == 0:
            continue
        k = np.searchsorted(before, times[mine], side="left")
        gap = times[mine] - before[np.maximum(k - 1, 0)]
        out[mine] = (k > 0) & (gap <= window)
    return out


def cluster_templates(
    x: npt.NDArray[np.float32],
    positions: npt.NDArray[np.float64],
    p: CalibrationParams,
    masked: npt.NDArray[np.uint8] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], dict[str, Any]]:
    """Cluster the peaks of normalised traces ``x`` into merged templates (steps 1-4).

    Peaks at samples where ``masked`` is set (around stimulation pulses) are left out.

    Returns
    -------
    templates : float32 array (n_units, pre + post + 1, n_channels)
    n_spikes : int64 array (n_units,)
    info : dict
        Counts for the calibration report (peaks, clusters before/after merging).
    """
    times, chans = find_peaks(x, positions, p)
    if masked is not None:  # no templates learned from stimulation artifacts
        keep = masked[times] == 0
        times, chans = times[keep], chans[keep]
    n_channels = x.shape[1]
    min_total = max(p.min_cluster_size, p.min_spikes)
    if times.size < min_total:
        raise SortingError(
            f"Calibration found {times.size} spikes beyond {p.threshold} x noise on "
            f"{n_channels} channels in {x.shape[0]} samples; at least {min_total} are needed to "
            "learn a template. Calibrate on a longer or livelier segment, or lower the threshold."
        )
    mirror = check_spikes_above_noise(x, times, chans, positions, p, masked)
    rng = np.random.default_rng(p.seed)
    # temporal basis from peak-channel waveforms
    sample = rng.choice(times.size, size=min(times.size, 5000), replace=False)
    waves = snippets(x, times[sample], p.pre, p.post)[np.arange(sample.size), :, chans[sample]]
    _, _, vt = np.linalg.svd(waves - waves.mean(axis=0), full_matrices=False)
    basis = vt[: p.n_temporal_pcs].astype(np.float32)  # (n_pcs, n_t)
    feat_neigh, feat_counts = channel_neighbours(positions, p.feature_radius_um)
    clusters: list[npt.NDArray[np.int64]] = []
    for c in range(n_channels):
        members = np.flatnonzero(chans == c)
        if members.size < p.min_cluster_size:
            continue
        if members.size > p.max_peaks_per_channel:
            members = np.sort(rng.choice(members, size=p.max_peaks_per_channel, replace=False))
        chs = np.concatenate([[c], feat_neigh[c, : feat_counts[c]]]).astype(np.intp)
        w = snippets(x, times[members], p.pre, p.post, chs)  # (m, n_t, n_chs)
        coeffs = np.einsum("mtc,kt->mck", w, basis).reshape(members.size, -1)
        coeffs = coeffs - coeffs.mean(axis=0)
        if coeffs.shape[1] > p.n_features:
            _, _, v = np.linalg.svd(coeffs, full_matrices=False)
            coeffs = coeffs @ v[: p.n_features].T
        labels = _cluster_group(coeffs.astype(np.float32), p.min_cluster_size, p.seed)
        for lab in np.unique(labels[labels >= 0]):
            clusters.extend(_split(w[labels == lab], times[members[labels == lab]], p, depth=0))
    if not clusters:
        raise SortingError(
            f"Calibration found {times.size} peaks but no cluster of at least "
            f"{p.min_cluster_size} similar spikes on any channel; calibrate on a longer segment."
        )
    aligned = [_align(x, t, p.pre, p.tail, p.merge_max_shift) for t in clusters]
    templates = [a[0] for a in aligned]
    spike_times = [a[1] for a in aligned]
    n_before = len(templates)
    templates, spike_times = merge_similar(x, templates, spike_times, p)
    info = {
        "n_peaks": int(times.size),
        "depth_beyond_threshold": mirror,
        "n_clusters": n_before,
        "n_after_merge": len(templates),
    }
    return (
        np.asarray(templates, dtype=np.float32),
        np.array([t.size for t in spike_times], dtype=np.int64),
        info,
    )


def merge_similar(
    x: npt.NDArray[np.float32],
    templates: list[npt.NDArray[np.float32]],
    spike_times: list[npt.NDArray[np.int64]],
    p: CalibrationParams,
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.int64]]]:
    """Merge templates whose aligned difference is below ``merge_threshold`` (union-find)."""
    k = len(templates)
    parent = list(range(k))
    shift_to_root = [0] * k

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    order = np.argsort([-t.size for t in spike_times])  # big clusters absorb small ones
    for ii, i in enumerate(order):
        for j in order[ii + 1 :]:
            ri, rj = find(int(i)), find(int(j))
            if ri == rj:
                continue
            d_abs, d_rel, s, n_points = _distance(templates[i], templates[j], p.merge_max_shift)
            # what two templates of the same unit differ by, from estimation noise alone
            noise = (
                n_points
                * _MEDIAN_VARIANCE
                * sum(
                    1.0 / min(max(t.size, 1), _TEMPLATE_SPIKES)
                    for t in (spike_times[i], spike_times[j])
                )
            )
            if d_abs - noise < p.merge_distance or d_rel < p.merge_threshold:
                # b shifted by s matches a: unit j's spikes sit s samples early against i
                parent[rj] = ri
                shift_to_root[int(j)] = s
    groups: dict[int, list[int]] = {}
    for i in range(k):
        groups.setdefault(find(i), []).append(i)
    out_t, out_s = [], []
    for root, members in groups.items():
        times = np.sort(
            np.concatenate(
                [spike_times[m] - (shift_to_root[m] if m != root else 0) for m in members]
            )
        )
        template, times = _align(x, times, p.pre, p.tail, p.merge_max_shift)
        out_t.append(template)
        out_s.append(times)
    return out_t, out_s


def rebuild_templates(
    x: npt.NDArray[np.float32],
    times: npt.NDArray[np.int64],
    units: npt.NDArray[np.int32],
    n_units: int,
    p: CalibrationParams,
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.int64]], int]:
    """Templates rebuilt from the spikes matched to each unit, then merged again (step 5).

    ``times`` are template-aligned trough times of the matched spikes; units with fewer than
    ``min_spikes`` are dropped. Returns templates, spike times, and the count before merging.
    """
    margin = p.merge_max_shift + 1
    inside = (times >= p.pre + margin) & (times + p.tail + margin < x.shape[0])
    templates, spike_times = [], []
    for k in range(n_units):
        t = times[(units == k) & inside]
        if t.size < p.min_spikes:
            continue
        templates.append(_template_from_times(x, t, p.pre, p.tail))
        spike_times.append(t)
    if not templates:
        raise SortingError(
            f"Calibration templates matched fewer than {p.min_spikes} spikes each on the "
            "calibration data; calibrate on a longer segment."
        )
    n_kept = len(templates)
    templates, spike_times = merge_similar(x, templates, spike_times, p)
    return templates, spike_times, n_kept
