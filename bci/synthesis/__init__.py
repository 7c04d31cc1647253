"""Synthetic extracellular recordings with ground truth: probes, spatial templates, noise, LFP,
stimulation artifacts, a causal streaming renderer, and a real-time LSL publisher.

>>> from bci.synthesis import generate_recording
>>> rec = generate_recording(n_channels=8, n_units=3, duration_s=0.5, seed=1)
>>> rec.traces.shape
(15000, 8)
"""

from bci.synthesis.noise import LFPParams
from bci.synthesis.probe import PROBE_LAYOUTS, make_probe
from bci.synthesis.recording import GroundTruthRecording, generate_recording
from bci.synthesis.renderer import StreamingRenderer
from bci.synthesis.source import SyntheticSource
from bci.synthesis.templates import UnitTemplates, make_templates, make_unit_templates

__all__ = [
    "PROBE_LAYOUTS",
    "GroundTruthRecording",
    "LFPParams",
    "StreamingRenderer",
    "SyntheticPublisher",
    "SyntheticSource",
    "UnitTemplates",
    "generate_recording",
    "make_probe",
    "make_templates",
    "make_unit_templates",
]


def __getattr__(name: str) -> object:
    # the publisher imports pylsl; load it only when asked for
    if name == "SyntheticPublisher":
        from bci.synthesis.publisher import SyntheticPublisher

        return SyntheticPublisher
    raise AttributeError(f"module 'bci.synthesis' has no attribute {name!r}")
