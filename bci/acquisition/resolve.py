"""Find LSL streams: one stream by its properties, with errors that say what exists.

:func:`resolve_stream_info` is how every part of the toolkit finds a stream (``LSLSource.open``,
``bci record``, the runner): nothing found names the streams that do exist, and two matching
streams (a replay next to the live device) are refused with both listed, never picked at random.
"""

from __future__ import annotations

import pylsl

import bci.acquisition.lsl_config  # noqa: F401  (quiet liblsl before first use)
from bci.acquisition.metadata import FORMAT_NAMES, NUMPY_DTYPES
from bci.checks import check_type, ensure_float
from bci.errors import ConfigError, StreamMismatchError, StreamNotFoundError

__all__ = [
    "AmbiguousStreamError",
    "check_stream_info",
    "describe_info",
    "list_streams",
    "resolve_stream_info",
    "stream_query",
]

#: Seconds to listen for the list of existing streams when a resolve fails.
LIST_STREAMS_WAIT_S = 0.5
#: Seconds to listen for a second stream matching a query once one has answered.
DUPLICATE_WAIT_S = 0.2


class AmbiguousStreamError(ConfigError):
    """More than one LSL stream matches the query; the message lists them and how to pick one."""


def _xpath_literal(value: str) -> str:
    """Quote ``value`` as an XPath 1.0 string literal (which has no escapes)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


def describe_info(info: pylsl.StreamInfo) -> str:
    fmt = FORMAT_NAMES.get(info.channel_format(), str(info.channel_format()))
    rate = info.nominal_srate()
    rate_text = f"{rate:g} Hz" if rate > 0 else "irregular rate"
    return (
        f"name={info.name()!r} type={info.type()!r} source_id={info.source_id()!r} "
        f"({info.channel_count()} ch, {rate_text}, {fmt}, host {info.hostname()!r})"
    )


def list_streams(wait_s: float = 1.0) -> list[str]:
    """One line per LSL stream visible on the network within ``wait_s`` seconds."""
    return [describe_info(info) for info in pylsl.resolve_streams(wait_time=wait_s)]


def stream_query(name: str | None, stype: str | None, source_id: str | None) -> dict[str, str]:
    """The given stream properties by their LSL name (at least one), each checked to be a str."""
    given = {"name": name, "type": stype, "source_id": source_id}
    query = {k: v for k, v in given.items() if v is not None}
    if not query:
        raise ConfigError(
            "LSLSource needs at least one of 'name', 'stype' or 'source_id' to find its stream."
        )
    for key, value in query.items():
        check_type(value, str, "stype" if key == "type" else key)
    return query


def resolve_stream_info(
    name: str | None = None,
    stype: str | None = None,
    source_id: str | None = None,
    timeout_s: float = 5.0,
) -> pylsl.StreamInfo:
    """Find one LSL stream matching every given property.

    Raises
    ------
    bci.StreamNotFoundError
        Nothing matched within ``timeout_s``; the message lists the streams that do exist.
    AmbiguousStreamError
        Several streams match (e.g. a replay next to the live stream with the same name); the
        message lists them with source_id, host and type.
    """
    query = stream_query(name, stype, source_id)
    timeout_s = ensure_float(timeout_s, "timeout_s", minimum=0.0)
    predicate = " and ".join(f"{k}={_xpath_literal(v)}" for k, v in query.items())
    wanted = ", ".join(f"{k}={v!r}" for k, v in query.items())
    found = pylsl.resolve_bypred(predicate, 1, timeout_s)
    if found:
        if len(found) == 1:  # a second match may answer a moment later: listen briefly for it
            found = pylsl.resolve_bypred(predicate, 2, DUPLICATE_WAIT_S) or found
        unique = {info.uid(): info for info in found}
        if len(unique) > 1:
            matches = "\n  ".join(describe_info(i) for i in unique.values())
            raise AmbiguousStreamError(
                f"{len(unique)} LSL streams match {wanted}; refusing to guess which to use:\n"
                f"  {matches}\nPick one by its source_id (bci record --source-id ID, "
                "LSLSource(source_id=...)); a replay's source_id ends in '-replay'. Or add its type "
                "(--type) and stop the stream you do not want."
            )
        return found[0]
    infos = pylsl.resolve_streams(wait_time=LIST_STREAMS_WAIT_S)
    # Streams that share a wanted property first: they are most likely what the user meant.
    infos.sort(key=lambda i: -sum(getattr(i, k)() == v for k, v in query.items()))
    existing = [describe_info(i) for i in infos]
    if existing:
        shown = "\n  ".join(existing[:20])
        more = f"\n  ... and {len(existing) - 20} more" if len(existing) > 20 else ""
        listing = f"Streams visible now ({len(existing)}):\n  {shown}{more}"
    else:
        listing = (
            "No LSL streams are visible at all: is the outlet running, and does the network "
            "(firewall, multicast) let LSL through?"
        )
    raise StreamNotFoundError(
        f"No LSL stream with {wanted} was found within {timeout_s:g} s. {listing}"
    )


def check_stream_info(
    info: pylsl.StreamInfo,
    n_channels: int | None,
    sfreq: float | None,
    channel_format: str | None,
) -> None:
    """Refuse a stream that is not what the session expects.

    Parameters
    ----------
    info : pylsl.StreamInfo
        The resolved stream.
    n_channels, sfreq, channel_format : optional
        What is expected (``None``: anything); ``channel_format`` is a key of
        :data:`~bci.acquisition.metadata.CHANNEL_FORMATS`. A non-numeric format or an irregular
        rate is refused whatever is expected.

    Raises
    ------
    bci.StreamMismatchError
        Naming every field that differs, expected beside actual.
    """
    problems = []
    actual_format = FORMAT_NAMES.get(info.channel_format(), str(info.channel_format()))
    if actual_format not in NUMPY_DTYPES:
        problems.append(f"channel format: expected a numeric format, got {actual_format!r}")
    elif channel_format is not None and actual_format != channel_format:
        problems.append(f"channel format: expected {channel_format!r}, got {actual_format!r}")
    if n_channels is not None and info.channel_count() != n_channels:
        problems.append(f"channels: expected {n_channels}, got {info.channel_count()}")
    rate = info.nominal_srate()
    if rate <= 0:
        problems.append(
            "sampling rate: expected a regular rate, got an irregular stream (nominal rate 0)"
        )
    elif sfreq is not None and abs(rate - sfreq) > 1e-6 * sfreq:
        problems.append(f"sampling rate: expected {sfreq:g} Hz, got {rate:g} Hz")
    if problems:
        raise StreamMismatchError(
            f"The LSL stream {describe_info(info)} does not match what was expected: "
            + "; ".join(problems)
            + "."
        )
