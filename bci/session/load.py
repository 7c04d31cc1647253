"""Load an XDF recording into a ``neo.Block`` (neo has no XDF reader).

What each LSL stream becomes
----------------------------
- **regular numeric stream** (nominal rate > 0) -> one ``neo.AnalogSignal`` at the nominal rate, units
  from ``desc/channels/channel/unit`` (``uV``/``µV``/``microvolts``, ``mV``, ``V``, ... ; ``a.u.``,
  empty or unknown -> dimensionless, the recorded string kept in ``array_annotations["lsl_unit"]``),
  channel labels in ``array_annotations["channel_names"]``, probe positions in ``x_um``/``y_um``.
  Integer samples of a stream whose header holds ``desc/acquisition/scale_uv_per_bit`` (our
  publishers, the plant, Intan-style amplifiers) are multiplied by it first, so the values are
  physical (``v * scale_uv_per_bit`` uV), never raw counts; the factor is kept in the
  ``lsl_scale_uv_per_bit`` annotation (1.0 when the header has none).
  Channels in different but compatible units (uV and mV) are rescaled to the most common one;
  incompatible units split the stream into one signal per unit (``array_annotations["channel_index"]``
  says which stream channel each column is).
- **spike stream**, by the toolkit's convention (:func:`parse_spike_marker`), either
    * a string stream whose every marker reads ``unit=<int> ch=<int> [sample=<int>] [key=value ...]``
      (the ground-truth markers of ``bci.synthesis``), or
    * a numeric stream of type ``Spikes`` with one row per spike: channels labelled ``unit`` (or
      ``unit_index``), ``channel`` (or ``channel_index``), ``amplitude`` and ``sample_index``, the
      fields of ``bci.stream.SPIKE_DTYPE`` (without labels: ``[unit, channel, amplitude]`` in that
      order), and optionally ``waveform_000``, ``waveform_001``, ... holding the spike's waveform (sampled at
      ``desc/waveform_sfreq`` Hz when given),
  -> one ``neo.SpikeTrain`` per unit (``annotations["unit_id"]``), with ``channel_index`` (and
  ``sample_index``, ``amplitude`` where recorded) as array annotations.
- **other string streams and irregular numeric streams** -> ``neo.Event``: labels are the marker
  strings (numeric samples are written ``label=value`` per channel), numeric values per channel in
  ``array_annotations``.

Time zero is the earliest first time stamp over all streams, after clock offsets are applied (one
pooled fit per sending host, :mod:`bci.session.clock_sync`); every object's times count from it, and ``segment.annotations
["lsl_time_zero"]`` keeps its LSL time. Time stamps of regular streams are not dejittered unless
``dejitter=True``. Streams without a sample are listed in ``segment.annotations["empty_streams"]``
(names separated by ``"; "``). Each object carries its stream's header in annotations (``lsl_name``,
``lsl_source_id``, ... and the whole ``<info>`` element as ``lsl_info_xml``).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import neo
import numpy as np
import quantities as pq

from bci.acquisition.metadata import parse_scale_uv_per_bit
from bci.session.files import (
    RecordingFormatError,
    RecordingNotFoundError,
    header_value,
    read_xdf,
    resolve_recording_path,
)

__all__ = [
    "RecordingFormatError",
    "RecordingNotFoundError",
    "load",
    "parse_spike_marker",
    "parse_unit",
    "physical_samples",
    "stream_scale_uv_per_bit",
]

logger = logging.getLogger(__name__)

_UNIT_ALIASES: dict[str, pq.Quantity] = {
    "uv": pq.uV,
    "µv": pq.uV,
    "μv": pq.uV,
    "microvolt": pq.uV,
    "microvolts": pq.uV,
    "mv": pq.mV,
    "millivolt": pq.mV,
    "millivolts": pq.mV,
    "v": pq.V,
    "volt": pq.V,
    "volts": pq.V,
    "nv": pq.CompoundUnit("1e-9*V"),
    "a.u.": pq.dimensionless,
    "au": pq.dimensionless,
    "a.u": pq.dimensionless,
    "": pq.dimensionless,
}

#: keys pyxdf adds to a stream's info that are not part of the recorded header
_DERIVED_INFO_KEYS = {"effective_srate", "segments", "clock_segments", "stream_id"}

_MARKER_TOKEN = re.compile(r"(\w+)=(\S+)")
_SPIKE_MARKER = re.compile(r"^\s*unit=(-?\d+)\s+ch=(-?\d+)(?:\s+\w+=\S+)*\s*$")


def parse_unit(unit: str | None) -> tuple[pq.Quantity, bool]:
    """Map an LSL channel unit string to a ``quantities`` unit.

    Returns the unit and whether the string was understood (unknown strings give dimensionless).
    """
    key = (unit or "").strip()
    if key.lower() in _UNIT_ALIASES:
        return _UNIT_ALIASES[key.lower()], True
    try:
        return pq.Quantity(1.0, key).units, True
    except (LookupError, ValueError, SyntaxError, TypeError):
        return pq.dimensionless, False


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


def _to_xml(tag: str, node: Any) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(node, Mapping):
        for child_tag, children in node.items():
            for child in children:
                el.append(_to_xml(child_tag, child))
    elif node is not None:
        el.text = str(node)
    return el


def _channels(info: Mapping[str, Any], n: int) -> list[dict[str, str]]:
    """Per-channel ``label``, ``unit``, ``type``, ``x``, ``y`` from ``desc/channels`` (padded)."""
    out: list[dict[str, str]] = []
    desc = (info.get("desc") or [None])[0]
    if isinstance(desc, Mapping):
        groups = desc.get("channels") or [None]
        if isinstance(groups[0], Mapping):
            for ch in groups[0].get("channel", []):
                if not isinstance(ch, Mapping):
                    continue
                entry = {k: header_value(ch, k) for k in ("label", "unit", "type")}
                loc = (ch.get("location") or [None])[0]
                if isinstance(loc, Mapping):
                    entry["x"], entry["y"] = header_value(loc, "X"), header_value(loc, "Y")
                out.append(entry)
    out = out[:n]
    out += [{"label": "", "unit": "", "type": ""} for _ in range(n - len(out))]
    for i, ch in enumerate(out):
        if not ch["label"]:
            ch["label"] = f"ch{i:03d}"
    return out


def _stream_annotations(stream: Mapping[str, Any]) -> dict[str, Any]:
    info = stream["info"]
    ann: dict[str, Any] = {
        "lsl_name": header_value(info, "name"),
        "lsl_type": header_value(info, "type"),
        "lsl_source_id": header_value(info, "source_id"),
        "lsl_hostname": header_value(info, "hostname"),
        "lsl_channel_format": header_value(info, "channel_format"),
        "lsl_nominal_srate": float(header_value(info, "nominal_srate", "0")),
        "lsl_effective_srate": float(info.get("effective_srate") or 0.0),
        "lsl_stream_id": int(info.get("stream_id", 0)),
        "lsl_info_xml": ET.tostring(
            _to_xml(
                "info",
                {
                    k: v
                    for k, v in info.items()
                    if k not in _DERIVED_INFO_KEYS and isinstance(v, list)
                },
            ),
            encoding="unicode",
        ),
    }
    return ann


def _array_key(label: str, taken: set[str]) -> str:
    key = re.sub(r"\W+", "_", label).strip("_") or "value"
    base, k = key, 1
    while key in taken:
        k += 1
        key = f"{base}_{k}"
    taken.add(key)
    return key


def _dimension_key(unit: pq.Quantity) -> str:
    if unit.dimensionality.string == "dimensionless":  # .simplified recurses on dimensionless
        return "dimensionless"
    return str(unit.simplified.dimensionality.string)


def _scale(unit: pq.Quantity, target: pq.Quantity) -> float:
    if unit.dimensionality.string == target.dimensionality.string:
        return 1.0
    return float(pq.Quantity(1.0, unit).rescale(target).magnitude)


def stream_scale_uv_per_bit(info: Mapping[str, Any]) -> float | None:
    """The ``desc/acquisition/scale_uv_per_bit`` of a pyxdf stream header, or None.

    A stored sample ``v`` of such a stream is ``v * scale_uv_per_bit`` microvolts: every path that
    turns recorded samples into physical values (this loader, ``session.nix``, replay into
    :class:`~bci.acquisition.LSLSource`, NWB export) applies it.
    """
    desc = (info.get("desc") or [None])[0]
    if not isinstance(desc, Mapping):
        return None
    acq = (desc.get("acquisition") or [None])[0]
    if not isinstance(acq, Mapping):
        return None
    return parse_scale_uv_per_bit(header_value(acq, "scale_uv_per_bit"))


def physical_samples(stream: Mapping[str, Any]) -> np.ndarray:
    """A regular numeric stream's samples (n, channels) in physical units (header scale applied).

    float32 for stored formats of up to 2 bytes (int8, int16) and float32 itself, float64
    otherwise.
    """
    data = np.asarray(stream["time_series"])
    if data.ndim == 1:
        data = data.reshape(len(stream["time_stamps"]), -1)
    dtype = np.float32 if data.dtype.itemsize <= 2 or data.dtype == np.float32 else np.float64
    scale = stream_scale_uv_per_bit(stream["info"])
    if scale is not None and scale != 1.0:
        return np.multiply(data, dtype(scale), dtype=dtype)
    return data.astype(dtype, copy=False)


def _analog_signals(stream: Mapping[str, Any], t0: float) -> list[neo.AnalogSignal]:
    info = stream["info"]
    stamps = np.asarray(stream["time_stamps"], dtype=np.float64)
    data = physical_samples(stream)
    n_ch = data.shape[1]
    sfreq = float(header_value(info, "nominal_srate"))
    channels = _channels(info, n_ch)
    parsed = {u: parse_unit(u) for u in {ch["unit"] for ch in channels}}  # once per distinct unit
    keys = {u: _dimension_key(q) for u, (q, _) in parsed.items()}
    units = [parsed[ch["unit"]] for ch in channels]
    ann = _stream_annotations(stream)
    ann["lsl_scale_uv_per_bit"] = stream_scale_uv_per_bit(info) or 1.0
    ideal = stamps[0] + np.arange(len(stamps)) / sfreq
    ann["max_timing_error_s"] = float(np.max(np.abs(stamps - ideal)))
    if ann["max_timing_error_s"] > 10.0 / sfreq:
        logger.warning(
            "Stream %r drifts or has gaps: a sample is %.3f s off the nominal %g Hz grid; the "
            "AnalogSignal assumes the nominal rate from its first sample.",
            ann["lsl_name"],
            ann["max_timing_error_s"],
            sfreq,
        )
    # group channels whose units convert into one another
    groups: dict[Any, list[int]] = {}
    for i, ch in enumerate(channels):
        groups.setdefault(keys[ch["unit"]], []).append(i)
    positions = all(ch.get("x") and ch.get("y") for ch in channels)
    out = []
    for idx in groups.values():
        target = Counter(units[i][0].dimensionality.string for i in idx).most_common(1)[0][0]
        target_unit = next(units[i][0] for i in idx if units[i][0].dimensionality.string == target)
        block = data if idx == list(range(n_ch)) else data[:, idx]
        factors = {
            u: _scale(q, target_unit)
            for u, (q, _) in parsed.items()
            if keys[u] == keys[channels[idx[0]]["unit"]]
        }
        scale = np.array([factors[channels[i]["unit"]] for i in idx], dtype=block.dtype)
        if not np.all(scale == 1):
            block = block * scale
        arr_ann: dict[str, np.ndarray] = {
            "channel_names": np.array([channels[i]["label"] for i in idx]),
            "channel_types": np.array([channels[i]["type"] for i in idx]),
            "lsl_unit": np.array([channels[i]["unit"] for i in idx]),
            "channel_index": np.array(idx, dtype=np.int64),
        }
        if positions:
            arr_ann["x_um"] = np.array([float(channels[i]["x"]) for i in idx])
            arr_ann["y_um"] = np.array([float(channels[i]["y"]) for i in idx])
        name = ann["lsl_name"] if len(groups) == 1 else f"{ann['lsl_name']} [{target}]"
        out.append(
            neo.AnalogSignal(
                block,
                units=target_unit,
                sampling_rate=sfreq * pq.Hz,
                t_start=(stamps[0] - t0) * pq.s,
                name=name,
                array_annotations=arr_ann,
                **ann,
            )
        )
    return out


def _events(stream: Mapping[str, Any], t0: float) -> neo.Event:
    info = stream["info"]
    stamps = np.asarray(stream["time_stamps"], dtype=np.float64)
    channels = _channels(info, int(header_value(info, "channel_count", "1")))
    taken = {"labels"}
    keys = [_array_key(ch["label"], taken) for ch in channels]
    arr_ann: dict[str, np.ndarray] = {}
    if header_value(info, "channel_format") == "string":
        rows = [[str(v) for v in row] for row in stream["time_series"]]
        labels = [row[0] if row else "" for row in rows]
        for j, key in enumerate(keys[1:], start=1):
            arr_ann[key] = np.array([row[j] for row in rows])
    else:
        values = np.asarray(stream["time_series"], dtype=np.float64).reshape(len(stamps), -1)
        labels = [
            " ".join(f"{ch['label']}={v:g}" for ch, v in zip(channels, row, strict=False))
            for row in values
        ]
        for j, key in enumerate(keys):
            arr_ann[key] = values[:, j]
    ann = _stream_annotations(stream)
    return neo.Event(
        times=(stamps - t0) * pq.s,
        labels=np.array(labels, dtype=str),
        name=ann["lsl_name"],
        array_annotations=arr_ann,
        **ann,
    )


def _spike_table(stream: Mapping[str, Any]) -> dict[str, Any] | None:
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
    labels = [ch["label"].lower() for ch in _channels(info, n_ch)]

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
        table["amplitude_unit"] = parse_unit(_channels(info, n_ch)[ia]["unit"])[0]
    wf_cols = [i for i, lab in enumerate(labels) if lab.startswith("waveform")]
    if wf_cols:
        table["waveforms"] = values[:, wf_cols]
        desc = (info.get("desc") or [None])[0]
        wf_sfreq = header_value(desc, "waveform_sfreq") if isinstance(desc, Mapping) else ""
        table["waveform_sfreq"] = float(wf_sfreq) if wf_sfreq else None
    return table


def _spike_trains(
    stream: Mapping[str, Any], table: dict[str, Any], t0: float, t_stop: float
) -> list[neo.SpikeTrain]:
    stamps = np.asarray(stream["time_stamps"], dtype=np.float64) - t0
    ann = _stream_annotations(stream)
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


def load(
    path: str | Path,
    *,
    dejitter: bool = False,
    synchronize_clocks: bool = True,
    streams: Collection[str] | None = None,
) -> neo.Block:
    """Load an XDF recording (or a run folder's ``recording.xdf``) as a ``neo.Block``.

    Parameters
    ----------
    path : str or Path
        An ``.xdf`` file written by our recorder or by LabRecorder, or a run folder.
    dejitter : bool
        Fit a line to the time stamps of regular streams (pyxdf's dejittering); off by default,
        so the recorded time stamps are used as they are.
    synchronize_clocks : bool
        Apply the recorded clock offsets, putting every stream on the recorder's clock.
    streams : collection of str or None
        Load only the streams of these names (the others' samples are skipped, never decoded: a
        long broadband stream need not be read to get the spikes and kinematics beside it); time
        zero is then the earliest first time stamp of these. None loads every stream.

    Returns
    -------
    neo.Block
        One Segment holding the AnalogSignals, SpikeTrains and Events described in this module's
        docstring, times in seconds from the earliest first time stamp.

    Raises
    ------
    RecordingNotFoundError
        If the file does not exist.
    RecordingFormatError
        If it is not a readable XDF file.
    """
    p = resolve_recording_path(path)
    xdf_streams, header = read_xdf(
        p, synchronize_clocks=synchronize_clocks, dejitter=dejitter, names=streams
    )
    filled = [s for s in xdf_streams if len(s["time_stamps"])]
    t0 = min((float(s["time_stamps"][0]) for s in filled), default=0.0)
    ends = []
    for s in filled:
        srate = float(header_value(s["info"], "nominal_srate", "0"))
        ends.append(float(s["time_stamps"][-1]) - t0 + (1.0 / srate if srate > 0 else 0.0))
    t_stop = max(ends, default=0.0)

    rec_datetime = None
    stamp = header_value(header.get("info", {}), "datetime")
    if stamp:
        try:
            parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
            # naive UTC: NIX stores datetimes without a time zone
            rec_datetime = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except ValueError:
            rec_datetime = None
    name = p.parent.name if p.name == "recording.xdf" else p.stem
    block = neo.Block(
        name=name,
        file_origin=str(p),
        rec_datetime=rec_datetime,
        xdf_version=header_value(header.get("info", {}), "version"),
    )
    segment = neo.Segment(
        name=name,
        file_origin=str(p),
        rec_datetime=rec_datetime,
        lsl_time_zero=t0,
        duration_s=t_stop,
        # one string, not a list: NixIO gives one-element lists back as scalars
        empty_streams="; ".join(
            header_value(s["info"], "name") for s in xdf_streams if not len(s["time_stamps"])
        ),
    )
    block.segments.append(segment)
    for s in filled:
        info = s["info"]
        table = _spike_table(s)
        if table is not None:
            segment.spiketrains.extend(_spike_trains(s, table, t0, t_stop))
        elif (
            header_value(info, "channel_format") != "string"
            and float(header_value(info, "nominal_srate", "0")) > 0
        ):
            segment.analogsignals.extend(_analog_signals(s, t0))
        else:
            segment.events.append(_events(s, t0))
    block.check_relationships()
    return block
