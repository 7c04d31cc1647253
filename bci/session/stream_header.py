"""What a recorded stream's header says: channels, units, scale, and neo annotations.

pyxdf gives each stream's ``<info>`` as nested dicts of lists; this module reads from it what every
converter of a recording needs: the per-channel ``label``/``unit``/``type``/position of
``desc/channels`` (:func:`channel_entries`), the LSL unit strings as ``quantities`` units
(:func:`parse_unit`), the ``desc/acquisition/scale_uv_per_bit`` of integer streams and the samples
in physical units (:func:`physical_samples`), and the ``lsl_*`` annotations every neo object of a
stream carries (:func:`stream_annotations`). Used by :mod:`bci.session.load`,
:mod:`bci.session.spike_streams` and the NWB export.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

import numpy as np
import quantities as pq

from bci.acquisition.metadata import parse_scale_uv_per_bit
from bci.session.files import header_value

__all__ = [
    "channel_entries",
    "dimension_key",
    "parse_unit",
    "physical_samples",
    "stream_annotations",
    "stream_scale_uv_per_bit",
    "unit_factor",
]

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


def _to_xml(tag: str, node: Any) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(node, Mapping):
        for child_tag, children in node.items():
            for child in children:
                el.append(_to_xml(child_tag, child))
    elif node is not None:
        el.text = str(node)
    return el


def channel_entries(info: Mapping[str, Any], n: int) -> list[dict[str, str]]:
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


def stream_annotations(stream: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lsl_*`` annotations of every neo object made of ``stream`` (its header, and the
    whole ``<info>`` element as ``lsl_info_xml``)."""
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


def dimension_key(unit: pq.Quantity) -> str:
    """A key shared by units that convert into one another (uV and mV; not uV and Hz)."""
    if unit.dimensionality.string == "dimensionless":  # .simplified recurses on dimensionless
        return "dimensionless"
    return str(unit.simplified.dimensionality.string)


def unit_factor(unit: pq.Quantity, target: pq.Quantity) -> float:
    """The factor that converts values in ``unit`` into ``target``."""
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
