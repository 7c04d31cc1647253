"""The NWB file's content from a loaded session: metadata, electrodes, units, series and events.

Used by :func:`bci.session.nwb.export_nwb`, whose docstring tables where each stream goes. The
electrical streams' samples are added there (block by block); everything here comes from the
``neo.Block`` that :func:`bci.session.load.load` made of the rest of the file.
"""

from __future__ import annotations

import datetime as _dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import neo
import numpy as np
import quantities as pq

from bci.session.nwb import (
    NWBExportError,
    header_channels,
    json_or_none,
    new_identifier,
    nwb_name,
    parse_tokens,
    read_config_notes,
    session_start,
)
from bci.session.xdf_split import SplitStream, XDFSplit

__all__ = ["build_nwbfile"]

#: Subject of a session whose source is simulated (the plant, the synthetic probe).
SIMULATED_SUBJECT = {
    "species": "Homo sapiens",
    "sex": "O",
    "description": (
        "Simulated subject: the Parkinsonian basal-ganglia network of So, Kent & Grill (2012) "
        "(or a synthetic probe), not a living animal; species names the organism the model "
        "represents and date_of_birth is the start of the simulation."
    ),
}


def _lsl_units(obj: Any) -> list[str]:
    xml = obj.annotations.get("lsl_info_xml", "")
    try:
        return [c["unit"] for c in header_channels(ET.fromstring(xml))] if xml else []
    except ET.ParseError:
        return []


def _subject(
    name: str, start: _dt.datetime, given: Mapping[str, str] | None, config: Mapping[str, Any]
) -> Any:
    from pynwb.file import Subject

    fields: dict[str, Any] = dict(SIMULATED_SUBJECT)
    fields["subject_id"] = nwb_name(f"simulated-{name}")
    fields["date_of_birth"] = start
    custom = given if given is not None else config.get("subject")
    if isinstance(custom, Mapping):
        fields.update({k: str(v) for k, v in custom.items()})
        if "age" in custom:
            fields.pop("date_of_birth", None)
    allowed = {"subject_id", "species", "sex", "age", "description", "date_of_birth", "strain"}
    unknown = set(fields) - allowed
    if unknown:
        raise NWBExportError(
            f"Unknown subject field(s) {sorted(unknown)}; allowed: {sorted(allowed)}."
        )
    return Subject(**fields)


def build_nwbfile(
    block: neo.Block,
    split: XDFSplit,
    *,
    name: str,
    run_dir: Path | None,
    subject: Mapping[str, str] | None = None,
) -> tuple[Any, list[tuple[SplitStream, Any, float]]]:
    """An ``NWBFile`` with everything but the electrical samples; the electrical streams to add.

    Returns the file and, per electrical stream, ``(stream, electrodes region, time zero)``.
    """
    from pynwb import NWBFile

    seg = block.segments[0]
    filled = bool(seg.analogsignals or seg.spiketrains or seg.events)
    firsts = [float(s.stamps[0]) for s in split.streams.values() if s.n_samples]
    block_t0 = float(seg.annotations.get("lsl_time_zero", 0.0)) if filled else None
    t0 = min(firsts + ([block_t0] if block_t0 is not None else []), default=0.0)
    shift = (block_t0 - t0) if block_t0 is not None else 0.0
    start = session_start(block.rec_datetime)
    config: dict[str, Any] = {}
    summary = None
    if run_dir is not None:
        import yaml

        try:
            config = dict(yaml.safe_load((run_dir / "config.yaml").read_text()) or {})
        except (OSError, yaml.YAMLError, TypeError, ValueError):
            config = {}
        summary = json_or_none(run_dir / "summary.json")
    nwbfile = NWBFile(
        session_description=(
            f"Session {name!r} recorded by bci-closed-loop: every LSL stream of the session "
            "(recording.xdf) with sorted units, decoded variables, stimulation and safety events."
        ),
        identifier=new_identifier(),
        session_start_time=start,
        session_id=nwb_name(name),
        experiment_description=(
            f"Closed-loop session {name}; controller: "
            f"{(summary or {}).get('controller', config.get('controller', 'not recorded'))}."
        ),
        notes=read_config_notes(run_dir) or "No config.yaml or summary.json in the run folder.",
        # no keywords: neo 0.14.6's NWBIO cannot read back a file that has them (array field)
        source_script="bci export nwb (bci-closed-loop)",
        source_script_file_name="bci/session/nwb.py",
        subject=_subject(name, start, subject, config),
    )
    raw = _electrodes(nwbfile, split, t0)
    first_raw = next((r for r in raw if r[0].n_samples), None)
    _units(nwbfile, seg, shift, first_raw, nwbfile_units=True)
    _units(nwbfile, seg, shift, first_raw, nwbfile_units=False)
    applied_width = _series(nwbfile, seg, shift)
    _events(nwbfile, seg, shift, applied_width, first_raw)
    return nwbfile, raw


