"""Training arrays from recorded sessions: binned spikes of one spike stream and a target stream.

The counts are laid out as the online :class:`bci.features.SpikeBinner` lays out its bins, so a
decoder trained on them reads the columns the live pipeline feeds it: column ``u`` holds the
spikes of ``unit_index == u`` (for threshold crossings, channel ``u``), a unit silent in the
recording keeps its zero column, and unsorted spikes (``unit_index == -1``) are left out, as the
binner leaves them out by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from decoders.errors import DecoderError

__all__ = [
    "DECODER_CHOICES",
    "fit_on_runs",
    "make_decoder",
    "online_tracking",
    "r2_score",
    "run_arrays",
    "session_arrays",
]

#: Decoders ``bci train-decoder`` can fit.
DECODER_CHOICES = ("snn", "rsnn", "wiener", "kalman", "mlp")

Arrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[str], list[str]]


def _pick(names: Sequence[str], wanted: str, what: str, xdf: Path) -> str:
    """The one stream name equal to ``wanted``, else the one that contains it."""
    if wanted in names:
        return wanted
    found = sorted({n for n in names if wanted in n})
    if len(found) == 1:
        return found[0]
    listed = sorted(set(names))
    if not found:
        raise DecoderError(
            f"{xdf} has no {what} named {wanted!r} (or containing it); it has {listed}."
        )
    raise DecoderError(
        f"{wanted!r} names {len(found)} {what}s of {xdf}: {found}; give the full name."
    )


def _load_for(xdf: Path, target: str) -> Any:
    """The recording's Segment with the streams a decoder trains on: the regular streams whose
    name holds ``target`` and every irregular one (spikes, decoded values, markers); the
    broadband streams are skipped unread."""
    from bci.session import load
    from bci.session.files import resolve_recording_path
    from bci.session.xdf_read import scan_xdf

    xdf = resolve_recording_path(xdf)
    summaries = scan_xdf(xdf).streams.values()
    regular = sorted({s.name for s in summaries if s.nominal_srate > 0})
    if not any(target in name for name in regular):
        raise DecoderError(
            f"{xdf} has no regular stream named {target!r} (or containing it); it has {regular}."
        )
    names = {s.name for s in summaries if s.nominal_srate <= 0 or target in s.name}
    return load(xdf, streams=sorted(names)).segments[0]


def session_arrays(
    run_dir: str | Path,
    target: str,
    channels: list[str] | None,
    bin_s: float,
    *,
    spikes: str | None = None,
    n_units: int | None = None,
) -> Arrays:
    """Counts ``(n_bins, n_units)`` and the target averaged per bin ``(n_bins, n_outputs)``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (its ``recording.xdf``) or an XDF file, read with :func:`bci.session.load`.
    target : str
        The regular stream whose values are the outputs: its full name, or a text that only its
        name contains (``"kinematics"`` finds ``motor-1a2b-kinematics``).
    channels : list of str or None
        The target's channels to use (None: all of them).
    bin_s : float
        Bin width in seconds.
    spikes : str or None
        The spike stream (full name or a text only its name contains); None: the recording's only
        spike stream (an error lists them when there are several, e.g. a plant's ground truth beside
        the loop's sorted spikes).
    n_units : int or None
        Columns of the counts (the online binner's unit count); None: the highest unit id + 1.

    Returns
    -------
    X, Y, output names, output units
        Column ``u`` of X counts the spikes of unit id ``u``; Y is the target linearly interpolated
        at the bin centres. Only the span both cover is used: from the later of the target's first
        sample and the first spike, to the earlier of their ends (a threshold detector that
        calibrates for its first seconds has no spikes there, and those seconds are not silence).

    Raises
    ------
    DecoderError
        A stream is missing or ambiguous, a channel is missing, or a unit id is >= ``n_units``.
    """
    path = Path(run_dir)
    xdf = path / "recording.xdf" if path.is_dir() else path
    seg = _load_for(xdf, target)
    names = [str(s.annotations.get("lsl_name")) for s in seg.analogsignals]
    name = _pick(names, target, "regular stream", xdf)
    # a stream with channels in incompatible units (cm/s and cm) is split into several signals
    sigs = [s for s in seg.analogsignals if s.annotations.get("lsl_name") == name]
    labels: list[str] = []
    units: list[str] = []
    cols: list[npt.NDArray[np.float64]] = []
    for sig in sigs:
        unit = str(sig.units.dimensionality)
        lsl_units = sig.array_annotations.get("lsl_unit")
        chan_names = sig.array_annotations.get("channel_names")
        for j in range(sig.shape[1]):
            labels.append(str(chan_names[j]) if chan_names is not None else f"y{len(labels)}")
            units.append(
                str(lsl_units[j])
                if lsl_units is not None
                else ("" if unit == "dimensionless" else unit)
            )
            cols.append(np.asarray(sig.magnitude, dtype=np.float64)[:, j])
    picked = list(range(len(labels)))
    if channels:
        missing = [c for c in channels if c not in labels]
        if missing:
            raise DecoderError(f"Stream {name!r} has no channel(s) {missing}; it has {labels}.")
        picked = [labels.index(c) for c in channels]
    t_sig = np.asarray(sigs[0].times.rescale("s").magnitude)

    trains = [st for st in seg.spiketrains if int(st.annotations.get("unit_id", 0)) >= 0]
    spike_names = sorted({str(st.annotations.get("lsl_name")) for st in seg.spiketrains})
    if not spike_names:
        raise DecoderError(f"{xdf} holds no spike trains to decode from.")
    if spikes is not None:
        chosen = _pick(spike_names, spikes, "spike stream", xdf)
    elif len(spike_names) > 1:
        raise DecoderError(
            f"{xdf} holds {len(spike_names)} spike streams: {spike_names}; say which one the "
            "decoder reads (--spikes NAME: the loop's own is <run_id>-spikes)."
        )
    else:
        chosen = spike_names[0]
    trains = [st for st in trains if st.annotations.get("lsl_name") == chosen]
    if not trains:
        raise DecoderError(f"Spike stream {chosen!r} of {xdf} holds no spikes of a unit.")
    ids = [int(st.annotations.get("unit_id", 0)) for st in trains]
    width = max(ids) + 1 if n_units is None else int(n_units)
    if max(ids) >= width:
        raise DecoderError(
            f"Spike stream {chosen!r} of {xdf} has unit {max(ids)}, but the decoder is to read "
            f"{width} units (ids 0..{width - 1})."
        )
    times = [np.asarray(st.times.rescale("s").magnitude) for st in trains]
    first = min(float(t[0]) for t in times if t.size)
    last = max(float(t[-1]) for t in times if t.size)
    t0, t1 = max(float(t_sig[0]), first), min(float(t_sig[-1]), last)
    n_bins = int((t1 - t0) / bin_s)
    if n_bins < 1:
        raise DecoderError(
            f"{xdf}: the spikes of {chosen!r} and the target {name!r} overlap by less than a bin."
        )
    edges = t0 + bin_s * np.arange(n_bins + 1)
    X = np.zeros((n_bins, width), dtype=np.float64)
    for uid, t in zip(ids, times, strict=True):
        X[:, uid] += np.histogram(t, edges)[0]
    centres = edges[:-1] + bin_s / 2
    Y = np.column_stack([np.interp(centres, t_sig, cols[j]) for j in picked])
    return X, Y, [labels[j] for j in picked], [units[j] for j in picked]


def run_arrays(
    run_dirs: Sequence[str | Path],
    target: str,
    channels: list[str] | None,
    bin_s: float,
    *,
    spikes: str | None = None,
    n_units: int | None = None,
) -> Arrays:
    """:func:`session_arrays` of several runs, stacked (one width: ``n_units`` or the widest)."""
    if not run_dirs:
        raise DecoderError("Give at least one run folder to train on.")
    parts = [
        session_arrays(r, target, channels, bin_s, spikes=spikes, n_units=n_units) for r in run_dirs
    ]
    width = max(p[0].shape[1] for p in parts)
    Xs = [np.pad(p[0], ((0, 0), (0, width - p[0].shape[1]))) for p in parts]
    return np.vstack(Xs), np.vstack([p[1] for p in parts]), parts[0][2], parts[0][3]


def make_decoder(kind: str, seed: int) -> Any:
    """An unfitted decoder of ``kind`` (one of :data:`DECODER_CHOICES`) with its defaults."""
    from decoders import KalmanDecoder, WienerDecoder

    if kind not in DECODER_CHOICES:
        raise DecoderError(f"Unknown decoder {kind!r}; choose one of {list(DECODER_CHOICES)}.")
    if kind == "snn":
        from decoders.snn.decoder import SNNDecoder

        return SNNDecoder(seed=seed)
    if kind == "rsnn":
        from decoders.snn.decoder import RecurrentSNNDecoder

        return RecurrentSNNDecoder(seed=seed)
    if kind == "mlp":
        from decoders.ann import MLPDecoder

        return MLPDecoder(seed=seed)
    return WienerDecoder() if kind == "wiener" else KalmanDecoder()


def fit_on_runs(
    run_dirs: Sequence[str | Path],
    target: str,
    channels: list[str] | None,
    kind: str,
    *,
    bin_s: float = 0.02,
    seed: int = 0,
    spikes: str | None = None,
    n_units: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Any:
    """Fit a ``kind`` decoder on recorded runs (:func:`run_arrays`); return it, fitted.

    ``progress(epoch, epochs, val_loss)`` is called by decoders that train in epochs.
    """
    X, Y, names, units = run_arrays(
        run_dirs, target, channels, bin_s, spikes=spikes, n_units=n_units
    )
    dec = make_decoder(kind, seed)
    if progress is not None and hasattr(dec, "progress"):
        dec.progress = progress
    dec.fit(X, Y, bin_s=bin_s, output_names=names, output_units=units)
    return dec


def r2_score(y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> list[float]:
    """Coefficient of determination per column."""
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return [float(v) for v in 1.0 - ss_res / ss_tot]


def online_tracking(
    run_dir: str | Path,
    target: str,
    channels: list[str],
    *,
    decoded: str = "-decoded",
    bin_s: float = 0.02,
    skip_s: float = 1.0,
) -> dict[str, Any]:
    """How a run's decoded stream followed the true target: R2 and Pearson r per output.

    Each decoded sample is stamped at the end of its bin (the runner's convention: the bin's last
    sample) and compared with the target interpolated at the bin's centre, the value
    :func:`session_arrays` trains on. Decoded samples before the first spike of the recording
    plus ``skip_s`` (a threshold detector calibrating, then the decoder's state settling) are
    left out. ``decoded`` is the decoded stream's name or a text only its name contains; its
    channels and the target's are matched by name (``channels``).

    Returns
    -------
    dict
        ``outputs`` (the channel names), ``r2`` and ``r`` (one per output), ``n_bins`` scored and
        ``t_start_s`` (recording time of the first scored bin).
    """
    path = Path(run_dir)
    xdf = path / "recording.xdf" if path.is_dir() else path
    seg = _load_for(xdf, target)
    events = {str(e.annotations.get("lsl_name")): e for e in seg.events}
    dec_name = _pick(list(events), decoded, "decoded stream", xdf)
    ev = events[dec_name]
    missing = [c for c in channels if c not in ev.array_annotations]
    if missing:
        raise DecoderError(
            f"Decoded stream {dec_name!r} has no channel(s) {missing}; it has "
            f"{sorted(k for k in ev.array_annotations if k != 'labels')}."
        )
    t_dec = np.asarray(ev.times.rescale("s").magnitude)
    pred = np.column_stack(
        [np.asarray(ev.array_annotations[c], dtype=np.float64) for c in channels]
    )
    names = [str(s.annotations.get("lsl_name")) for s in seg.analogsignals]
    name = _pick(names, target, "regular stream", xdf)
    truth = []
    for c in channels:
        sig = next(
            (
                s
                for s in seg.analogsignals
                if s.annotations.get("lsl_name") == name
                and c in [str(x) for x in s.array_annotations.get("channel_names", [])]
            ),
            None,
        )
        if sig is None:
            raise DecoderError(f"Stream {name!r} has no channel {c!r}.")
        j = [str(x) for x in sig.array_annotations["channel_names"]].index(c)
        t_sig = np.asarray(sig.times.rescale("s").magnitude)
        truth.append((t_sig, np.asarray(sig.magnitude, dtype=np.float64)[:, j]))
    first_spike = min(
        (float(st.times[0].rescale("s").magnitude) for st in seg.spiketrains if len(st)),
        default=float("inf"),
    )
    t_sig0 = max(t[0] for t, _ in truth)
    t_sig1 = min(t[-1] for t, _ in truth)
    centres = t_dec - bin_s / 2
    keep = (t_dec >= first_spike + skip_s) & (centres >= t_sig0) & (centres <= t_sig1)
    if keep.sum() < 3:
        raise DecoderError(f"{xdf}: fewer than 3 decoded bins overlap the target {name!r}.")
    y = np.column_stack([np.interp(centres[keep], t, v) for t, v in truth])
    p = pred[keep]
    return {
        "outputs": list(channels),
        "r2": r2_score(y, p),
        "r": [float(np.corrcoef(y[:, j], p[:, j])[0, 1]) for j in range(len(channels))],
        "n_bins": int(keep.sum()),
        "t_start_s": float(t_dec[keep][0]),
    }
