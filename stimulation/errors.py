"""Exceptions of the stimulation package, all under :class:`bci.BCIError`.

Each also derives from the matching builtin (``ValueError``) through :class:`bci.ConfigError`, so
code that catches ``ValueError`` keeps working.
"""

from __future__ import annotations

from bci.errors import BCIError, ConfigError


class StimulationError(BCIError):
    """Root of the errors raised by :mod:`stimulation`."""


class PulseParameterError(StimulationError, ConfigError):
    """A pulse-train parameter is invalid (negative or NaN amplitude, pulse longer than the period...)."""


class PlantParameterError(StimulationError, ConfigError):
    """A basal-ganglia plant parameter or run request is invalid."""
