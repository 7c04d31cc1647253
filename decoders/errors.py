"""The decoders' exceptions, all under :class:`bci.BCIError`."""

from __future__ import annotations

from bci.errors import BCIError, ConfigError


class DecoderConfigError(ConfigError):
    """A decoder parameter is invalid (bad argument: a :class:`bci.ConfigError`)."""


class DecoderError(BCIError, ValueError):
    """Data a decoder cannot use: wrong shape, NaN, a unit count other than the fitted one."""


class NotFittedError(DecoderError):
    """``predict``, ``step`` or ``save`` was called before ``fit``."""


class ModelFileError(DecoderError):
    """A saved model cannot be loaded: corrupt, of a newer format version, or not a decoder."""