def _electrodes(nwbfile: Any, split: XDFSplit, t0: float) -> list[tuple[SplitStream, Any, float]]:
    out = []
    if split.streams:
        nwbfile.add_electrode_column("channel_name", "Channel label in the LSL stream header.")
    row = 0
    for stream in split.streams.values():
        h = stream.header
        s = stream.summary
        device = nwbfile.create_device(
            name=nwb_name(h.findtext("source_id") or s.name),
            description=(
                f"Source of the LSL stream {s.name!r} (type {h.findtext('type')!r}, manufacturer "
                f"{h.findtext('desc/manufacturer') or 'unknown'!r}, model "
                f"{h.findtext('desc/model') or 'unknown'!r})."
            ),
        )
        location = (
            h.findtext("desc/plant/recorded_nucleus") or h.findtext("desc/location") or "unknown"
        )
        group = nwbfile.create_electrode_group(
            name=nwb_name(s.name),
            description=f"Contacts of the LSL stream {s.name!r}.",
            location=location,
            device=device,
        )
        for ch in header_channels(h):
            kwargs: dict[str, Any] = {}
            if ch["x"] and ch["y"]:
                kwargs = {"rel_x": float(ch["x"]), "rel_y": float(ch["y"])}
            nwbfile.add_electrode(
                group=group, location=location, channel_name=ch["label"] or "", **kwargs
            )
        region = nwbfile.create_electrode_table_region(
            list(range(row, row + s.n_channels)), f"Channels of {s.name!r}"
        )
        out.append((stream, region, t0))
        row += s.n_channels
    return out


