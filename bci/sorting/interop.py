"""Spikes out of (and back into) the toolkit: SpikeInterface sortings and neo spike trains.

Our spikes are one :data:`~bci.stream.SPIKE_DTYPE` array; SpikeInterface (Buccino et al. 2020,
eLife 9:e61834) compares sorters on ``NumpySorting`` objects and neo (Garcia et al. 2014, Front
Neuroinform 8:10) is what elephant analyses. ``spikeinterface`` is optional (the test and bench
extras install it) and imported only when these functions run; neo is a core dependency but also
imported lazily, so ``import bci.sorting`` stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bci.checks import ensure_float
from bci.errors import BCIError, ConfigError
from bci.stream import SPIKE_DTYPE, UNSORTED, SpikeChunk

if TYPE_CHECKING:
    import neo
    from spikeinterface.core import BaseSorting, NumpySorting


class InteropError(BCIError, ValueError):
    """Spikes could not be converted to or from another package's objects."""


SpikesLike = npt.NDArray[np.void] | SpikeChunk | Iterable[SpikeChunk]


def _as_spikes(spikes: Any) -> npt.NDArray[np.void]:
    """A SPIKE_DTYPE array from an array, a SpikeChunk, or an iterable of SpikeChunks."""
    if isinstance(spikes, SpikeChunk):
        return spikes.spikes
    if isinstance(spikes, np.ndarray):
        if spikes.dtype != SPIKE_DTYPE:
            raise ConfigError(
                "Invalid value for the 'spikes' parameter: expected an array of SPIKE_DTYPE, but "
                f"got dtype {spikes.dtype}."
            )
        return spikes
    try:
        chunks = list(spikes)
    except TypeError:
        raise ConfigError(
            "Invalid type for the 'spikes' parameter. Allowed types are a SPIKE_DTYPE array, a "
            f"SpikeChunk or an iterable of SpikeChunks, but got {type(spikes).__name__} instead."
        ) from None
    if not all(isinstance(c, SpikeChunk) for c in chunks):
        raise ConfigError(
            "Invalid value for the 'spikes' parameter: an iterable must hold only SpikeChunks."
        )
    if not chunks:
        return np.zeros(0, dtype=SPIKE_DTYPE)
    return np.concatenate([c.spikes for c in chunks])


def _select_units(
    spikes: npt.NDArray[np.void], unit_ids: Sequence[int] | None, include_unsorted: bool
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.int64]]:
    """Spikes of the requested units, and the unit ids (sorted unique ids present by default)."""
    if not include_unsorted:
        spikes = spikes[spikes["unit_index"] != UNSORTED]
    if unit_ids is None:
        ids = np.unique(spikes["unit_index"]).astype(np.int64)
        return spikes, ids
    ids = np.asarray(unit_ids, dtype=np.int64).reshape(-1)
    if np.unique(ids).size != ids.size:
        raise ConfigError(
            f"Invalid value for the 'unit_ids' parameter: ids must be unique, but got {ids.tolist()}."
        )
    keep = np.isin(spikes["unit_index"], ids)
    return spikes[keep], ids


def _require(module: str, where: str) -> Any:
    """Import ``module``, or raise an ImportError that names the package to install."""
    import importlib

    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"This function needs the package {package!r}, which is not installed: install it "
            f"with `pip install {package}` ({where})."
        ) from err


def to_spikeinterface(
    spikes: SpikesLike,
    sfreq: float,
    *,
    unit_ids: Sequence[int] | None = None,
    include_unsorted: bool = False,
) -> NumpySorting:
    """Turn spikes into a single-segment SpikeInterface ``NumpySorting``.

    Parameters
    ----------
    spikes : SPIKE_DTYPE array, SpikeChunk, or iterable of SpikeChunks
        Spikes with ``sample_index`` on the recording's sample clock.
    sfreq : float
        Sampling rate in Hz.
    unit_ids : sequence of int, optional
        Units to include, in this order (units without spikes are kept, empty). Default: every unit
        present, ascending. Spikes of other units are left out.
    include_unsorted : bool
        Keep spikes with ``unit_index == UNSORTED`` (-1) as a unit of id -1 (default: left out, as
        they belong to no unit).

    Returns
    -------
    spikeinterface.core.NumpySorting
        Unit ids are our ``unit_index`` values. Per-spike channel and amplitude are not kept
        (a sorting has no per-spike properties).
    """
    si = _require("spikeinterface.core", "or this toolkit's [test] or [bench] extra")
    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
    arr, ids = _select_units(_as_spikes(spikes), unit_ids, include_unsorted)
    return si.NumpySorting.from_samples_and_labels(
        [arr["sample_index"].astype(np.int64)],
        [arr["unit_index"].astype(np.int64)],
        sfreq,
        unit_ids=ids,
    )


