"""Training arrays from a recorded session: binned spikes of every unit and a target stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from decoders.errors import DecoderError


def session_arrays(
    run_dir: str | Path, target: str, channels: list[str] | None, bin_s: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[str], list[str]]:
    """Counts ``(n_bins, n_units)`` and the target averaged per bin ``(n_bins, n_outputs)``.

    Units are the spike trains of the recording (:func:`bci.session.load`), in unit-id order;
    the target is the regular stream named ``target`` (its ``channels``, or all), linearly
    interpolated at bin centres. Only the span both cover is used.
    """
    from bci.session import load

    path = Path(run_dir)
    xdf = path / "recording.xdf" if path.is_dir() else path
    block = load(xdf)
    seg = block.segments[0]
    signals = [s for s in seg.analogsignals if s.annotations.get("lsl_name") == target]
    if not signals:
        names = sorted({str(s.annotations.get("lsl_name")) for s in seg.analogsignals})
        raise DecoderError(f"{xdf} has no regular stream named {target!r}; it has {names}.")
    sig = signals[0]
    labels = [str(c) for c in sig.array_annotations.get("channel_names", [])]
    cols = list(range(sig.shape[1]))
    if channels:
        missing = [c for c in channels if c not in labels]
        if missing:
            raise DecoderError(f"Stream {target!r} has no channel(s) {missing}; it has {labels}.")
        cols = [labels.index(c) for c in channels]
    trains = sorted(seg.spiketrains, key=lambda st: int(st.annotations.get("unit_id", 0)))
    if not trains:
        raise DecoderError(f"{xdf} holds no spike trains to decode from.")
    t_sig = np.asarray(sig.times.rescale("s").magnitude)
    t0, t1 = float(t_sig[0]), float(t_sig[-1])
    n_bins = int((t1 - t0) / bin_s)
    edges = t0 + bin_s * np.arange(n_bins + 1)
    X = np.stack(
        [np.histogram(np.asarray(st.times.rescale("s").magnitude), edges)[0] for st in trains], 1
    ).astype(np.float64)
    centres = edges[:-1] + bin_s / 2
    vals = np.asarray(sig.magnitude, dtype=np.float64)[:, cols]
    Y = np.column_stack([np.interp(centres, t_sig, vals[:, j]) for j in range(len(cols))])
    unit = str(sig.units.dimensionality) if str(sig.units.dimensionality) != "dimensionless" else ""
    lsl_units = sig.array_annotations.get("lsl_unit")
    units = [str(lsl_units[c]) for c in cols] if lsl_units is not None else [unit] * len(cols)
    return X, Y, [labels[c] if labels else f"y{c}" for c in cols], units
