"""Spike streams, by the toolkit's convention, as ``neo.SpikeTrain`` objects (one per unit).

A recorded stream is a spike stream when it is either

- a string stream whose every marker reads ``unit=<int> ch=<int> [sample=<int>] [key=value ...]``
  (:func:`parse_spike_marker`; the ground-truth markers of ``bci.synthesis`` and the plant), or
- a numeric stream of type ``Spikes`` with one row per spike: channels labelled ``unit``,
  ``channel``, ``amplitude``, ``sample_index`` (or unlabelled ``[unit, channel, amplitude]``) and
  optionally ``waveform_000``, ... .

:func:`spike_table` recognizes one and returns its columns; :func:`spike_trains` turns them into one
``neo.SpikeTrain`` per unit. :mod:`bci.session.load` describes the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import neo
import numpy as np
import quantities as pq

from bci.session.files import header_value
from bci.session.stream_header import channel_entries, parse_unit, stream_annotations

__all__ = ["parse_spike_marker", "spike_table", "spike_trains"]

_MARKER_TOKEN = re.compile(r"(\w+)=(\S+)")
_SPIKE_MARKER = re.compile(r"^\s*unit=(-?\d+)\s+ch=(-?\d+)(?:\s+\w+=\S+)*\s*$")


def parse_spike_marker(marker: str) -> dict[str, int] | None:
    """Parse ``"unit=3 ch=12 sample=123456"``; None if the string is not a spike marker.

    ``unit`` and ``ch`` are required and come first; any further ``key=<int>`` tokens are returned too.
    """
    if not _SPIKE_MARKER.match(marker):
        return None
    out: dict[str, int] = {}
    for key, value in _MARKER_TOKEN.findall(marker):
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def spike_table(stream: Mapping[str, Any]) -> dict[str, Any] | None:
    """Unit, channel, optional sample/amplitude/waveform columns of a spike stream, else None."""
    info = stream["info"]
    fmt = header_value(info, "channel_format")
    if fmt == "string":
        maybe = [parse_spike_marker(str(row[0])) for row in stream["time_series"]]
        parsed = [p for p in maybe if p is not None]
        if not parsed or len(parsed) != len(maybe):
            return None
        spikes: dict[str, Any] = {
            "unit": np.array([p["unit"] for p in parsed], dtype=np.int64),
            "channel_index": np.array([p["ch"] for p in parsed], dtype=np.int64),
        }
        if all("sample" in p for p in parsed):
            spikes["sample_index"] = np.array([p["sample"] for p in parsed], dtype=np.int64)
        return spikes
    if header_value(info, "type").lower() != "spikes":
        return None
    n_ch = int(header_value(info, "channel_count", "1"))
    values = np.asarray(stream["time_series"], dtype=np.float64).reshape(-1, n_ch)
    labels = [ch["label"].lower() for ch in channel_entries(info, n_ch)]

    names = {
        "unit": ("unit", "unit_index", "unit_id"),
        "channel_index": ("channel", "channel_index", "ch"),
        "amplitude": ("amplitude", "amp"),
        "sample_index": ("sample_index", "sample"),
    }
    found = {
        key: next((labels.index(a) for a in alias if a in labels), None)
        for key, alias in names.items()
    }
    if found["unit"] is None:
        if any(v is not None for v in found.values()):
            return None  # labelled, but no unit column: not a spike stream we understand
        # unlabelled: [unit, channel, amplitude] by position
        found = {
            "unit": 0,
            "channel_index": 1 if n_ch > 1 else None,
            "amplitude": 2 if n_ch > 2 else None,
        }
    table: dict[str, Any] = {"unit": values[:, found["unit"]].astype(np.int64)}
    for key in ("channel_index", "sample_index"):
        if found.get(key) is not None:
            table[key] = values[:, found[key]].astype(np.int64)
    ia = found.get("amplitude")
    if ia is not None:
        table["amplitude"] = values[:, ia]
        table["amplitude_unit"] = parse_unit(channel_entries(info, n_ch)[ia]["unit"])[0]
    wf_cols = [i for i, lab in enumerate(labels) if lab.startswith("waveform")]
    if wf_cols:
        table["waveforms"] = values[:, wf_cols]
        desc = (info.get("desc") or [None])[0]
        wf_sfreq = header_value(desc, "waveform_sfreq") if isinstance(desc, Mapping) else ""
        table["waveform_sfreq"] = float(wf_sfreq) if wf_sfreq else None
    return table


def spike_trains(
    stream: Mapping[str, Any], table: dict[str, Any], t0: float, t_stop: float
) -> list[neo.SpikeTrain]:
    """One SpikeTrain per unit of :func:`spike_table`'s ``table``, times from ``t0`` (s)."""
    stamps = np.asarray(stream["time_stamps"], dtype=np.float64) - t0
    ann = stream_annotations(stream)
    out = []
    for unit in np.unique(table["unit"]):
        sel = table["unit"] == unit
        arr_ann = {
            key: table[key][sel]
            for key in ("channel_index", "sample_index", "amplitude")
            if key in table
        }
        kwargs: dict[str, Any] = {}
        if "waveforms" in table:
            unit_q = table.get("amplitude_unit", pq.dimensionless)
            kwargs["waveforms"] = table["waveforms"][sel][:, None, :] * unit_q
            if table["waveform_sfreq"]:
                kwargs["sampling_rate"] = table["waveform_sfreq"] * pq.Hz
        order = np.argsort(stamps[sel], kind="stable")
        arr_ann = {k: v[order] for k, v in arr_ann.items()}
        if "waveforms" in kwargs:
            kwargs["waveforms"] = kwargs["waveforms"][order]
        out.append(
            neo.SpikeTrain(
                stamps[sel][order] * pq.s,
                t_start=0.0 * pq.s,
                t_stop=t_stop * pq.s,
                name=f"{ann['lsl_name']} unit {int(unit)}",
                array_annotations=arr_ann,
                unit_id=int(unit),
                **(
                    {"amplitude_unit": str(table["amplitude_unit"].dimensionality)}
                    if "amplitude" in table
                    else {}
                ),
                **ann,
                **kwargs,
            )
        )
    return out
