"""The sorting room's errors: bad data, bad arguments, bad template files."""

from __future__ import annotations

from bci.errors import BCIError, ConfigError


class SortingError(BCIError, ValueError):
    """Sorting cannot go on: no spikes to calibrate on, bad traces, a sorter used before fit."""


class SortingConfigError(SortingError, ConfigError):
    """A sorting parameter is invalid (also a :class:`bci.ConfigError`)."""


class TemplateFileError(SortingError):
    """A file given as a template bank is missing, not a template file, from a newer version of
    the toolkit, or inconsistent (its arrays disagree on the channel count)."""
