"""Decoders: binned spike counts -> the variables a BCI acts on.

One interface for all (:class:`Decoder`: ``fit``, ``predict``, ``reset``, ``step``, ``save``,
``load``): the classic baselines (:class:`WienerDecoder`, :class:`KalmanDecoder`), a small ANN
(:class:`MLPDecoder`, :class:`GRUDecoder`), spiking decoders trained with surrogate gradients (:class:`SNNDecoder`,
:class:`RecurrentSNNDecoder`) or converted from a ReLU network (:class:`ConvertedSNNDecoder`), and
the symptom decoder of closed-loop DBS (:class:`SymptomDecoder`). Spiking models are saved as NIR
graphs and run in numpy (:mod:`decoders.runtime`); torch is needed only to train them.

>>> from decoders import WienerDecoder
>>> from bci.synthesis.motor import simulate_reaching
>>> data = simulate_reaching(n_units=20, duration_s=60.0, seed=1)
>>> dec = WienerDecoder().fit(data.counts[:2400], data.velocity[:2400])
>>> dec.predict(data.counts[2400:]).shape
(600, 2)
"""

from __future__ import annotations

import importlib
from typing import Any

from decoders.base import Decoder, DecoderInfo, Normalisation
from decoders.baselines import KalmanDecoder, WienerDecoder
from decoders.errors import DecoderConfigError, DecoderError, ModelFileError, NotFittedError
from decoders.modelfile import FORMAT_VERSION, load_decoder
from decoders.stage import DecodedOutlet, DecoderStage  # registers the "decoder" stage

load = load_decoder

#: Names loaded on first use.
_LAZY = {
    "MLPDecoder": "decoders.ann",
    "GRUDecoder": "decoders.ann",
    "SNNDecoder": "decoders.snn.decoder",
    "RecurrentSNNDecoder": "decoders.snn.decoder",
    "ConvertedSNNDecoder": "decoders.snn.decoder",
    "SymptomDecoder": "decoders.symptom",
}

__all__ = [
    "FORMAT_VERSION",
    "Decoder",
    "DecodedOutlet",
    "DecoderConfigError",
    "DecoderStage",
    "DecoderError",
    "DecoderInfo",
    "KalmanDecoder",
    "ModelFileError",
    "Normalisation",
    "NotFittedError",
    "WienerDecoder",
    "load",
    "load_decoder",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'decoders' has no attribute {name!r}")
