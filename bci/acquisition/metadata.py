"""LSL stream metadata in the XDF conventions that LabRecorder, pyxdf and MNE-LSL read.

Channels live under ``desc/channels/channel`` with ``label``, ``unit`` and ``type``; probe contacts
add ``location/X``, ``location/Y`` (um). Who made the stream goes under ``desc/acquisition``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pylsl

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)
from bci.checks import check_value, ensure_float, ensure_int
from bci.errors import ConfigError
from bci.stream.spec import StreamOrigin, StreamSpec

#: LSL channel formats by name, as XDF headers and our configs spell them.
CHANNEL_FORMATS: dict[str, int] = {
    "float32": pylsl.cf_float32,
    "double64": pylsl.cf_double64,
    "int16": pylsl.cf_int16,
    "int32": pylsl.cf_int32,
    "int64": pylsl.cf_int64,
    "int8": pylsl.cf_int8,
    "string": pylsl.cf_string,
}
FORMAT_NAMES: dict[int, str] = {v: k for k, v in CHANNEL_FORMATS.items()}
#: numpy dtype of each numeric LSL channel format.
NUMPY_DTYPES: dict[str, type[np.generic]] = {
    "float32": np.float32,
    "double64": np.float64,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "int8": np.int8,
}


@dataclass(frozen=True)
class ChannelInfo:
    """What a stream says about its channels (empty strings where it says nothing)."""

    labels: tuple[str, ...]
    units: tuple[str, ...]
    types: tuple[str, ...]
    positions: tuple[tuple[float, float], ...]  # empty unless every channel has a location


def make_stream_info(
    name: str,
    stype: str,
    n_channels: int,
    sfreq: float,
    channel_format: str = "float32",
    source_id: str = "",
    *,
    labels: Sequence[str] | None = None,
    units: str | Sequence[str] = "uV",
    channel_types: str | Sequence[str] | None = None,
    positions: np.ndarray | Sequence[Sequence[float]] | None = None,
    manufacturer: str = "bci-closed-loop",
    model: str = "",
) -> pylsl.StreamInfo:
    """Build a ``pylsl.StreamInfo`` with XDF-style channel metadata.

    Parameters
    ----------
    name, stype : str
        Stream name and content type (``"Neural"``, ``"Markers"``, ``"Stim"``, ...).
    n_channels : int
        Channel count.
    sfreq : float
        Nominal rate in Hz; 0 for an irregular stream (markers, commands).
    channel_format : str
        One of :data:`CHANNEL_FORMATS`.
    source_id : str
        Unique id of the data source; inlets use it to recover the stream after the outlet restarts.
    labels, units, channel_types : sequence of str or str
        Per-channel metadata; a single string applies to every channel. Labels default to
        ``ch000``, ``ch001``, ...; types default to ``stype``.
    positions : array (n_channels, 2), optional
        Probe contact positions in um, written as ``location/X`` and ``location/Y``.
    """
    n_channels = ensure_int(n_channels, "n_channels", minimum=1)
    sfreq = ensure_float(sfreq, "sfreq", minimum=0.0)
    check_value(channel_format, CHANNEL_FORMATS, "channel_format")
    info = pylsl.StreamInfo(
        name, stype, n_channels, sfreq, CHANNEL_FORMATS[channel_format], source_id
    )
    labels = list(labels) if labels is not None else [f"ch{i:03d}" for i in range(n_channels)]
    unit_list = [units] * n_channels if isinstance(units, str) else list(units)
    if channel_types is None:
        channel_types = stype
    type_list = (
        [channel_types] * n_channels if isinstance(channel_types, str) else list(channel_types)
    )
    pos = None if positions is None else np.asarray(positions, dtype=float)
    for what, values in (("labels", labels), ("units", unit_list), ("channel_types", type_list)):
        if len(values) != n_channels:
            raise ConfigError(
                f"Invalid value for the '{what}' parameter: {len(values)} entries for "
                f"{n_channels} channels."
            )
    if pos is not None and pos.shape != (n_channels, 2):
        raise ConfigError(
            f"Invalid value for the 'positions' parameter: expected shape ({n_channels}, 2), "
            f"got {pos.shape}."
        )
    channels = info.desc().append_child("channels")
    for i in range(n_channels):
        ch = channels.append_child("channel")
        ch.append_child_value("label", str(labels[i]))
        ch.append_child_value("unit", str(unit_list[i]))
        ch.append_child_value("type", str(type_list[i]))
        if pos is not None:
            loc = ch.append_child("location")
            loc.append_child_value("X", repr(float(pos[i, 0])))
            loc.append_child_value("Y", repr(float(pos[i, 1])))
    acq = info.desc().append_child("acquisition")
    acq.append_child_value("manufacturer", manufacturer)
    if model:
        acq.append_child_value("model", model)
    return info


def read_scale_uv_per_bit(info: pylsl.StreamInfo) -> float | None:
    """The stream's ``desc/acquisition/scale_uv_per_bit`` (uV per stored value), or None.

    The toolkit's convention (our publishers write it, as Intan-style amplifiers do): a stored
    sample ``v`` is ``v * scale_uv_per_bit`` microvolts. A missing, empty, non-numeric, non-finite
    or non-positive value gives None (the samples are taken as they are).
    """
    return parse_scale_uv_per_bit(info.desc().child("acquisition").child_value("scale_uv_per_bit"))


def parse_scale_uv_per_bit(text: str | None) -> float | None:
    """Parse a header's ``scale_uv_per_bit`` text; None when absent or not a positive number."""
    try:
        scale = float(text) if text else None
    except ValueError:
        return None
    if scale is None or not np.isfinite(scale) or scale <= 0:
        return None
    return scale


