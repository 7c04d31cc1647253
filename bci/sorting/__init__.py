"""Online spike sorting: noise, detection, calibration clustering -> templates, template matching.

:func:`calibrate` turns a calibration segment into a :class:`TemplateBank` (knobs in a
:class:`SorterConfig`); the :class:`OnlineSorter` stage (``fit`` = calibrate, ``process``) labels
spikes chunk by chunk with a :class:`Matcher`. :func:`build_online_path` and :func:`sort_recording` wire the whole causal
path (band-pass, common reference, sorter). :class:`ThresholdCrossings` is the unsorted,
BrainGate-style multi-unit alternative; :func:`to_spikeinterface` and :func:`to_neo` hand spikes
to the offline tools.
"""

from bci.sorting.calibration import calibrate
from bci.sorting.clustering import CalibrationParams
from bci.sorting.config import SorterConfig
from bci.sorting.detection import channel_neighbours, detect_peaks
from bci.sorting.errors import SortingConfigError, SortingError, TemplateFileError
from bci.sorting.interop import to_neo, to_spikeinterface
from bci.sorting.noise import mad_noise
from bci.sorting.peeler import Matcher
from bci.sorting.pipeline import build_online_path, sort_recording
from bci.sorting.sorter import OnlineSorter
from bci.sorting.templates import TemplateBank
from bci.sorting.threshold import ThresholdCrossings

__all__ = [
    "CalibrationParams",
    "Matcher",
    "OnlineSorter",
    "SorterConfig",
    "SortingConfigError",
    "SortingError",
    "TemplateBank",
    "TemplateFileError",
    "ThresholdCrossings",
    "build_online_path",
    "calibrate",
    "channel_neighbours",
    "detect_peaks",
    "mad_noise",
    "sort_recording",
    "to_neo",
    "to_spikeinterface",
]
