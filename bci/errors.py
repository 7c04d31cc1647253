"""The toolkit's exceptions: one root, :class:`BCIError`, so callers can catch everything we raise.

Each subclass also derives from the matching builtin (``ValueError``, ``LookupError``, ...) so code
that already catches those keeps working.
"""


class BCIError(Exception):
    """Root of every exception raised on purpose by the toolkit."""


class ConfigError(BCIError, ValueError):
    """A parameter or a session config value is invalid."""


class StreamNotFoundError(BCIError, LookupError):
    """No LSL stream matched the query within the timeout."""


class StreamMismatchError(BCIError, ValueError):
    """A stream's channel count, format or rate differs from what the session expects."""


class StageCompatibilityError(BCIError, ValueError):
    """Two adjacent pipeline stages disagree on what flows between them."""
