"""Online spike sorting: noise, detection, calibration clustering -> templates, template matching.

``OnlineSorter.fit`` learns templates from a calibration segment; ``OnlineSorter.process`` labels
spikes chunk by chunk. :func:`build_online_path` and :func:`sort_recording` wire the whole causal
path (band-pass, common reference, sorter). :class:`ThresholdCrossings` is the unsorted,
BrainGate-style multi-unit alternative; :func:`to_spikeinterface` and :func:`to_neo` hand spikes
to the offline tools.
"""

from bci.sorting.calibration import CalibrationParams
from bci.sorting.detection import channel_neighbours, detect_peaks
from bci.sorting.interop import to_neo, to_spikeinterface
from bci.sorting.matching import OnlineSorter
from bci.sorting.noise import SortingError, mad_noise
from bci.sorting.pipeline import build_online_path, sort_recording
from bci.sorting.templates import TemplateBank
from bci.sorting.threshold import ThresholdCrossings

__all__ = [
    "CalibrationParams",
    "OnlineSorter",
    "SortingError",
    "TemplateBank",
    "ThresholdCrossings",
    "build_online_path",
    "channel_neighbours",
    "detect_peaks",
    "mad_noise",
    "sort_recording",
    "to_neo",
    "to_spikeinterface",
]
