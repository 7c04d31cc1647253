"""Put the streams of an XDF recording on the recorder's clock, one correction per sending host.

An XDF file holds, per stream, the recorder's measurements of the offset between the sending host's
LSL clock and its own (``ClockOffset`` chunks: ``(recorder time, offset)`` pairs, measured about every
5 s by LabRecorder and by our recorder). pyxdf fits a line to each stream's pairs on its own. But every
stream sent from one host is stamped by the same clock (``lsl_local_clock`` is the host's monotonic
clock), so they share one true offset; fitting each stream separately turns the measurement noise of a
handful of loopback round trips (tens of microseconds on a loaded machine) into relative shifts between
streams that were stamped by the same clock: a marker pushed with the same stamp as a signal sample lands
25 us away from it. Pooling the pairs of all streams of a host and applying one correction to all of them
keeps their relative timing exact, and the pooled fit is less noisy than any single one.

Streams stamped on the recorder's own host need no correction at all: they share its clock, the true
offset is exactly 0 and any measured one is the noise of loopback round trips (-3 to -36 us measured
here). Our recorder writes its host name into the file header (``<hostname>``), so those streams are
left as stamped; files without it (LabRecorder's) get the pooled fit for every host.

The fit is robust: Theil-Sen slope and median intercept when the pooled measurements span at least
``MIN_SPAN_FOR_DRIFT_S`` (clock drift is only measurable over a span), else the median offset. A host
whose offsets jump by more than ``RESET_JUMP_S`` (its clock was reset mid-recording, e.g. a reboot) is
left to pyxdf's per-stream clock-reset handling.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Pooled measurements must span this long (s) before a drift (slope) is fitted.
MIN_SPAN_FOR_DRIFT_S = 10.0
#: A spread of offsets larger than this (s) means a clock reset, not measurement noise.
RESET_JUMP_S = 0.1


def _first(info: Mapping[str, Any], key: str) -> str:
    value = info.get(key)
    if not value or value[0] is None:
        return ""
    return str(value[0])


def fit_clock_offset(times: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Robust line ``offset(t) = intercept + slope * t`` through clock-offset measurements.

    Parameters
    ----------
    times, values : numpy.ndarray
        Recorder times of the measurements and the measured offsets (s).

    Returns
    -------
    intercept, slope : float
        Theil-Sen slope (median of pairwise slopes) and the median of ``values - slope * times``
        when the measurements span at least :data:`MIN_SPAN_FOR_DRIFT_S`, else the median offset and
        slope 0.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if times.size == 0:
        return 0.0, 0.0
    slope = 0.0
    if times.size >= 3 and np.ptp(times) >= MIN_SPAN_FOR_DRIFT_S:
        i, j = np.triu_indices(times.size, k=1)
        dt = times[j] - times[i]
        ok = dt > 0
        if ok.any():
            slope = float(np.median((values[j] - values[i])[ok] / dt[ok]))
    intercept = float(np.median(values - slope * times))
    return intercept, slope


def host_clock_groups(streams: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Indices of the streams that carry clock offsets, grouped by the host that stamped them.

    Streams without a ``hostname`` in their header each form their own group (nothing says they share
    a clock).
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, stream in enumerate(streams):
        if not len(stream.get("clock_times", [])):
            continue
        host = _first(stream["info"], "hostname")
        groups[f"host:{host}" if host else f"stream:{i}"].append(i)
    return dict(groups)


def synchronize_host_clocks(
    streams: Sequence[dict[str, Any]], recorder_host: str | None = None
) -> list[int]:
    """Apply one pooled clock correction per sending host to the streams' ``time_stamps``, in place.

    Parameters
    ----------
    streams : sequence of dict
        pyxdf stream dicts read with ``synchronize_clocks=False`` (they keep ``clock_times`` and
        ``clock_values``).
    recorder_host : str, optional
        Host name of the recorder (the file header's ``hostname``); streams from that host share the
        recorder's clock and are left as stamped.

    Returns
    -------
    list of int
        Indices of streams left uncorrected because their host's clock was reset mid-recording; the
        caller corrects those with pyxdf's per-stream handling.
    """
    reset: list[int] = []
    for group, members in host_clock_groups(streams).items():
        if recorder_host and group == f"host:{recorder_host}":
            continue  # the recorder's own clock: offset 0 by definition
        times = np.concatenate([np.asarray(streams[i]["clock_times"], float) for i in members])
        values = np.concatenate([np.asarray(streams[i]["clock_values"], float) for i in members])
        if np.ptp(values) > RESET_JUMP_S:
            reset.extend(members)
            continue
        intercept, slope = fit_clock_offset(times, values)
        for i in members:
            stamps = np.asarray(streams[i]["time_stamps"], dtype=np.float64)
            streams[i]["time_stamps"] = stamps + intercept + slope * stamps
    return reset
