"""The LSL streams the plant's bridge publishes: names, types, channels and metadata.

See :mod:`stimulation.plant.bridge` for what goes on each. All are built with
:func:`bci.acquisition.make_stream_info`, so pyxdf and LabRecorder see channel labels, units and
(for ``-raw``) contact positions; the plant's settings go under ``desc/plant``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pylsl

from bci.acquisition.metadata import make_stream_info
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet
from stimulation.plant.monitor import FEATURES
from stimulation.plant.probe import VirtualProbe

#: Channels of the ``-biomarkers`` stream: the monitor's features, then the stimulation applied:
#: what the safety limiter let out in device units (``amplitude_ma``), and the model current
#: density it stands for (``amplitude``, uA/cm2, :mod:`stimulation.safety`'s mapping); last the
#: plant's Parkinsonian state (0 healthy, 1 Parkinsonian; the fluctuating plant's truth, to score
#: a state decoder, never an input to the loop).
BIOMARKER_CHANNELS: tuple[str, ...] = (
    *FEATURES,
    "amplitude_ma",
    "amplitude",
    "frequency_hz",
    "pulse_width_us",
    "command_seq",
    "pd_state",
)
#: Sample formats of the ``-raw`` stream.
RAW_FORMATS: tuple[str, ...] = ("float32", "int16")
_UNITS = {
    "rate": "Hz",
    "frequency_hz": "Hz",
    "pulse_width_us": "us",
    "amplitude_ma": "mA",
    "amplitude": "uA/cm2",
}


@dataclass
class PlantOutlets:
    """The bridge's four outlets."""

    raw: SignalOutlet
    spikes: MarkerOutlet
    stim: MarkerOutlet
    biomarkers: SignalOutlet


def _marker_info(name: str, source_id: str, suffix: str, label: str) -> pylsl.StreamInfo:
    info = make_stream_info(
        f"{name}-{suffix}",
        "Markers",
        1,
        0.0,
        "string",
        f"{source_id}-{suffix}",
        labels=[label],
        units="",
        model="stimulation.plant",
    )
    info.desc().append_child("plant").append_child_value("data_stream", f"{name}-raw")
    return info


def make_plant_outlets(
    name: str,
    source_id: str,
    probe: VirtualProbe,
    *,
    channel_format: str,
    scale_uv_per_bit: float,
    chunk_samples: int,
    control_period_s: float,
    window_s: float,
    plant_desc: Mapping[str, str],
) -> PlantOutlets:
    """Open ``<name>-raw``, ``-spikes``, ``-stim`` and ``-biomarkers`` (source_ids likewise).

    ``plant_desc`` goes under ``desc/plant`` of ``-raw`` (state, seed, recorded cells, ...).
    """
    info = make_stream_info(
        f"{name}-raw",
        "Neural",
        probe.n_channels,
        probe.sfreq,
        channel_format,
        f"{source_id}-raw",
        units="uV",
        channel_types="Neural",
        positions=probe.positions,
        model="stimulation.plant",
    )
    acq = info.desc().child("acquisition")
    acq.append_child_value("scale_uv_per_bit", repr(scale_uv_per_bit))
    acq.append_child_value("ground_truth_stream", f"{name}-spikes")
    acq.append_child_value("stim_stream", f"{name}-stim")
    desc = info.desc().append_child("plant")
    for key, value in plant_desc.items():
        desc.append_child_value(key, value)
    units = [_UNITS.get(ch, _UNITS.get(ch.partition("_")[0], "")) for ch in BIOMARKER_CHANNELS]
    binfo = make_stream_info(
        f"{name}-biomarkers",
        "Biomarkers",
        len(BIOMARKER_CHANNELS),
        1.0 / control_period_s,
        "float32",
        f"{source_id}-biomarkers",
        labels=BIOMARKER_CHANNELS,
        units=units,
        channel_types="Biomarker",
        model="stimulation.plant",
    )
    bdesc = binfo.desc().append_child("plant")
    bdesc.append_child_value("window_s", repr(window_s))
    bdesc.append_child_value("data_stream", f"{name}-raw")
    return PlantOutlets(
        raw=SignalOutlet(info, chunk_size=chunk_samples),
        spikes=MarkerOutlet(_marker_info(name, source_id, "spikes", "spike")),
        stim=MarkerOutlet(_marker_info(name, source_id, "stim", "stim")),
        biomarkers=SignalOutlet(binfo),
    )