def _units(
    nwbfile: Any,
    seg: neo.Segment,
    shift: float,
    first_raw: tuple[SplitStream, Any, float] | None,
    *,
    nwbfile_units: bool,
) -> None:
    """Sorted units into ``nwbfile.units``; ground truth into ``processing/ground_truth``."""
    from pynwb.misc import Units

    by_stream: dict[str, list[neo.SpikeTrain]] = {}
    for st in seg.spiketrains:
        sorted_units = st.annotations.get("lsl_type", "").lower() == "spikes"
        if sorted_units == nwbfile_units:
            by_stream.setdefault(st.annotations.get("lsl_name", "spikes"), []).append(st)
    if not by_stream:
        return
    tables: dict[str, str | None]
    if nwbfile_units:
        tables = {stream: None for stream in by_stream}
    else:
        module = _module(nwbfile, "ground_truth", "The simulated source's ground truth.")
        tables = {stream: stream for stream in by_stream}
    all_trains = [st for trains in by_stream.values() for st in trains]
    wf = next((st for st in all_trains if st.waveforms is not None), None)
    resolution = 1.0 / first_raw[0].summary.nominal_srate if first_raw is not None else -1.0
    table_for: dict[str | None, Any] = {}
    for stream, key in tables.items():
        if key in table_for:
            continue
        kwargs: dict[str, Any] = {"resolution": resolution}
        if wf is not None and wf.sampling_rate is not None:
            kwargs.update(
                waveform_rate=float(wf.sampling_rate.rescale(pq.Hz)), waveform_unit="volts"
            )
        units = Units(
            name="units" if key is None else nwb_name(stream),
            description=(
                "Units sorted online (spike streams of type 'Spikes')."
                if key is None
                else f"Ground-truth spikes of the simulated source ({stream!r})."
            ),
            **kwargs,
        )
        trains = [st for st_ in by_stream if tables[st_] == key for st in by_stream[st_]]
        for col, desc, index in (
            ("unit_id", "Unit number in the recorded stream.", False),
            ("source_stream", "LSL stream the unit was recorded from.", False),
            ("channel_index", "Channel (of the recorded probe) most of the unit's spikes are on.", False),
            ("spike_channel_index", "Per spike: its channel.", True),
            ("spike_sample_index", "Per spike: its sample in the raw stream.", True),
            ("spike_amplitude", "Per spike: its amplitude (uV).", True),
        ):  # fmt: skip
            field = col.removeprefix("spike_")
            if index and not all(field in st.array_annotations for st in trains):
                continue
            units.add_column(col, desc, index=index)
        table_for[key] = units
        if key is None:
            nwbfile.units = units
        else:
            module.add(units)
    for stream, trains in by_stream.items():
        units = table_for[tables[stream]]
        for st in sorted(trains, key=lambda t: int(t.annotations.get("unit_id", 0))):
            _add_unit(units, st, stream, shift, first_raw)


def _add_unit(
    units: Any, st: neo.SpikeTrain, stream: str, shift: float,
    first_raw: tuple[SplitStream, Any, float] | None,
) -> None:  # fmt: skip
    n = len(st)
    times = st.times.rescale(pq.s).magnitude.astype(np.float64) + shift
    ann = st.array_annotations
    chans = np.asarray(ann.get("channel_index", np.full(n, -1)), dtype=np.int64)
    main = int(np.bincount(chans[chans >= 0]).argmax()) if np.any(chans >= 0) else -1
    kwargs: dict[str, Any] = {}
    if first_raw is not None and 0 <= main < first_raw[0].summary.n_channels:
        kwargs["electrodes"] = [int(first_raw[1].data[main])]
    if st.waveforms is not None and len(st.waveforms):
        w = st.waveforms
        volts = w.rescale(pq.V).magnitude if w.units != pq.dimensionless else w.magnitude * 1e-6
        per_spike = volts[:, 0, :] if volts.ndim == 3 else volts
        kwargs["waveform_mean"] = per_spike.mean(axis=0)
        kwargs["waveform_sd"] = per_spike.std(axis=0)
    t_stop = float(st.t_stop.rescale(pq.s)) + shift
    for col in ("channel_index", "sample_index", "amplitude"):
        if f"spike_{col}" in units.colnames:
            dtype = np.float64 if col == "amplitude" else np.int64
            kwargs[f"spike_{col}"] = np.asarray(ann[col], dtype=dtype).tolist()
    units.add_unit(
        spike_times=times,
        obs_intervals=[[0.0, max(t_stop, float(times.max()) if n else 0.0)]],
        unit_id=int(st.annotations.get("unit_id", -1)),
        source_stream=stream,
        channel_index=main,
        **kwargs,
    )


def _timing(times: np.ndarray) -> dict[str, Any]:
    """``starting_time`` and ``rate`` for stamps on a regular grid (to 1 ns), else ``timestamps``."""
    if len(times) > 2:
        step = (times[-1] - times[0]) / (len(times) - 1)
        grid = times[0] + np.arange(len(times)) * step
        if step > 0 and np.max(np.abs(times - grid)) < 1e-9:
            return {"starting_time": float(times[0]), "rate": float(1.0 / step)}
    return {"timestamps": times}


def _module(nwbfile: Any, name: str, description: str) -> Any:
    if name in nwbfile.processing:
        return nwbfile.processing[name]
    return nwbfile.create_processing_module(name=name, description=description)