def from_spikeinterface(sorting: BaseSorting, *, segment_index: int = 0) -> npt.NDArray[np.void]:
    """Turn one segment of a SpikeInterface sorting into a SPIKE_DTYPE array, sorted by sample.

    ``unit_index`` is the unit's id when the ids are integers, else its position in
    ``sorting.unit_ids``; ``channel_index`` is -1 and ``amplitude`` NaN (a sorting does not hold
    them).
    """
    ids = np.asarray(sorting.unit_ids)
    vector = sorting.to_spike_vector()
    vector = vector[vector["segment_index"] == segment_index]
    out = np.zeros(vector.shape[0], dtype=SPIKE_DTYPE)
    out["sample_index"] = vector["sample_index"]
    positions = vector["unit_index"].astype(np.int64)
    out["unit_index"] = ids[positions] if np.issubdtype(ids.dtype, np.integer) else positions
    out["channel_index"] = -1
    out["amplitude"] = np.nan
    return out[np.argsort(out["sample_index"], kind="stable")]


def to_neo(
    spikes: SpikesLike,
    sfreq: float,
    *,
    t_start: float = 0.0,
    t_stop: float | None = None,
    unit_ids: Sequence[int] | None = None,
    include_unsorted: bool = False,
) -> list[neo.SpikeTrain]:
    """Turn spikes into one ``neo.SpikeTrain`` per unit, times in seconds.

    Parameters
    ----------
    spikes : SPIKE_DTYPE array, SpikeChunk, or iterable of SpikeChunks
        Spikes with ``sample_index`` on the recording's sample clock.
    sfreq : float
        Sampling rate in Hz; a spike's time is ``t_start + sample_index / sfreq``.
    t_start : float
        Time of sample 0 in s (neo's ``AnalogSignal`` convention) and the trains' ``t_start``.
    t_stop : float, optional
        End of the trains in s; default: just after the last spike (``t_start + (last sample + 1)
        / sfreq``), or ``t_start`` when there are none. Must not precede a spike.
    unit_ids, include_unsorted
        As in :func:`to_spikeinterface`.

    Returns
    -------
    list of neo.SpikeTrain
        One per unit in ``unit_ids`` order, named ``"unit <id>"``, annotated with ``unit_id``, with
        ``sampling_rate`` set and per-spike ``array_annotations`` ``channel_index`` and
        ``amplitude``.
    """
    neo_mod = _require("neo", "a core dependency of this toolkit")
    import quantities as pq

    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
    t_start = ensure_float(t_start, "t_start")
    arr, ids = _select_units(_as_spikes(spikes), unit_ids, include_unsorted)
    arr = arr[np.argsort(arr["sample_index"], kind="stable")]
    times = t_start + arr["sample_index"].astype(np.float64) / sfreq
    if arr.size and arr["sample_index"].min() < 0:
        raise InteropError(
            f"Spikes before sample 0 (sample {int(arr['sample_index'].min())}) cannot be placed "
            "after the trains' t_start."
        )
    last = t_start + (int(arr["sample_index"].max()) + 1) / sfreq if arr.size else t_start
    if t_stop is None:
        stop = last
    else:
        stop = ensure_float(t_stop, "t_stop")
        if arr.size and stop < times.max():
            raise ConfigError(
                f"Invalid value for the 't_stop' parameter: must be >= the last spike time "
                f"{times.max()} s, but got {stop}."
            )
        if stop < t_start:
            raise ConfigError(
                f"Invalid value for the 't_stop' parameter: must be >= t_start={t_start}, but got "
                f"{stop}."
            )
    trains = []
    for unit in ids:
        mine = arr["unit_index"] == unit
        trains.append(
            neo_mod.SpikeTrain(
                times[mine] * pq.s,
                t_start=t_start * pq.s,
                t_stop=stop * pq.s,
                sampling_rate=sfreq * pq.Hz,
                name=f"unit {int(unit)}",
                unit_id=int(unit),
                array_annotations={
                    "channel_index": arr["channel_index"][mine].astype(np.int64),
                    "amplitude": arr["amplitude"][mine].astype(np.float64),
                },
            )
        )
    return trains


def from_neo(trains: Iterable[neo.SpikeTrain], sfreq: float) -> npt.NDArray[np.void]:
    """Turn neo spike trains back into a SPIKE_DTYPE array, sorted by sample.

    ``sample_index = round((t - train.t_start) * sfreq)``; ``unit_index`` is the train's
    ``unit_id`` annotation (else its position in ``trains``); ``channel_index`` and ``amplitude``
    come from the array annotations of those names when present (else -1 and NaN).
    """
    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0, strict_minimum=True)
    parts = []
    for position, train in enumerate(trains):
        seconds = (train.times - train.t_start).rescale("s").magnitude.astype(np.float64)
        part = np.zeros(seconds.shape[0], dtype=SPIKE_DTYPE)
        part["sample_index"] = np.round(seconds * sfreq).astype(np.int64)
        part["unit_index"] = int(train.annotations.get("unit_id", position))
        notes = train.array_annotations
        part["channel_index"] = notes.get("channel_index", -1)
        part["amplitude"] = notes.get("amplitude", np.nan)
        parts.append(part)
    if not parts:
        return np.zeros(0, dtype=SPIKE_DTYPE)
    out = np.concatenate(parts)
    return out[np.argsort(out["sample_index"], kind="stable")]
