"""Export a recorded session to NWB (Neurodata Without Borders), written with pynwb directly.

neo's NWBIO drops channel names, waveforms and event metadata and writes no electrodes table; this
writer keeps them. What each recorded stream becomes (streams are read from ``recording.xdf``;
:mod:`bci.session.load` describes the conventions):

=========================================  =======================================================
recorded stream                            in the NWB file
=========================================  =======================================================
regular numeric stream in volts (uV, mV,   ``acquisition/<stream>``: an ``ElectricalSeries`` in the
V): a probe, an amplifier                  recorded sample format (int16 stays int16, gzip,
                                           chunked, written block by block), with a row per
                                           channel in the ``electrodes`` table (label, probe
                                           position ``rel_x``/``rel_y`` in um, group = stream,
                                           device = stream's source). int streams carry the
                                           header's ``scale_uv_per_bit`` as ``channel_conversion``
spike stream of type ``Spikes`` (sorter)   ``units``: spike times, unit id, the channel each unit
                                           came from (``electrodes``), mean and SD waveform,
                                           per-spike channel, amplitude and sample index
ground-truth spike markers (plant,         ``processing/ground_truth/<stream>``: a ``Units``
synthetic source)                          table of the same layout
the plant's ``Biomarkers``                 ``processing/ground_truth``: one ``TimeSeries`` per
                                           channel (beta, rates, error index, stimulation applied)
other regular numeric streams (decoded     ``processing/decoded``: one ``TimeSeries`` per channel
variables)
irregular numeric streams (stimulation     ``stimulus``: one ``TimeSeries`` per channel with the
commands before and after the limiter)     commands' time stamps (amplitude, frequency, width)
pulse-onset markers (``stim sample=...``)  ``intervals/stimulation_pulses``: start, stop = start +
                                           the pulse width in effect, amplitude, sample index
other markers (safety events, ...)         ``events/<stream>``: an ``EventsTable`` (time stamp,
                                           annotation = the marker text)
``config.yaml`` and ``summary.json``       ``notes`` (verbatim, YAML and JSON)
=========================================  =======================================================

Times count from the first sample of the recording (the loader's time zero), on the recorder's
clock; ``session_start_time`` is the recording's start from the XDF header. Recorded time stamps of
an electrical stream are kept as ``timestamps`` unless they lie on a regular grid to 1 ns, when
``starting_time`` and ``rate`` replace them (NWB best practice); other regular streams are written
with ``starting_time`` and ``rate`` as neo loads them.

Reading back: pynwb reads everything. neo 0.14.6's ``NWBIO`` cannot read a file holding any
``ElectricalSeries`` with an electrodes table (it turns every NWB field into a neo annotation and the
electrodes region is not a valid one; its lazy mode fails on appending proxies; neo issue #1207):
``export_nwb(..., raw=False)`` (``bci export nwb --no-raw``) writes the same file without the
samples, which NWBIO reads with the same units and spike counts.

Memory: the electrical streams never pass through pyxdf or neo. :mod:`bci.session.xdf_split` keeps
their samples out of the part of the file that is loaded, and they are copied from the XDF file to
the NWB file one block (``block_s`` seconds) at a time, so a 60 s, 384-channel int16 recording
needs its time stamps (8 bytes per sample) and one block in memory, not its size.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bci.errors import BCIError, ConfigError
from bci.session.stream_header import parse_unit
from bci.session.xdf import StreamSummary
from bci.session.xdf_read import scan_xdf
from bci.session.xdf_split import SamplesReader, SplitStream, split_xdf

__all__ = [
    "NWB_FILE_NAME",
    "NWBExportError",
    "export_nwb",
    "header_channels",
    "is_electrical",
    "nwb_name",
    "parse_tokens",
]

#: File name of the NWB copy inside a run folder.
NWB_FILE_NAME = "session.nwb"
_VOLT_FACTOR = {"V": 1.0, "mV": 1e-3, "uV": 1e-6}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
_TOKEN = re.compile(r"(\w+)=(\S+)")


class NWBExportError(BCIError, ValueError):
    """The recording cannot be written to NWB (the message names the stream and the problem)."""


def _volt_factor(unit: str) -> float | None:
    q, ok = parse_unit(unit)
    if not ok or q.dimensionality.string == "dimensionless":
        return None
    try:
        import quantities as pq

        return float(pq.Quantity(1.0, q).rescale(pq.V).magnitude)
    except ValueError:
        return None


def header_channels(root: ET.Element) -> list[dict[str, str]]:
    """``label``, ``unit``, ``x``, ``y`` of each ``desc/channels/channel`` of a stream header."""
    out = []
    for ch in root.findall("./desc/channels/channel"):
        out.append(
            {
                "label": ch.findtext("label") or "",
                "unit": ch.findtext("unit") or "",
                "x": ch.findtext("location/X") or "",
                "y": ch.findtext("location/Y") or "",
            }
        )
    return out


def is_electrical(summary: StreamSummary, root: ET.Element) -> bool:
    """A regular numeric stream whose every channel is in volts (uV, mV, V...): a voltage recording."""
    if summary.channel_format == "string" or summary.nominal_srate <= 0:
        return False
    chans = header_channels(root)
    return len(chans) == summary.n_channels and all(_volt_factor(c["unit"]) for c in chans)


def nwb_name(text: str) -> str:
    """A name NWB accepts (letters, digits, ``_.-``) for a stream or channel name."""
    return _SAFE_NAME.sub("_", text).strip("_") or "unnamed"


def _is_regular(stamps: np.ndarray, sfreq: float) -> bool:
    if stamps.size < 2:
        return True
    ideal = stamps[0] + np.arange(stamps.size) / sfreq
    return bool(np.max(np.abs(stamps - ideal)) < 1e-9)


class _BlockIterator:
    """hdmf ``AbstractDataChunkIterator`` over :class:`SamplesReader` blocks (built lazily)."""

    @staticmethod
    def make(reader: SamplesReader, n_channels: int, dtype: np.dtype, chunk_rows: int) -> Any:
        from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

        n_total = reader.stream.n_samples

        class Blocks(AbstractDataChunkIterator):
            def __init__(self) -> None:
                self._it: Iterator[tuple[int, np.ndarray]] = iter(reader)

            def __iter__(self) -> Blocks:
                return self

            def __next__(self) -> Any:
                row, values = next(self._it)
                return DataChunk(data=values, selection=np.s_[row : row + len(values), :])

            def recommended_chunk_shape(self) -> tuple[int, int]:
                return (chunk_rows, n_channels)

            def recommended_data_shape(self) -> tuple[int, int]:
                return (n_total, n_channels)

            @property
            def dtype(self) -> np.dtype:
                return dtype

            @property
            def maxshape(self) -> tuple[int, int]:
                return (n_total, n_channels)

        return Blocks()


def export_nwb(
    path: str | Path,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    block_s: float = 1.0,
    compression_level: int = 4,
    subject: Mapping[str, str] | None = None,
    raw: bool = True,
) -> Path:
    """Write a run folder's (or an XDF file's) recording as an NWB file.

    Parameters
    ----------
    path : str or Path
        A run folder (``recording.xdf`` inside it) or an ``.xdf`` file.
    out : str or Path, optional
        The NWB file to write; default ``session.nwb`` in the run folder (next to an XDF file:
        ``<stem>.nwb``).
    overwrite : bool
        Replace an existing file (default: refuse).
    block_s : float
        Seconds of an electrical stream copied per block (memory per block: channels x rate x
        ``block_s`` samples).
    compression_level : int
        gzip level of the electrical streams (0-9).
    subject : mapping, optional
        ``subject_id``, ``species``, ``sex``, ``age``, ``description`` of the NWB ``Subject``;
        default: the session config's ``subject`` entry, else a simulated subject (module doc).
    raw : bool
        Write the electrical streams' samples (``ElectricalSeries``); False keeps their electrodes
        and everything else (a small file, and the only kind neo's NWBIO reads, see module doc).

    Returns
    -------
    Path
        The NWB file written.

    Raises
    ------
    RecordingNotFoundError, RecordingFormatError
        No recording, or not a readable XDF file.
    NWBExportError
        The output exists (without ``overwrite``), or a stream cannot be written.
    """
    from bci.checks import check_value, ensure_float

    block_s = ensure_float(block_s, "block_s", minimum=0.0, strict_minimum=True, error=ConfigError)
    compression_level = check_value(compression_level, range(10), "compression_level")
    scan = scan_xdf(path)
    xdf = scan.path
    run_dir = xdf.parent if xdf.name == "recording.xdf" else None
    target = Path(out) if out is not None else (
        run_dir / NWB_FILE_NAME if run_dir is not None else xdf.with_suffix(".nwb")
    )  # fmt: skip
    if target.exists() and not overwrite:
        raise NWBExportError(f"{target} exists; pass --overwrite to replace it.")
    with tempfile.TemporaryDirectory(prefix="bci-nwb-") as tmp:
        split = split_xdf(scan, is_electrical, Path(tmp) / "recording.xdf")
        from bci.session.load import load

        block = load(split.rest_path)
        from bci.session.nwb_content import build_nwbfile

        nwbfile, electrical = build_nwbfile(
            block,
            split,
            name=run_dir.name if run_dir is not None else xdf.stem,
            run_dir=run_dir,
            subject=subject,
        )
        if raw:
            _add_electrical(nwbfile, electrical, split, block_s, compression_level)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.stem}.partial{target.suffix or '.nwb'}")
        from pynwb import NWBHDF5IO

        try:
            with NWBHDF5IO(str(partial), "w") as io:
                io.write(nwbfile)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
    return target


def _add_electrical(
    nwbfile: Any,
    raw: list[tuple[SplitStream, Any, float]],
    split: Any,
    block_s: float,
    level: int,
) -> None:
    """One ElectricalSeries per electrical stream, its samples copied block by block."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb.ecephys import ElectricalSeries

    for stream, region, t0 in raw:
        s = stream.summary
        if stream.n_samples == 0:
            continue
        dtype = np.dtype(_dtype(s.channel_format))
        chans = header_channels(stream.header)
        factors = [_volt_factor(c["unit"]) or 1e-6 for c in chans]
        conversion = factors[0]
        scale_text = stream.header.findtext("desc/acquisition/scale_uv_per_bit")
        channel_conversion = None
        if np.issubdtype(dtype, np.integer):
            scale = float(scale_text) if scale_text else 1.0
            channel_conversion = [scale * f / conversion for f in factors]
        elif len(set(factors)) > 1:
            channel_conversion = [f / conversion for f in factors]
        rate = s.nominal_srate
        block_rows = max(1, int(round(block_s * rate)))
        chunk_rows = int(
            min(stream.n_samples, max(1, (1 << 20) // (dtype.itemsize * s.n_channels)))
        )
        data = H5DataIO(
            _BlockIterator.make(SamplesReader(split.path, stream, block_rows), s.n_channels, dtype,
                                chunk_rows),
            compression="gzip",
            compression_opts=level,
            chunks=(chunk_rows, s.n_channels),
        )  # fmt: skip
        stamps = stream.stamps - t0
        timing: dict[str, Any]
        if _is_regular(stream.stamps, rate):
            timing = {"starting_time": float(stamps[0]), "rate": float(rate)}
        else:
            timing = {"timestamps": H5DataIO(stamps, compression="gzip", compression_opts=level)}
        description = (
            f"LSL stream {s.name!r} as recorded ({s.channel_format}, {s.n_channels} channels at "
            f"{rate:g} Hz)."
        )
        if np.issubdtype(dtype, np.integer):
            description += (
                f" Samples are ADC counts: volts = counts x channel_conversion x conversion "
                f"(scale_uv_per_bit {scale_text or 'missing in the header: counts taken as units'})."
            )
        nwbfile.add_acquisition(
            ElectricalSeries(
                name=nwb_name(s.name),
                data=data,
                electrodes=region,
                conversion=conversion,
                channel_conversion=channel_conversion,
                description=description,
                comments=f"source_id {stream.header.findtext('source_id') or ''}",
                **timing,
            )
        )


def _dtype(channel_format: str) -> str:
    from bci.session.xdf import XDF_DTYPES

    return XDF_DTYPES[channel_format]


def read_config_notes(run_dir: Path | None) -> str:
    """``config.yaml`` and ``summary.json`` of a run folder as one text (empty without them)."""
    if run_dir is None:
        return ""
    parts = []
    for name in ("config.yaml", "summary.json"):
        p = run_dir / name
        if p.is_file():
            parts.append(f"# {name}\n{p.read_text(encoding='utf-8')}")
    return "\n".join(parts)


def parse_tokens(label: str) -> dict[str, float]:
    """Numeric ``key=value`` tokens of a marker (``"stim sample=12 amp=300"`` -> sample, amp)."""
    out = {}
    for key, value in _TOKEN.findall(label):
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def session_start(block_datetime: _dt.datetime | None) -> _dt.datetime:
    """The recording's start as an aware UTC datetime (now when the header has none)."""
    if block_datetime is None:
        return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    if block_datetime.tzinfo is None:
        return block_datetime.replace(tzinfo=_dt.timezone.utc)
    return block_datetime.astimezone(_dt.timezone.utc)


def new_identifier() -> str:
    return str(uuid.uuid4())


def json_or_none(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
