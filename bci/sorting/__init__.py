"""Online spike sorting: noise, detection, calibration clustering -> templates, template matching.

``OnlineSorter.fit`` learns templates from a calibration segment; ``OnlineSorter.process`` labels
spikes chunk by chunk. :func:`build_online_path` and :func:`sort_recording` wire the whole causal
path (band-pass, common reference, sorter).
"""

from bci.sorting.calibration import CalibrationParams
from bci.sorting.detection import channel_neighbours, detect_peaks
from bci.sorting.matching import OnlineSorter
from bci.sorting.noise import SortingError, mad_noise
from bci.sorting.pipeline import build_online_path, sort_recording
from bci.sorting.templates import TemplateBank

__all__ = [
    "CalibrationParams",
    "OnlineSorter",
    "SortingError",
    "TemplateBank",
    "build_online_path",
    "channel_neighbours",
    "detect_peaks",
    "mad_noise",
    "sort_recording",
]
