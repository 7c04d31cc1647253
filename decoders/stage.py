"""The online decoder stage (BinnedChunk -> StateChunk) and an LSL outlet for decoded values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bci.errors import StageCompatibilityError
from bci.stream import BinnedChunk, Stage, StateChunk, StreamSpec
from decoders.base import Decoder
from decoders.modelfile import load_decoder


class DecoderStage(Stage, name="decoder"):
    """Run a saved (or in-memory) decoder on binned counts, one bin at a time.

    Each bin of the input becomes one row of the output, stamped with the bin's end in seconds
    since the stream start (``(first_bin + i + 1) * bin_s``, the earliest time it can be known).
    An invalid bin (:attr:`bci.stream.BinnedChunk.valid`) is not decoded: its row repeats the
    last decoded value and is marked invalid in the output.

    Parameters
    ----------
    model : str, Path or Decoder
        A model file written by :meth:`decoders.Decoder.save`, or a fitted decoder.

    Raises
    ------
    StageCompatibilityError
        From :meth:`prepare`, if the binned stream has another unit count or bin width than the
        model was trained on.
    """

    accepts = ("binned",)

    def __init__(self, model: str | Path | Decoder) -> None:
        self.decoder = model if isinstance(model, Decoder) else load_decoder(model)
        self.reset()

    @property
    def any_unit_count(self) -> bool:
        """Whether the decoder takes any number of units (order-free inputs)."""
        return bool(getattr(self.decoder, "any_unit_count", False))

    @property
    def output_names(self) -> tuple[str, ...]:
        """The decoded columns, known from the model before :meth:`prepare` (the runner checks
        the controller against them before anything starts)."""
        return tuple(self.decoder.info.output_names)

    @property
    def output_rate_hz(self) -> float:
        """Rows per second of the decoded state (one per bin of the model)."""
        return 1.0 / self.decoder.info.bin_s

    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        super().prepare(upstream)
        dec = self.decoder
        if not self.any_unit_count and upstream.n_channels != dec.n_units:
            raise StageCompatibilityError(
                f"DecoderStage: the model was trained on {dec.n_units} units, but the binned "
                f"stream has {upstream.n_channels}."
            )
        bin_s = dec.info.bin_s
        if upstream.rate_hz > 0 and abs(upstream.rate_hz * bin_s - 1.0) > 1e-6:
            raise StageCompatibilityError(
                f"DecoderStage: the model was trained on {bin_s * 1e3:g} ms bins, but the stream's "
                f"bins are {1e3 / upstream.rate_hz:g} ms."
            )
        self.output_spec = StreamSpec(
            kind="state",
            n_channels=dec.n_outputs,
            rate_hz=self.output_rate_hz,
            channel_names=dec.info.output_names,
            unit=dec.info.output_units[0] if dec.info.output_units else "",
            group_delay_samples=upstream.group_delay_samples,
            origin=upstream.origin,
        )
        return self.output_spec

    def reset(self) -> None:
        self.decoder.reset()
        self._last = np.full(self.decoder.n_outputs, np.nan, np.float32)

    def process(self, chunk: BinnedChunk) -> StateChunk | None:
        """Decode each valid bin; an invalid bin (``chunk.valid`` False: NaN/inf or lost signal)
        is not stepped: the row holds the last decoded value (NaN before any) and is marked
        invalid, so the decoder's state never learns silence that was not measured."""
        if chunk.n_bins == 0:
            return None
        values = np.empty((chunk.n_bins, self.decoder.n_outputs), np.float32)
        valid = chunk.valid
        for i in range(chunk.n_bins):
            if valid is None or valid[i]:
                self._last = np.asarray(self.decoder.step(chunk.counts[i]), np.float32)
            values[i] = self._last
        t = (chunk.first_bin + 1 + np.arange(chunk.n_bins)) * chunk.bin_s
        return StateChunk(values, t.astype(np.float64), None if valid is None else valid.copy())

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if isinstance(self._init_params.get("model"), Decoder):
            d["params"]["model"] = f"<in-memory {type(self.decoder).__name__}>"
        return d


class DecodedOutlet:
    """Publish decoded values on LSL: one channel per output, labels and units in the header.

    Parameters
    ----------
    decoder : Decoder
        Gives the channel labels (``info.output_names``), units and nominal rate (1 / bin_s).
    name, source_id : str
        LSL stream name and source id; the content type is ``"Decoded"``.
    """

    def __init__(self, decoder: Decoder, name: str = "decoded", source_id: str = "") -> None:
        from bci.acquisition import SignalOutlet, make_stream_info

        info = make_stream_info(
            name,
            "Decoded",
            decoder.n_outputs,
            1.0 / decoder.info.bin_s,
            "float32",
            source_id,
            labels=list(decoder.info.output_names),
            units=list(decoder.info.output_units),
            channel_types="Decoded",
            model=f"decoders.{type(decoder).__name__}",
        )
        self.outlet = SignalOutlet(info)

    def push(self, chunk: StateChunk, t_lsl_last: float = 0.0) -> None:
        """Push a StateChunk (``t_lsl_last``: LSL time of its last row; 0 = now)."""
        self.outlet.push(chunk.values, t_lsl_last)
