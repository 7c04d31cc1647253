"""Saved decoders: one file per model, with everything needed to run it on a live stream.

Two containers, told apart by their first bytes:

- spiking decoders are a NIR graph (HDF5, :func:`nir.write`), readable by any NIR tool, whose graph
  metadata holds the key ``"decoders"``: a JSON string with the fields below;
- the other decoders are a ``.npz`` archive of their arrays plus one entry ``"decoders"`` holding
  the same JSON string.

The JSON fields: ``format_version`` (:data:`FORMAT_VERSION`), ``kind`` (the decoder class's
:attr:`~decoders.base.Decoder.kind`), ``n_units``, ``n_outputs``, ``info``
(:class:`~decoders.base.DecoderInfo`: bin width, unit order, output names and units),
``normalisation`` (:class:`~decoders.base.Normalisation`), ``params`` (hyper-parameters) and,
optionally, ``provenance`` (command, seed, wall time of the training run).
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from decoders.base import Decoder, DecoderInfo, Normalisation
from decoders.errors import DecoderError, ModelFileError, NotFittedError

#: Version of the layout above; files of a newer version are refused with a clear error.
FORMAT_VERSION = 1
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"


#: kind -> "module:Class" of every decoder a file can hold (imported on load).
DECODER_KINDS: dict[str, str] = {
    "wiener": "decoders.baselines:WienerDecoder",
    "kalman": "decoders.baselines:KalmanDecoder",
    "mlp": "decoders.ann:MLPDecoder",
    "gru": "decoders.ann:GRUDecoder",
    "snn": "decoders.snn.decoder:SNNDecoder",
    "rsnn": "decoders.snn.decoder:RecurrentSNNDecoder",
    "converted_snn": "decoders.snn.decoder:ConvertedSNNDecoder",
    "symptom": "decoders.symptom:SymptomDecoder",
}


def _decoder_class(kind: str) -> type[Decoder]:
    module, _, name = DECODER_KINDS[kind].partition(":")
    cls: type[Decoder] = getattr(importlib.import_module(module), name)
    return cls


def header(dec: Decoder, params: dict[str, Any]) -> dict[str, Any]:
    """The JSON fields of a fitted decoder's file."""
    if dec.norm is None:
        raise NotFittedError(f"Cannot save an unfitted {type(dec).__name__}: call fit(X, Y) first.")
    return {
        "format_version": FORMAT_VERSION,
        "kind": dec.kind,
        "n_units": dec.n_units,
        "n_outputs": dec.n_outputs,
        "info": dec.info.to_dict(),
        "normalisation": dec.norm.to_dict(),
        "params": params,
        "provenance": getattr(dec, "provenance", {}),
    }


def save_decoder(dec: Decoder, path: str | Path) -> Path:
    """Write ``dec`` to ``path`` (NIR/HDF5 for spiking decoders, npz otherwise)."""
    path = Path(path)
    params, arrays = dec._state()
    meta = json.dumps(header(dec, params))
    to_nir = getattr(dec, "to_nir", None)
    if to_nir is not None:
        import nir

        graph = to_nir()
        graph.metadata["decoders"] = meta
        nir.write(path, graph)
    else:
        buf = io.BytesIO()
        entries: dict[str, Any] = {f"a_{k}": v for k, v in arrays.items()}
        np.savez(buf, decoders=np.array(meta), **entries)
        path.write_bytes(buf.getvalue())
    return path


def read_header(path: str | Path) -> tuple[dict[str, Any], Any]:
    """Return ``(header, payload)``: payload is the NIR graph or the dict of arrays.

    Raises
    ------
    ModelFileError
        If the file is missing, not a decoder file, corrupt, or of a newer format version.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise ModelFileError(f"Cannot read the decoder model {path}: {err.strerror}.") from None
    try:
        if head.startswith(_HDF5_MAGIC):
            import nir

            graph = nir.read(path)
            raw = graph.metadata.get("decoders")
            payload: Any = graph
        elif head.startswith(_ZIP_MAGIC):
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as npz:
                raw = str(npz["decoders"]) if "decoders" in npz.files else None
                payload = {k[2:]: npz[k] for k in npz.files if k.startswith("a_")}
        else:
            raise ModelFileError(
                f"{path} is not a decoder model file (neither a NIR/HDF5 graph nor an npz archive)."
            )
    except ModelFileError:
        raise
    except (
        OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError,
        # h5py and nir raise these on damaged HDF5 structures
        RuntimeError, TypeError, AttributeError, IndexError,
    ) as err:  # fmt: skip
        raise ModelFileError(f"{path} is corrupt or truncated: {err!r}") from None
    if raw is None:
        raise ModelFileError(
            f"{path} holds no decoder metadata (a plain NIR graph or npz, not written by decoders)."
        )
    try:
        meta = json.loads(raw)
        version = int(meta["format_version"])
    except (ValueError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path} has unreadable decoder metadata: {err}") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written in decoder format version {version}, but this toolkit reads "
            f"versions up to {FORMAT_VERSION}: update the toolkit to load it."
        )
    return meta, payload


def load_decoder(path: str | Path, n_units: int | None = None) -> Decoder:
    """Load any saved decoder; with ``n_units``, refuse a model fitted on another unit count."""
    meta, payload = read_header(path)
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(kind, str) or kind not in DECODER_KINDS:
        raise ModelFileError(
            f"{path} holds a decoder of kind {kind!r}; known kinds are {sorted(DECODER_KINDS)}."
        )
    cls = _decoder_class(kind)
    dec = cls.__new__(cls)
    Decoder.__init__(dec)
    try:
        dec.n_units, dec.n_outputs = int(meta["n_units"]), int(meta["n_outputs"])
        if n_units is not None and dec.n_units not in (0, n_units):  # 0: any unit count
            raise ModelFileError(
                f"{path} was fitted on {dec.n_units} units, but the stream has {n_units}."
            )
        dec.info = DecoderInfo.from_dict(meta["info"])
        dec.norm = Normalisation.from_dict(meta["normalisation"])
        dec.provenance = dict(meta.get("provenance") or {})  # type: ignore[attr-defined]
        if hasattr(cls, "from_nir"):
            dec.from_nir(payload, meta["params"])  # type: ignore[attr-defined]
        else:
            dec._from_state(meta["params"], payload)
        if dec.n_units > 0:  # the arrays must fit the header: decode one bin of zeros
            dec.reset()
            with np.errstate(divide="raise", invalid="raise", over="raise"):
                out = np.asarray(dec.step(np.zeros(dec.n_units)))
            if out.shape != (dec.n_outputs,):
                raise ValueError(f"it decodes {out.shape} outputs, its header says {dec.n_outputs}")
    except ModelFileError:
        raise
    except (
        DecoderError, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError,
        RuntimeError, OSError, FloatingPointError,
    ) as err:  # fmt: skip
        raise ModelFileError(
            f"{path} is missing or has malformed model parameters: {err!r}"
        ) from None
    dec.reset()
    dec.provenance = dict(meta.get("provenance", {}))  # type: ignore[attr-defined]
    return dec
