"""Where a recording is, and reading it with pyxdf into stream dicts, with errors that name the file.

The recorder's file format is read here, in the session room; the player
(:mod:`bci.acquisition.player`), the loader (:mod:`bci.session.load`) and the checker
(:mod:`bci.session.xdf_read`) all find and open recordings through this module.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from bci.errors import BCIError
from bci.session.clock_sync import synchronize_host_clocks

__all__ = [
    "RECORDING_FILE_NAME",
    "RecordingFormatError",
    "RecordingNotFoundError",
    "header_value",
    "read_xdf",
    "resolve_recording_path",
]

#: File name of the recording inside a run folder (``sessions/runs/<timestamp>-<name>/``).
RECORDING_FILE_NAME = "recording.xdf"


class RecordingNotFoundError(BCIError, FileNotFoundError):
    """The recording file (or the run folder's ``recording.xdf``) does not exist."""


class RecordingFormatError(BCIError, ValueError):
    """The file exists but is not a readable XDF recording."""


def header_value(info: Mapping[str, Any], key: str, default: str = "") -> str:
    """The first text of ``key`` in a pyxdf header dict (tag -> list of values), or ``default``."""
    value = info.get(key)
    if not value or value[0] is None:
        return default
    return str(value[0])


def resolve_recording_path(path: str | Path) -> Path:
    """Return the XDF file for ``path``: the file itself, or ``recording.xdf`` inside a run folder.

    Raises
    ------
    RecordingNotFoundError
        If neither exists.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        candidate = p / RECORDING_FILE_NAME
        if not candidate.is_file():
            raise RecordingNotFoundError(
                f"{p} is a folder without a {RECORDING_FILE_NAME}; pass an XDF file or a run folder."
            )
        return candidate
    if not p.is_file():
        raise RecordingNotFoundError(f"Recording {p} does not exist.")
    return p


def read_xdf(
    path: str | Path,
    *,
    synchronize_clocks: bool = True,
    dejitter: bool = False,
    names: Collection[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read an XDF file with pyxdf, turning its errors into ones that name the file.

    Parameters
    ----------
    path : str or Path
        An ``.xdf`` file, or a run folder holding ``recording.xdf``.
    synchronize_clocks : bool
        Apply the recorded ClockOffset chunks, so every stream is on the recorder's clock: one robust
        fit per sending host, pooled over its streams (:mod:`bci.session.clock_sync`), so streams
        stamped by the same clock keep their exact relative timing.
    dejitter : bool
        Replace the time stamps of regular streams by a linear fit (pyxdf's ``dejitter_timestamps``).
    names : collection of str or None
        Read only the streams of these names (pyxdf's ``select_streams``: the samples of the
        others are skipped, not decoded); None reads every stream.

    Returns
    -------
    streams : list of dict
        pyxdf's stream dicts (``info``, ``time_series``, ``time_stamps``, ...).
    header : dict
        The file header.

    Raises
    ------
    RecordingNotFoundError, RecordingFormatError
    """
    import pyxdf

    p = resolve_recording_path(path)
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"XDF:":
        raise RecordingFormatError(
            f"{p} is not an XDF file (it does not start with the 'XDF:' magic bytes)."
        )

    select = None if names is None else [{"name": str(n)} for n in names]
    if select == []:
        return [], {}

    def _load(sync: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        try:
            streams, header = pyxdf.load_xdf(
                str(p),
                select_streams=select,
                synchronize_clocks=sync,
                dejitter_timestamps=dejitter,
                verbose=False,
            )
        except Exception as err:  # pyxdf raises bare Exception, IOError, ValueError, struct.error
            raise RecordingFormatError(
                f"Could not read XDF file {p}: {err}. If the recording was cut short (a crash), "
                f"'bci session check {p}' names the problem and 'bci session repair {p}' writes a "
                "readable copy."
            ) from err
        if header is None:  # pyxdf found no FileHeader chunk (logging why) and read nothing
            raise RecordingFormatError(
                f"{p} holds no readable XDF FileHeader after its 'XDF:' magic bytes: it is empty "
                f"or damaged from the start. 'bci session check {p}' names the problem."
            )
        return list(streams), dict(header)

    streams, header = _load(False)
    if synchronize_clocks:
        # one correction per sending host, so streams stamped by one clock stay aligned
        recorder_host = header_value(header.get("info", {}), "hostname") or None
        reset = synchronize_host_clocks(streams, recorder_host)
        if reset:  # a host clock was reset mid-recording: pyxdf's per-stream handling
            by_pyxdf, _ = _load(True)
            for i in reset:
                streams[i]["time_stamps"] = by_pyxdf[i]["time_stamps"]
    return streams, header
