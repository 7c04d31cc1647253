"""The true values of what the decoder decodes, when the source publishes them (the motor
source's hand kinematics), and how the decoded values followed them.

A :class:`TruthFeed` listens to the source's truth stream during the run; at the end
:func:`decoded_tracking` pairs every decoded bin with the true value at the bin's centre (the
stream linearly interpolated there: a kinematics sample is the mean velocity over the interval
that ends at its stamp, and a decoder is trained on the same interpolation,
:func:`decoders.recorded.session_arrays`), output by output, matched by channel name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl

from bci.runner.rows import Rows

__all__ = ["TruthFeed", "decoded_tracking"]


class TruthFeed:
    """Pull a regular stream of true values (by name) while the loop runs.

    Parameters
    ----------
    name : str
        LSL name of the stream (``<source>-kinematics``).
    timeout_s : float
        How long to look for it.
    """

    def __init__(self, name: str, timeout_s: float = 10.0) -> None:
        self.name = name
        self.labels: list[str] = []
        self.values = Rows(None)
        self.stamps = Rows()
        self._inlet: pylsl.StreamInlet | None = None
        found = pylsl.resolve_byprop("name", name, 1, timeout_s)
        if found:
            self._inlet = pylsl.StreamInlet(
                found[0], max_buflen=600, recover=False, processing_flags=pylsl.proc_clocksync
            )
            info = self._inlet.info(timeout=timeout_s)
            ch = info.desc().child("channels").child("channel")
            for _ in range(info.channel_count()):
                self.labels.append(ch.child_value("label"))
                ch = ch.next_sibling()
            self._inlet.open_stream(timeout=timeout_s)

    @property
    def connected(self) -> bool:
        return self._inlet is not None

    def poll(self) -> None:
        """Take what has arrived (never waits)."""
        if self._inlet is None:
            return
        try:
            values, stamps = self._inlet.pull_chunk(timeout=0.0)
        except pylsl.util.LostError:
            self.close()
            return
        if stamps:
            self.values.extend(values)
            self.stamps.extend(stamps)

    def latest(self, names: list[str]) -> list[float | None]:
        """The newest true value of each of ``names`` (None where the stream has no such channel)."""
        if not self.values:
            return [None] * len(names)
        row = self.values[-1]
        return [float(row[self.labels.index(n)]) if n in self.labels else None for n in names]

    def close(self) -> None:
        if self._inlet is not None:
            self._inlet.close_stream()
            self._inlet = None


def decoded_tracking(
    decoded: npt.NDArray[np.float64],
    centres_t: npt.NDArray[np.float64],
    names: list[str],
    truth: npt.NDArray[np.float64],
    truth_t: npt.NDArray[np.float64],
    truth_labels: list[str],
    t_from: float,
) -> dict[str, Any]:
    """R2 and Pearson r of each decoded output against the true channel of the same name.

    Parameters
    ----------
    decoded : array (n_bins, n_outputs)
        The decoded values, one row per bin.
    centres_t : array (n_bins,)
        LSL time of each bin's centre.
    names : list of str
        The decoder's output names.
    truth, truth_t, truth_labels
        The true stream's samples ``(n, n_channels)``, their stamps, their channel labels.
    t_from : float
        Bins whose centre is earlier are left out (calibration, the decoder's state settling).

    Returns
    -------
    dict
        ``outputs``: ``{name: {"r", "r2"}}`` for every output the truth has; ``r`` and ``r2``:
        their means; ``pairs``: bins scored (0, with NaNs, when fewer than 3 or none matched).
    """
    decoded = np.asarray(decoded, dtype=np.float64).reshape(len(centres_t), -1)
    centres_t = np.asarray(centres_t, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64).reshape(len(truth_t), -1)
    truth_t = np.asarray(truth_t, dtype=np.float64)
    out: dict[str, Any] = {"outputs": {}, "r": float("nan"), "r2": float("nan"), "pairs": 0}
    matched = [(j, truth_labels.index(n)) for j, n in enumerate(names) if n in truth_labels]
    if not matched or truth_t.size < 2:
        return out
    keep = (centres_t >= max(t_from, truth_t[0])) & (centres_t <= truth_t[-1])
    if keep.sum() < 3:
        return out
    for j, k in matched:
        d = decoded[keep, j]
        y = np.interp(centres_t[keep], truth_t, truth[:, k])
        ok = np.isfinite(d) & np.isfinite(y)
        d, y = d[ok], y[ok]
        if d.size < 3 or np.std(d) == 0 or np.std(y) == 0:
            out["outputs"][names[j]] = {"r": float("nan"), "r2": float("nan")}
            continue
        out["outputs"][names[j]] = {
            "r": float(np.corrcoef(d, y)[0, 1]),
            "r2": float(1.0 - np.sum((y - d) ** 2) / np.sum((y - y.mean()) ** 2)),
        }
    rows = list(out["outputs"].values())
    out["r"] = float(np.mean([row["r"] for row in rows]))
    out["r2"] = float(np.mean([row["r2"] for row in rows]))
    out["pairs"] = int(keep.sum())
    return out