def _series(nwbfile: Any, seg: neo.Segment, shift: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Regular streams: one TimeSeries per channel. Returns the applied pulse width over time."""
    from pynwb import TimeSeries

    width = None
    for sig in seg.analogsignals:
        ann = sig.annotations
        kind = ann.get("lsl_type", "")
        if kind.lower() == "biomarkers":
            module = _module(nwbfile, "ground_truth", "The simulated source's ground truth.")
        else:
            module = _module(nwbfile, "decoded", "Variables decoded online from the recording.")
        names = sig.array_annotations.get("channel_names", [f"ch{i}" for i in range(sig.shape[1])])
        units = sig.array_annotations.get("lsl_unit", [""] * sig.shape[1])
        t_start = float(sig.t_start.rescale(pq.s)) + shift
        rate = float(sig.sampling_rate.rescale(pq.Hz))
        values = sig.magnitude
        for j, label in enumerate(names):
            module.add(
                TimeSeries(
                    name=nwb_name(f"{ann.get('lsl_name', sig.name)}_{label}"),
                    data=values[:, j].copy(),
                    unit=str(units[j]) or "n.a.",
                    starting_time=t_start,
                    rate=rate,
                    description=f"Channel {label!r} of the LSL stream {ann.get('lsl_name')!r} "
                    f"(type {kind!r}).",
                )
            )
            if label == "pulse_width_us" and kind.lower() == "biomarkers":
                width = (t_start + np.arange(len(values)) / rate, values[:, j].astype(float))
    return width


def _events(
    nwbfile: Any,
    seg: neo.Segment,
    shift: float,
    width: tuple[np.ndarray, np.ndarray] | None,
    first_raw: tuple[SplitStream, Any, float] | None,
) -> None:
    from pynwb import TimeSeries

    for ev in seg.events:
        ann = ev.annotations
        stream = ann.get("lsl_name", ev.name or "events")
        kind = ann.get("lsl_type", "")
        times = ev.times.rescale(pq.s).magnitude.astype(np.float64) + shift
        labels = [str(x) for x in ev.labels]
        if ann.get("lsl_channel_format") != "string":
            units = _lsl_units(ev)
            timing = _timing(times)
            first = None
            for j, (key, values) in enumerate(ev.array_annotations.items()):
                ts = TimeSeries(
                    name=nwb_name(f"{stream}_{key}"),
                    data=np.asarray(values, dtype=np.float64),
                    unit=(units[j] if j < len(units) else "") or "n.a.",
                    **(timing if "rate" in timing or first is None else {"timestamps": first}),
                    description=f"Channel {key!r} of the irregular LSL stream {stream!r} "
                    f"(type {kind!r}); one sample per message.",
                )
                first = first or ts
                if "stim" in kind.lower():
                    nwbfile.add_stimulus(ts)
                else:
                    _module(nwbfile, "misc", "Other recorded streams.").add(ts)
            if (
                kind.lower() == "stimcommands"
                and width is None
                and "pulse_width_us" in ev.array_annotations
            ):
                width = (times, np.asarray(ev.array_annotations["pulse_width_us"], float))
            continue
        heads = {lab.split(" ", 1)[0].lower() for lab in labels}
        if heads <= {"stim", "pulse"}:
            _pulses(nwbfile, stream, times, labels, width, first_raw)
            continue
        nwbfile.add_events_table(_events_table(stream, kind, times, labels))


_RESERVED = {"timestamp", "duration", "annotation", "id"}


def split_marker(label: str) -> tuple[str, dict[str, Any] | None]:
    """``'safety {"event": "clamp", "seq": 3}'`` -> ``("safety", {"event": "clamp", "seq": 3})``.

    The structure is the first ``{`` or ``[`` from which the rest of the marker parses as JSON or
    as a Python literal; it is flattened to ``key.subkey`` / ``key.0`` leaves. Plain text gives
    ``(label, None)``.
    """
    import ast
    import json

    for i, ch in enumerate(label):
        if ch not in "{[":
            continue
        tail = label[i:]
        try:
            value = json.loads(tail)
        except ValueError:
            try:
                value = ast.literal_eval(tail)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
        if not isinstance(value, (dict, list)):
            continue
        leaves: dict[str, Any] = {}
        _flatten(value, "", leaves)
        return label[:i].strip(), leaves
    return label, None


def _flatten(value: Any, key: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{key}.{k}" if key else str(k), out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(v, f"{key}.{i}" if key else str(i), out)
    else:
        out[key or "value"] = value


def _events_table(stream: str, kind: str, times: np.ndarray, labels: list[str]) -> Any:
    """Markers as an EventsTable; structured markers (JSON or dict text) unpacked into columns."""
    from pynwb.event import EventsTable

    table = EventsTable(
        name=nwb_name(stream),
        description=f"Markers of the LSL stream {stream!r} (type {kind!r}); structured markers "
        "are unpacked: 'annotation' is their text and event, the other columns their fields.",
        source_description=f"LSL marker stream {stream!r}",
    )
    parsed = [split_marker(lab) for lab in labels]
    keys: list[str] = []
    for _, leaves in parsed:
        keys += [k for k in (leaves or {}) if k not in keys]
    numeric = {
        k: all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for _, leaves in parsed
            if leaves and k in leaves
            for v in [leaves[k]]
        )
        for k in keys
    }
    columns = {k: (f"{k}_value" if k in _RESERVED else k) for k in keys}
    for k in keys:
        table.add_column(columns[k], f"Field {k!r} of the structured markers.")
    for t, (text, leaves) in zip(times, parsed, strict=True):
        leaves = leaves or {}
        event = leaves.get("event")
        annotation = f"{text} {event}".strip() if isinstance(event, str) else text
        row: dict[str, Any] = {}
        for k in keys:
            v = leaves.get(k)
            if numeric[k]:
                row[columns[k]] = float(v) if v is not None else float("nan")
            else:
                row[columns[k]] = (
                    "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
                )
        table.add_event(timestamp=float(t), annotation=annotation, **row)
    return table


def _pulses(
    nwbfile: Any,
    stream: str,
    times: np.ndarray,
    labels: list[str],
    width: tuple[np.ndarray, np.ndarray] | None,
    first_raw: tuple[SplitStream, Any, float] | None,
) -> None:
    """Pulse onsets as intervals lasting the pulse width in effect (one sample when unknown)."""
    from pynwb.epoch import TimeIntervals

    if width is not None and len(width[0]):
        # the width applied in the control period holding the pulse: the first sample at or after it
        k = np.clip(np.searchsorted(width[0], times, side="left"), 0, len(width[0]) - 1)
        dur = width[1][k] * 1e-6
    else:
        dur = np.zeros(len(times))
    floor = 1.0 / first_raw[0].summary.nominal_srate if first_raw is not None else 1e-6
    dur = np.where(dur > 0, dur, floor)
    name = (
        "stimulation_pulses" if "stimulation_pulses" not in nwbfile.intervals else nwb_name(stream)
    )
    table = TimeIntervals(
        name=name, description=f"Stimulation pulses of the LSL stream {stream!r}: onset and width."
    )
    table.add_column("amplitude_ma", "Pulse amplitude from the marker (mA; NaN: not in it).")
    table.add_column("sample_index", "Onset sample in the raw stream (-1: not in the marker).")
    table.add_column("marker", "The recorded marker text.")
    for t, d, label in zip(times, dur, labels, strict=True):
        tok = parse_tokens(label)
        table.add_interval(
            start_time=float(t),
            stop_time=float(t + d),
            amplitude_ma=float(tok.get("amp_ma", np.nan)),
            sample_index=int(tok.get("sample", -1)),
            marker=label,
        )
    nwbfile.add_time_intervals(table)
