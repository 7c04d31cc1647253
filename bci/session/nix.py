"""Save and load a session's ``neo.Block`` as ``session.nix`` with neo's NixIO (the analysis format).

NixIO (neo 0.14.6, nixio 1.5) keeps signals with their units, sampling rate and ``t_start``, spike
trains with waveforms, event labels and every annotation and array annotation. What it cannot store
is refused here before anything is written, naming the object and key: annotation values must be
``str``, ``bool``, ``int``, ``float``, ``datetime``/``date``/``time``, a quantity, or a flat list /
1-D array of these (no dicts, no None, no nested sequences); array annotations must be 1-D.

neo's NixIO adds ``nix_name`` annotations (the names of the NIX objects) to the Block it writes and
to the Block it reads; :func:`save_nix` and :func:`load_nix` remove them, so a Block that went to
disk and back compares equal to the one written. NIX stores datetimes without a time zone: keep
``rec_datetime`` naive (our loader gives UTC). NixIO reads a spike train's ``left_sweep`` in the units
of its waveform sampling period whatever units it was written in; :func:`save_nix` writes it in those
units and :func:`load_nix` returns it in ms. NixIO also gives a one-element list annotation back
as a scalar (``["a"]`` -> ``"a"``); our loader writes no list annotations for that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import neo
import numpy as np
import quantities as pq

from bci.errors import BCIError

#: File name of the analysis copy inside a run folder.
NIX_FILE_NAME = "session.nix"
_SCALARS = (
    str,
    bool,
    int,
    float,
    np.integer,
    np.floating,
    np.bool_,
    datetime,
    date,
    time,
    pq.Quantity,
)


class NixAnnotationError(BCIError, TypeError):
    """An annotation value NixIO cannot store."""


class NixFileError(BCIError, OSError):
    """A session.nix file is missing or unreadable."""


def _objects(block: neo.Block) -> Iterator[Any]:
    yield block
    for seg in block.segments:
        yield seg
        yield from seg.analogsignals
        yield from seg.irregularlysampledsignals
        yield from seg.spiketrains
        yield from seg.events
        yield from seg.epochs
    yield from block.groups


def _check_value(where: str, key: str, value: Any) -> None:
    if isinstance(value, _SCALARS):
        if isinstance(value, pq.Quantity) and value.ndim > 1:
            raise NixAnnotationError(f"{where}: annotation {key!r} is a {value.ndim}-D quantity.")
        return
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.ndim > 1 or arr.dtype == object:
            raise NixAnnotationError(
                f"{where}: annotation {key!r} must be a flat list of str/int/float/bool for NixIO, "
                f"got {type(value).__name__} of {arr.dtype} with shape {arr.shape}."
            )
        return
    raise NixAnnotationError(
        f"{where}: annotation {key!r} has type {type(value).__name__}, which NixIO cannot store "
        "(use str, int, float, bool, datetime, a quantity or a flat list of these)."
    )


def check_nix_annotations(block: neo.Block) -> None:
    """Raise :class:`NixAnnotationError` naming the first annotation NixIO could not store."""
    for obj in _objects(block):
        where = f"{type(obj).__name__} {obj.name!r}"
        for key, value in obj.annotations.items():
            _check_value(where, key, value)
        for key, value in getattr(obj, "array_annotations", {}).items():
            arr = np.asarray(value)
            if arr.ndim != 1 or arr.dtype == object:
                raise NixAnnotationError(
                    f"{where}: array annotation {key!r} must be a 1-D array of numbers or "
                    f"strings, got shape {arr.shape} and dtype {arr.dtype}."
                )


def save_nix(block: neo.Block, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write ``block`` to a NIX file with neo's NixIO.

    Parameters
    ----------
    block : neo.Block
        Usually from :func:`bci.session.load.load`.
    path : str or Path
        A ``.nix`` file, or a run folder (the file is then ``session.nix`` inside it).
    overwrite : bool
        Replace an existing file; if False an existing file raises ``FileExistsError``.

    Returns
    -------
    Path
        The file written.
    """
    from neo.io import NixIO

    p = Path(path)
    if p.is_dir():
        p = p / NIX_FILE_NAME
    if p.exists():
        if not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it.")
        p.unlink()
    check_nix_annotations(block)
    p.parent.mkdir(parents=True, exist_ok=True)
    had_name = {id(obj) for obj in _objects(block) if "nix_name" in obj.annotations}
    # neo 0.14.6 NixIO writes left_sweep's number but reads it back in the units of the
    # waveforms' sampling period (0.3 ms -> 0.3 s when the period is in s or 1/Hz): hand it the
    # number in those units, and put the caller's value back afterwards.
    sweeps = {}
    for seg in block.segments:
        for st in seg.spiketrains:
            if st.waveforms is not None and st.left_sweep is not None:
                sweeps[id(st)] = (st, st.left_sweep)
                st.left_sweep = st.left_sweep.rescale(st.sampling_period.units)
    try:
        with NixIO(str(p), mode="ow") as io:
            io.write_block(block)
    finally:
        # NixIO stamps "nix_name" on the objects it writes; leave the caller's Block as it was
        for obj in _objects(block):
            if id(obj) not in had_name:
                obj.annotations.pop("nix_name", None)
        for st, sweep in sweeps.values():
            st.left_sweep = sweep
    return p


def load_nix(path: str | Path) -> neo.Block:
    """Read the (first) Block of a NIX file written by :func:`save_nix`.

    ``path`` may be the file or a run folder holding ``session.nix``. Waveforms, annotations and
    array annotations come back as written; NixIO's own ``nix_name`` annotations are dropped.
    """
    from neo.io import NixIO

    p = Path(path)
    if p.is_dir():
        p = p / NIX_FILE_NAME
    if not p.is_file():
        raise NixFileError(f"NIX file {p} does not exist.")
    try:
        with NixIO(str(p), mode="ro") as io:
            blocks = io.read_all_blocks()
    except Exception as err:  # nixio/h5py raise OSError, RuntimeError, KeyError ...
        raise NixFileError(f"Could not read NIX file {p}: {err}") from err
    if not blocks:
        raise NixFileError(f"NIX file {p} holds no Block.")
    block = blocks[0]
    for obj in _objects(block):
        obj.annotations.pop("nix_name", None)
    for seg in block.segments:
        for st in seg.spiketrains:
            if st.left_sweep is not None:  # stored in the sampling period's units (1/Hz or s)
                st.left_sweep = st.left_sweep.rescale(pq.ms)
    return block


def write_run_nix(run_dir: str | Path, *, dejitter: bool = False) -> Path:
    """Load a run folder's ``recording.xdf`` and save it next to it as ``session.nix``.

    What the runner calls after each run; returns the NIX file's path.
    """
    from bci.session.load import load

    run_dir = Path(run_dir)
    return save_nix(load(run_dir, dejitter=dejitter), run_dir / NIX_FILE_NAME)
