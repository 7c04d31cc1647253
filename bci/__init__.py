"""Closed-loop brain-computer interface toolkit.

Neural recordings arrive over LabStreamingLayer, are filtered and sorted online, decoded, and close
the loop through a safety-limited stimulator. ``import bci`` needs no torch.
"""

from bci.errors import (
    BCIError,
    ConfigError,
    StageCompatibilityError,
    StreamMismatchError,
    StreamNotFoundError,
)

__version__ = "0.1.0"

__all__ = [
    "BCIError",
    "ConfigError",
    "StageCompatibilityError",
    "StreamMismatchError",
    "StreamNotFoundError",
    "__version__",
]