def read_channel_info(info: pylsl.StreamInfo) -> ChannelInfo:
    """Parse ``desc/channels`` of a (full) stream info; missing fields come back empty."""
    n = info.channel_count()
    labels, units, types, positions = [], [], [], []
    ch = info.desc().child("channels").child("channel")
    for _ in range(n):
        if ch.empty():
            break
        labels.append(ch.child_value("label"))
        units.append(ch.child_value("unit"))
        types.append(ch.child_value("type"))
        loc = ch.child("location")
        if not loc.empty() and loc.child_value("X") and loc.child_value("Y"):
            positions.append((float(loc.child_value("X")), float(loc.child_value("Y"))))
        ch = ch.next_sibling("channel")
    labels += [""] * (n - len(labels))
    units += [""] * (n - len(units))
    types += [""] * (n - len(types))
    return ChannelInfo(
        tuple(labels),
        tuple(units),
        tuple(types),
        tuple(positions) if len(positions) == n else (),
    )


def read_signal_spec(
    info: pylsl.StreamInfo, *, scale_uv_per_bit: float, unit: str | None = None
) -> StreamSpec:
    """Describe a regularly sampled signal stream as a :class:`~bci.stream.StreamSpec`.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The stream's full header (``inlet.info()``: with its ``desc``).
    scale_uv_per_bit : float
        Factor the values are delivered with (recorded in the spec's origin).
    unit : str or None
        Unit of the delivered values; ``None``: the channels' own unit when they all share one,
        else ``""``.
    """
    channels = read_channel_info(info)
    units = {u for u in channels.units if u}
    if unit is None:
        unit = units.pop() if len(units) == 1 else ""
    return StreamSpec(
        kind="signal",
        n_channels=info.channel_count(),
        rate_hz=float(info.nominal_srate()),
        channel_names=channels.labels,
        unit=unit,
        positions=channels.positions,
        origin=StreamOrigin(
            name=info.name(),
            stream_type=info.type(),
            source_id=info.source_id(),
            hostname=info.hostname(),
            channel_format=FORMAT_NAMES[info.channel_format()],
            scale_uv_per_bit=scale_uv_per_bit,
        ),
    )
